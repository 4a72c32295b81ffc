"""One conformance suite over every detector in the registry (after river's checks):
inputs untouched, pickles mid-stream, seeded copies agree, no look-ahead, finite scores."""

from __future__ import annotations

import copy
import doctest
import importlib
import math
import pickle
import pkgutil
import random
from collections.abc import Mapping
from typing import Any

import pytest

from gridcall import detectors
from gridcall.detectors import (
    MULTIVARIATE,
    REGISTRY,
    DetectorArgs,
    Limits,
    RobustLevel,
    build,
    create,
)

FAST = {"isolation_forest": {"window": 120, "refit": 60, "n_estimators": 10},
        "learned_normal": {"baseline": 100}}


def make(name: str) -> Any:
    return build(name, **FAST.get(name, {}))


def stream(name: str, n: int = 400, seed: int = 5) -> list[tuple[float, Any]]:
    """A seeded series with a daily-ish cycle, noise, a spike, a shift and a flat run."""
    rng = random.Random(seed)
    rows: list[tuple[float, Any]] = []
    for i in range(n):
        v = 10 + 3 * math.sin(i / 20) + rng.gauss(0, 0.3)
        if i == 250:
            v += 25
        if i > 300:
            v += 6
        if 340 < i < 380:
            v = 12.0
        ts = 1_700_000_000.0 + 60.0 * i
        if name in MULTIVARIATE:
            rows.append((ts, {"a": v, "b": 2 * v + rng.gauss(0, 0.2), "c": rng.gauss(0, 1)}))
        else:
            rows.append((ts, v))
    return rows


def run(det: Any, rows: list[tuple[float, Any]]) -> list[float | None]:
    return [det.score_one(ts, v) for ts, v in rows]


names = pytest.mark.parametrize("name", sorted(REGISTRY))


@names
def test_scores_are_none_or_finite_in_unit_interval(name: str) -> None:
    scores = run(make(name), stream(name))
    assert any(s is not None for s in scores)
    for s in scores:
        assert s is None or (math.isfinite(s) and 0.0 <= s <= 1.0)


@names
def test_inputs_are_not_mutated(name: str) -> None:
    rows = stream(name)
    before = copy.deepcopy(rows)
    run(make(name), rows)
    assert rows == before


@names
def test_pickles_mid_stream_and_resumes_identically(name: str) -> None:
    rows = stream(name)
    det = make(name)
    run(det, rows[:200])
    clone = pickle.loads(pickle.dumps(det))
    assert run(clone, rows[200:]) == run(det, rows[200:])


@names
def test_seeded_copies_agree(name: str) -> None:
    rows = stream(name)
    assert run(make(name), rows) == run(make(name), rows)


@names
def test_no_look_ahead(name: str) -> None:
    rows = stream(name)
    changed = rows[:150] + [(ts, _scramble(v)) for ts, v in rows[150:]]
    assert run(make(name), rows)[:150] == run(make(name), changed)[:150]


@names
def test_kind_is_a_known_anomaly_kind(name: str) -> None:
    det = make(name)
    kinds = set()
    for ts, v in stream(name):
        s = det.score_one(ts, v)
        if s is not None and s >= det.threshold:
            kinds.add(det.kind)
    assert kinds <= {"out_of_limits", "spike", "level_shift", "stuck", "dropout", "drift",
                     "multivariate", None}


def _scramble(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: -3 * x for k, x in v.items()}
    return -3 * v + 100


def test_the_default_alerts_on_a_limit_without_warm_up() -> None:
    det = detectors.default_detector(detectors.Limits(alarm_high=20.0))
    assert det.score_one(0.0, 25.0) == 1.0
    assert det.kind == "out_of_limits"


def test_the_default_sees_a_spike_after_warm_up() -> None:
    det = detectors.default_detector()
    alerts = [i for i, (ts, v) in enumerate(stream("default"))
              if (det.score_one(ts, v) or 0) >= det.threshold]
    assert 250 in alerts


def test_unknown_detector_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown detector 'nope'; known: default"):
        build("nope")
    with pytest.raises(ValueError, match="detector 'cusum'"):
        build("cusum", bogus=1)


LIBRARY = sorted(m.name for m in pkgutil.iter_modules(detectors.__path__, "gridcall.detectors.")
                 if m.name.rpartition(".")[2] not in {"nab", "bench", "replay"})


def test_every_detector_module_carries_examples() -> None:
    for cls in REGISTRY.values():
        assert cls.__module__ in LIBRARY, cls


@pytest.mark.parametrize("module", LIBRARY)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0



def test_the_one_contract_hands_limits_sensitivity_and_seed_to_whoever_takes_them() -> None:
    limits = Limits(physical_min=0.0, physical_max=100.0, alarm_high=50.0)
    args = DetectorArgs(limits=limits, sensitivity=0.9, seed=3)
    assert create("limits", args).score_one(0.0, 80.0) == 1.0  # the alarm limit reached it
    assert create("limits").score_one(0.0, 80.0) == 0.0  # no limits, no alarm
    robust = create("robust_level", args)
    assert isinstance(robust, RobustLevel)
    assert robust.sensitivity == 0.9
    mine = create("robust_level", DetectorArgs(sensitivity=0.9, params={"sensitivity": 0.2}))
    assert isinstance(mine, RobustLevel)
    assert mine.sensitivity == 0.2  # a detector's own params win over the contract
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        create("nope", args)
