"""The alert desk on an injected clock: grouping, tiers, people's actions, deadlines that
escalate up the ladder with exact timestamps, and a restart that resumes the timers;
each on both desk stores, SQLite and PostgreSQL (tests/desk_stores.py)."""

from __future__ import annotations

import pytest

from gridcall.config import ConfigSet
from gridcall.hub.desk.desk import BadAction, Change, Desk, NotFound, OutsideSubtree, UnknownUnit
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import IllegalTransition
from gridcall.wire import AnomalyEvent, Severity
from tests.desk_stores import DeskStores

T0 = 1_800_000_000_000_000_000
S = 10**9
MIN = 60 * S

NOISE = "dasha-dong-g1-noise-1"  # NOISE-NUISANCE, base tier D, a construction-site grid
PLACE = ("huangpu", "dasha", "dasha-dong", "dasha-dong-g1")


class Events:
    """Anomaly events as an agent numbers them."""

    def __init__(self) -> None:
        self.seq = 0

    def __call__(self, sensor: str = NOISE, *, severity: Severity = "major",
                 phase: str = "start", agent: str = "edge-dasha-dong") -> AnomalyEvent:
        self.seq += 1
        return AnomalyEvent(agent=agent, seq=self.seq, sensor=sensor, kind="out_of_limits",
                            severity=severity, score=0.9, value=80.0, ts=T0,
                            phase=phase)  # type: ignore[arg-type]


async def test_an_anomaly_opens_an_alert_at_its_grid_with_its_deadlines(desk: Desk) -> None:
    out = await desk.on_event(Events()(), T0)
    assert out.alert is not None
    a = out.alert
    assert (a.alert_id, a.state, a.tier, a.unit, a.unit_level) == (
        "AL000001", "opened", "D", "dasha-dong-g1", "grid")
    assert a.place == PLACE
    assert a.alert.reason == "base tier D"
    assert (a.deadlines.response, a.deadlines.arrival, a.deadlines.disposal) == (
        T0 + 30 * MIN, T0 + 120 * MIN, T0 + 24 * 60 * MIN)
    assert a.departments == ("urban_mgmt", "police")


async def test_a_sensitive_site_and_a_critical_reading_raise_the_tier(desk: Desk) -> None:
    ev = Events()
    school = await desk.on_event(ev("dongyuan-g2-noise-1"), T0)  # a school's grid
    assert school.alert is not None
    assert (school.alert.tier, school.alert.unit) == ("C", "dongyuan")
    assert school.alert.alert.reason == "site school +1"
    both = await desk.on_event(ev("shenjing-g2-noise-1", severity="critical"), T0)
    assert both.alert is not None
    assert (both.alert.tier, both.alert.unit_level) == ("B", "town")
    assert both.alert.alert.reason == "severity critical +1; site school +1"


async def test_further_anomalies_join_the_open_alert_and_duplicates_add_nothing(
        desk: Desk) -> None:
    ev = Events()
    first = ev()
    await desk.on_event(first, T0)
    again = await desk.on_event(first, T0 + S)  # at-least-once redelivery
    assert again.duplicate
    too_soon = await desk.on_event(ev(), T0 + 30 * S)  # inside the 1 min evidence gap
    assert too_soon.suppressed
    later = await desk.on_event(ev(), T0 + 2 * MIN)
    assert later.alert is not None
    assert (later.alert.alert_id, later.alert.evidence, later.alert.state) == (
        "AL000001", 1, "opened")
    assert [t.action for t in await desk.history("AL000001")] == ["open", "evidence"]
    assert len(desk.alerts()) == 1
    assert (desk.counters.duplicates, desk.counters.evidence_suppressed) == (1, 1)


async def test_an_end_event_closes_nothing(desk: Desk) -> None:
    ev = Events()
    await desk.on_event(ev(), T0)
    out = await desk.on_event(ev(phase="end"), T0 + MIN)
    assert out.alert is None
    assert desk.get("AL000001").state == "opened"


async def test_a_flapping_sensor_reopens_its_alert_instead_of_opening_new_ones(
        desk: Desk) -> None:
    ev = Events()
    await desk.on_event(ev(), T0)
    for action in ("acknowledge", "arrive", "resolve"):
        await desk.act("AL000001", action, "dasha-dong-g1", now=T0 + 5 * MIN)
    back = await desk.on_event(ev(), T0 + 65 * MIN)  # within the 2 h reopen window
    assert back.alert is not None
    assert (back.alert.alert_id, back.alert.state, back.alert.reopened) == (
        "AL000001", "opened", 1)
    assert back.alert.deadlines.response == T0 + 95 * MIN
    await desk.act("AL000001", "false_alarm", "dasha-dong-g1", now=T0 + 70 * MIN)
    fresh = await desk.on_event(ev(), T0 + 70 * MIN + 2 * 60 * MIN + S)  # window passed
    assert fresh.alert is not None
    assert fresh.alert.alert_id == "AL000002"


