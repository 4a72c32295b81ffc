"""The roster judges agents on their own time base: a desk clock that runs 600 times
faster than its agents (the fast demo) never turns a live agent silent, and an agent that
does fall silent on its own time is still an outage, stamped on the desk's clock."""

from __future__ import annotations

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
