"""Transport security you can configure (issue 16, item 3), against servers of the test's own
behind a private CA made with openssl (tests/private_tls.py):

- MQTT: a mosquitto TLS listener that requires client certificates. The config's
  ``broker.tls`` (CA file, client certificate and key, TLS version, server name) gets an
  agent, the hub and a local MQTT source in; without the client certificate, with an
  unknown CA, or with a server name the certificate does not carry, the connection is
  refused.
- InfluxDB 1.6.7 with ``https-enabled``: the sinks write with the configured CA, refuse an
  unknown one, and with ``verify: false`` write but warn. InfluxDB 1.6.7 cannot require a
  client certificate, so ``influx.tls``'s certificate is shown to a TLS front that does.
- The API serves HTTPS with the configured certificate and key.
- The config names a missing file with its path, before anything connects.
"""

from __future__ import annotations

import asyncio
import http.server
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from pydantic import ValidationError

from gridcall.config import ConfigSet
from gridcall.config.base import BrokerSettings
from gridcall.config.models import InfluxSettings
from gridcall.edge_agent.commissioning import probe_broker
from gridcall.hub.ingest.sinks import InfluxV1Sink, LineEncoder, SinkError
from gridcall.wire.broker import BrokerAddress, TlsFileError, TlsSettings
from tests.private_servers import PrivateInflux
from tests.private_tls import BROKER_NAME, Pki, TlsMosquitto, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMosquitto]:
    with TlsMosquitto(tmp_path_factory.mktemp("tls-broker"), pki) as broker:
        yield broker


def broker_settings(url: str, **tls: Any) -> BrokerSettings:
    """As agents.yaml or hub.yaml would say it: ``broker: {url, tls: {...}}``."""
    return BrokerSettings.model_validate(
        {"url": url, "tls": {k: str(v) if isinstance(v, Path) else v for k, v in tls.items()}})


def good(pki: Pki) -> dict[str, Any]:
    return {"ca_file": pki["ca.crt"], "certfile": pki["client.crt"],
            "keyfile": pki["client.key"], "server_name": BROKER_NAME}


async def probe(settings: BrokerSettings, timeout: float = 10) -> tuple[str, str]:  # noqa: ASYNC109
    check = await probe_broker("broker", settings, None, timeout=timeout,
                               client_id=f"tls-{uuid.uuid4().hex[:8]}")
    return check.status, check.detail


async def test_right_ca_and_client_certificate_connect_and_carry_messages(
        pki: Pki, tls_broker: TlsMosquitto) -> None:
    address = broker_settings(tls_broker.url, **good(pki)).address()
    topic = f"gridcall/test/tls/{uuid.uuid4().hex[:8]}"
    async with aiomqtt.Client(address.host, address.port,
                              tls_context=address.tls_context()) as client:
        await client.subscribe(topic, qos=1)
        await client.publish(topic, b"over mutual TLS", qos=1)
        async for message in client.messages:
            assert message.payload == b"over mutual TLS"
            break
    assert await probe(broker_settings(tls_broker.url, **good(pki))) == (
        "PASS", f"{address}: connected and logged in (anonymous)")


