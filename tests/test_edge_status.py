"""The retained status message: heartbeat, last will, outbox depth and age, drops, the
source's counters and per-sensor health (ok, stuck, missing)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import aiomqtt
import msgspec
import pytest

from gridcall.config import ConfigSet
from gridcall.edge_agent.agent import MISSING_AFTER_INTERVALS, EdgeAgent
from gridcall.edge_agent.sources import Sample
from gridcall.simulators.steady import SimClock
from gridcall.wire import AgentStatus, topics
from gridcall.wire.broker import BrokerAddress
from tests.polling import wait_until

NOW = 1_790_000_000 * 10**9
SECOND = 10**9


class CountingSource:
    """A source that keeps counters like the firmware bridge's (bad frames by reason)."""

    def __init__(self, samples: list[Sample]) -> None:
        self._samples = samples

    def stats(self) -> dict[str, int]:
        return {"bad_crc": 3, "resync": 1}

    async def samples(self) -> AsyncIterator[Sample]:
        for s in self._samples:
            yield s
        await asyncio.Event().wait()


def test_sensor_health_tells_ok_stuck_and_missing_apart(cfg: ConfigSet) -> None:
    spec = cfg.agents["edge-dongyuan"]
    ok, stuck, silent = spec.sensors[0], spec.sensors[1], spec.sensors[2]
    spec = dataclasses.replace(spec, sensors=(ok, stuck, silent))
    clock = SimClock(NOW)
    agent = EdgeAgent(spec, CountingSource([]), clock=clock)
    step = int(min(ok.interval_s, stuck.interval_s) * SECOND)
    for i in range(600):
        clock.now += step
        wobble = 0.01 * ((i * 7919) % 13 - 6)
        agent.ingest(ok.id, clock.now, 5.0 + wobble)
        agent.ingest(stuck.id, clock.now, 5.0 + (wobble if i < 300 else 0.0))
    health = agent.health(clock.now)
    assert health[ok.id].state == "ok"
    assert health[ok.id].last_ts == clock.now
    assert health[stuck.id].state == "stuck"
    assert health[silent.id].state == "missing"
    assert health[silent.id].last_ts is None
    # nothing more arrives: after 5 of its intervals a sensor is missing
    last = clock.now
    clock.now += int(MISSING_AFTER_INTERVALS * ok.interval_s * SECOND)
    assert agent.health(clock.now)[ok.id].state == "ok"
    clock.now += 1
    assert agent.health(clock.now)[ok.id].state == "missing"
    assert agent.health(clock.now)[ok.id].last_ts == last


@pytest.mark.servers
async def test_the_retained_status_is_a_heartbeat_with_outbox_counters_and_health(
    cfg: ConfigSet, mqtt_url: str
) -> None:
    base = cfg.agents["edge-dongyuan"]
    spec = dataclasses.replace(base, id=f"edge-status-{uuid.uuid4().hex[:8]}",
                               settings=base.settings.model_copy(
                                   update={"status_interval": timedelta(seconds=0.2)}))
    sensor = spec.sensors[0].id
    now = NOW
    source = CountingSource([Sample(sensor, now + i, 5.0) for i in range(1, 6)])
    agent = EdgeAgent(spec, source, broker_url=mqtt_url)
    address = BrokerAddress.parse(mqtt_url)
    seen: list[AgentStatus] = []
    stop = asyncio.Event()
    async with aiomqtt.Client(address.host, address.port) as client:
        await client.subscribe(topics.status_topic(spec.id), qos=1)

        async def collect() -> None:
            async for msg in client.messages:
                if msg.payload:
                    assert isinstance(msg.payload, bytes)
                    seen.append(msgspec.json.decode(msg.payload, type=AgentStatus))

        collecting = asyncio.create_task(collect())
        running = asyncio.create_task(agent.run(stop))
        assert await wait_until(lambda: sum(s.state == "online" for s in seen) >= 3)
        stop.set()
        await running
        assert await wait_until(lambda: seen[-1].state == "offline")
        collecting.cancel()
        await client.publish(topics.status_topic(spec.id), b"", retain=True)  # tidy up

    online = [s for s in seen if s.state == "online"]
    assert [s.ts for s in online] == sorted(s.ts for s in online)  # a heartbeat, in time
    last = online[-1]
    assert last.heartbeat_s == 0.2
    assert last.source_counters == {"bad_crc": 3, "resync": 1}
    assert set(last.sensor_health) == {s.id for s in spec.sensors}
    assert last.sensor_health[sensor].last_ts == now + 5
    assert last.samples == 5
    assert last.outbox_messages == last.outbox_readings == 0
    assert last.outbox_oldest_age_s is None
    goodbye = seen[-1]
    assert goodbye.readings_sent == 5
    assert goodbye.outbox_messages == 0


def test_an_old_status_without_the_new_fields_still_decodes() -> None:
    old = b'{"v":1,"agent":"edge-a","state":"online","ts":5,"sensors":2,"batches_sent":1,' \
          b'"readings_sent":3,"events_sent":0}'
    status = msgspec.json.decode(old, type=AgentStatus)
    assert (status.outbox_messages, status.sensor_health, status.dropped) == (0, {}, {})
