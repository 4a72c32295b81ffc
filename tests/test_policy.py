"""The desk's policy (hub/desk/policy.py): each answer is one Decision, and what the desk
writes is that decision, not a draft patched afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridcall.config import ConfigSet
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.policy import UNCLASSIFIED, Policy, absolute, route
from gridcall.hub.store import Store
from gridcall.wire import ANOMALY_KINDS, AnomalyEvent
from gridcall.wire.ladder import TIERS, Tier, tier_up

T0 = 1_800_000_000_000_000_000
MIN = 60 * 10**9


def plain_event(cfg: ConfigSet) -> AnomalyEvent:
    """A minor anomaly on a sensor without sensitive site tags: no tier rule applies."""
    sites = {str(k) for k, v in cfg.matters.rules.sites.items() if v > 0}
    sensor = next(s for s in cfg.sensors.values() if not sites & set(s.tags))
    return AnomalyEvent(agent=sensor.agent, seq=1, sensor=sensor.id, kind=ANOMALY_KINDS[0],
                        severity="minor", score=0.5, value=1.0, ts=T0)


async def test_the_alert_the_desk_opens_is_the_policys_decision(
        cfg: ConfigSet, tmp_path: Path) -> None:
    """An unclassified anomaly: the draft used to carry the matter type's default
    deadlines, which the desk then overwrote with the tier's; now there is one lookup."""
    event = plain_event(cfg)
    policy = Policy(cfg)
    sensor = cfg.sensors[event.sensor]
    decision = policy.opening(UNCLASSIFIED, sensor, severity=event.severity, spread={},
                              at=T0)
    async with Store(tmp_path / "hub.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        outcome = await desk.on_event(event, T0, matter=UNCLASSIFIED.code)
    assert outcome.alert is not None
    alert = outcome.alert.alert
    assert alert.matter == UNCLASSIFIED.code
    assert (alert.tier, alert.unit, alert.unit_level, alert.deadlines, alert.reason) == (
        decision.tier, decision.route.unit, decision.route.level, decision.deadlines,
        decision.reason)
    assert decision.deadlines == absolute(cfg.deadlines_for(UNCLASSIFIED, decision.tier), T0)
    drafted = policy.draft(event, alert_id="AL1", now_ns=T0, matter=UNCLASSIFIED)
    assert drafted.deadlines == decision.deadlines  # the same lookup at the same tier


@pytest.mark.parametrize("tier", TIERS)
def test_a_breach_escalates_one_tier_with_the_deadlines_of_that_tier(
        cfg: ConfigSet, tier: Tier) -> None:
    policy = Policy(cfg)
    matter = cfg.matters.matters[0]
    place = next(iter(cfg.sensors.values())).path
    decision = policy.on_breach(matter, tier, place, "response", T0 + MIN)
    if tier == "A":
        assert decision is None  # nowhere higher to go
        return
    assert decision is not None
    up = tier_up(tier, 1)
    assert (decision.tier, decision.route, decision.reason) == (
        up, route(up, place), "response deadline passed")
    assert decision.deadlines == absolute(cfg.deadlines_for(matter, up), T0 + MIN)


def test_evidence_raises_only_above_the_current_tier(cfg: ConfigSet) -> None:
    policy = Policy(cfg)
    matter = next(m for m in cfg.matters.matters if m.base_tier == "D")
    place = next(iter(cfg.sensors.values())).path
    spread = {"sensors": 3, "grids": 2, "communities": 2}
    raised = policy.on_evidence(matter, "D", place, severity="minor", tags=(), spread=spread,
                                since=T0, at=T0 + MIN)
    assert raised is not None
    assert raised.tier == tier_up("D", 1)
    assert "spread" in raised.reason
    assert policy.on_evidence(matter, raised.tier, place, severity="minor", tags=(),
                              spread=spread, since=T0, at=T0 + MIN) is None


def test_a_matter_nobody_owns_goes_to_the_district_at_any_tier(cfg: ConfigSet) -> None:
    """区政府兜底 (issue 17 item 6): an anomaly no matter of the catalog claims went to the
    town at its base tier B; it goes to the district, addressed as tier A is, so the town
    still sees it, and so does each escalation."""
    event = plain_event(cfg)
    policy = Policy(cfg)
    sensor = cfg.sensors[event.sensor]
    opened = policy.opening(UNCLASSIFIED, sensor, severity="minor", spread={}, at=T0)
    assert opened.tier == UNCLASSIFIED.base_tier == "B"
    assert (opened.route.unit, opened.route.level) == (cfg.district.id, "district")
    assert opened.route == route("A", sensor.path)
    up = policy.on_breach(UNCLASSIFIED, "B", sensor.path, "response", T0 + MIN)
    assert up is not None
    assert (up.tier, up.route.unit) == ("A", cfg.district.id)
    alert = policy.alert(event, opened, matter=UNCLASSIFIED, alert_id="AL000001", at=T0)
    assert alert.departments.lead == cfg.district.id
    assert not policy.ownerless(policy.matter("GAS-LEAK") or UNCLASSIFIED)


def test_a_device_fault_is_held_at_its_top_tier(cfg: ConfigSet) -> None:
    upkeep = cfg.matters.maintenance
    assert upkeep is not None
    policy = Policy(cfg)
    fault = policy.matter("SENSOR-FAULT")
    assert fault is not None
    sensor = next(s for s in cfg.sensors.values() if "school" in s.tags)
    opened = policy.opening(fault, sensor, severity="critical",
                            spread={"grids": 5, "sensors": 5, "communities": 5}, at=T0)
    assert opened.tier == upkeep.top_tier
    assert "held at B" in opened.reason
    assert policy.on_breach(fault, upkeep.top_tier, sensor.path, "response", T0) is None
    assert policy.departments(fault)[0] == upkeep.department