async def test_the_readings_consumer_reads_and_acknowledges_over_the_context(
        pki: Pki, tls_broker: TlsMosquitto) -> None:
    """The hub's readings consumer has its own MQTT link (not paho's, nor aiomqtt's): it
    connects over the configured context (server name, client certificate), takes a
    reading batch and acknowledges it once written; without the client certificate it
    never connects."""
    from gridcall.hub.ingest.consumer import ReadingsConsumer
    from gridcall.hub.ingest.runner import Ingest
    from gridcall.hub.store import Store
    from gridcall.wire import Reading, ReadingBatch, encode, topics
    from tests.polling import wait_until

    address = broker_settings(tls_broker.url, **good(pki)).address()
    agent = f"tls-{uuid.uuid4().hex[:6]}"
    now = time.time_ns()
    batch = ReadingBatch(agent=agent, seq=1, sent_at=now, readings=[
        Reading(sensor=f"{agent}-s", ts=now, value=1.5)])
    async with Store(":memory:") as store:
        ingest = Ingest(store, flush_interval=0.05)
        consumer = ReadingsConsumer(ingest, address=address, client_id=f"{agent}-hub")
        stop = asyncio.Event()
        task = asyncio.create_task(ingest.serve(consumer.run(stop), stop, 5.0))
        try:
            assert await wait_until(consumer.subscribed.is_set)
            async with aiomqtt.Client(address.host, address.port,
                                      tls_context=address.tls_context()) as device:
                await device.publish(topics.readings_topic(agent), encode(batch), qos=1)
            assert await wait_until(lambda: consumer.acks.acked == 1)
        finally:
            stop.set()
            await task
            await consumer.close()
        assert ingest.counters.readings_stored == 1
        no_cert = {k: v for k, v in good(pki).items() if k not in ("certfile", "keyfile")}
        stranger = ReadingsConsumer(Ingest(store), client_id=f"{agent}-nocert",
                                    address=broker_settings(tls_broker.url,
                                                            **no_cert).address())
        stop = asyncio.Event()
        task = asyncio.create_task(stranger.run(stop))
        await asyncio.sleep(1.0)  # its first attempt is refused at once; it then waits
        stop.set()
        await task
        await stranger.close()
        assert stranger.connects == 0


async def test_refused_without_the_client_certificate(pki: Pki,
                                                      tls_broker: TlsMosquitto) -> None:
    """Under TLS 1.3 the broker's "certificate required" comes after the handshake, and
    aiomqtt ignores a hang-up before CONNACK: the client sees no answer (a short timeout
    here), and the check then asks the broker once more at the TLS level to say why."""
    status, detail = await probe(broker_settings(tls_broker.url, ca_file=pki["ca.crt"],
                                                 server_name=BROKER_NAME), timeout=3)
    assert status == "FAIL"
    assert "refused our TLS client certificate" in detail
    assert "CERTIFICATE_REQUIRED" in detail


async def test_refused_with_a_client_certificate_of_another_ca(
        pki: Pki, tls_broker: TlsMosquitto) -> None:
    status, detail = await probe(broker_settings(
        tls_broker.url, ca_file=pki["ca.crt"], certfile=pki["stranger.crt"],
        keyfile=pki["stranger.key"], server_name=BROKER_NAME), timeout=3)
    assert status == "FAIL"
    assert "refused our TLS client certificate (TLSV1_ALERT_UNKNOWN_CA)" in detail


async def test_refused_when_the_broker_chains_to_an_unknown_ca(
        pki: Pki, tls_broker: TlsMosquitto) -> None:
    status, detail = await probe(broker_settings(tls_broker.url,
                                                 **{**good(pki), "ca_file": pki["other-ca.crt"]}))
    assert status == "FAIL"
    assert "CERTIFICATE_VERIFY_FAILED" in detail


async def test_refused_on_a_server_name_mismatch(pki: Pki, tls_broker: TlsMosquitto) -> None:
    """The certificate names only broker.gridcall.test: dialling 127.0.0.1 with no
    server_name, or with a name it does not carry, is refused."""
    unnamed = {k: v for k, v in good(pki).items() if k != "server_name"}
    for settings in (broker_settings(tls_broker.url, **unnamed),
                     broker_settings(tls_broker.url, **{**good(pki),
                                                        "server_name": "other.gridcall.test"})):
        status, detail = await probe(settings)
        assert status == "FAIL"
        assert "CERTIFICATE_VERIFY_FAILED" in detail
        assert "mismatch" in detail or "match" in detail


async def test_tls_1_3_only_still_connects(pki: Pki, tls_broker: TlsMosquitto) -> None:
    status, _ = await probe(broker_settings(tls_broker.url, **good(pki), min_version="1.3"))
    assert status == "PASS"


