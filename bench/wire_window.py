"""What the hub's ts window costs per reading, beside decoding without it.

``python bench/wire_window.py [--batches 4000] [--batch 50] [--rounds 9]``

Deterministic and network-free: ``--batches`` batches of ``--batch`` readings, every
reading stamped within the window. Figures as JSON on one line: ns per reading for
``Decoder.readings`` without a window and with the default one (30 days back, 1 hour
ahead), best of ``--rounds`` rounds that each run both cases (a load swing hits both),
and the difference.
"""

from __future__ import annotations

import argparse
import json
import time

from gridcall.wire import Decoder, Reading, ReadingBatch, TsWindow, encode
from gridcall.wire.clock import DAY_NS, NS

NOW = 1_795_000_000_000_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    payloads = [encode(ReadingBatch(agent="a1", seq=i, sent_at=NOW, readings=[
        Reading(f"s{j}", NOW - j * NS, 1.5) for j in range(args.batch)]))
        for i in range(args.batches)]
    topic = "gridcall/v1/readings/a1"
    cases = {"no_window": Decoder(),
             "window": Decoder(window=TsWindow(30 * DAY_NS, 3600 * NS), clock=lambda: NOW)}
    best = dict.fromkeys(cases, float("inf"))
    n = args.batches * args.batch
    for _ in range(args.rounds):
        for name, decoder in cases.items():
            started = time.perf_counter()
            for payload in payloads:
                decoder.readings(topic, payload)
            best[name] = min(best[name], (time.perf_counter() - started) / n * 1e9)
    print(json.dumps({"readings": n, "ns_per_reading": {k: round(v, 1) for k, v in
                                                        best.items()},
                      "window_adds_ns": round(best["window"] - best["no_window"], 1)}))


if __name__ == "__main__":
    main()
