"""The multivariate detector on the pumping-station simulator (simulators/pump.py).

Each file is one run of 1,200 rows at 1 Hz; its first 400 rows are the baseline
(commissioning window: fault-free, unscored) and one or two faults of a single kind cover
25-55 % of the rest. Two worlds: "duty" (the drive's set-point changes over the day and
commissioning visits each duty point) and "steady" (one speed throughout, as on a test
rig, where the temperatures barely move in the baseline). Rows are scored per row after
the baseline: F1, false-alarm rate (FAR: normal rows alerted / normal rows) and
missed-alarm rate (MAR: fault rows not alerted / fault rows), pooled over files. A row
is alerted as ``gridcall detect``'s ``alert`` column marks it: from a score at the
threshold (0.9) until ``CLEAR_AFTER`` scores in a row are below it.

Settings are chosen by cross-validation, never on the figures they are judged by:
selection files (seeds 0..S-1) and evaluation files (seeds 1000..) are different runs,
and for each fault kind the settings are chosen on the *other* kinds' selection files of
both worlds (best F1 with FAR <= 13 %), then scored on that kind's evaluation files. "held-out"
pools those six folds; "in-sample" is the settings chosen on all selection files, scored
on them; "fresh seeds" is the same settings on all evaluation files. The detector's
defaults and the old rolling Mahalanobis are scored on the evaluation files beside them.

    nice -n 10 python3 bench/pump.py            # a few minutes on the shared machine
    nice -n 10 python3 bench/pump.py --seeds 3  # quicker, noisier
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridcall.detectors import Episodes, build
from gridcall.detectors.replay import CLEAR_AFTER
from gridcall.simulators.pump import DUTY, FAULTS, PumpRun, simulate

BASELINE = 400
ROWS = 1200
MAX_FAR = 0.13
WORLDS = {"duty": DUTY, "steady": (1.0,)}
GRID: dict[str, Sequence[Any]] = {
    "sensitivity": (0.3, 0.5, 0.7),
    "smooth": (5, 10),
    "accuracy": (0.01, 0.03),
}
"""adapt (the normal rows' learning rate) is 0.005 and variance 0.9 throughout: earlier
rounds on the duty world with ``adapt`` in (0.001, 0.005) and ``variance`` in
(0.9, 0.99) chose those in every fold (docs/benchmarks.md)."""


@dataclass(frozen=True, slots=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                      self.tn + other.tn)

    @property
    def f1(self) -> float:
        return 2 * self.tp / max(2 * self.tp + self.fp + self.fn, 1)

    @property
    def far(self) -> float:
        return self.fp / max(self.fp + self.tn, 1)

    @property
    def mar(self) -> float:
        return self.fn / max(self.fn + self.tp, 1)

    def line(self) -> str:
        return f"F1 {self.f1:.3f}  FAR {self.far:6.1%}  MAR {self.mar:6.1%}"


def total(counts: Iterable[Counts]) -> Counts:
    out = Counts()
    for c in counts:
        out = out + c
    return out


def score_file(run: PumpRun, name: str, params: dict[str, Any]) -> tuple[Counts, float]:
    """Counts after the baseline, and the seconds the detector took."""
    det = build(name, **params)
    rows = run.rows()
    start = time.process_time()
    scores = [det.score_one(ts, row) for ts, row in rows]
    took = time.process_time() - start
    state = Episodes(threshold=det.threshold, clear_after=CLEAR_AFTER)
    held = []
    for s in scores:
        state.step(s)
        held.append(state.active)
    alert = np.array(held)[run.baseline:]
    truth = run.label[run.baseline:]
    return Counts(int((alert & truth).sum()), int((alert & ~truth).sum()),
                  int((~alert & truth).sum()), int((~alert & ~truth).sum())), took


def files(seeds: Sequence[int]) -> dict[str, list[PumpRun]]:
    """Per fault kind, one file per seed in each world."""
    return {kind: [simulate(seed * 10 + i + 100_000 * w, rows=ROWS, baseline=BASELINE,
                            kinds=[kind], duty=duty)
                   for w, duty in enumerate(WORLDS.values()) for seed in seeds]
            for i, kind in enumerate(FAULTS)}


def world_of(index: int, seeds: int) -> str:
    return list(WORLDS)[index // seeds]


def choose(results: dict[int, dict[str, Counts]], kinds: Sequence[str]) -> int:
    """The setting with the best pooled F1 over ``kinds`` among those with FAR <= 13 %
    (the best F1 overall if none keeps the FAR)."""
    pooled = {i: total(r[k] for k in kinds) for i, r in results.items()}
    ok = [i for i, c in pooled.items() if c.far <= MAX_FAR] or list(pooled)
    return max(ok, key=lambda i: pooled[i].f1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6, help="files per fault kind and set")
    args = parser.parse_args(argv)
    select = files(range(args.seeds))
    evaluate = files(range(1000, 1000 + args.seeds))
    per_world: dict[int, dict[str, Counts]] = {}
    settings = [dict(zip(GRID, values, strict=True))
                for values in itertools.product(*GRID.values())]
    print(f"pumping station: {len(FAULTS)} fault kinds x {args.seeds} files x "
          f"{len(WORLDS)} worlds ({', '.join(WORLDS)}) x 2 sets, "
          f"{ROWS} rows at 1 Hz per file; baseline (commissioning window): the first "
          f"{BASELINE} rows of each file, not scored; {len(settings)} settings")
    sel: dict[int, dict[str, Counts]] = {}
    ev: dict[int, dict[str, Counts]] = {}
    seconds = rows = 0.0
    for i, params in enumerate(settings):
        sel[i] = {k: total(score_file(r, "learned_normal", params)[0] for r in runs)
                  for k, runs in select.items()}
        ev[i] = {}
        per_world[i] = {w: Counts() for w in WORLDS}
        for k, runs in evaluate.items():
            scored = [score_file(r, "learned_normal", params) for r in runs]
            ev[i][k] = total(c for c, _ in scored)
            for j, (c, _) in enumerate(scored):
                w = world_of(j, args.seeds)
                per_world[i][w] = per_world[i][w] + c
            seconds += sum(t for _, t in scored)
            rows += ROWS * len(runs)
    print("\nleave one fault kind out (chosen on the other kinds' selection files, scored "
          "on this kind's evaluation files):")
    held = []
    for kind in FAULTS:
        best = choose(sel, [k for k in FAULTS if k != kind])
        held.append(ev[best][kind])
        print(f"  {kind:16s} {ev[best][kind].line()}   chosen {settings[best]}")
    overall = choose(sel, FAULTS)
    print(f"\nheld-out (6 folds pooled)     {total(held).line()}")
    print(f"in-sample (chosen on all)     {total(sel[overall].values()).line()}   "
          f"{settings[overall]}")
    print(f"fresh seeds, same setting     {total(ev[overall].values()).line()}")
    for w, c in per_world[overall].items():
        print(f"  world {w:22s} {c.line()}")
    default = {k: total(score_file(r, "learned_normal", {})[0] for r in runs)
               for k, runs in evaluate.items()}
    print(f"learned_normal defaults       {total(default.values()).line()}")
    for kind in FAULTS:
        print(f"  {kind:16s} {default[kind].line()}")
    for w in WORLDS:
        maha = total(score_file(r, "mahalanobis", {})[0] for runs in evaluate.values()
                     for j, r in enumerate(runs) if world_of(j, args.seeds) == w)
        print(f"mahalanobis (old), {w:10s} {maha.line()}")
    print(f"\nspeed: learned_normal {rows / seconds:,.0f} rows/s over {int(rows):,} rows "
          "of CPU time (8 sensors, one score_one call a row)")


if __name__ == "__main__":
    main()
