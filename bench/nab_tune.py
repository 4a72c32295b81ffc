"""Fast NAB iteration harness for the detectors (development aid, not a test).

``python bench/nab_tune.py [--files] [--spec module:function]`` runs a detector factory over
the shared NAB files in-process and scores the alerts with the shared scorer, printing
the three profiles and, with ``--files``, per-file window hits and false positives.
The factory is called once per file with no arguments (one configuration for all files)
and returns an object with ``step(ts, value) -> bool`` (alert or not).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NAB = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "nab"
SCORER = Path(__file__).resolve().parents[2] / "shared" / "bench"


def load(data: Path) -> dict[str, tuple[list[str], list[float], list[float]]]:
    out = {}
    for path in sorted((data / "data").rglob("*.csv")):
        stamps, ts, vs = [], [], []
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                stamps.append(row["timestamp"])
                ts.append(datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S")
                          .replace(tzinfo=UTC).timestamp())
                vs.append(float(row["value"]))
        out[str(path.relative_to(data / "data"))] = (stamps, ts, vs)
    return out


def _run(args: tuple[str, str, list[float], list[float]]) -> tuple[str, list[bool]]:
    key, spec, ts, vs = args
    factory = _factory(spec)
    det = factory()
    return key, [bool(det.step(t, v)) for t, v in zip(ts, vs, strict=True)]


def _factory(spec: str) -> Callable[[], Any]:
    mod, _, fn = spec.partition(":")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    return getattr(importlib.import_module(mod), fn)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="nab_tune_specs:default")
    ap.add_argument("--files", action="store_true")
    ap.add_argument("--data", type=Path, default=NAB)
    args = ap.parse_args()
    sys.path.insert(0, str(SCORER))
    import nab_score  # type: ignore[import-not-found]

    data = load(args.data)
    with ProcessPoolExecutor(2) as pool:
        results = dict(pool.map(_run, [(k, args.spec, t, v) for k, (_, t, v) in data.items()]))
    dets = {k: (data[k][0], results[k]) for k in data}
    windows = json.loads((args.data / "labels" / "combined_windows.json").read_text())
    out = nab_score.score_detections(dets, windows)
    line = []
    for prof, p in out["profiles"].items():
        line.append(f"{prof[:18]} {p['normalized']:.2f}")
    s = out["profiles"]["standard"]
    print(" | ".join(line), f"| det {s['detected']}/{s['windows']} fp {s['fp']}")
    if args.files:
        for key in out["scored_files"]:
            f = out["files"][key]
            credit = ["-" if c is None else f"{c:.2f}" for c in f["window_credit"]]
            fps = ",".join(f"{x:.2f}" for x in f["fp_factors"])
            print(f"{key:55} {f['raw']['standard']:7.2f} win {credit} fp[{fps}]")


if __name__ == "__main__":
    main()
