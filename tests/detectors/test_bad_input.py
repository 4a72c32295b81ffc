"""Bad input never crashes a detector: each kind of bad sample has a defined outcome."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcall.detectors import MULTIVARIATE, REGISTRY, build, default_detector

HUGE = [10**400, -(10**400), 2**1024]
"""Ints too large for a float: math.isfinite and float() raise OverflowError on them."""
huge_ints = st.one_of(st.sampled_from(HUGE), st.integers(-(10**400), 10**400))
junk = st.one_of(st.text(max_size=3), st.lists(st.floats(), max_size=2), st.booleans())
values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(-10**6, 10**6), huge_ints, junk)
times = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                  st.floats(min_value=0, max_value=1e10), st.integers(0, 10**10), huge_ints,
                  junk)
mappings = st.dictionaries(st.one_of(st.sampled_from("abc"), st.integers(0, 2)), values,
                           max_size=4)
rows = st.one_of(mappings, st.none(), st.lists(values, max_size=3), st.tuples(values),
                 values)
"""Multivariate rows: mappings (with non-numeric values and non-string keys too), None,
lists and other things that are not mappings."""
FAST = {"isolation_forest": {"window": 60, "refit": 30, "n_estimators": 5},
        "learned_normal": {"baseline": 20}}
UNIVARIATE = sorted(set(REGISTRY) - MULTIVARIATE)


def make(name: str) -> Any:
    return build(name, **FAST.get(name, {}))


def assert_score(s: float | None, name: str) -> None:
    assert s is None or (math.isfinite(s) and 0.0 <= s <= 1.0), name


@pytest.mark.parametrize("name", UNIVARIATE)
@settings(max_examples=40, deadline=None)
@given(samples=st.lists(st.tuples(times, values), max_size=120))
def test_univariate_detectors_survive_anything(name: str, samples: list[tuple[Any, Any]]
                                               ) -> None:
    det = make(name)
    for ts, v in samples:
        assert_score(det.score_one(ts, v), name)


@pytest.mark.parametrize("name", sorted(MULTIVARIATE))
@settings(max_examples=25, deadline=None)
@given(samples=st.lists(st.tuples(times, rows), max_size=80))
def test_multivariate_detectors_survive_anything(name: str, samples: list[tuple[Any, Any]]
                                                 ) -> None:
    det = make(name)
    for ts, row in samples:
        assert_score(det.score_one(ts, row), name)


def _good(name: str, i: int) -> Any:
    v = 10.0 + (i % 5) * 0.1
    return {"a": v, "b": 2 * v} if name in MULTIVARIATE else v


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_huge_ints_and_none_timestamps_are_skipped_and_counted(name: str) -> None:
    det = make(name)
    det.score_one(0.0, _good(name, 0))
    big = {"a": 10**400, "b": 1.0} if name in MULTIVARIATE else 10**400
    assert det.score_one(10**400, _good(name, 1)) is None
    assert det.score_one(None, _good(name, 2)) is None
    assert det.score_one(1.0, big) is None
    value_reason = "missing" if name in MULTIVARIATE else "implausible"
    assert det.skipped == {"bad_timestamp": 2, value_reason: 1}
    scores = [det.score_one(2.0 + i, _good(name, i)) for i in range(300)]
    assert any(s is not None for s in scores), "the detector keeps scoring afterwards"


@pytest.mark.parametrize("name", sorted(MULTIVARIATE))
def test_multivariate_rows_that_are_not_complete_mappings_are_skipped_and_counted(
        name: str) -> None:
    det = make(name)
    not_mappings: list[Any] = [[1.0, 2.0], "a=1", 3.0]
    incomplete: list[Any] = [None, {}, {"a": "1.0", "b": 2.0}, {1: 1.0, "b": 2.0},
                             {"a": [1.0], "b": 2.0}]
    for t, row in enumerate(not_mappings + incomplete):
        assert det.score_one(float(t), row) is None
    assert det.skipped == {"not_a_mapping": len(not_mappings), "missing": len(incomplete)}
    det.score_one(100.0, {"a": 1.0, "b": 2.0})
    assert det.rows.columns == ("a", "b"), "columns come from the first complete row"


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
    from gridcall.detectors import Limits

    det = default_detector(Limits(physical_min=0.0, physical_max=100.0, alarm_high=20.0))
    assert det.score_one(1.0, 1e9) is None
    assert det.skipped == {"out_of_physical_range": 1}
