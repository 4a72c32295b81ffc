"""Speed and size of the default detectors: ``python -m gridcall.detectors.bench [--json]``.

Deterministic, network-free workloads on one core: a seeded noisy daily cycle for the
univariate default, three correlated channels for the multivariate detectors (the
rolling Mahalanobis, and LearnedNormal, which ``gridcall detect`` uses), and, for scale,
the IsolationForest window and a naive baseline (a plain EWMA z-score) beside them.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import random
import time
from collections.abc import Callable
from typing import Any

from gridcall.detectors import Limits, build, default_detector


def _series(n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [20 + 5 * math.sin(i / 300) + rng.gauss(0, 0.5) for i in range(n)]


def _rate(fn: Callable[[], int]) -> float:
    start = time.process_time()
    n = fn()
    return n / max(time.process_time() - start, 1e-9)


class NaiveZ:
    """The baseline: one EWMA mean/variance and a z threshold, nothing else."""

    def __init__(self) -> None:
        self.m = 0.0
        self.v = 1.0

    def score_one(self, ts: float, x: float) -> float:
        d = x - self.m
        self.m += 0.05 * d
        self.v = 0.95 * (self.v + 0.05 * d * d)
        return 1.0 if abs(d) > 4 * math.sqrt(self.v) else 0.0


def measure(n: int = 200_000, rows: int = 20_000) -> dict[str, Any]:
    xs = _series(n)
    limits = Limits(physical_min=-40, physical_max=125, alarm_low=-25, alarm_high=60)

    def univariate() -> int:
        det = default_detector(limits)
        for i, x in enumerate(xs):
            det.score_one(float(i), x)
        return n

    def naive() -> int:
        det = NaiveZ()
        for i, x in enumerate(xs):
            det.score_one(float(i), x)
        return n

    warmed = default_detector(limits)
    for i, x in enumerate(xs[:5000]):
        warmed.score_one(float(i), x)

    rng = random.Random(2)
    mv = [{"a": x, "b": 2 * x + rng.gauss(0, 0.1), "c": rng.gauss(0, 1)} for x in xs[:rows]]

    def multivariate(name: str, count: int, **params: Any) -> Callable[[], int]:
        def run() -> int:
            det: Any = build(name, **params)
            for i, row in enumerate(mv[:count]):
                det.score_one(float(i), row)
            return count
        return run

    return {
        "univariate_samples_per_s": round(_rate(univariate)),
        "state_bytes_per_sensor": len(pickle.dumps(warmed)),
        "multivariate_rows_per_s": round(_rate(multivariate("mahalanobis", rows))),
        "learned_normal_rows_per_s": round(_rate(multivariate("learned_normal", rows))),
        "isolation_forest_rows_per_s": round(_rate(
            multivariate("isolation_forest", 2000, window=500, refit=250))),
        "naive_baseline_samples_per_s": round(_rate(naive)),
        "samples": n,
        "multivariate_rows": rows,
        "clock": "process CPU time, one core",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures = measure()
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
