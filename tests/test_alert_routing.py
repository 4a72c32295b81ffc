"""An anomaly event becomes a risk alert for the unit its matter's tier points at."""

from __future__ import annotations

import pytest

from gridcall.config import ConfigSet
from gridcall.hub.desk.policy import Policy, UnknownSensor, route
from gridcall.wire import AnomalyEvent, AnomalyKind, topics

NOW = 1_800_000_000_000_000_000


def event_on(sensor: str, kind: AnomalyKind = "out_of_limits") -> AnomalyEvent:
    return AnomalyEvent(agent="edge-x", seq=1, sensor=sensor, kind=kind, severity="major",
                        score=1.0, value=50.0, ts=NOW - 10)


def first(cfg: ConfigSet, kind: str) -> str:
    return next(s.id for s in cfg.sensors.values() if s.kind == kind)


@pytest.mark.parametrize(
    ("kind", "matter", "tier", "level", "depth"),
    [
        ("gas", "GAS-LEAK", "A", "district", 2),
        ("smoke", "FIRE-SMOKE", "B", "town", 2),
        ("manhole_tilt", "MANHOLE-DISPLACED", "C", "community", 3),
        ("noise", "NOISE-NUISANCE", "D", "grid", 4),
    ],
)
def test_tier_decides_the_responsible_unit(
    cfg: ConfigSet, kind: str, matter: str, tier: str, level: str, depth: int
) -> None:
    sensor = cfg.sensors[first(cfg, kind)]
    alert = Policy(cfg).draft(event_on(sensor.id), alert_id="AL1", now_ns=NOW)
    assert (alert.matter, alert.tier, alert.unit_level) == (matter, tier, level)
    assert alert.unit_path == list(sensor.path[:depth])
    assert alert.unit == (sensor.path[0] if tier == "A" else sensor.path[depth - 1])
    topic = topics.alert_topic(alert.unit_path, alert.alert_id)
    assert topic.startswith(f"gridcall/v1/alerts/{'/'.join(sensor.path[:depth])}/")


def test_deadlines_come_from_the_catalog(cfg: ConfigSet) -> None:
    alert = Policy(cfg).draft(event_on(first(cfg, "gas")), alert_id="AL1", now_ns=NOW)
    minute = 60 * 10**9
    assert alert.deadlines.response == NOW + 5 * minute
    assert alert.deadlines.arrival == NOW + 30 * minute
    assert alert.deadlines.disposal == NOW + 120 * minute
    assert alert.departments.lead == "fire_safety"
    assert "police" in alert.departments.co


def test_matter_type_defaults_apply_when_a_matter_sets_no_deadlines(cfg: ConfigSet) -> None:
    alert = Policy(cfg).draft(event_on(first(cfg, "water_level")), alert_id="AL1",
                                   now_ns=NOW)
    assert alert.matter == "FLOOD-POINT"
    assert alert.deadlines.response == NOW + 15 * 60 * 10**9  # emergency default


@pytest.mark.parametrize("anomaly", ["stuck", "fault"])
def test_a_stuck_or_faulty_sensor_is_a_device_fault_for_the_grid(
        cfg: ConfigSet, anomaly: AnomalyKind) -> None:
    """``fault``: the agent's, for a value outside the kind's physical range (a gas monitor
    at 6553.5 %LEL is a broken device or map, not a gas leak)."""
    alert = Policy(cfg).draft(event_on(first(cfg, "gas"), anomaly), alert_id="AL1",
                                   now_ns=NOW)
    assert (alert.matter, alert.tier, alert.unit_level) == ("SENSOR-FAULT", "D", "grid")
    assert alert.anomaly_kind == anomaly


def test_an_event_from_an_unknown_sensor_is_refused_by_name(cfg: ConfigSet) -> None:
    with pytest.raises(UnknownSensor, match="'ghost'"):
        Policy(cfg).draft(event_on("ghost"), alert_id="AL1", now_ns=NOW)


def test_route_addresses() -> None:
    path = ("d", "t", "c", "g")
    assert route("D", path).address == path
    assert route("C", path).address == ("d", "t", "c")
    assert route("B", path).unit == "t"
    assert (route("A", path).unit, route("A", path).address) == ("d", ("d", "t"))
