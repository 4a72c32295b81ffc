"""Leave-one-category-out cross-validation of the default detector on the shared NAB files.

    nice -n 10 python bench/nab_loco.py [--data ../shared/datasets/nab] [--jobs 2]

The shared copy of NAB holds 34 files in five categories. For each category in turn, one
configuration is chosen from a small candidate grid (``GRID``) on the other four, and that
configuration scores the held-out fifth. As in NAB, each profile (standard, low FP, low
FN) makes its own choice, by its own normalised score; the standard profile's choice on
all five categories is the product's default.
The five held-out categories are then scored together, exactly as the shared scorer
(``../shared/bench/nab_score.py``, imported, not copied) scores any set of files: raw
scores, null and perfect baselines summed over the files, normalised to 0..100. That
pooled figure is the mean of the five held-out category scores, each weighted by its
windows (artificialNoAnomaly has none, so its own normalised score is undefined, but its
false positives still count against the pool). The unweighted mean of the four folds
that have windows is printed beside it.

The in-sample figure is the same selection made on all five categories and scored on
them: the configuration the product ships. The gap between the two is what fitting to
these files is worth, and the held-out figure is the one to compare with detectors scored
on data they never saw (the anchors printed below).

Every configuration covers all files. Alerts are what ``python -m gridcall.detectors.nab``
writes: episode starts with the refractory period of ``detectors.episodes.REFRACTORY``.
Each candidate's raw scores per file are cached (``--cache``), keyed by the candidate, the
detectors' source and the data files, so a rerun only scores what changed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import importlib
import json
import math
import os
import pickle
import sys
import time
from array import array
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((d / "shared" for d in ROOT.parents if (d / "shared" / "bench").is_dir()),
              ROOT.parent / "shared")
"""The read-only shared/ folder beside the clone (or beside a parent folder of worktrees)."""
sys.path.insert(0, str(ROOT))  # score this checkout's detectors, whatever is installed
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
SHORT = {"standard": "standard", "reward_low_FP_rate": "low FP", "reward_low_FN_rate": "low FN"}

ANCHORS = (
    ("ARTime, on the 24 withheld files", "75.0"),
    ("Numenta HTM, on the 24 withheld files", "76.3"),
    ("CAD OSE, on the 24 withheld files", "77.8"),
    ("gridcall before LOCO, in-sample on these 34 (standard / low FP)", "77.87 / 68.60"),
    ("gridcall before LOCO, on the 24 withheld files (standard)", "62.05"),
)


@dataclass(frozen=True)
class Candidate:
    """One configuration: a detector factory (``module:function``) and its keywords."""

    name: str
    factory: str = "gridcall.detectors:default_detector"
    params: dict[str, Any] = field(default_factory=dict)

    def key(self, code: str) -> str:
        text = json.dumps([self.factory, self.params, code], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


GRID = [Candidate(f"s{s} m{m:g} r{r:g}",
                  params={"sensitivity": s, "seasonal_memory": m, "record_memory": r})
        for r in (90.0, 30.0, 240.0) for m in (5.0, 2.0, 10.0) for s in (0.5, 0.4, 0.6)]
"""The candidates a fold chooses from, the default first (ties go to the earlier one): the
default detector at three sensitivities (``s``, the product's one knob), three memories
of its daily-residual record (``m``, the half-life in days: a few days, a working week,
two weeks) and three of its other records (``r``, in days: a month, a season, most of a
year). Nothing else about the detector is chosen on these files."""


# ------------------------------------------------------------------ data and scoring

@dataclass
class Series:
    key: str  # "<category>/<file>.csv"
    stamps: list[datetime]
    ts: list[float]
    values: list[float | None]


def load(data: Path) -> list[Series]:
    out = []
    for path in sorted((data / "data").rglob("*.csv")):
        stamps, ts, values = [], [], []
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                moment = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S")
                stamps.append(moment)
                ts.append(moment.replace(tzinfo=UTC).timestamp())
                try:
                    values.append(float(row["value"]))
                except (TypeError, ValueError):
                    values.append(None)
        out.append(Series(path.relative_to(data / "data").as_posix(), stamps, ts, values))
    return out


def code_version(grid: Sequence[Candidate]) -> str:
    """A hash of the source that decides the scores: the modules of each candidate's
    detector class and its bases, and the episode logic. A change there invalidates the
    cache; a change elsewhere in detectors/ does not."""
    import inspect

    from gridcall.detectors import episodes

    paths = {Path(inspect.getfile(episodes))}
    for cand in grid:
        for cls in type(_factory(cand.factory)(**cand.params)).__mro__:
            with contextlib.suppress(TypeError):
                paths.add(Path(inspect.getfile(cls)))
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _factory(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _score_file(job: tuple[str, dict[str, Any], list[float], list[float | None]]) -> array:
    factory, params, ts, values = job
    det = _factory(factory)(**params)
    nan = math.nan
    return array("d", [nan if s is None else s
                       for s in map(det.score_one, ts, values)])


def alerts_of(scores: Sequence[float]) -> list[bool]:
    """Episode starts, as ``python -m gridcall.detectors.nab`` writes them."""
    from gridcall.detectors.episodes import REFRACTORY, Episodes

    episodes = Episodes(threshold=0.9, refractory=REFRACTORY)
    return [episodes.step(None if math.isnan(s) else s) == "start" for s in scores]


Tally = dict[str, dict[str, dict[str, float]]]  # profile → category → raw/null/perfect/...


def tally(scorer: Any, series: list[Series], scores: dict[str, array],
          windows: dict[str, Any]) -> Tally:
    detections = {s.key: (s.stamps, alerts_of(scores[s.key])) for s in series}
    out = scorer.score_detections(detections, windows)
    return {p: {c: {k: v[k] for k in ("raw", "null", "perfect", "detected", "fp", "windows")}
                for c, v in out["profiles"][p]["categories"].items()} for p in PROFILES}


def normalised(t: Tally, profile: str, cats: Sequence[str]) -> float | None:
    raw = sum(t[profile][c]["raw"] for c in cats)
    null = sum(t[profile][c]["null"] for c in cats)
    perfect = sum(t[profile][c]["perfect"] for c in cats)
    return None if perfect == null else 100.0 * (raw - null) / (perfect - null)


# ------------------------------------------------------------------------ the run

def scores_for(grid: list[Candidate], series: list[Series], cache: Path,
               jobs: int) -> dict[str, dict[str, array]]:
    """Each candidate's scores per file, from the cache or scored now."""
    code = code_version(grid) + hashlib.sha256(
        "".join(f"{s.key}{len(s.ts)}{sum(v or 0 for v in s.values)!r}" for s in series)
        .encode()).hexdigest()[:8]
    cache.mkdir(parents=True, exist_ok=True)
    result: dict[str, dict[str, array]] = {}
    todo = []
    for cand in grid:
        path = cache / f"{cand.key(code)}.pickle"
        if path.exists():
            result[cand.name] = pickle.loads(path.read_bytes())
        else:
            todo.append((cand, path))
    if todo:
        started = time.perf_counter()
        work = [(c.factory, c.params, s.ts, s.values) for c, _ in todo for s in series]
        with ProcessPoolExecutor(jobs) as pool:
            arrays = list(pool.map(_score_file, work, chunksize=1))
        for i, (cand, path) in enumerate(todo):
            chunk = arrays[i * len(series):(i + 1) * len(series)]
            result[cand.name] = {s.key: a for s, a in zip(series, chunk, strict=True)}
            path.write_bytes(pickle.dumps(result[cand.name]))
        rows = sum(len(s.ts) for s in series) * len(todo)
        print(f"scored {len(todo)} candidate(s), {rows:,} rows in "
              f"{time.perf_counter() - started:.1f}s ({jobs} processes)", file=sys.stderr)
    return result


def fmt(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:6.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED / "datasets" / "nab",
                    help="NAB-layout folder (data/, labels/)")
    ap.add_argument("--scorer", type=Path, default=SHARED / "bench" / "nab_score.py")
    ap.add_argument("--cache", type=Path,
                    default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                    / "gridcall" / "nab_loco")
    ap.add_argument("--jobs", type=int, default=2, help="processes scoring files (max 2 "
                    "on the shared machine)")
    ap.add_argument("--grid", default="",
                    help="another grid, as module:NAME (a list of Candidate)")
    args = ap.parse_args(argv)
    with contextlib.suppress(OSError):
        os.nice(10)  # the machine is shared
    sys.path.insert(0, str(args.scorer.parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    scorer = importlib.import_module(args.scorer.stem)
    grid = _factory(args.grid) if args.grid else GRID
    windows = json.loads((args.data / "labels" / "combined_windows.json").read_text())

    series = load(args.data)
    cats = sorted({s.key.split("/")[0] for s in series})
    scores = scores_for(grid, series, args.cache, args.jobs)
    tallies = {c.name: tally(scorer, series, scores[c.name], windows) for c in grid}

    def choose(profile: str, train: Sequence[str]) -> str:
        best = max(grid, key=lambda c: normalised(tallies[c.name], profile, train) or 0.0)
        return best.name

    print(f"NAB leave-one-category-out: {len(series)} files, {len(cats)} categories, "
          f"{len(grid)} candidates; each profile chooses its candidate on the other four "
          "categories (NAB's convention: one setting per profile, every file)")
    width = max(len(c.name) for c in grid)
    print(f"{'held out':24}" + "".join(f"  {SHORT[p]:>{width + 7}}" for p in PROFILES)
          + "  windows   FP (standard)")
    held: dict[str, Tally] = {p: {p: {}} for p in PROFILES}
    fold_scores: dict[str, list[float]] = {p: [] for p in PROFILES}
    for cat in cats:
        train = [c for c in cats if c != cat]
        line = f"{cat:24}"
        for p in PROFILES:
            name = choose(p, train)
            held[p][p][cat] = tallies[name][p][cat]
            score = normalised(tallies[name], p, [cat])
            if score is not None:
                fold_scores[p].append(score)
            line += f"  {name:>{width}} {fmt(score)}"
        h = held["standard"]["standard"][cat]
        print(line + f"  {int(h['detected']):3}/{int(h['windows']):<3} {int(h['fp']):4}")

    def totals(t: Tally) -> str:
        d = {k: int(sum(t["standard"][c][k] for c in cats)) for k in ("detected", "windows", "fp")}
        return f"  {d['detected']:3}/{d['windows']:<3} {d['fp']:4}"

    chosen = {p: choose(p, cats) for p in PROFILES}
    pooled = {p: normalised(held[p], p, cats) or 0.0 for p in PROFILES}
    inside = {p: normalised(tallies[chosen[p]], p, cats) or 0.0 for p in PROFILES}
    print()
    print(f"{'':48}" + "  ".join(f"{SHORT[p]:>8}" for p in PROFILES) + "  windows   FP")
    print(f"{'held-out: the five folds pooled (the figure)':48}" + "  ".join(
        f"{fmt(pooled[p]):>8}" for p in PROFILES) + totals(held["standard"]))
    print(f"{'held-out: mean of the four folds with windows':48}" + "  ".join(
        f"{fmt(sum(v) / len(v)):>8}" for v in fold_scores.values()))
    print(f"{'in-sample: chosen on all five, scored on them':48}" + "  ".join(
        f"{fmt(inside[p]):>8}" for p in PROFILES) + totals(tallies[chosen["standard"]]))
    print(f"{'gap (in-sample - held-out)':48}" + "  ".join(
        f"{fmt(inside[p] - pooled[p]):>8}" for p in PROFILES))
    print(f"{'chosen on all five (standard: the default)':48}" + "  ".join(
        f"{chosen[p]:>8}" for p in PROFILES))
    print()
    print("anchors (published, or measured before this bench):")
    for label, value in ANCHORS:
        print(f"  {label:66} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
