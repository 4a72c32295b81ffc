"""Back online at once after a long outage (issue 19, item 3): once the broker returns,
the agent's reconnect wait is ended by its probe, not by the end of its backoff.

The backoff is set to an hour, so a reconnect within the test's bounded wait can only
come from the probe; no duration is asserted. A private mosquitto is the outage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gridcall.config import ConfigSet
from gridcall.edge_agent import agent as agent_module
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.sources import Sample
from gridcall.simulators.steady import mid_value
from gridcall.simulators.uplink import Uplink
from gridcall.wire.backoff import Backoff
from gridcall.wire.broker import BrokerAddress
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto

NOW = 1_790_000_000 * 10**9
HOUR = Backoff(3600.0, 3600.0)


class Trickle:
    """One reading every 20 ms, as a polled sensor gives them (something to publish,
    so the agent notices the lost connection)."""

    def __init__(self, sensor: str, value: float) -> None:
        self.sensor, self.value = sensor, value

    async def samples(self) -> AsyncIterator[Sample]:
        n = 0
        while True:
            await asyncio.sleep(0.02)
            n += 1
            yield Sample(self.sensor, NOW + n * 10**6, self.value)


async def test_the_agent_is_back_when_the_broker_is_not_when_its_backoff_ends(
    cfg: ConfigSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "MQTT_RECONNECT", HOUR)
    spec = cfg.agents["edge-dongyuan"]
    broker = PrivateMosquitto(tmp_path / "broker")
    broker.start()
    sensor = spec.sensors[0]
    agent = EdgeAgent(spec, Trickle(sensor.id, mid_value(sensor)), broker_url=broker.url)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        assert await wait_until(agent.connected.is_set)
        broker.stop()  # the outage: the agent now waits an hour before its next attempt
        assert await wait_until(lambda: agent.counters.publish_failures >= 1)
        assert not agent.connected.is_set()
        broker.start()
        assert await wait_until(agent.connected.is_set, polls=600), (
            "the agent did not reconnect: it waited out its backoff instead of probing")
        assert agent.counters.connects == 2
        sent = agent.counters.readings_sent
        assert await wait_until(lambda: agent.counters.readings_sent > sent)
    finally:
        stop.set()
        await asyncio.wait([running], timeout=60)
        broker.stop()


async def test_a_connection_closed_before_the_connack_fails_the_attempt_at_once(
    cfg: ConfigSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    """The agent behind a relay (its uplink) whose broker is down: the relay takes the TCP
    connection and closes it. aiomqtt alone would wait out its 10 s connect timeout
    ("Operation timed out") for each such attempt, also the one the probe lets through
    once the broker is back; the agent's client fails it at once instead, saying why. The
    backoff is an hour, so reconnecting within the bounded wait once the broker returns
    comes from the probe and an attempt that did not hang."""
    monkeypatch.setattr(agent_module, "MQTT_RECONNECT", HOUR)
    caplog.set_level(logging.DEBUG, logger=agent_module.__name__)  # after the first: DEBUG
    spec = cfg.agents["edge-dongyuan"]
    broker = PrivateMosquitto(tmp_path / "broker")
    broker.start()
    relay = Uplink(BrokerAddress.parse(broker.url))
    await relay.start()
    sensor = spec.sensors[0]
    agent = EdgeAgent(spec, Trickle(sensor.id, mid_value(sensor)), broker_url=relay.url)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        assert await wait_until(agent.connected.is_set)
        broker.stop()
        # the probe finds the relay's port open, the attempt it lets through is closed
        assert await wait_until(lambda: agent.counters.publish_failures >= 2)
        said = [r.getMessage() for r in caplog.records if r.name == agent_module.__name__]
        assert any("closed before the broker's CONNACK" in m for m in said), said
        assert not any("timed out" in m for m in said), said
        broker.start()
        assert await wait_until(agent.connected.is_set, polls=600)
        sent = agent.counters.readings_sent
        assert await wait_until(lambda: agent.counters.readings_sent > sent)
    finally:
        stop.set()
        await asyncio.wait([running], timeout=60)
        await relay.close()
        broker.stop()
