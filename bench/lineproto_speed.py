"""Readings/s of the hub's line-protocol encoder (its hot path before InfluxDB).

``python bench/lineproto_speed.py``: 50 agents × 50 readings per batch, 2,000 batches.
"""

from __future__ import annotations

import json
import time

from hub.sinks import LineEncoder
from wire import Reading, ReadingBatch


def main() -> None:
    tags = {f"s{j}": {"kind": "gas", "grid": f"g{j % 27}", "community": "c", "town": "t"}
            for j in range(50)}
    encoder = LineEncoder(tags)
    batches = [ReadingBatch(agent=f"edge-{i % 50}", seq=i, sent_at=0,
                            readings=[Reading(f"s{j}", 1_795_000_000_000_000_000 + i * 1000 + j,
                                              j * 1.5 + i) for j in range(50)])
               for i in range(2000)]
    encoder.encode(batches[:10])
    start = time.process_time()
    body = encoder.encode(batches)
    elapsed = time.process_time() - start
    n = sum(len(b.readings) for b in batches)
    print(json.dumps({"readings": n, "bytes": len(body),
                      "encode_readings_per_s": round(n / elapsed)}))


if __name__ == "__main__":
    main()
