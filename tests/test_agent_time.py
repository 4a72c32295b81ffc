"""The roster judges agents on their own time base: a desk clock that runs 600 times
faster than its agents (the fast demo) never turns a live agent silent, and an agent that
does fall silent on its own time is still an outage, stamped on the desk's clock."""

from __future__ import annotations

from pathlib import Path

from gridcall.config import ConfigSet
from gridcall.hub.desk.runtime import DeskRuntime
from gridcall.hub.store import Store
from gridcall.simulators.clock import SimClock
from gridcall.wire import AgentStatus, encode, topics
from gridcall.wire.broker import BrokerAddress

T0 = 1_800_000_000_000_000_000
S = 10**9
AGENT = "edge-dongyuan"


def runtime(cfg: ConfigSet, store: Store, desk: SimClock, agents: SimClock) -> DeskRuntime:
    return DeskRuntime(cfg, store, address=BrokerAddress.parse("mqtt://127.0.0.1:1"),
                       client_id="agent-time-test", clock=desk, agent_clock=agents)


async def say_online(rt: DeskRuntime, at: int) -> None:
    status = AgentStatus(agent=AGENT, state="online", ts=at, heartbeat_s=30.0)
    await rt.handle(topics.status_topic(AGENT), encode(status))


def offline_alerts(rt: DeskRuntime) -> list[str]:
    return [s.alert_id for s in rt.desk.alerts() if s.alert.matter == "EDGE-OFFLINE"]


async def test_a_fast_desk_clock_does_not_make_live_agents_silent(cfg: ConfigSet) -> None:
    desk, agents = SimClock(T0), SimClock(T0)
    async with Store(":memory:") as store:
        rt = runtime(cfg, store, desk, agents)
        await rt.start()
        for beat in range(10):  # 10 heartbeats of 30 s on the agents' clock...
            await say_online(rt, agents())
            agents.advance(30)
            desk.advance(30 * 600)  # ...are 50 hours at a desk running 600 times faster
            await rt.tick()
            assert rt.roster.view(AGENT, agents()).state == "online", beat
        assert offline_alerts(rt) == []
        assert rt.counters.agent_outages == 0


async def test_silence_on_the_agents_clock_is_an_outage_at_the_desks_time(
        cfg: ConfigSet) -> None:
    desk, agents = SimClock(T0), SimClock(T0)
    async with Store(":memory:") as store:
        rt = runtime(cfg, store, desk, agents)
        await rt.start()
        await say_online(rt, agents())
        agents.advance(91)  # more than 3 heartbeats of 30 s
        desk.advance(91 * 600)
        await rt.tick()
        assert rt.counters.agent_outages == 1
        opened = [rt.desk.get(a) for a in offline_alerts(rt)]
        assert opened
        assert {s.opened_at for s in opened} == {desk()}
        assert {s.alert.detected_at for s in opened} == {agents()}


async def test_one_outage_is_one_alert_listing_the_grids_it_leaves_blind(
        cfg: ConfigSet) -> None:
    """The issue: one gateway outage gave one EDGE-OFFLINE alert per grid it serves, each
    escalating on its own."""
    desk = agents = SimClock(T0)
    grids = list(dict.fromkeys(s.grid for s in cfg.agents[AGENT].sensors))
    assert len(grids) > 1
    will = AgentStatus(agent=AGENT, state="offline", ts=0)
    async with Store(":memory:") as store:
        rt = runtime(cfg, store, desk, agents)
        await rt.start()
        await say_online(rt, agents())
        assert not rt.roster.is_down(AGENT)
        agents.advance(5)
        await rt.handle(topics.status_topic(AGENT), encode(will))
        (alert_id,) = offline_alerts(rt)
        state = rt.desk.get(alert_id)
        assert state.alert.grids == grids
        assert state.place[-1] == cfg.agents[AGENT].grid
        opening = (await rt.desk.history(alert_id))[0]
        assert all(cfg.units[g].name in opening.note for g in grids)
        # the board's map shows the outage in every grid it leaves without eyes
        from gridcall.hub.board.view import grid_risk
        assert set(grid_risk(rt.desk.alerts(open_only=True))) == set(grids)
        assert rt.roster.is_down(AGENT)
        assert rt.roster.down() == {AGENT}
        assert rt.roster.agent_of(cfg.agents[AGENT].sensors[0].id) == AGENT
        agents.advance(60)
        await say_online(rt, agents())  # back: noted on the one alert, which stays open
        assert not rt.roster.is_down(AGENT)
        assert rt.desk.get(alert_id).is_open
        assert "back online" in (await rt.desk.history(alert_id))[-1].note
        agents.advance(60)
        await rt.handle(topics.status_topic(AGENT), encode(will))  # a second outage
        assert offline_alerts(rt) == [alert_id]  # joins the alert still open
        assert rt.desk.get(alert_id).evidence == 2
        assert rt.counters.agent_outages == 2


