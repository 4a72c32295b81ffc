"""What QoS 1 and the persistent session promise: nothing is lost while the hub restarts
or while an agent's uplink is down."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiomqtt
import pytest

from gridcall.config import ConfigSet
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.simulators.embedded import EmbeddedBroker, free_port
from gridcall.simulators.town import SimulatedTown
from gridcall.wire import Reading, ReadingBatch, encode, topics
from gridcall.wire.broker import BrokerAddress
from tests.polling import assert_every_reading_was_acknowledged, wait_until


@pytest.mark.servers
async def test_batches_published_while_the_hub_is_down_arrive_when_it_returns(
    cfg: ConfigSet, mqtt_url: str
) -> None:
    sensor = next(iter(cfg.sensors))
    client_id = f"hub-restart-{uuid.uuid4().hex[:8]}"
    address = BrokerAddress.parse(mqtt_url)
    agent = cfg.sensors[sensor].agent  # the hub takes a sensor's readings from its agent
    async with Store(":memory:") as store:
        first = Hub(cfg, sink=store, store=store, broker_url=mqtt_url, client_id=client_id,
                    flush_interval=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(first.run(stop))
        await asyncio.wait_for(first.subscribed.wait(), 10)
        stop.set()
        await task  # the hub is gone; its session stays with the broker

        async with aiomqtt.Client(address.host, address.port) as client:
            now = time.time_ns()  # near the hub's clock, inside its ts window
            for seq in range(1, 21):
                batch = ReadingBatch(agent=agent, seq=seq, sent_at=1,
                                     readings=[Reading(sensor, now + seq * 10 + i, float(i))
                                               for i in range(10)])
                await client.publish(topics.readings_topic(agent), encode(batch), qos=1)

        second = Hub(cfg, sink=store, store=store, broker_url=mqtt_url, client_id=client_id,
                     flush_interval=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(second.run(stop))
        assert await wait_until(lambda: second.ingest.counters.readings_received >= 200)
        stop.set()
        await task
        assert [r[0] for r in await store.readings_of(agent)] == sorted(
            seq for seq in range(1, 21) for _ in range(10))


async def test_an_agent_keeps_what_it_read_while_the_broker_is_unreachable(
    cfg: ConfigSet,
) -> None:
    port = free_port()
    spec = cfg.agents["edge-dongyuan"]
    town = SimulatedTown(cfg, interval_scale=0.05)
    agent = EdgeAgent(spec, town.source(spec.id), broker_url=f"mqtt://127.0.0.1:{port}")
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    await asyncio.sleep(2.0)  # reading and sealing batches, with no broker at all
    assert agent.counters.batches_sent == 0
    assert agent.outbox_depth > 0
    assert agent.counters.publish_failures > 0
    async with EmbeddedBroker(port):
        assert await wait_until(agent.connected.is_set, 1200)
        stop.set()
        await running
    # every reading taken was acknowledged by the broker (PUBACK) once the uplink was back
    assert_every_reading_was_acknowledged(agent)
