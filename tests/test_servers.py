"""Smoke tests: the three servers of scripts/servers.sh answer as the other tests expect."""

from __future__ import annotations

import threading
import uuid
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.servers import create_influx_database, drop_influx_database, influxql

WAIT = 10.0  # seconds a step may take before the test gives up (not a timing assertion)


def test_mosquitto_delivers_a_qos1_message(mqtt_url: str) -> None:
    address = urlsplit(mqtt_url)
    assert address.scheme == "mqtt"
    topic = f"gridcall-test/smoke/{uuid.uuid4().hex}"
    payload = uuid.uuid4().bytes
    subscribed, received = threading.Event(), threading.Event()
    got: list[tuple[str, bytes, int]] = []

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"smoke-{uuid.uuid4().hex[:8]}")

    def on_connect(client: mqtt.Client, userdata: object, flags: object,
                   reason: ReasonCode, properties: object) -> None:
        client.subscribe(topic, qos=1)

    def on_subscribe(client: mqtt.Client, userdata: object, mid: int,
                     reasons: list[ReasonCode], properties: object) -> None:
        if all(not r.is_failure for r in reasons):
            subscribed.set()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        got.append((message.topic, bytes(message.payload), message.qos))
        received.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(address.hostname or "127.0.0.1", address.port or 1883)
    client.loop_start()
    try:
        assert subscribed.wait(WAIT), f"no SUBACK from {mqtt_url}"
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT)
        assert info.is_published(), f"no PUBACK from {mqtt_url}"
        assert received.wait(WAIT), f"{mqtt_url} did not deliver the message back"
    finally:
        client.disconnect()
        client.loop_stop()
    assert got == [(topic, payload, 1)]


def test_influxdb_is_version_1_6_and_takes_writes_and_queries(influx_v1_url: str) -> None:
    ping = httpx.get(f"{influx_v1_url}/ping")
    assert ping.status_code == 204
    assert ping.headers["X-Influxdb-Version"].startswith("1.6")
    db = create_influx_database(influx_v1_url, "smoke")
    try:
        write = httpx.post(f"{influx_v1_url}/write", params={"db": db, "precision": "ns"},
                           content=b"smoke,t=x v=1.5 1795000000000000001")
        assert write.status_code == 204
        rows = influxql(influx_v1_url, "SELECT v, t FROM smoke", database=db)
        assert rows == [{"_measurement": "smoke", "time": 1795000000000000001, "v": 1.5,
                         "t": "x"}]
    finally:
        drop_influx_database(influx_v1_url, db)


def test_influxdb_1_6_has_no_v2_api(influx_v1_url: str) -> None:
    resp = httpx.post(f"{influx_v1_url}/api/v2/write", params={"bucket": "b", "org": "o"},
                      content=b"smoke v=1")
    assert resp.status_code == 404


def test_victoriametrics_is_healthy_and_answers_queries(victoria_url: str) -> None:
    health = httpx.get(f"{victoria_url}/health")
    assert (health.status_code, health.text.strip()) == (200, "OK")
    resp = httpx.get(f"{victoria_url}/api/v1/query", params={"query": "vector(42)"})
    assert resp.status_code == 200
    (sample,) = resp.json()["data"]["result"]
    assert float(sample["value"][1]) == 42.0
