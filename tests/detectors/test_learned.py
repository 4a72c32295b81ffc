"""LearnedNormal learns normal in its baseline and keeps it: a fault stays abnormal for
as long as it lasts, the contributions name the sensor that moved, and a healthy pump
running through duty changes and warming up raises nothing."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from gridcall.detectors import LearnedNormal, Mahalanobis
from gridcall.simulators.pump import DUTY, SENSORS, Fault, PumpRun, simulate


def scores(det: object, run: PumpRun) -> list[float | None]:
    return [det.score_one(ts, row) for ts, row in run.rows()]  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["valve_closing", "cavitation", "rotor_imbalance"])
def test_a_fault_stays_abnormal_for_its_whole_duration(kind: str) -> None:
    fault = Fault(kind, start=600, rows=500, severity=1.0)  # 8 minutes
    run = simulate(11, rows=1200, faults=[fault])
    det = LearnedNormal(baseline=400)
    got = scores(det, run)
    onset = 45  # the fault ramps in over 30 s; the smoothed statistic follows
    held = [s is not None and s >= det.threshold for s in got[600 + onset:1100]]
    assert all(held), f"{kind}: {held.count(False)} fault rows scored normal"
    # the old rolling Mahalanobis learns the same fault as its new normal
    old = Mahalanobis()
    late = [s for s in scores(old, run)[900:1100] if s is not None]
    assert sum(s >= old.threshold for s in late) < len(late) / 2


@pytest.mark.parametrize(("seed", "duty"), [(1, DUTY), (2, DUTY), (3, DUTY), (4, DUTY),
                                            (5, (1.0,)), (6, (0.8,))])
def test_a_healthy_pump_through_duty_changes_and_warming_raises_nothing(
        seed: int, duty: tuple[float, ...]) -> None:
    run = simulate(seed, rows=2400, faults=[], duty=duty)
    det = LearnedNormal(baseline=400)
    got = scores(det, run)
    assert all(s is None for s in got[:400]), "the baseline is learned, not scored"
    alerted = [i for i, s in enumerate(got) if s is not None and s >= det.threshold]
    assert alerted == []
    assert len(set(np.round(run.speed[400:], 2))) > 1 or seed != 1  # duty changed


@pytest.mark.parametrize("sensor", SENSORS)
def test_contributions_name_the_sensor_that_moved(sensor: str) -> None:
    run = simulate(7, rows=900, faults=[], duty=(1.0,))  # one speed, as on a test rig
    j = SENSORS.index(sensor)
    values = run.values.copy()
    values[700:, j] *= 1.25  # one sensor reads 25 % high
    moved = PumpRun(ts=run.ts, values=values, label=run.label, speed=run.speed,
                    faults=run.faults, baseline=run.baseline)
    det = LearnedNormal(baseline=400)
    got = scores(det, moved)
    assert got[-1] is not None
    assert got[-1] >= det.threshold
    shares = det.contributions()
    assert next(iter(shares)) == sensor, shares
    assert abs(sum(shares.values()) - 1.0) < 1e-9


def test_a_frozen_sensor_is_stuck() -> None:
    run = simulate(5, rows=1000, faults=[Fault("sensor_stuck", start=600, rows=400,
                                               sensor="vibration_y")])
    det = LearnedNormal(baseline=400)
    kinds = []
    for ts, row in run.rows():
        s = det.score_one(ts, row)
        if s is not None and s >= det.threshold:
            kinds.append(det.kind)
    assert kinds
    assert set(kinds) == {"stuck"}
    assert det.contributions()  # a stuck row still has its contributions


def test_the_baseline_can_be_a_duration() -> None:
    run = simulate(3, rows=700, faults=[])
    det = LearnedNormal(baseline_s=300.0)
    got = scores(det, run)
    first = next(i for i, s in enumerate(got) if s is not None)
    assert first == 301  # rows 0..300 span the first 300 s
    assert det.learning is False


def test_it_resumes_identically_after_a_pickle_in_the_middle_of_a_fault() -> None:
    run = simulate(9, rows=1100, faults=[Fault("bearing_wear", start=600, rows=400)])
    rows = run.rows()
    det = LearnedNormal()
    for ts, row in rows[:750]:
        det.score_one(ts, row)
    clone = pickle.loads(pickle.dumps(det))
    assert [clone.score_one(ts, r) for ts, r in rows[750:]] == \
        [det.score_one(ts, r) for ts, r in rows[750:]]
    assert clone.contributions() == det.contributions()


@pytest.mark.parametrize(("params", "message"), [
    ({"baseline": 5}, "baseline: 5 rows is too few"),
    ({"baseline_s": -1.0}, "baseline_s: -1.0 is not a positive"),
    ({"sensitivity": 2.0}, "sensitivity: 2.0 is outside"),
    ({"variance": 0.0}, "variance: 0.0 is outside"),
    ({"adapt": 1.0}, "adapt 1.0 and adapt_cov 0.0 must be in"),
])
def test_bad_settings_name_what_is_wrong(params: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LearnedNormal(**params)  # type: ignore[arg-type]
