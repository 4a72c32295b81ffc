"""The uplink is down for ten minutes at 100 readings/s, then comes back: nothing is
lost, events go before readings, and each priority arrives in the order it was made.

The outage is a private mosquitto the test stops and starts; ten minutes run on a
simulated clock with a fast synthetic source (60,000 readings in seconds)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

import aiomqtt
import msgspec
import pytest

from gridcall.config import ConfigSet
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.outbox import Priority
from gridcall.simulators.steady import SimClock, SteadySource
from gridcall.wire import AgentStatus, AnomalyEvent, ReadingBatch, topics
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto
from tests.servers import unused_tcp_port

NOW = 1_790_000_000 * 10**9
RATE = 100
OUTAGE_S = 600


class Collector:
    """A subscriber with a persistent session: what the broker delivered, in order."""

    def __init__(self, url: str, agent: str) -> None:
        self.url = url
        self.agent = agent
        self.arrived: list[tuple[str, bytes]] = []
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", port, identifier=f"collector-{self.agent}",
                                          clean_session=False) as client:
                    await client.subscribe(topics.readings_topic(self.agent), qos=1)
                    await client.subscribe(topics.events_topic(self.agent), qos=1)
                    self.subscribed.set()
                    async for msg in client.messages:
                        assert isinstance(msg.payload, bytes)
                        self.arrived.append((str(msg.topic), msg.payload))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    def batches(self) -> list[ReadingBatch]:
        return [msgspec.json.decode(p, type=ReadingBatch) for t, p in self.arrived
                if t == topics.readings_topic(self.agent)]

    def events(self) -> list[AnomalyEvent]:
        return [msgspec.json.decode(p, type=AnomalyEvent) for t, p in self.arrived
                if t == topics.events_topic(self.agent)]


async def test_ten_minutes_without_uplink_at_100_readings_a_second_lose_nothing(
    cfg: ConfigSet, tmp_path: Path
) -> None:
    spec = cfg.agents["edge-dongyuan"]
    broker = PrivateMosquitto(tmp_path / "broker")
    broker.start()
    collector = Collector(broker.url, spec.id)
    collecting = asyncio.create_task(collector.run())
    try:
        assert await wait_until(collector.subscribed.is_set)
        broker.stop()  # the uplink goes down; the collector's session stays on disk

        clock = SimClock(NOW)
        source = SteadySource(spec.sensors, clock, total=RATE * OUTAGE_S, rate=RATE)
        agent = EdgeAgent(spec, source, broker_url=broker.url, clock=clock,
                          state_dir=tmp_path / "state")
        stop = asyncio.Event()
        running = asyncio.create_task(agent.run(stop))
        assert await wait_until(lambda: source.done.is_set() and not agent._pending, 2400)

        # ten simulated minutes later, everything is on disk and nothing went out
        assert agent.counters.batches_sent == 0
        assert agent.outbox.readings == RATE * OUTAGE_S
        assert agent.outbox.events >= 4  # the breaches opened and closed episodes
        status = msgspec.json.decode(agent.status(), type=AgentStatus)
        assert status.outbox_readings == RATE * OUTAGE_S
        assert status.outbox_oldest_age_s is not None
        assert status.outbox_oldest_age_s >= 599
        assert status.dropped == {}
        events_made = agent.outbox.events

        broker.start()  # the uplink is back
        assert await wait_until(lambda: agent.outbox_depth == 0
                                and len(collector.arrived) >= agent.counters.batches_sent
                                + events_made, 2400)
        stop.set()
        await running
    finally:
        collecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collecting
        broker.stop()

    batches, events = collector.batches(), collector.events()
    # nothing lost, nothing invented, every reading exactly as taken
    got = [(r.sensor, r.ts, r.value) for b in batches for r in b.readings]
    assert got == [(s.sensor, s.ts, s.value) for s in source.produced]
    # each priority in the order it was made
    assert [b.seq for b in batches] == sorted({b.seq for b in batches})
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    assert len(events) == events_made
    assert {e.phase for e in events} == {"start", "end"}
    # everything queued during the outage: events first
    kinds = [t.split("/")[2] for t, _ in collector.arrived]
    assert kinds == ["events"] * len(events) + ["readings"] * len(batches)


@pytest.mark.parametrize("sync", ["full", "normal"])
async def test_the_outbox_policy_is_what_agents_yaml_says(
    cfg: ConfigSet, tmp_path: Path, sync: str
) -> None:
    spec = cfg.agents["edge-dongyuan"]
    spec = dataclasses.replace(spec, settings=spec.settings.model_copy(
        update={"outbox_sync": sync, "outbox_max_bytes": 2**16}))
    clock = SimClock(NOW)
    agent = EdgeAgent(spec, SteadySource(spec.sensors, clock, total=0), clock=clock,
                      state_dir=tmp_path)
    assert (agent.outbox.sync, agent.outbox.max_bytes) == (sync, 2**16)
    assert agent.outbox.path == tmp_path / "edge-dongyuan.outbox.sqlite"


async def test_an_agent_offline_past_its_bound_drops_the_oldest_readings_and_reports_it(
    cfg: ConfigSet, tmp_path: Path
) -> None:
    spec = cfg.agents["edge-dongyuan"]
    spec = dataclasses.replace(spec, settings=spec.settings.model_copy(
        update={"outbox_max_bytes": 2**16}))
    clock = SimClock(NOW)
    source = SteadySource(spec.sensors, clock, total=20_000, breach_every=200)
    agent = EdgeAgent(spec, source, broker_url=f"mqtt://127.0.0.1:{unused_tcp_port()}",
                      clock=clock, state_dir=tmp_path)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop, drain_timeout=0.2))  # no broker
    assert await wait_until(lambda: source.done.is_set() and not agent._pending, 2400)
    status = msgspec.json.decode(agent.status(), type=AgentStatus)
    kept = [(r.sensor, r.ts, r.value) for m in agent.outbox.all()
            if m.priority == Priority.READINGS
            for r in msgspec.json.decode(m.payload, type=ReadingBatch).readings]
    stop.set()
    await running

    dropped = status.dropped["readings_size"]
    assert dropped > 0
    assert status.outbox_bytes <= 2**16
    # every reading taken is either still held or counted as dropped
    assert status.outbox_readings + dropped == 20_000 == len(source.produced)
    # the oldest went: what is left is the newest, in order
    assert kept == [(s.sensor, s.ts, s.value) for s in source.produced[-len(kept):]]
    # the events were all kept
    assert status.outbox_events == agent.counters.events_made > 0
    assert not any(k.startswith("events") for k in status.dropped)