async def test_a_fresh_hub_raises_the_outage_of_an_agent_it_finds_dead_once(
        cfg: ConfigSet, tmp_path: Path) -> None:
    """The broker kept the agent's will from before this hub ran: the outage is raised as
    it would have been live; a restart that finds the same will again adds nothing while
    the alert is open."""
    will = AgentStatus(agent=AGENT, state="offline", ts=0)
    clock = SimClock(T0)
    async with Store(tmp_path / "hub.sqlite") as store:
        rt = runtime(cfg, store, clock, clock)
        await rt.start()
        await rt.handle(topics.status_topic(AGENT), encode(will), retained=True)
        (alert_id,) = offline_alerts(rt)
        assert rt.counters.agent_outages == 1
        opening = (await rt.desk.history(alert_id))[0]
        assert "retained copy" in opening.note
        steps = len(await rt.desk.transitions())
    clock.advance(600)
    async with Store(tmp_path / "hub.sqlite") as store:
        again = runtime(cfg, store, clock, clock)
        await again.start()
        await again.handle(topics.status_topic(AGENT), encode(will), retained=True)
        assert offline_alerts(again) == [alert_id]
        assert len(await again.desk.transitions()) == steps
        assert again.counters.agent_outages == 0
        assert again.roster.is_down(AGENT)


async def test_a_sensor_missing_long_enough_raises_sensor_fault_once(cfg: ConfigSet) -> None:
    """Issue 17 item 4: a sensor that stops reporting showed as missing on the roster and
    raised nothing until its readings resumed."""
    from gridcall.wire import SensorHealth

    spec = cfg.agents[AGENT].sensors[0]
    upkeep = cfg.matters.maintenance
    assert upkeep is not None
    interval = int(spec.interval_s * S)
    last = T0 - 2 * interval
    clock = SimClock(T0)

    async def report(health: str) -> None:
        status = AgentStatus(agent=AGENT, state="online", ts=clock(), heartbeat_s=30.0,
                             sensor_health={spec.id: SensorHealth(
                                 state=health, last_ts=last)})  # type: ignore[arg-type]
        await rt.handle(topics.status_topic(AGENT), encode(status))

    def faults() -> list[str]:
        return [s.alert_id for s in rt.desk.alerts() if s.alert.matter == "SENSOR-FAULT"]

    async with Store(":memory:") as store:
        rt = runtime(cfg, store, clock, clock)
        await rt.start()
        await report("missing")  # 2 intervals without a value: not yet
        assert faults() == []
        clock.advance_to(last + upkeep.sensor_missing_after * interval)
        await report("missing")
        (alert_id,) = faults()
        state = rt.desk.get(alert_id)
        assert (state.alert.sensor, state.alert.anomaly_kind) == (spec.id, "dropout")
        assert state.departments[0] == upkeep.department  # maintenance leads it
        opening = (await rt.desk.history(alert_id))[0]
        assert f"{upkeep.sensor_missing_after} of its intervals" in opening.note
        n = len(await rt.desk.transitions())
        clock.advance(60)
        await report("missing")  # the same stretch: reported once
        assert len(await rt.desk.transitions()) == n
        assert rt.counters.sensors_missing == 1
        await report("ok")  # back; missing again later is a new stretch
        last = clock()
        clock.advance_to(last + upkeep.sensor_missing_after * interval)
        await report("missing")
        assert rt.counters.sensors_missing == 2
        assert faults() == [alert_id]  # joins the fault still open
