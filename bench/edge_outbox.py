"""Outbox writes per second, per fsync policy, on this machine's disk.

    PYTHONPATH=$PWD python bench/edge_outbox.py [--dir /var/tmp] [--batches 2000]

Each write is one committed ``put`` as the agent does it: a sealed batch of 50 readings
(a real encoded ReadingBatch, ~2.9 KB) or one anomaly event (~250 bytes). Acks delete a
publish window (16 messages) per transaction. "memory" is the same SQLite code with no
file (the demo's mode), i.e. the cost without any disk.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from gridcall.edge_agent.outbox import Outbox, Priority, SyncPolicy
from gridcall.wire import AnomalyEvent, Reading, ReadingBatch, encode

NOW = 1_790_000_000 * 10**9


def payloads() -> tuple[bytes, bytes]:
    batch = ReadingBatch(agent="edge-bench", seq=1_790_000_000_000_001, sent_at=NOW,
                         readings=[Reading(f"grid-g1-sensor-{i % 13}", NOW + i * 10**7,
                                           20.123456 + i) for i in range(50)])
    event = AnomalyEvent(agent="edge-bench", seq=1_790_000_000_000_001,
                         sensor="grid-g1-sensor-1", kind="out_of_limits", severity="major",
                         score=1.0, value=45.5, ts=NOW)
    return encode(batch), encode(event)


def run(folder: Path | None, sync: SyncPolicy, n: int) -> dict[str, float]:
    batch, event = payloads()
    box = Outbox(folder / f"bench-{sync}.sqlite" if folder else None, sync=sync)
    t0 = time.perf_counter()
    for _ in range(n):
        box.put(Priority.READINGS, "r", batch, 50)
    t_batches = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        box.put(Priority.EVENT, "e", event)
    t_events = time.perf_counter() - t0
    t0 = time.perf_counter()
    acked = 0
    while window := box.peek(16):
        box.ack(window)
        acked += len(window)
    t_ack = time.perf_counter() - t0
    box.close()
    return {"batch_puts_per_s": n / t_batches, "readings_per_s": 50 * n / t_batches,
            "event_puts_per_s": n / t_events, "acked_msgs_per_s": acked / t_ack,
            "ms_per_batch_put": 1000 * t_batches / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"),
                    help="a folder on the disk to measure (not a tmpfs)")
    ap.add_argument("--batches", type=int, default=2000)
    args = ap.parse_args()
    print(f"batch payload {len(payloads()[0])} B, event payload {len(payloads()[1])} B, "
          f"{args.batches} puts each")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for label, folder, sync in (("full (disk)", Path(tmp), "full"),
                                    ("normal (disk)", Path(tmp), "normal"),
                                    ("memory", None, "normal")):
            r = run(folder, sync, args.batches)  # type: ignore[arg-type]
            print(f"{label:14s} batch puts/s {r['batch_puts_per_s']:8.0f} "
                  f"({r['ms_per_batch_put']:.2f} ms each, {r['readings_per_s']:9.0f} "
                  f"readings/s)  event puts/s {r['event_puts_per_s']:8.0f}  "
                  f"acked msgs/s {r['acked_msgs_per_s']:8.0f}")


if __name__ == "__main__":
    main()
