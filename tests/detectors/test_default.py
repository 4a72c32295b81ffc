"""The default detector's own promises: limits first, records calibrate per sensor."""

from __future__ import annotations

import math
import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridcall.detectors import Limits, default_detector


def cycle(n: int, seed: int = 3, step: float = 300.0) -> list[tuple[float, float]]:
    """A noisy daily cycle sampled every ``step`` seconds."""
    rng = random.Random(seed)
    per_day = 86_400.0 / step
    return [(1_700_000_000.0 + step * i,
             20 + 5 * math.sin(2 * math.pi * i / per_day) + rng.gauss(0, 0.3))
            for i in range(n)]


def alerts(det: object, rows: list[tuple[float, float]]) -> list[int]:
    out = []
    for i, (ts, v) in enumerate(rows):
        s = det.score_one(ts, v)  # type: ignore[attr-defined]
        if s is not None and s >= det.threshold:  # type: ignore[attr-defined]
            out.append(i)
    return out


def test_limits_alarm_at_once_and_clear_with_hysteresis() -> None:
    det = default_detector(Limits(alarm_low=0.0, alarm_high=50.0, hysteresis=5.0))
    assert det.score_one(0.0, 55.0) == 1.0
    assert det.kind == "out_of_limits"
    assert det.score_one(1.0, 47.0) == 1.0  # inside, but not by the hysteresis margin
    assert det.score_one(2.0, 44.0) != 1.0  # back inside by more than 5: cleared
    assert det.kind != "out_of_limits"
    assert det.score_one(3.0, -1.0) == 1.0
    assert det.kind == "out_of_limits"


def test_a_quiet_cycle_raises_few_alarms_and_fewer_as_it_runs() -> None:
    rows = cycle(288 * 28)  # four weeks of 5-minute readings
    found = alerts(default_detector(), rows)
    late = [i for i in found if i >= 288 * 14]
    assert len(found) <= 10
    assert len(late) <= 2


def test_a_spike_a_shift_and_a_stuck_sensor_are_named() -> None:
    rows = cycle(288 * 10)
    det = default_detector()
    alerts(det, rows)
    t0 = rows[-1][0]
    assert (det.score_one(t0 + 300, 60.0) or 0) >= det.threshold
    assert det.kind == "spike"
    det2 = pickle.loads(pickle.dumps(det))
    kinds = set()
    for i in range(1, 400):
        if (det2.score_one(t0 + 300 * i, 21.25) or 0) >= det2.threshold:
            kinds.add(det2.kind)
    assert "stuck" in kinds


def test_regular_gaps_stop_being_news_but_a_longer_one_is() -> None:
    det = default_detector()
    ts, first_gap_alerts = 0.0, []
    rng = random.Random(1)
    for i in range(3000):
        ts += 7200.0 if i % 300 == 299 else 60.0  # a two-hour gap every 300 readings
        s = det.score_one(ts, 10 + rng.gauss(0, 0.1))
        if s is not None and s >= det.threshold and det.kind == "dropout":
            first_gap_alerts.append(i)
    assert first_gap_alerts  # the first such gap was news
    assert all(i < 1000 for i in first_gap_alerts)  # the same gap again is not
    ts += 86_400.0
    assert (det.score_one(ts, 10.0) or 0) >= det.threshold
    assert det.kind == "dropout"


def test_state_stays_small() -> None:
    det = default_detector(Limits(alarm_high=100.0))
    alerts(det, cycle(5000))
    assert len(pickle.dumps(det)) <= 4096


@pytest.mark.parametrize("sensitivity", [-0.1, 1.5])
def test_sensitivity_out_of_range_is_refused(sensitivity: float) -> None:
    with pytest.raises(ValueError, match="sensitivity must be in"):
        default_detector(sensitivity=sensitivity)


def test_higher_sensitivity_never_alarms_less() -> None:
    rows = cycle(288 * 7, seed=9)
    rows[1500] = (rows[1500][0], rows[1500][1] + 3.0)
    low = alerts(default_detector(sensitivity=0.2), rows)
    high = alerts(default_detector(sensitivity=0.9), rows)
    assert len(high) >= len(low)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 1e7), st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True))), max_size=300),
    st.floats(-1e3, 1e3), st.floats(0.0, 50.0))
def test_default_with_limits_survives_anything(rows: list[tuple[float, float | None]],
                                               low: float, hysteresis: float) -> None:
    det = default_detector(Limits(physical_min=low - 100, physical_max=low + 1e4,
                                  alarm_low=low, alarm_high=low + 100,
                                  hysteresis=hysteresis))
    for ts, v in sorted(rows, key=lambda r: r[0]):
        s = det.score_one(ts, v)
        assert s is None or (math.isfinite(s) and 0.0 <= s <= 1.0)
        if s is not None and v is not None and math.isfinite(v) and (
                v > low + 100 or v < low):
            assert s >= det.threshold
            assert det.kind == "out_of_limits"
    assert all(count > 0 for count in det.skipped.values())
