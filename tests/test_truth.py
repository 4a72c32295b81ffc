"""Ground truth against alerts: the matching rule of simulators/truth.py, on the ledger
steps of a real alert desk (in-memory store) fed the anomaly events an agent would send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from gridcall.config import ConfigSet
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import Action, Transition, overdue_of
from gridcall.hub.store import Store
from gridcall.simulators.streams import Injection
from gridcall.simulators.truth import compare
from gridcall.wire import AnomalyEvent, AnomalyKind

T0 = 1_800_000_000.0
NS = 10**9
GAS = "dongyuan-g3-gas-1"
GAS_NEXT_GRID = "huangpu-cun-g3-gas-1"
SMOKE = "dongyuan-g1-smoke-1"


@dataclass(frozen=True)
class Outage:
    at_ns: int
    agent: str
    duration_s: float


class Agent:
    def __init__(self, desk: Desk, agent: str = "edge-dongyuan") -> None:
        self.desk, self.agent, self.seq = desk, agent, 0

    async def anomaly(self, sensor: str, at: float, kind: AnomalyKind = "out_of_limits"
                      ) -> None:
        self.seq += 1
        ev = AnomalyEvent(agent=self.agent, seq=self.seq, sensor=sensor, kind=kind,
                          severity="major", score=1.0, value=50.0, ts=int(at * NS))
        await self.desk.on_event(ev, int(at * NS))


@pytest.fixture
async def desk(cfg: ConfigSet) -> AsyncIterator[Desk]:
    async with Store(":memory:") as store:
        d = Desk(cfg, Ledger(store))
        await d.start()
        yield d


async def steps(desk: Desk) -> list[Transition]:
    return await desk.ledger.all()


async def test_an_alert_naming_the_sensor_in_time_detects_it_with_its_delay(
        desk: Desk) -> None:
    leak = Injection(GAS, T0 + 600, 1800, "ramp", 40.0, "gas leak", ramp_s=300)
    await Agent(desk).anomaly(GAS, T0 + 700)
    report = compare([leak], await steps(desk))
    assert (report.injected, report.detected, report.missed, report.false_alerts) == (
        1, 1, 0, 0)
    assert report.median_delay_s == 100.0
    (d,) = report.detections
    assert (d.alert_id, d.matter, d.delay_s) == ("AL000001", "GAS-LEAK", 100.0)
    doc = report.as_dict()
    assert list(doc)[:5] == ["injected", "detected", "missed", "false_alerts",
                             "median_delay_s"]
    assert doc["injections"][0]["label"] == "gas leak"


async def test_a_spread_to_the_next_grid_is_found_by_that_grids_alert(desk: Desk) -> None:
    leak = Injection(GAS, T0, 1800, "ramp", 40.0, "leak")
    spread = Injection(GAS_NEXT_GRID, T0 + 600, 1200, "ramp", 40.0, "spreads")
    await Agent(desk).anomaly(GAS, T0 + 60)
    await Agent(desk, "edge-huangpu-cun").anomaly(GAS_NEXT_GRID, T0 + 630)
    report = compare([leak, spread], await steps(desk))
    assert [d.alert_id for d in report.detections] == ["AL000001", "AL000002"]
    assert report.median_delay_s == 45.0  # delays 60 and 30


async def test_an_alert_outside_the_window_or_on_another_sensor_is_false(
        desk: Desk) -> None:
    leak = Injection(GAS, T0 + 3600, 600, "ramp", 40.0, "leak")
    agent = Agent(desk)
    await agent.anomaly(GAS, T0)                         # an hour before: not this leak
    await agent.anomaly(SMOKE, T0 + 3700)                # right time, other sensor
    report = compare([leak], await steps(desk))
    assert (report.detected, report.missed, report.false_alerts) == (0, 1, 2)
    assert report.median_delay_s is None
    assert {f.sensor for f in report.false_alert_details} == {GAS, SMOKE}


async def test_grace_lets_a_dropout_be_seen_when_readings_return(desk: Desk) -> None:
    drop = Injection(SMOKE, T0, 300, "dropout", label="radio dead")
    await Agent(desk).anomaly(SMOKE, T0 + 302, kind="dropout")  # the gap ends
    report = compare([drop], await steps(desk))
    assert report.detected == 1
    assert report.detections[0].matter == "SENSOR-FAULT"
    late = compare([drop], await steps(desk), grace_s=1.0)
    assert (late.detected, late.false_alerts) == (0, 1)


async def test_a_stuck_sensor_needs_a_fault_alert_not_a_value_alarm(desk: Desk) -> None:
    stuck = Injection(GAS, T0, 1800, "stuck", label="frozen cell")
    agent = Agent(desk)
    await agent.anomaly(GAS, T0 + 400)  # out_of_limits: a gas alarm, not a fault
    report = compare([stuck], await steps(desk))
    assert (report.detected, report.false_alerts) == (0, 1)
    await agent.anomaly(GAS, T0 + 500, kind="stuck")
    report = compare([stuck], await steps(desk))
    assert report.detected == 1
    assert report.detections[0].matter == "SENSOR-FAULT"


async def test_a_re_alarm_is_found_by_the_reopened_alert(desk: Desk) -> None:
    fire = Injection(SMOKE, T0, 300, "step", 2.0, "smoke")
    again = Injection(SMOKE, T0 + 1800, 300, "step", 2.0, "re-alarm")
    agent = Agent(desk)
    await agent.anomaly(SMOKE, T0 + 4)
    unit = desk.get("AL000001").unit
    actions: tuple[Action, ...] = ("acknowledge", "arrive", "resolve")
    for i, action in enumerate(actions):
        await desk.act("AL000001", action, unit, now=int((T0 + 600 + 60 * i) * NS))
    await agent.anomaly(SMOKE, T0 + 1806)
    trail = await steps(desk)
    # the hub calls the plan's departments in as the tier-A alert opens (一事一预案); it
    # went unanswered past its 5 minutes: overdue at the district; tier A is always
    # drawn for audit (the sample's audits.tiers): a sample step
    assert [t.action for t in trail] == ["open", "dispatch", "evidence", "acknowledge",
                                         "arrive", "resolve", "sample", "reopen"]
    assert trail[1].actor == "hub"
    assert overdue_of(trail[2]) == "response"
    report = compare([fire, again], trail)
    assert [d.delay_s for d in report.detections] == [4.0, 6.0]
    assert report.false_alerts == 0


async def test_an_edge_offline_alert_from_the_agent_detects_its_outage(desk: Desk) -> None:
    if not any(m.code == "EDGE-OFFLINE" for m in desk.config.matters.matters):
        pytest.skip("the sample catalog has no EDGE-OFFLINE matter (board-feed adds it)")
    outage = Outage(int((T0 + 60) * NS), "edge-dongyuan", 600.0)
    # what a hub sends the desk on the agent's last will: events of two of its grids
    # (the roster sends one; a second joins the same outage's alert as evidence)
    for i, sensor in enumerate((SMOKE, GAS)):
        ev = AnomalyEvent(agent="edge-dongyuan", seq=2**62 + i, sensor=sensor,
                          kind="dropout", severity="major", score=1.0, value=None,
                          ts=int((T0 + 75) * NS))
        await desk.on_event(ev, int((T0 + 75) * NS),
                            matter="EDGE-OFFLINE")  # type: ignore[call-arg,unused-ignore]
    report = compare([], await steps(desk), outages=[outage])
    assert (report.injected, report.detected, report.false_alerts) == (1, 1, 0)
    (d,) = report.detections
    assert (d.delay_s, d.also) == (15.0, ())
    other = compare([], await steps(desk), outages=[Outage(outage.at_ns, "edge-dasha", 600)])
    assert (other.detected, other.false_alerts) == (0, 1)


async def test_an_alert_for_a_sensor_the_run_does_not_simulate_is_foreign(
        desk: Desk) -> None:
    """On a shared broker the hub may hear another publisher's events: with the run's
    sensors given, their alerts are neither detections nor false alerts."""
    leak = Injection(GAS, T0, 600, "ramp", 40.0, "leak")
    await Agent(desk).anomaly(GAS, T0 + 30)
    await Agent(desk, "edge-jiufo").anomaly("jiufo-g1-noise-1", T0 + 40)
    report = compare([leak], await steps(desk), sensors={GAS})
    assert (report.detected, report.false_alerts) == (1, 0)
    assert [f.sensor for f in report.foreign] == ["jiufo-g1-noise-1"]
    assert compare([leak], await steps(desk)).false_alerts == 1  # without: it counts


async def test_an_edge_offline_alert_is_foreign_by_its_agent_not_its_sensor(
        desk: Desk) -> None:
    """The roster's EDGE-OFFLINE event names some sensor of the agent's grid, which the
    run need not simulate: whether it is ours depends on the agent."""
    def offline(agent: str, sensor: str, at: float) -> AnomalyEvent:
        return AnomalyEvent(agent=agent, seq=2**62, sensor=sensor, kind="dropout",
                            severity="major", score=1.0, value=None, ts=int(at * NS))
    # ours, outside any outage window, on a sensor the run does not simulate: false
    await desk.on_event(offline("edge-dongyuan", SMOKE, T0), int(T0 * NS),
                        matter="EDGE-OFFLINE")  # type: ignore[call-arg,unused-ignore]
    # another publisher's agent on the shared broker: foreign
    await desk.on_event(offline("edge-jiufo", "jiufo-g1-noise-1", T0 + 5),
                        int((T0 + 5) * NS),
                        matter="EDGE-OFFLINE")  # type: ignore[call-arg,unused-ignore]
    report = compare([], await steps(desk), sensors={GAS}, agents={"edge-dongyuan"})
    assert [f.sensor for f in report.false_alert_details] == [SMOKE]
    assert [f.sensor for f in report.foreign] == ["jiufo-g1-noise-1"]


async def test_an_alert_opened_by_noise_is_false_though_a_leak_joins_it_later(
        desk: Desk) -> None:
    """Noise opened the alert an hour before the leak; the leak's anomaly joins it as
    evidence. The leak is detected (by that evidence step), and the alert is still false:
    nothing true opened it."""
    leak = Injection(GAS, T0 + 3600, 600, "ramp", 40.0, "leak")
    agent = Agent(desk)
    await agent.anomaly(GAS, T0)           # noise: an hour before the leak
    await agent.anomaly(GAS, T0 + 3630)    # the leak, into the alert still open
    trail = await steps(desk)
    # the plan's departments called in as it opens, the tier-A alert overdue at the
    # district after 5 minutes, the four departments supervised (督办) when none is on
    # site by its promise, then the leak's evidence: none of them opens or names an alert
    assert [t.action for t in trail] == ["open", "dispatch", "evidence", *["supervise"] * 4,
                                         "evidence"]
    assert overdue_of(trail[2]) == "response"
    report = compare([leak], trail)
    assert (report.detected, report.false_alerts) == (1, 1)
    assert report.detections[0].delay_s == 30.0
    assert [f.alert_id for f in report.false_alert_details] == ["AL000001"]


async def test_only_a_rain_label_may_be_seen_before_its_start(desk: Desk) -> None:
    """A rain label is the noise-free model's crossing, so the noisy gauge may cross
    first; an injected shape starts exactly when its label says."""
    agent = Agent(desk)
    await agent.anomaly(GAS, T0 - 60)
    injected = Injection(GAS, T0, 600, "ramp", 40.0, "leak")
    assert compare([injected], await steps(desk)).detected == 0
    rain = Injection(GAS, T0, 600, "rain", label="rain")
    assert compare([rain], await steps(desk)).detected == 1