async def test_spread_across_grids_raises_the_open_alerts(desk: Desk) -> None:
    ev = Events()
    await desk.on_event(ev("dasha-dong-g1-manholetilt-1"), T0)  # MANHOLE, base C
    out = await desk.on_event(ev("dasha-dong-g2-manholetilt-1"), T0 + MIN)
    assert out.alert is not None
    assert (out.alert.tier, out.alert.unit) == ("B", "dasha")
    assert out.alert.alert.reason == "spread: 2 grids within 30m +1"
    # the same incident one grid over: the first grid's alert rises with it
    first = desk.get("AL000001")
    *_, rise, sent = await desk.history("AL000001")
    assert (first.tier, first.unit, rise.action, rise.at) == ("B", "dasha", "escalate", T0 + MIN)
    assert rise.reason == "spread: 2 grids within 30m +1"
    # at tier B the matter's plan calls its department in: the hub's dispatch, at once
    assert (sent.action, sent.actor, sent.at, [w.department for w in sent.whistled]) == (
        "dispatch", "hub", T0 + MIN, ["urban_mgmt"])
    # a matter elsewhere in the town is not lifted by this spread
    noise = await desk.on_event(ev(NOISE), T0 + 2 * MIN)
    assert noise.alert is not None
    assert noise.alert.tier == "D"


async def test_deadlines_escalate_up_the_ladder_with_exact_timestamps(desk: Desk) -> None:
    heard: list[Change] = []

    async def hook(change: Change) -> None:
        heard.append(change)

    desk.add_hook(hook)
    await desk.on_event(Events()(), T0)
    await desk.tick(T0 + 29 * MIN)
    assert desk.get("AL000001").tier == "D"
    await desk.tick(T0 + 7 * 24 * 60 * MIN)  # a week later: every breach fires in order
    steps = await desk.history("AL000001")
    timeline = [(t.action, t.at - T0, t.tier, t.unit, t.reason) for t in steps]
    assert timeline == [
        ("open", 0, "D", "dasha-dong-g1", "base tier D"),
        ("escalate", 30 * MIN, "C", "dasha-dong", "response deadline passed"),
        ("escalate", 60 * MIN, "B", "dasha", "response deadline passed"),
        # the noise plan's departments at B and A, each at its escalation's instant
        ("dispatch", 60 * MIN, "B", "dasha", "plan (一事一预案) at tier B: urban_mgmt"),
        ("escalate", 90 * MIN, "A", "huangpu", "response deadline passed"),
        ("dispatch", 90 * MIN, "A", "huangpu", "plan (一事一预案) at tier A: police"),
        # nowhere higher to go: overdue at the district, its duty leader paged
        ("evidence", 120 * MIN, "A", "huangpu",
         "overdue: response deadline passed at district huangpu, nowhere higher to go"),
    ]
    assert [c.units for c in heard] == [
        ("dasha-dong-g1",), ("dasha-dong", "dasha-dong-g1"), ("dasha", "dasha-dong"),
        ("dasha",), ("huangpu", "dasha"), ("huangpu",), ("huangpu",)]
    final = desk.get("AL000001")
    assert final.addresses == (PLACE, PLACE[:3], PLACE[:2])
    assert desk.counters.overdue_at_top == {"AL000001"}


async def test_an_answer_in_time_stops_the_clock_and_arrival_has_its_own(desk: Desk) -> None:
    await desk.on_event(Events()(), T0)
    await desk.act("AL000001", "acknowledge", "dasha-dong-g1", now=T0 + 10 * MIN)
    await desk.tick(T0 + 119 * MIN)
    assert desk.get("AL000001").tier == "D"
    await desk.tick(T0 + 120 * MIN)  # arrival deadline: 2 h after opening
    steps = await desk.history("AL000001")
    assert (steps[-1].action, steps[-1].reason, steps[-1].at) == (
        "escalate", "arrival deadline passed", T0 + 120 * MIN)


async def test_a_late_action_meets_the_escalated_alert(desk: Desk) -> None:
    await desk.on_event(Events()(), T0)
    change = await desk.act("AL000001", "acknowledge", "dasha-dong", now=T0 + 31 * MIN)
    steps = await desk.history("AL000001")
    assert [t.action for t in steps] == ["open", "escalate", "acknowledge"]
    assert change.alert.unit == "dasha-dong"


async def test_calling_upward_needs_a_reason_and_a_higher_level_dispatches(
        desk: Desk) -> None:
    await desk.on_event(Events()(), T0)
    with pytest.raises(BadAction, match="needs a reason"):
        await desk.act("AL000001", "escalate", "dasha-dong-g1", now=T0 + MIN)
    up = await desk.act("AL000001", "escalate", "dasha-dong-g1", now=T0 + MIN,
                        reason="needs enforcement: site keeps working at night")
    assert (up.alert.tier, up.alert.unit, up.units) == (
        "C", "dasha-dong", ("dasha-dong", "dasha-dong-g1"))
    assert up.transition.actor == "dasha-dong-g1"
    with pytest.raises(IllegalTransition, match="dispatch needs a unit at or above the "
                       "responsible community dasha-dong, not a grid"):
        await desk.act("AL000001", "dispatch", "dasha-dong-g1", now=T0 + 2 * MIN)
    sent = await desk.act("AL000001", "dispatch", "dasha", now=T0 + 3 * MIN,
                          departments=["environment_water"])
    assert sent.alert.state == "dispatched"
    assert sent.alert.departments == ("urban_mgmt", "police", "environment_water")
    with pytest.raises(BadAction, match="unknown department"):
        await desk.act("AL000001", "dispatch", "dasha", now=T0 + 3 * MIN,
                       departments=["firemen"])


