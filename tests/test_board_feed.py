"""The board measurements built from a real desk (SQLite ledger in memory) and roster:
one point per open alert, grid, sensor and agent, risk from the highest open tier,
deadlines counting down, events at their own time, every string escaped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gridcall.config import ConfigSet
from gridcall.hub.board.feed import BoardFeed
from gridcall.hub.desk.desk import Change, Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.roster import Roster
from gridcall.hub.store import Store
from gridcall.wire import AgentStatus, AnomalyEvent, SensorHealth
from gridcall.wire.ladder import RISK
from tests.lineproto_reader import Point, parse

T0 = 1_800_000_000_000_000_000
S = 10**9
NOISE = "dasha-dong-g1-noise-1"  # NOISE-NUISANCE, tier D, grid dasha-dong-g1
DUST_1, DUST_2 = "dasha-dong-g1-pm25-1", "dasha-dong-g1-pm25-2"  # DUST-PM25, tier D
GAS = "dongyuan-g3-gas-1"  # GAS-LEAK, tier A


def event(sensor: str, seq: int, *, value: float | None = 80.0, text_kind: str = "out_of_limits"
          ) -> AnomalyEvent:
    return AnomalyEvent(agent="edge-x", seq=seq, sensor=sensor, kind=text_kind,  # type: ignore[arg-type]
                        severity="major", score=0.9, value=value, ts=T0 + seq)


@pytest.fixture
async def desk(cfg: ConfigSet) -> AsyncIterator[Desk]:
    async with Store(":memory:") as store:
        d = Desk(cfg, Ledger(store))
        await d.start()
        yield d


def of(points: list[Point], measurement: str) -> list[Point]:
    return [p for p in points if p.measurement == measurement]


def snapshot(cfg: ConfigSet, desk: Desk, now: int, roster: Roster | None = None
             ) -> list[Point]:
    open_alerts = desk.alerts(open_only=True)
    return parse(BoardFeed(cfg).snapshot(
        open_alerts, now, agents=(roster or Roster(cfg)).views(now),
        evidence={a.alert_id: desk.sensors_of(a.alert_id) for a in open_alerts}))


async def test_one_point_per_open_alert_grid_sensor_and_agent(cfg: ConfigSet,
                                                              desk: Desk) -> None:
    await desk.on_event(event(NOISE, 1), T0)
    gas = await desk.on_event(event(GAS, 2), T0)
    assert gas.alert is not None
    leak = next(s.id for s in cfg.sensors.values() if s.kind == "water_leak")
    closed = await desk.on_event(event(leak, 3), T0)
    assert closed.alert is not None
    await desk.act(closed.alert.alert_id, "false_alarm", "huangpu", now=T0 + S)
    now = T0 + 60 * S
    points = snapshot(cfg, desk, now)
    assert {p.time for p in points} == {now}  # one snapshot, one timestamp
    alerts = of(points, "open_alert")
    assert sorted(p.tags["alert_id"] for p in alerts) == sorted(
        a.alert_id for a in desk.alerts(open_only=True))
    assert len(of(points, "grid_risk")) == len(cfg.units_at("grid"))
    assert len(of(points, "sensor_risk")) == len(cfg.sensors)
    assert len(of(points, "agent_state")) == len(cfg.agents)
    (a,) = [p for p in alerts if p.tags["matter"] == "GAS-LEAK"]
    state = desk.get(gas.alert.alert_id)
    assert a.tags == {"alert_id": state.alert_id, "matter": "GAS-LEAK", "tier": state.tier,
                      "state": "dispatched", "unit": state.unit, "level": state.unit_level,
                      "town": "dasha", "community": "dongyuan", "grid": "dongyuan-g3",
                      "department": "fire_safety"}
    assert a.fields["open"] == 1
    assert a.fields["sensor"] == GAS
    assert a.fields["title"] == f"燃气泄漏 {cfg.units['dongyuan-g3'].name}"
    assert a.fields["age_s"] == 60.0
    assert a.fields["deadline_kind"] == "response"
    assert a.fields["deadline_ms"] == state.deadlines.response // 10**6
    assert a.fields["deadline_left_s"] == (state.deadlines.response - now) / S


async def test_risk_is_the_highest_open_tier_in_the_grid_and_on_each_evidence_sensor(
        cfg: ConfigSet, desk: Desk) -> None:
    await desk.on_event(event(DUST_1, 1), T0)
    await desk.on_event(event(DUST_2, 2), T0 + S)  # joins as evidence
    await desk.on_event(event(GAS, 3), T0 + 2 * S)
    points = snapshot(cfg, desk, T0 + 3 * S)
    grids = {p.tags["grid"]: p for p in of(points, "grid_risk")}
    dust_alert = desk.alerts(open_only=True)[0]
    assert dust_alert.alert.matter == "DUST-PM25"
    assert grids["dasha-dong-g1"].fields["risk"] == RISK[dust_alert.tier]
    assert grids["dasha-dong-g1"].fields["open"] == 1
    gas_tier = desk.alerts(open_only=True)[1].tier
    assert grids["dongyuan-g3"].fields["risk"] == RISK[gas_tier] == 4
    quiet = [p for g, p in grids.items() if g not in ("dasha-dong-g1", "dongyuan-g3")]
    assert {(p.fields["risk"], p.fields["open"]) for p in quiet} == {(0, 0)}
    sensors = {p.tags["sensor"]: p for p in of(points, "sensor_risk")}
    assert sensors[DUST_1].fields["risk"] == sensors[DUST_2].fields["risk"] == RISK[
        dust_alert.tier]
    assert sensors[GAS].fields["risk"] == 4
    other = next(s for s in cfg.sensors if s not in (DUST_1, DUST_2, GAS))
    assert sensors[other].fields["risk"] == 0
    # a grid's point sits at its polygon's centre; a sensor's at its own coordinates
    lon, lat = cfg.units["dongyuan-g3"].location.centre()
    assert (grids["dongyuan-g3"].fields["lon"], grids["dongyuan-g3"].fields["lat"]) == (lon, lat)
    spec = cfg.sensors[GAS]
    assert (sensors[GAS].fields["lon"], sensors[GAS].fields["lat"]) == spec.coordinates
    assert sensors[GAS].tags == {"town": "dasha", "community": "dongyuan",
                                 "grid": "dongyuan-g3", "sensor": GAS, "kind": "gas",
                                 "agent": spec.agent}
    assert grids["dongyuan-g3"].tags["grid_name"] == cfg.units["dongyuan-g3"].name


async def test_a_passed_deadline_counts_below_zero_and_escalations_are_counted(
        cfg: ConfigSet, desk: Desk) -> None:
    out = await desk.on_event(event(NOISE, 1), T0)
    assert out.alert is not None
    response = out.alert.deadlines.response
    late = response + 5 * S
    (alert,) = of(snapshot(cfg, desk, late), "open_alert")  # not ticked: still waiting
    assert alert.fields["deadline_left_s"] == -5.0
    await desk.tick(late)
    (alert,) = of(snapshot(cfg, desk, late), "open_alert")
    assert alert.fields["escalations"] == 1
    assert alert.tags["tier"] == "C"
    assert alert.tags["level"] == "community"


async def test_agents_and_sensor_health_come_from_the_roster(cfg: ConfigSet,
                                                             desk: Desk) -> None:
    roster = Roster(cfg)
    agent = "edge-dongyuan"
    sensors = [s.id for s in cfg.agents[agent].sensors]
    roster.observe(AgentStatus(agent=agent, state="online", ts=T0, heartbeat_s=30.0,
                               outbox_messages=4, outbox_oldest_age_s=2.5,
                               dropped={"readings_age": 2},
                               sensor_health={sensors[0]: SensorHealth(state="stuck"),
                                              sensors[1]: SensorHealth(state="ok")}), T0)
    roster.observe(AgentStatus(agent="edge-jiufo", state="offline", ts=0), T0)
    points = snapshot(cfg, desk, T0 + 10 * S, roster)
    agents = {p.tags["agent"]: p for p in of(points, "agent_state")}
    a = agents[agent]
    assert a.tags == {"agent": agent, "town": "dasha"}
    assert (a.fields["online"], a.fields["outbox_depth"], a.fields["outbox_age_s"],
            a.fields["dropped"], a.fields["last_seen_s"]) == (1, 4, 2.5, 2, 10.0)
    assert (agents["edge-jiufo"].fields["online"], agents["edge-jiufo"].fields["state"]) == (
        0, "lost")
    assert "last_seen_s" not in agents["edge-jiufo"].fields  # never heard from itself
    health = {p.tags["sensor"]: p for p in of(points, "sensor_risk")}
    assert (health[sensors[0]].fields["health"], health[sensors[0]].fields["healthy"]) == (
        "stuck", 0)
    assert (health[sensors[1]].fields["health"], health[sensors[1]].fields["healthy"]) == (
        "ok", 1)
    assert health[sensors[2]].fields["health"] == "unknown"  # not reported


async def test_each_ledger_step_and_anomaly_is_a_point_at_its_own_time(
        cfg: ConfigSet, desk: Desk) -> None:
    feed = BoardFeed(cfg)
    changes: list[Change] = []

    async def keep(change: Change) -> None:
        changes.append(change)

    desk.add_hook(keep)
    out = await desk.on_event(event(NOISE, 1), T0)
    assert out.alert is not None
    await desk.tick(out.alert.deadlines.response)
    acked = out.alert.deadlines.response + 60 * S
    await desk.act(out.alert.alert_id, "acknowledge", "dasha-dong", now=acked,
                   note='on "my" way\\now')
    points = [p for c in changes for p in parse(feed.alert_change(c.alert, c.transition))]
    assert [(p.tags["action"], p.tags["tier"], p.fields["escalated"]) for p in points] == [
        ("open", "D", 0), ("escalate", "C", 1), ("acknowledge", "C", 0)]
    assert [p.time for p in points] == [T0, out.alert.deadlines.response, acked]
    texts = [str(p.fields["text"]) for p in points]
    assert texts[1].endswith("to tier C, now community dasha-dong; response deadline passed")
    assert texts[2].startswith("dasha-dong: acknowledge")
    assert texts[2].endswith('; on "my" way\\now')
    assert {p.tags["grid"] for p in points} == {"dasha-dong-g1"}

    (a,) = parse(feed.anomaly(event(NOISE, 7)))
    assert a.time == T0 + 7
    assert a.tags == {"sensor": NOISE, "agent": "edge-x", "kind": "noise",
                      "anomaly": "out_of_limits", "severity": "major", "phase": "start",
                      "town": "dasha", "community": "dasha-dong", "grid": "dasha-dong-g1"}
    assert (a.fields["value"], a.fields["score"]) == (80.0, 0.9)
    (no_value,) = parse(feed.anomaly(event(NOISE, 8, value=None, text_kind="dropout")))
    assert "value" not in no_value.fields
    assert feed.anomaly(event("no-such-sensor", 9)) == b""


def test_measurement_names_may_be_prefixed_but_not_invented(cfg: ConfigSet) -> None:
    feed = BoardFeed(cfg, measurements={"grid_risk": "t1_grid_risk"})
    assert {p.measurement for p in parse(feed.snapshot([], T0))} == {
        "t1_grid_risk", "sensor_risk"}
    with pytest.raises(ValueError, match="unknown board measurement"):
        BoardFeed(cfg, measurements={"grid_danger": "x"})