def test_every_runtime_takes_its_broker_from_the_tls_settings(pki: Pki) -> None:
    """agents.yaml's broker, hub.yaml's broker and a local MQTT source's broker are all
    BrokerSettings, so all three dial with the configured context."""
    from gridcall.config.local_mqtt import LocalMqttSettings
    from gridcall.config.models import AgentSettings, HubSettings

    broker = {"url": "mqtts://127.0.0.1:8883", "tls": {k: str(v) for k, v in good(pki).items()}}
    hub = HubSettings.model_validate({"broker": broker})
    agent = AgentSettings.model_validate({"broker": broker})
    local = LocalMqttSettings.model_validate(
        {"type": "mqtt", "broker": broker, "map": [{"topic": "a/b", "sensor": "s-1"}]})
    for settings in (hub.broker, agent.broker, local.broker):
        address = settings.address()
        assert address.tls_settings == TlsSettings(
            ca_file=pki["ca.crt"], certfile=pki["client.crt"], keyfile=pki["client.key"],
            server_name=BROKER_NAME)
        context = address.tls_context()
        assert context is not None
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname


def test_config_names_a_missing_file_with_its_path(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "nowhere" / "ca.crt"
    with pytest.raises(ValidationError) as info:
        broker_settings("mqtts://127.0.0.1", ca_file=missing)
    assert f"file {missing} does not exist" in str(info.value)
    assert "tls.ca_file" in str(info.value)


def test_config_refuses_tls_on_plain_mqtt_and_a_key_alone(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="use mqtts://"):
        broker_settings("mqtt://127.0.0.1", ca_file=pki["ca.crt"])
    with pytest.raises(ValidationError, match=f"keyfile {pki['client.key']} is given without"):
        broker_settings("mqtts://127.0.0.1", keyfile=pki["client.key"])
    with pytest.raises(ValidationError, match="min_version"):
        broker_settings("mqtts://127.0.0.1", min_version="1.0")


def test_a_file_that_is_not_pem_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "ca.crt"
    junk.write_text("not a certificate\n", encoding="ascii")
    with pytest.raises(TlsFileError, match=f"CA file {junk}: not a usable PEM file"):
        BrokerAddress.parse("mqtts://h", TlsSettings(ca_file=junk)).tls_context()
    with pytest.raises(TlsFileError, match=f"client certificate {junk}"):
        TlsSettings(certfile=junk).context()


# --- InfluxDB over https (influx.tls) ---------------------------------------------------

@pytest.fixture(scope="module")
def https_influx(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateInflux]:
    with PrivateInflux(tmp_path_factory.mktemp("https-influx"),
                       https=(pki["https.crt"], pki["https.key"])) as influx:
        yield influx


def influx_settings(url: str, **tls: Any) -> InfluxSettings:
    return InfluxSettings.model_validate(
        {"url": url, "tls": {k: str(v) if isinstance(v, Path) else v for k, v in tls.items()}})


async def count_points(influx: PrivateInflux, pki: Pki, database: str) -> int:
    async with httpx.AsyncClient(verify=ssl.create_default_context(
            cafile=str(pki["ca.crt"]))) as http:
        resp = await http.get(f"{influx.url}/query", params={
            "db": database, "q": "SELECT count(v) FROM m"})
    series = resp.json()["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


async def test_influx_over_https_with_the_configured_ca(pki: Pki,
                                                        https_influx: PrivateInflux) -> None:
    settings = influx_settings(https_influx.url, ca_file=pki["ca.crt"])
    database = f"tls_{uuid.uuid4().hex[:8]}"
    async with InfluxV1Sink(https_influx.url, database=database, encoder=LineEncoder({}),
                            https=settings.https()) as sink:
        await sink.write_lines(b"m,sensor=s-1 v=1 1700000000000000000\n"
                               b"m,sensor=s-1 v=2 1700000001000000000\n")
    assert await count_points(https_influx, pki, database) == 2


async def test_influx_refuses_an_unknown_ca_and_the_system_cas(
        pki: Pki, https_influx: PrivateInflux) -> None:
    for https in (influx_settings(https_influx.url, ca_file=pki["other-ca.crt"]).https(),
                  None):  # no tls block: the system's CAs, which do not know the test CA
        async with InfluxV1Sink(https_influx.url, database="tls_refused",
                                encoder=LineEncoder({}), https=https) as sink:
            with pytest.raises(SinkError, match="CERTIFICATE_VERIFY_FAILED"):
                await sink.write_lines(b"m,sensor=s-1 v=1 1700000000000000000\n")


async def test_influx_verify_off_writes_and_warns(pki: Pki, https_influx: PrivateInflux,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    settings = influx_settings(https_influx.url, verify=False)
    database = f"tls_{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.WARNING):
        async with InfluxV1Sink(https_influx.url, database=database, encoder=LineEncoder({}),
                                https=settings.https()) as sink:
            await sink.write_lines(b"m,sensor=s-1 v=1 1700000000000000000\n")
    assert await count_points(https_influx, pki, database) == 1
    assert any("TLS verification is OFF" in r.getMessage() for r in caplog.records)


class _Accepting(http.server.BaseHTTPRequestHandler):
    """An InfluxDB 1.x write endpoint as far as the sink can tell: 204 to everything, and
    each POSTed body kept on the server."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.command == "POST":
            self.server.bodies.append(self.rfile.read(length))  # type: ignore[attr-defined]
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def client_cert_proxy(pki: Pki) -> Iterator[tuple[str, list[bytes]]]:
    """A TLS front (as a proxy in front of InfluxDB would be) that requires a client
    certificate of the test CA: InfluxDB 1.6.7 itself cannot ask for one."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca.crt"]))
    context.load_cert_chain(str(pki["https.crt"]), str(pki["https.key"]))
    context.verify_mode = ssl.CERT_REQUIRED
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Accepting)
    server.bodies = []  # type: ignore[attr-defined]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", server.bodies  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_influx_client_certificate_is_presented_and_required(
        pki: Pki, client_cert_proxy: tuple[str, list[bytes]]) -> None:
    url, bodies = client_cert_proxy
    line = b"m,sensor=s-1 v=1 1700000000000000000\n"
    with_cert = influx_settings(url, ca_file=pki["ca.crt"], certfile=pki["client.crt"],
                                keyfile=pki["client.key"]).https()
    async with InfluxV1Sink(url, database="tls_mtls", encoder=LineEncoder({}),
                            https=with_cert) as sink:
        await sink.write_lines(line)
    assert bodies == [line]
    without = influx_settings(url, ca_file=pki["ca.crt"]).https()
    async with InfluxV1Sink(url, database="tls_mtls", encoder=LineEncoder({}),
                            https=without) as sink:
        # under TLS 1.3 the client's handshake ends before the server checks for a
        # certificate: the refusal comes as the server's alert or, when the server has
        # already closed, as a reset of the connection; either way nothing is written
        with pytest.raises(SinkError, match=r"CERTIFICATE_REQUIRED|Connection reset by peer"):
            await sink.write_lines(line)
    assert bodies == [line]  # nothing more came through


