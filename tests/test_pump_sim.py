"""The pumping-station simulator: deterministic per seed, true to the affinity laws, and
each labelled fault moves the sensors it should."""

from __future__ import annotations

import numpy as np
import pytest

from gridcall.simulators.pump import (
    DUTY,
    FAULTS,
    SENSORS,
    Fault,
    PumpSpec,
    operating_point,
    simulate,
)


def test_same_seed_same_run_and_another_seed_another() -> None:
    a, b, c = simulate(4), simulate(4), simulate(5)
    assert np.array_equal(a.values, b.values)
    assert np.array_equal(a.label, b.label)
    assert a.faults == b.faults
    assert not np.array_equal(a.values, c.values)


@pytest.mark.parametrize("valve", [1.0, 2.5])
def test_flow_head_and_power_follow_the_affinity_laws(valve: float) -> None:
    speeds = np.array([0.5, 0.7, 0.85, 1.0, 1.1])
    q, head, power = operating_point(speeds, valve)
    q1, h1, p1 = (float(v) for v in operating_point(1.0, valve))
    assert np.allclose(q / q1, speeds)
    assert np.allclose(head / h1, speeds**2)
    assert np.allclose(power / p1, speeds**3)


def test_the_rated_point_and_a_throttled_valve() -> None:
    spec = PumpSpec()
    q, head, power = (float(v) for v in operating_point(1.0, 1.0, spec))
    assert (q, head, power) == pytest.approx((spec.rated_flow, spec.rated_head,
                                              spec.rated_power))
    q2, head2, power2 = (float(v) for v in operating_point(1.0, 3.0, spec))
    # throttled: less flow, more head, less power
    assert q2 < q
    assert head2 > head
    assert power2 < power


def test_a_healthy_run_tracks_the_drive_speed() -> None:
    run = simulate(2, rows=3000, faults=[])
    assert not run.label.any()
    flow = run.column("flow")
    assert np.corrcoef(flow, run.speed)[0, 1] > 0.98
    # the commissioning window visits every duty point
    assert {round(float(v), 2) for v in run.speed[80:400:100]} == set(DUTY)


def test_random_faults_come_after_the_baseline_and_cover_a_share_of_the_rest() -> None:
    for seed in range(20):
        run = simulate(seed)
        assert not run.label[:run.baseline].any()
        share = run.label[run.baseline:].mean()
        assert 0.2 <= share <= 0.56, (seed, share)
        assert {f.kind for f in run.faults} <= set(FAULTS)


def _shift(kind: str, sensor: str, **fault: object) -> float:
    """Mean of a sensor during the fault minus the same seed's healthy run, in the
    healthy run's standard deviation over that stretch (noise and duty)."""
    f = Fault(kind, start=600, rows=400, severity=1.0, **fault)  # type: ignore[arg-type]
    sick, well = simulate(8, rows=1000, faults=[f]), simulate(8, rows=1000, faults=[])
    a, b = sick.column(sensor)[700:1000], well.column(sensor)[700:1000]
    return float((a.mean() - b.mean()) / max(float(np.std(np.diff(b))), 1e-9))


@pytest.mark.parametrize(("kind", "moves"), [
    ("valve_closing", {"flow": -1, "outlet_pressure": +1, "current": -1}),
    ("cavitation", {"flow": -1, "inlet_pressure": -1, "vibration_x": +1, "vibration_y": +1}),
    ("bearing_wear", {"vibration_x": +1, "vibration_y": +1, "bearing_temp": +1}),
    ("rotor_imbalance", {"vibration_x": +1}),
])
def test_each_fault_moves_its_sensors(kind: str, moves: dict[str, int]) -> None:
    for sensor, sign in moves.items():
        assert sign * _shift(kind, sensor) > 3, (kind, sensor)


def test_sensor_faults_touch_one_sensor_only() -> None:
    well = simulate(8, rows=1000, faults=[])
    stuck = simulate(8, rows=1000, faults=[Fault("sensor_stuck", start=600, rows=400,
                                                 sensor="current")])
    j = SENSORS.index("current")
    assert np.all(stuck.values[600:, j] == stuck.values[600, j])
    others = [i for i in range(len(SENSORS)) if i != j]
    assert np.array_equal(stuck.values[:, others], well.values[:, others])
    drift = simulate(8, rows=1000, faults=[Fault("sensor_drift", start=600, rows=400,
                                                 sensor="flow")])
    gap = drift.column("flow") - well.column("flow")
    assert np.all(gap[:600] == 0)
    assert gap[999] > gap[800] > gap[650] > 0


def test_a_fault_that_names_an_unknown_kind_or_sensor_is_refused() -> None:
    with pytest.raises(ValueError, match="fault kind 'leak'"):
        Fault("leak", start=1, rows=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown sensor 'rpm'"):
        Fault("sensor_stuck", start=1, rows=1, sensor="rpm")


def test_a_steady_station_runs_at_one_speed_and_a_bad_duty_is_refused() -> None:
    run = simulate(3, rows=2000, faults=[], duty=(0.9,))
    assert np.allclose(run.speed, 0.9)
    with pytest.raises(ValueError, match=r"duty \(\): give speed set-points"):
        simulate(3, duty=())
    with pytest.raises(ValueError, match=r"duty \(1.5,\)"):
        simulate(3, duty=(1.5,))
