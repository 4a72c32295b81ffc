"""What InfluxDB pays for gridcall's points against the peer harness's.

``python bench/ingest_point_cost.py [--influx http://127.0.0.1:18086]``

Limit B of ``../shared/bench/peer_ingest_bench.py`` posts points with two tags and one
field (``reading,agent=a00,sensor=s0000 value=12.3 <ts>``). The hub writes each reading
with the tags the boards filter on (``kind``, ``town``, ``community``, ``grid``) and the
batch's ``seq`` as a second field, so that every stored reading traces back to its
message. This posts the same 1,000,000 readings in both forms, 5,000 points a request,
one writer, encoded beforehand (as limit B), to a scratch database, and prints points/s.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest_bench_config import write_bench_config  # noqa: E402
from gridcall.config import load_config  # noqa: E402
from gridcall.sinks import encoder_for  # noqa: E402
from gridcall.wire import Reading, ReadingBatch  # noqa: E402


def workload() -> list[ReadingBatch]:
    """The harness's: 50 agents x 400 messages x 50 readings, an hour ago, 1 ms apart."""
    base = (time.time_ns() // 10**9 - 3600) * 10**9
    rnd = random.Random(1)
    return [ReadingBatch(agent=f"a{a:02d}", seq=seq, sent_at=base, readings=[
        Reading(f"s{a:02d}{k:02d}", base + (seq * 50 + k) * 1_000_000 + a * 7 + 1,
                round(rnd.uniform(-20, 80), 3)) for k in range(50)])
        for seq in range(400) for a in range(50)]


def harness_lines(batches: Sequence[ReadingBatch]) -> bytes:
    return "".join(f"reading,agent={b.agent},sensor={r.sensor} value={r.value} {r.ts}\n"
                   for b in batches for r in b.readings).encode()


def post_all(influx: str, bodies: list[bytes]) -> float:
    """Seconds to write every body, one writer, into a fresh scratch database."""
    db = f"point_cost_{time.time_ns()}"
    with httpx.Client(base_url=influx, timeout=120) as http:
        http.post("/query", data={"q": f"CREATE DATABASE {db}"}).raise_for_status()
        try:
            start = time.perf_counter()
            for body in bodies:
                resp = http.post("/write", params={"db": db, "precision": "ns"},
                                 content=body)
                if resp.status_code != 204:
                    raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:300]}")
            return time.perf_counter() - start
        finally:
            http.post("/query", data={"q": f"DROP DATABASE {db}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--influx", default="http://127.0.0.1:18086")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gridcall-point-cost-"))
    write_bench_config(folder, 50, 50)
    (folder / "hub.yaml").write_text("hub: {broker: {url: 'mqtt://127.0.0.1:1883'}}\n",
                                     encoding="utf-8")
    gridcall_lines = encoder_for(load_config(folder)).encode
    batches = workload()
    forms: list[tuple[str, Callable[[Sequence[ReadingBatch]], bytes]]] = [
        ("harness's limit B (2 tags, 1 field)", harness_lines),
        ("gridcall's points (6 tags, value + seq)", gridcall_lines)]
    for name, encode in forms:
        bodies = [encode(batches[i:i + 100]) for i in range(0, len(batches), 100)]
        seconds = post_all(args.influx, bodies)
        print(f"{name}: {1_000_000 / seconds:,.0f} points/s "
              f"({sum(map(len, bodies)) / 1e6:.0f} MB of line protocol)", flush=True)


if __name__ == "__main__":
    main()
