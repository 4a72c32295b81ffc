"""What InfluxDB pays for each part of a stored reading: which tags and fields cost what.

``python bench/ingest_point_cost.py [--influx http://127.0.0.1:18086] [--rounds 3]``

Limit B of ``../shared/bench/peer_ingest_bench.py`` posts points with two tags and one
field (``reading,agent=a00,sensor=s0000 value=12.3 <ts>``). Until issue 20's lean layout
the hub wrote each reading with the ladder's tags (``kind``, ``town``, ``community``,
``grid``) and the batch's ``seq`` as a second field. This posts the same 1,000,000
readings (the harness's workload: 50 agents x 50 sensors, 400 messages each) in several
layouts, 5,000 points a request, one writer, encoded beforehand (as limit B does), each
into a fresh scratch database, and prints points/s per layout.

The machine is shared, so the layouts are interleaved: every round posts each layout
once, in an order rotated by one each round, and the figures of one layout are printed
side by side (median last). Compare layouts within one run only.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest_bench_config import write_bench_config  # noqa: E402
from gridcall.config import ConfigSet, load_config  # noqa: E402
from gridcall.wire import Reading, ReadingBatch  # noqa: E402

Encode = Callable[[Sequence[ReadingBatch]], bytes]


def workload() -> list[ReadingBatch]:
    """The harness's: 50 agents x 400 messages x 50 readings, an hour ago, 1 ms apart."""
    base = (time.time_ns() // 10**9 - 3600) * 10**9
    rnd = random.Random(1)
    return [ReadingBatch(agent=f"a{a:02d}", seq=seq, sent_at=base, readings=[
        Reading(f"s{a:02d}{k:02d}", base + (seq * 50 + k) * 1_000_000 + a * 7 + 1,
                round(rnd.uniform(-20, 80), 3)) for k in range(50)])
        for seq in range(400) for a in range(50)]


def layout(config: ConfigSet, tags: Sequence[str], seq: bool) -> Encode:
    """Points ``reading,agent=..,sensor=..[,<tags>] value=..[,seq=..i] <ts>``; ``tags``
    among kind, town, community, grid (written in InfluxDB's sorted key order)."""
    def tag_of(sensor: str) -> str:
        s = config.sensors[sensor]
        known = {"kind": s.kind, "town": s.path[1], "community": s.path[2], "grid": s.grid}
        return "".join(f",{k}={known[k]}" for k in sorted(tags))
    extra = {s: tag_of(s) for s in config.sensors}

    def encode(batches: Sequence[ReadingBatch]) -> bytes:
        return "".join(
            f"reading,agent={b.agent},sensor={r.sensor}{extra[r.sensor]} value={r.value}"
            f"{f',seq={b.seq}i' if seq else ''} {r.ts}\n"
            for b in batches for r in b.readings).encode()
    return encode


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


LAYOUTS: list[tuple[str, tuple[str, ...], bool]] = [
    ("agent, sensor | value (the harness's limit B; gridcall's lean default)", (), False),
    ("agent, sensor | value, seq", (), True),
    ("agent, sensor, grid | value", ("grid",), False),
    ("agent, sensor, grid | value, seq", ("grid",), True),
    ("6 tags | value", ("kind", "town", "community", "grid"), False),
    ("6 tags | value, seq (gridcall's points before issue 20; `points: traced`)",
     ("kind", "town", "community", "grid"), True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--influx", default="http://127.0.0.1:18086")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gridcall-point-cost-"))
    write_bench_config(folder, 50, 50)
    (folder / "hub.yaml").write_text("hub: {broker: {url: 'mqtt://127.0.0.1:1883'}}\n",
                                     encoding="utf-8")
    config = load_config(folder)
    batches = workload()
    prepared = []
    for name, tags, seq in LAYOUTS:
        encode = layout(config, tags, seq)
        bodies = [encode(batches[i:i + 100]) for i in range(0, len(batches), 100)]
        prepared.append((name, bodies))
    rates: dict[str, list[float]] = {name: [] for name, _ in prepared}
    for r in range(args.rounds):
        order = prepared[r % len(prepared):] + prepared[:r % len(prepared)]
        for name, bodies in order:
            rates[name].append(1_000_000 / post_all(args.influx, bodies))
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    for name, bodies in prepared:
        got = rates[name]
        print(f"{name}: {', '.join(f'{x / 1000:.0f}k' for x in got)} points/s, median "
              f"{statistics.median(got) / 1000:.0f}k ({sum(map(len, bodies)) / 1e6:.0f} MB)",
              flush=True)


if __name__ == "__main__":
    main()
