"""Run the default detector over NAB-layout data:
``python -m gridcall.detectors.nab --data DIR --out DIR``.

Every CSV under ``DIR/data`` (``timestamp,value``) is scored with one configuration, the
default detector with no limits (NAB series have none), and written to the same relative
path under ``--out`` with columns ``timestamp,value,anomaly_score,alert``. ``alert`` is 1
where an anomaly episode starts, exactly what an edge agent would send as an event.
Score the output with NAB's rule, e.g. ``shared/bench/nab_score.py``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from gridcall.detectors import default_detector
from gridcall.detectors.episodes import REFRACTORY, Episodes


def parse_ts(text: str) -> float:
    return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def run_file(src: Path, dst: Path) -> tuple[int, int]:
    detector = default_detector()
    episodes = Episodes(threshold=detector.threshold, refractory=REFRACTORY)
    rows = alerts = 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open(newline="") as fin, dst.open("w", newline="") as fout:
        reader = csv.DictReader(fin)
        writer = csv.writer(fout)
        writer.writerow(["timestamp", "value", "anomaly_score", "alert"])
        for row in reader:
            try:
                value: float | None = float(row["value"])
            except (TypeError, ValueError):
                value = None
            score = detector.score_one(parse_ts(row["timestamp"]), value)
            alert = int(episodes.step(score) == "start")
            rows += 1
            alerts += alert
            writer.writerow([row["timestamp"], row["value"],
                             f"{score if score is not None else 0.0:.6f}", alert])
    return rows, alerts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="NAB folder holding data/<category>/<file>.csv")
    parser.add_argument("--out", type=Path, required=True, help="where to write results")
    args = parser.parse_args(argv)
    data = args.data / "data" if (args.data / "data").is_dir() else args.data
    files = sorted(data.rglob("*.csv"))
    if not files:
        print(f"no CSV files under {data}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    total = 0
    for src in files:
        rows, alerts = run_file(src, args.out / src.relative_to(data))
        total += rows
        print(f"{src.relative_to(data)}: {rows} rows, {alerts} alerts")
    elapsed = time.perf_counter() - started
    print(f"{len(files)} files, {total} rows in {elapsed:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
