"""Readings per second of the hub's line-protocol encoder, beside a naive baseline.

``python bench/lineproto_bench.py [--agents 200] [--sensors 25] [--batch 50] [--rounds 5]``

Deterministic and network-free: the same batches every run (seeded values), encoded
``--rounds`` times; the best round is reported, as JSON on one line. The baseline escapes
and formats every tag of every reading again, which is what the prefix cache saves.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence

from gridcall.hub.ingest.sinks import LineEncoder
from gridcall.hub.ingest.sinks.lineproto import escape_tag
from gridcall.wire import Reading, ReadingBatch

T0 = 1_795_000_000_000_000_000


def workload(agents: int, sensors: int, per_batch: int, batches: int
             ) -> tuple[dict[str, dict[str, str]], list[ReadingBatch]]:
    rng = random.Random(7)
    tags = {f"s{j:03d}": {"kind": ("gas", "water", "power", "smoke")[j % 4],
                          "grid": f"g{j % 27}", "community": f"c{j % 9}", "town": f"t{j % 3}"}
            for j in range(sensors)}
    names = list(tags)
    out = [ReadingBatch(agent=f"edge-{i % agents:04d}", seq=i // agents, sent_at=T0,
                        readings=[Reading(names[(i + k) % sensors], T0 + i * 1_000_000 + k,
                                          round(rng.gauss(20.0, 5.0), 3))
                                  for k in range(per_batch)])
           for i in range(batches)]
    return tags, out


def naive_encode(tags: Mapping[str, Mapping[str, str]], batches: Sequence[ReadingBatch]
                 ) -> bytes:
    lines = []
    for b in batches:
        for r in b.readings:
            if not math.isfinite(r.value):
                continue
            extra = "".join(f",{escape_tag(k)}={escape_tag(v)}"
                            for k, v in sorted(tags.get(r.sensor, {}).items()))
            lines.append(f"reading,agent={escape_tag(b.agent)},sensor={escape_tag(r.sensor)}"
                         f"{extra} value={r.value},seq={b.seq}i {r.ts}\n")
    return "".join(lines).encode()


def best_of(rounds: int, fn: Callable[[], bytes]) -> tuple[float, int]:
    best, size = math.inf, 0
    for _ in range(rounds):
        start = time.perf_counter()
        size = len(fn())
        best = min(best, time.perf_counter() - start)
    return best, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--sensors", type=int, default=25)
    parser.add_argument("--batch", type=int, default=50, help="readings per batch")
    parser.add_argument("--batches", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    tags, batches = workload(args.agents, args.sensors, args.batch, args.batches)
    n = sum(len(b.readings) for b in batches)
    encoder = LineEncoder(tags, seq_field=True)  # the rich layout: the most to encode
    cold_start = time.perf_counter()
    encoder.encode(batches)  # fills the prefix cache, as a running hub has
    cold = time.perf_counter() - cold_start
    warm, size = best_of(args.rounds, lambda: encoder.encode(batches))
    naive, naive_size = best_of(args.rounds, lambda: naive_encode(tags, batches))
    if size != naive_size:
        raise SystemExit(f"baseline wrote {naive_size} bytes, the encoder {size}: not comparable")
    print(json.dumps({
        "readings": n, "bytes": size, "bytes_per_reading": round(size / n, 1),
        "encode_readings_per_s": round(n / warm),
        "first_encode_readings_per_s": round(n / cold),
        "naive_readings_per_s": round(n / naive),
        "speedup_vs_naive": round(naive / warm, 2),
    }))


if __name__ == "__main__":
    main()
