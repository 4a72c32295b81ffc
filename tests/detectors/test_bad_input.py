"""Bad input never crashes a detector: each kind of bad sample has a defined outcome."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import MULTIVARIATE, REGISTRY, build, default_detector

values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(-10**6, 10**6))
times = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                  st.floats(min_value=0, max_value=1e10), st.integers(0, 10**10))
FAST = {"isolation_forest": {"window": 60, "refit": 30, "n_estimators": 5}}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(times, values), max_size=120))
def test_univariate_detectors_survive_anything(rows: list[tuple[Any, Any]]) -> None:
    for name in sorted(set(REGISTRY) - MULTIVARIATE):
        det = build(name)
        for ts, v in rows:
            s = det.score_one(ts, v)
            assert s is None or (math.isfinite(s) and 0.0 <= s <= 1.0), name


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(times, st.dictionaries(st.sampled_from("abc"), values)),
                max_size=80))
def test_multivariate_detectors_survive_anything(rows: list[tuple[Any, Any]]) -> None:
    for name in sorted(MULTIVARIATE):
        det = build(name, **FAST.get(name, {}))
        for ts, v in rows:
            s = det.score_one(ts, v)
            assert s is None or (math.isfinite(s) and 0.0 <= s <= 1.0), name


def test_each_kind_of_bad_sample_is_skipped_and_counted() -> None:
    det = default_detector()
    for t, v in [(1.0, 5.0), (2.0, None), (3.0, math.nan), (4.0, math.inf), (3.5, 5.0),
                 (4.0, 5.0), (math.nan, 5.0), (5.0, 5.0), (6.0, 1e300)]:
        det.score_one(t, v)
    assert det.skipped == {"missing": 1, "non_finite": 2, "out_of_order": 1,
                           "duplicate": 1, "bad_timestamp": 1, "implausible": 1}


def test_a_huge_gap_is_reported_as_a_dropout() -> None:
    det = default_detector()
    for i in range(60):
        det.score_one(float(i), 10.0 + (i % 3) * 0.1)
    score = det.score_one(10_000.0, 10.1)  # still warming up: only a dropout is clear
    assert score is not None
    assert score >= det.threshold
    assert det.kind == "dropout"


def test_values_outside_the_physical_range_are_faults_not_readings() -> None:
    from detectors import Limits

    det = default_detector(Limits(physical_min=0.0, physical_max=100.0, alarm_high=20.0))
    assert det.score_one(1.0, 1e9) is None
    assert det.skipped == {"out_of_physical_range": 1}