async def test_refusals_write_nothing(desk: Desk) -> None:
    await desk.on_event(Events()(), T0)
    before = await desk.ledger.count()
    with pytest.raises(OutsideSubtree, match="grid shenjing-g1 may not act on AL000001"):
        await desk.act("AL000001", "acknowledge", "shenjing-g1", now=T0 + MIN)
    with pytest.raises(UnknownUnit):
        await desk.act("AL000001", "acknowledge", "nobody", now=T0 + MIN)
    with pytest.raises(NotFound):
        await desk.act("AL009999", "acknowledge", "dasha", now=T0 + MIN)
    with pytest.raises(IllegalTransition, match="AL000001 is opened; resolve needs on_site"):
        await desk.act("AL000001", "resolve", "dasha", now=T0 + MIN)
    assert await desk.ledger.count() == before
    town = await desk.act("AL000001", "acknowledge", "dasha", now=T0 + MIN)  # its subtree
    assert town.alert.state == "acknowledged"


async def test_listing_by_subtree_tier_and_state(desk: Desk) -> None:
    ev = Events()
    await desk.on_event(ev(), T0)
    await desk.on_event(ev("shenjing-g2-noise-1", agent="edge-shenjing"), T0)  # a school
    assert [a.alert_id for a in desk.alerts(unit="huangpu")] == ["AL000001", "AL000002"]
    assert [a.alert_id for a in desk.alerts(unit="dasha-dong")] == ["AL000001"]
    assert [a.alert_id for a in desk.alerts(unit="changzhou")] == ["AL000002"]
    assert [a.alert_id for a in desk.alerts(tier="C")] == ["AL000002"]
    assert desk.alerts(unit="jiulong") == []
    await desk.act("AL000002", "acknowledge", "changzhou", now=T0 + MIN)
    assert [a.alert_id for a in desk.alerts(state="opened")] == ["AL000001"]
    assert [a.alert_id for a in desk.alerts(state=["opened", "acknowledged"])] == [
        "AL000001", "AL000002"]


async def test_a_restart_rebuilds_the_alerts_and_fires_what_passed_meanwhile(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    ev = Events()
    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        await desk.on_event(ev(), T0)
        await desk.on_event(ev(), T0 + 5 * MIN)
        await desk.act("AL000001", "acknowledge", "dasha-dong-g1", now=T0 + 6 * MIN)
        before = desk.get("AL000001")
    async with desk_stores.open() as store:  # the hub was down for 3 hours
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        assert desk.get("AL000001") == before
        dup = await desk.on_event(ev.__class__()(), T0 + 3 * 60 * MIN)  # seq 1 again
        assert dup.duplicate
        fired = await desk.tick(T0 + 3 * 60 * MIN)
        assert [(c.transition.at - T0, c.transition.tier, c.transition.reason)
                for c in fired] == [(120 * MIN, "C", "arrival deadline passed"),
                                    (150 * MIN, "B", "response deadline passed"),
                                    (150 * MIN, "B", "plan (一事一预案) at tier B: urban_mgmt"),
                                    (180 * MIN, "A", "response deadline passed"),
                                    (180 * MIN, "A", "plan (一事一预案) at tier A: police")]
        nxt = await desk.on_event(AnomalyEvent(
            agent="edge-x", seq=1, sensor="shenjing-g1-manholetilt-1", kind="spike",
            severity="minor", score=0.5, value=1.0, ts=T0), T0 + 3 * 60 * MIN)
        assert nxt.alert is not None
        assert nxt.alert.alert_id == "AL000002"  # numbering resumes


async def test_an_anomaly_reported_for_over_two_hours_rises_a_tier(desk: Desk) -> None:
    ev = Events()
    dust = "dasha-dong-g1-pm25-1"  # DUST-PM25, base D, arrival within a day
    await desk.on_event(ev(dust), T0)
    await desk.act("AL000001", "acknowledge", "dasha-dong-g1", now=T0 + 10 * MIN)
    still = await desk.on_event(ev(dust), T0 + 60 * MIN)
    assert still.alert is not None
    assert still.alert.tier == "D"
    lasting = await desk.on_event(ev(dust), T0 + 121 * MIN)
    assert lasting.alert is not None
    assert (lasting.alert.tier, lasting.alert.state) == ("C", "opened")
    assert lasting.alert.alert.reason == "persistence: reported for over 2h +1"
    assert [t.action for t in await desk.history("AL000001")] == [
        "open", "acknowledge", "evidence", "evidence", "escalate"]
