"""Credentials named in the config reach the servers that demand them, and wrong ones are
named as such, never mistaken for an outage and never a reason to drop data.

The servers are real: a mosquitto listener with a password file, and an InfluxDB 1.6.7
with ``auth-enabled`` that knows an admin and a user without privileges.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace

import pytest

from gridcall.config import ConfigSet
from gridcall.config.models import BrokerSettings, InfluxSettings
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.hub.ingest.sinks import InfluxV1Sink, SinkAuthError
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.simulators.town import SimulatedTown
from gridcall.sinks import encoder_for, sink_from_settings
from gridcall.wire import Reading, ReadingBatch
from tests.polling import assert_every_reading_was_acknowledged, wait_until
from tests.servers import Login, influxql_async, quote_ident, unique_name

USER_VAR, PASSWORD_VAR = "GRIDCALL_TEST_LOGIN_USER", "GRIDCALL_TEST_LOGIN_PASSWORD"


def login_env(monkeypatch: pytest.MonkeyPatch, user: str, password: str) -> None:
    monkeypatch.setenv(USER_VAR, user)
    monkeypatch.setenv(PASSWORD_VAR, password)


def broker_settings(url: str) -> BrokerSettings:
    return BrokerSettings(url=url, username_env=USER_VAR, password_env=PASSWORD_VAR)


def with_broker(cfg: ConfigSet, broker: BrokerSettings) -> ConfigSet:
    return replace(cfg, hub=cfg.hub.model_copy(update={"broker": broker}))


def agent_with_broker(cfg: ConfigSet, broker: BrokerSettings) -> EdgeAgent:
    spec = cfg.agents["edge-dongyuan"]
    spec = replace(spec, settings=spec.settings.model_copy(update={"broker": broker}))
    return EdgeAgent(spec, SimulatedTown(cfg, interval_scale=0.05).source(spec.id))


# --- MQTT ------------------------------------------------------------------------------

async def test_agent_and_hub_log_in_with_the_credentials_the_config_names(
    cfg: ConfigSet, mqtt_auth: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    login_env(monkeypatch, mqtt_auth.username, mqtt_auth.password)
    broker = broker_settings(mqtt_auth.url)
    agent = agent_with_broker(cfg, broker)
    async with Store(":memory:") as store:
        hub = Hub(with_broker(cfg, broker), sink=store, store=store,
                  client_id=f"hub-login-{uuid.uuid4().hex[:8]}", flush_interval=0.05)
        hub_stop, agent_stop = asyncio.Event(), asyncio.Event()
        hub_task = asyncio.create_task(hub.run(hub_stop))
        assert await wait_until(hub.subscribed.is_set)
        agent_task = asyncio.create_task(agent.run(agent_stop))
        assert await wait_until(lambda: agent.counters.readings_sent >= 20)
        agent_stop.set()
        await agent_task
        sent = agent.counters.readings_sent
        assert await wait_until(lambda: hub.ingest.counters.readings_stored >= sent)
        hub_stop.set()
        await hub_task
    assert hub.ingest.counters.readings_stored == sent
    assert agent.counters.credentials_refused == hub.counters.credentials_refused == 0


async def test_an_agent_refused_by_the_broker_says_so_keeps_its_readings_and_sends_them_once_the_password_is_fixed(  # noqa: E501
    cfg: ConfigSet, mqtt_auth: Login, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    login_env(monkeypatch, mqtt_auth.username, "not-the-password")
    agent = agent_with_broker(cfg, broker_settings(mqtt_auth.url))
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="gridcall.edge_agent.agent"):
        running = asyncio.create_task(agent.run(stop))
        assert await wait_until(lambda: agent.counters.credentials_refused >= 1)
        assert agent.counters.batches_sent == 0
        assert await wait_until(lambda: agent.outbox_depth > 0)
    assert any("refused our credentials" in r.getMessage()
               and "not-the-password" not in r.getMessage() for r in caplog.records)

    monkeypatch.setenv(PASSWORD_VAR, mqtt_auth.password)  # read again on every reconnect
    assert await wait_until(agent.connected.is_set, 1200)
    stop.set()
    await running
    assert_every_reading_was_acknowledged(agent)


async def test_a_hub_refused_by_the_broker_says_so_and_keeps_trying(
    cfg: ConfigSet, mqtt_auth: Login, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    login_env(monkeypatch, "nobody", "nothing")
    async with Store(":memory:") as store:
        hub = Hub(with_broker(cfg, broker_settings(mqtt_auth.url)), sink=store, store=store,
                  client_id=f"hub-refused-{uuid.uuid4().hex[:8]}", flush_interval=0.05)
        stop = asyncio.Event()
        with caplog.at_level(logging.WARNING, logger="gridcall.hub.service"):
            task = asyncio.create_task(hub.run(stop))
            assert await wait_until(lambda: hub.counters.credentials_refused >= 2)
            stop.set()
            await task
    assert not hub.subscribed.is_set()
    assert hub.counters.connects == 0
    assert any(f"broker mqtt://{mqtt_auth.url.split('://')[1]} refused our credentials"
               in r.getMessage() for r in caplog.records)


# --- InfluxDB v1 with auth-enabled -----------------------------------------------------

def two_readings(sensor: str) -> list[ReadingBatch]:
    return [ReadingBatch(agent="edge-dongyuan", seq=1, sent_at=1,
                         readings=[Reading(sensor, 1_700_000_000_000_000_000, 1.25),
                                   Reading(sensor, 1_700_000_000_000_000_001, 2.5)])]


def authed(login: Login) -> str:
    scheme, rest = login.url.split("://", 1)
    return f"{scheme}://{login.username}:{login.password}@{rest}"


async def test_the_hub_writes_with_the_user_and_password_the_config_names(
    cfg: ConfigSet, influx_auth: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    login_env(monkeypatch, influx_auth.username, influx_auth.password)
    database = unique_name("auth")
    influx = InfluxSettings(url=influx_auth.url, api=1, database=database,
                            username_env=USER_VAR, password_env=PASSWORD_VAR)
    sensor = next(iter(cfg.sensors))
    try:
        async with Store(":memory:") as store, sink_from_settings(
                replace(cfg, hub=cfg.hub.model_copy(update={"influx": influx})), store) as sink:
            await sink.write(two_readings(sensor))  # creates the database, as the admin may
        rows = await influxql_async(authed(influx_auth), "SELECT value, sensor FROM reading",
                                    database=database)
        assert [(r["time"], r["value"], r["sensor"]) for r in rows] == [
            (1_700_000_000_000_000_000, 1.25, sensor), (1_700_000_000_000_000_001, 2.5, sensor)]
    finally:
        await influxql_async(authed(influx_auth), f"DROP DATABASE {quote_ident(database)}")


async def test_a_wrong_password_is_an_auth_error_that_names_the_server_but_not_the_password(
    cfg: ConfigSet, influx_auth: Login
) -> None:
    sink = InfluxV1Sink(influx_auth.url, database="anything", encoder=encoder_for(cfg),
                        username=influx_auth.username, password="wrong-horse")
    async with sink:
        with pytest.raises(SinkAuthError) as caught:
            await sink.write(two_readings(next(iter(cfg.sensors))))
    assert caught.value.status == 401
    assert influx_auth.url in str(caught.value)
    assert "wrong-horse" not in str(caught.value)


async def test_a_user_without_write_privilege_is_an_auth_error_and_nothing_is_written(
    cfg: ConfigSet, influx_auth: Login, influx_reader: Login
) -> None:
    database = unique_name("noprivs")
    await influxql_async(authed(influx_auth), f"CREATE DATABASE {quote_ident(database)}")
    try:
        sink = InfluxV1Sink(influx_reader.url, database=database, encoder=encoder_for(cfg),
                            username=influx_reader.username, password=influx_reader.password)
        async with sink:
            with pytest.raises(SinkAuthError) as caught:
                await sink.write(two_readings(next(iter(cfg.sensors))))
        assert caught.value.status == 403
        assert "not authorized to write" in str(caught.value)
        assert await influxql_async(authed(influx_auth), "SELECT * FROM reading",
                                    database=database) == []
    finally:
        await influxql_async(authed(influx_auth), f"DROP DATABASE {quote_ident(database)}")


async def test_the_readings_consumer_counts_a_refused_login_apart_from_an_outage(
    mqtt_auth: Login, caplog: pytest.LogCaptureFixture
) -> None:
    """The hub's readings connection (its own reconnect loop) says "refused our
    credentials" and counts it, rather than "refused the connection"."""
    from gridcall.hub.ingest.consumer import ReadingsConsumer
    from gridcall.hub.ingest.runner import Ingest
    from gridcall.wire.broker import BrokerAddress

    async with Store(":memory:") as store:
        consumer = ReadingsConsumer(
            Ingest(store), address=BrokerAddress.parse(mqtt_auth.url),
            client_id=f"readings-refused-{uuid.uuid4().hex[:8]}",
            username=mqtt_auth.username, password="not-the-password")
        stop = asyncio.Event()
        with caplog.at_level(logging.WARNING, logger="gridcall.hub.ingest.consumer"):
            task = asyncio.create_task(consumer.run(stop))
            try:
                assert await wait_until(lambda: consumer.credentials_refused >= 1)
            finally:
                stop.set()
                await task
                await consumer.close()
    assert consumer.connects == 0
    assert "refused our credentials" in caplog.text
    assert "not-the-password" not in caplog.text