def test_influx_tls_config_names_files_and_needs_https(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(ValidationError, match=f"file {tmp_path / 'ca.pem'} does not exist"):
        influx_settings("https://127.0.0.1:8086", ca_file=tmp_path / "ca.pem")
    with pytest.raises(ValidationError, match="use https://"):
        influx_settings("http://127.0.0.1:8086", ca_file=pki["ca.crt"])
    https = influx_settings("https://h:8086", certfile=pki["client.crt"],
                            keyfile=pki["client.key"]).https()
    assert https is not None
    assert https.context().verify_mode == ssl.CERT_REQUIRED


# --- the API over https (hub.api.tls) ---------------------------------------------------

async def test_the_api_serves_https_with_the_configured_certificate(
        pki: Pki, tmp_path: Path) -> None:
    from fastapi import FastAPI

    from gridcall.hub.api.server import ApiServer, ApiTlsError

    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "over TLS"}

    async with ApiServer(app, "127.0.0.1", 0,
                         tls=(pki["https.crt"], pki["https.key"])) as server:
        assert server.url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(verify=ssl.create_default_context(
                cafile=str(pki["ca.crt"]))) as http:
            resp = await http.get(f"{server.url}/ping")
            assert resp.json() == {"pong": "over TLS"}
        async with httpx.AsyncClient() as http:  # the system's CAs do not know the test CA
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(f"{server.url}/ping")
        async with httpx.AsyncClient() as http:  # plain HTTP is not answered as HTTP
            with pytest.raises(httpx.HTTPError):
                await http.get(server.url.replace("https://", "http://") + "/ping")
    junk = tmp_path / "cert.pem"
    junk.write_text("not a certificate\n", encoding="ascii")
    with pytest.raises(ApiTlsError, match=f"certificate {junk}"):
        async with ApiServer(app, "127.0.0.1", 0, tls=(junk, None)):
            pass


