"""The hub over a real MQTT broker (the embedded one here; mosquitto in the e2e tests):
duplicates are stored once, malformed messages are counted and never stop the stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from gridcall.config import ConfigSet
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.simulators.embedded import EmbeddedBroker
from gridcall.wire import AnomalyEvent, Reading, ReadingBatch, encode, topics
from gridcall.wire.broker import BrokerAddress

NOW = time.time_ns()
"""Readings and events are stamped near the hub's clock: it refuses ts outside its window."""


@pytest.fixture
async def broker() -> AsyncIterator[str]:
    async with EmbeddedBroker() as b:
        yield b.url


def batch(agent: str, seq: int, sensor: str, n: int = 5) -> ReadingBatch:
    return ReadingBatch(agent=agent, seq=seq, sent_at=1,
                        readings=[Reading(sensor, NOW + seq * 100 + i, float(i))
                                  for i in range(n)])


async def run_hub(cfg: ConfigSet, broker: str, store: Store,
                  messages: list[tuple[str, bytes]]) -> Hub:
    hub = Hub(cfg, sink=store, store=store, broker_url=broker, client_id="test-hub",
              flush_interval=0.05, mqtt5=False)  # the embedded amqtt speaks MQTT 3.1.1
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    await asyncio.wait_for(hub.subscribed.wait(), 10)
    address = BrokerAddress.parse(broker)
    async with aiomqtt.Client(address.host, address.port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)
    for _ in range(200):
        if hub.counters.messages >= len(messages):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    return hub


async def test_a_redelivered_batch_is_stored_once(cfg: ConfigSet, broker: str) -> None:
    sensor = next(iter(cfg.sensors))
    agent = cfg.sensors[sensor].agent
    b1, b2 = batch(agent, 1, sensor), batch(agent, 2, sensor)
    t = topics.readings_topic(agent)
    async with Store(":memory:") as store:
        hub = await run_hub(cfg, broker, store, [(t, encode(b1)), (t, encode(b2)),
                                                 (t, encode(b1))])
        assert await store.count_readings() == 10
        assert [r[0] for r in await store.readings_of(agent)] == [1] * 5 + [2] * 5
    assert hub.ingest.counters.duplicate_batches == 1


async def test_malformed_messages_are_counted_and_the_rest_is_stored(
    cfg: ConfigSet, broker: str
) -> None:
    sensor = next(iter(cfg.sensors))
    agent = cfg.sensors[sensor].agent
    t = topics.readings_topic(agent)
    messages = [
        (t, encode(batch(agent, 1, sensor))),
        (t, b"\xff\xfe garbage"),
        (t, b'{"v":1,"agent":"edge-a","seq":"two"}'),
        (topics.readings_topic("edge-b"), encode(batch(agent, 9, sensor))),
        (t, encode(batch(agent, 2, sensor))),
    ]
    async with Store(":memory:") as store:
        hub = await run_hub(cfg, broker, store, messages)
        assert await store.count_readings() == 10
    assert hub.malformed == 3
    assert hub.decoder.malformed == {"not_json": 1, "invalid": 1, "forged": 1}


async def test_an_event_opens_one_alert_even_when_delivered_twice(
    cfg: ConfigSet, broker: str
) -> None:
    gas = next(s for s in cfg.sensors.values() if s.kind == "gas")
    event = AnomalyEvent(agent=gas.agent, seq=7, sensor=gas.id, kind="out_of_limits",
                         severity="critical", score=1.0, value=45.0, ts=NOW + 10)
    ghost = AnomalyEvent(agent=gas.agent, seq=8, sensor="ghost", kind="spike",
                         severity="minor", score=0.95, value=1.0, ts=NOW + 11)
    t = topics.events_topic(gas.agent)
    async with Store(":memory:") as store:
        hub = await run_hub(cfg, broker, store, [(t, encode(event)), (t, encode(event)),
                                                 (t, encode(ghost))])
        (state,) = hub.desk.alerts()
        # opened, and at tier A the gas plan's departments dispatched by the hub
        assert [t.action for t in await hub.desk.history(state.alert_id)] == [
            "open", "dispatch"]
    alert = state.alert
    assert (alert.matter, alert.tier, alert.unit) == ("GAS-LEAK", "A", gas.path[0])
    assert hub.counters.duplicate_events == 1
    assert hub.counters.rejected == {"unknown_sensor": 1}
    # the redelivery republishes the same alert (at-least-once), it opens no second one
    # (published: the opening, the plan's dispatch, the redelivery)
    assert (hub.counters.alerts_opened, hub.counters.alerts_published) == (1, 3)
