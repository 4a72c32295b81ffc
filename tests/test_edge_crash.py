"""kill -9 and redelivery: nothing acknowledged to the outbox is lost, and at-least-once
delivery still stores each reading exactly once (the hub dedups by ``(agent, seq)``).

Both run against a private mosquitto and a real hub with its SQLite store."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import msgspec
import pytest

from gridcall.config import ConfigSet
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.outbox import Priority
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.simulators.steady import SimClock, SteadySource
from gridcall.wire import AgentStatus, topics
from tests.edge_crash_agent import NOW
from tests.fault_rig import AgentProcess
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto

AGENT = "edge-dongyuan"


@pytest.fixture
async def hub(cfg: ConfigSet, tmp_path: Path) -> AsyncIterator[tuple[Hub, Store, str]]:
    with PrivateMosquitto(tmp_path / "broker") as broker:
        async with Store(tmp_path / "hub.sqlite") as store:
            # the agents stamp readings on a simulated clock from NOW on: the hub's clock
            # reads the same, or its ts window would refuse them as months old
            hub = Hub(cfg, sink=store, store=store, broker_url=broker.url,
                      client_id="crash-test-hub", flush_interval=0.05,
                      clock=lambda: NOW)
            stop = asyncio.Event()
            task = asyncio.create_task(hub.run(stop))
            assert await wait_until(hub.subscribed.is_set)
            yield hub, store, broker.url
            stop.set()
            await task


async def test_kill_9_during_a_burst_loses_nothing_that_reached_the_outbox(
    tmp_path: Path, hub: tuple[Hub, Store, str]
) -> None:
    _the_hub, store, broker = hub
    state = tmp_path / "state"
    first = AgentProcess(state, broker, start_at=0, total=10_000_000)
    assert await first.read_until(20)  # mid-burst: publishing, acking, sealing
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    await first.read_rest()  # lines it printed before it died count too
    acknowledged = first.readings()
    # 20 sealed batches (10,000 readings), each reading once; a batch holds up to 500
    # readings but the agent's real-time sealer also seals partial ones, more of them on a
    # loaded machine
    assert len(first.batches) >= 20
    assert len(acknowledged) == sum(len(b["readings"]) for b in first.batches)

    second = AgentProcess(state, broker, start_at=20_000_000, total=5000)
    assert await second.read_until(10)  # it runs: the restored outbox drains first

    async def stored() -> set[tuple[str, int, float]]:
        return {(s, t, v) for _, s, t, v in await store.readings_of(AGENT)}

    expected = acknowledged | second.readings()
    for _ in range(600):  # poll the store, bounded
        if await stored() >= expected:
            break
        await asyncio.sleep(0.05)
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(timeout=60) == 0
    await second.read_rest()

    rows = await store.readings_of(AGENT)
    have = {(s, t, v) for _, s, t, v in rows}
    assert acknowledged <= have, f"{len(acknowledged - have)} acknowledged readings lost"
    # exactly once: no reading stored twice (under two sequence numbers)
    assert len(rows) == len({(s, t) for _, s, t, _ in rows})
    # and the second run's numbers continue above the first's
    assert min(int(b["seq"]) for b in second.batches) > max(  # type: ignore[call-overload]
        int(b["seq"]) for b in first.batches)  # type: ignore[call-overload]


async def test_a_crash_between_publish_and_delete_redelivers_and_the_hub_stores_once(
    cfg: ConfigSet, tmp_path: Path, hub: tuple[Hub, Store, str]
) -> None:
    the_hub, store, broker = hub
    spec = cfg.agents[AGENT]
    clock = SimClock(1_790_000_000 * 10**9)
    state = tmp_path / "state"
    first = EdgeAgent(spec, SteadySource(spec.sensors, clock, total=0), clock=clock,
                      broker_url=broker, state_dir=state)
    source = SteadySource(spec.sensors, clock, total=1000, breach_every=10**9,
                          then_idle=False)
    async for sample in source.samples():
        first.ingest(sample.sensor, sample.ts, sample.value)
    first.seal()
    held = first.outbox.all()
    assert sum(m.readings for m in held) == 1000
    # published and acknowledged by the broker, then the process died before the delete
    port = int(broker.rsplit(":", 1)[1])
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for m in held:
            await client.publish(m.topic, m.payload, qos=1)
    first.outbox.close()
    assert await wait_until(lambda: the_hub.ingest.counters.readings_received >= 1000)

    second = EdgeAgent(spec, SteadySource(spec.sensors, clock, total=0), clock=clock,
                       broker_url=broker, state_dir=state)
    assert second.outbox.messages == len(held)  # still there: never deleted
    stop = asyncio.Event()
    running = asyncio.create_task(second.run(stop))
    assert await wait_until(lambda: second.outbox_depth == 0)
    batches = sum(1 for m in held if m.priority == Priority.READINGS)
    events = len(held) - batches
    assert await wait_until(lambda: the_hub.ingest.counters.duplicate_batches == batches)
    assert await wait_until(lambda: the_hub.counters.duplicate_events == events)
    stop.set()
    await running
    assert await wait_until(lambda: the_hub.ingest.pending_points == 0)
    rows = await store.readings_of(AGENT)
    assert sorted((s, t, v) for _, s, t, v in rows) == sorted(
        (s.sensor, s.ts, s.value) for s in source.produced)
    assert the_hub.ingest.counters.readings_received == 1000


async def test_an_agent_killed_without_a_goodbye_is_reported_offline_by_its_last_will(
        tmp_path: Path) -> None:
    """A power cut sends no DISCONNECT: the broker itself publishes the agent's will, a
    retained ``offline`` status (ts 0: the agent wrote it before it knew when), so the hub
    and anyone subscribing later see the box is gone."""
    with PrivateMosquitto(tmp_path / "broker") as broker:
        port = int(broker.url.rsplit(":", 1)[1])
        topic = topics.status_topic(AGENT)
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe(topic, qos=1)
            agent = AgentProcess(tmp_path / "state", broker.url, start_at=0, total=10_000_000)
            try:
                states: list[AgentStatus] = []

                async def until(state: str) -> None:
                    async for msg in client.messages:
                        assert isinstance(msg.payload, bytes)
                        states.append(msgspec.json.decode(msg.payload, type=AgentStatus))
                        if states[-1].state == state:
                            return

                await asyncio.wait_for(until("online"), 60)
                agent.proc.send_signal(signal.SIGKILL)
                agent.proc.wait()
                await asyncio.wait_for(until("offline"), 60)
            finally:
                agent.proc.kill()
                agent.proc.wait()
        assert states[-1].ts == 0  # the will, not a goodbye the agent sent itself
        async with aiomqtt.Client("127.0.0.1", port) as later:  # retained for newcomers
            await later.subscribe(topic, qos=1)
            message = await asyncio.wait_for(anext(aiter(later.messages)), 30)
            assert isinstance(message.payload, bytes)
            assert msgspec.json.decode(message.payload, type=AgentStatus).state == "offline"