def test_hub_api_settings_take_tls_and_a_body_limit(pki: Pki) -> None:
    from gridcall.config.models import HubSettings

    hub = HubSettings.model_validate({"api": {
        "tls": {"certfile": str(pki["https.crt"]), "keyfile": str(pki["https.key"])},
        "max_body_bytes": 4096}})
    assert hub.api.tls is not None
    assert hub.api.tls.certfile == pki["https.crt"]
    assert hub.api.max_body_bytes == 4096
    assert HubSettings().api.max_body_bytes == 64 * 1024
    with pytest.raises(ValidationError, match="max_body_bytes"):
        HubSettings.model_validate({"api": {"max_body_bytes": 10}})


# --- the whole hub over mutual TLS ------------------------------------------------------

async def test_the_hub_ingests_and_opens_alerts_over_mutual_tls(
        cfg: ConfigSet, pki: Pki, tls_broker: TlsMosquitto) -> None:
    """hub.yaml's broker.tls reaches both of the hub's connections: the readings consumer
    (paho) stores a batch and the desk (aiomqtt) opens an alert from an event, both
    published by a client holding the test CA's certificate."""
    import asyncio
    import dataclasses
    import time

    from gridcall.hub.service import Hub
    from gridcall.hub.store import Store
    from gridcall.wire import AnomalyEvent, Reading, ReadingBatch, encode, topics

    settings = broker_settings(tls_broker.url, **good(pki))
    cfg = dataclasses.replace(cfg, hub=cfg.hub.model_copy(update={"broker": settings}))
    gas = next(s for s in cfg.sensors.values() if s.kind == "gas")
    now = time.time_ns()
    readings = ReadingBatch(agent=gas.agent, seq=1, sent_at=1,
                            readings=[Reading(gas.id, now + i, float(i)) for i in range(5)])
    event = AnomalyEvent(agent=gas.agent, seq=2, sensor=gas.id, kind="out_of_limits",
                         severity="critical", score=1.0, value=45.0, ts=now + 10)
    async with Store(":memory:") as store:
        hub = Hub(cfg, sink=store, store=store, client_id=f"tls-hub-{uuid.uuid4().hex[:6]}",
                  flush_interval=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(hub.run(stop))
        try:
            await asyncio.wait_for(hub.subscribed.wait(), 30)
            address = settings.address()
            async with aiomqtt.Client(address.host, address.port,
                                      tls_context=address.tls_context()) as client:
                await client.publish(topics.readings_topic(gas.agent), encode(readings), qos=1)
                await client.publish(topics.events_topic(gas.agent), encode(event), qos=1)
            for _ in range(500):  # a bounded wait for the hub, not a timing assertion
                if await store.count_readings() == 5 and hub.desk.alerts():
                    break
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await task
        assert await store.count_readings() == 5
        (state,) = hub.desk.alerts()
        assert (state.alert.matter, state.alert.sensor) == ("GAS-LEAK", gas.id)
