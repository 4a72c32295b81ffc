"""Stopping the hub is bounded even when its sink is down: it stops taking messages,
tries to write what it holds for ``drain_timeout`` seconds, then reports and counts what
it did not write. Against the real mosquitto, with an InfluxDB URL nothing listens on."""

from __future__ import annotations

import asyncio
import logging
import uuid

import aiomqtt
import pytest

from config import SAMPLE_DISTRICT, ConfigSet, load_config
from hub.ingest import Unwritten
from hub.service import Hub
from hub.sinks import InfluxV1Sink, LineEncoder
from hub.store import Store
from tests.servers import unused_tcp_port
from wire import Reading, ReadingBatch, encode, topics
from wire.broker import BrokerAddress

T0 = 1_795_000_000_000_000_000


@pytest.fixture(scope="module")
def cfg() -> ConfigSet:
    return load_config(SAMPLE_DISTRICT)


def batch(agent: str, sensor: str, seq: int, n: int) -> ReadingBatch:
    return ReadingBatch(agent=agent, seq=seq, sent_at=T0,
                        readings=[Reading(sensor, T0 + seq * 100 + i, float(i)) for i in range(n)])


async def forget_session(mqtt_url: str, client_id: str) -> None:
    """Drop the persistent session the hub left on the shared test broker."""
    address = BrokerAddress.parse(mqtt_url)
    async with aiomqtt.Client(address.host, address.port, identifier=client_id,
                              clean_session=True):
        pass


async def test_a_hub_stopped_with_its_sink_down_ends_and_counts_what_it_did_not_write(
    cfg: ConfigSet, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sensor = next(iter(cfg.sensors.values()))
    client_id = f"test-hub-stop-{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{unused_tcp_port()}"
    async with Store(":memory:") as store, \
            InfluxV1Sink(url, database="x", encoder=LineEncoder()) as sink:
        hub = Hub(cfg, sink=sink, store=store, broker_url=mqtt_url, client_id=client_id,
                  flush_interval=0.05, drain_timeout=0.5)
        # A small buffer: the third batch waits for room that a dead sink never makes, so
        # the hub's consume loop is stuck in it when the stop comes.
        hub.ingest.max_buffered_points = 4
        stop = asyncio.Event()
        task = asyncio.create_task(hub.run(stop))
        await asyncio.wait_for(hub.subscribed.wait(), 30)
        address = BrokerAddress.parse(mqtt_url)
        async with aiomqtt.Client(address.host, address.port) as client:
            for seq in (1, 2, 3):
                await client.publish(topics.readings_topic(sensor.agent),
                                     encode(batch(sensor.agent, sensor.id, seq, 3)), qos=1)
        for _ in range(500):
            if hub.ingest.counters.readings_received == 9:
                break
            await asyncio.sleep(0.02)
        assert hub.ingest.counters.readings_received == 9
        with caplog.at_level(logging.ERROR, logger="hub.ingest"):
            stop.set()
            await asyncio.wait_for(task, 60)  # guard against a hang, not a timing claim
    await forget_session(mqtt_url, client_id)
    assert hub.unwritten == Unwritten(batches=3, readings=9)
    c = hub.ingest.counters
    assert (c.readings_stored, c.batches_stored, c.unwritten_readings) == (0, 0, 9)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(url in m and "9 readings in 3 batches NOT written" in m for m in errors), errors

