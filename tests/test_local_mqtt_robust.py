"""Each local-MQTT preset under payloads no device should send: random bytes (non-UTF-8
among them), truncated real messages, JSON of the wrong types at the mapped paths, JSON
nested past the parser's limit, and messages over the size limit. Every one is a counted,
named refusal (or a partial message); decoding never raises, never yields a value that
is not a finite number or a gap, and the next real message still reads as its source says.
The last test sends such messages through the real broker to a running source.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridcall.config.local_mqtt import LocalMqttSettings
from gridcall.edge_agent.local_mqtt import MAX_PAYLOAD, LocalMqttSource, TopicMap
from gridcall.edge_agent.sources import Sample
from tests.polling import draining, wait_until

NOW = 1_700_000_000_000_000_000
VECTORS = {v["id"]: v for v in yaml.safe_load(
    (Path(__file__).parent / "data" / "device_vectors.yaml").read_text(encoding="utf-8"))["mqtt"]}

# One real vector per preset (tests/data/device_vectors.yaml cites each), and its JSON
# paths, so that the wrong types land where the preset reads.
PRESETS = {
    "tasmota": "tasmota-bme280-pressure-to-a-kpa-sensor",
    "zigbee2mqtt": "z2m-aqara-tvoc-air-quality",
    "esphome": "esphome-sensor-state",
    "shelly": "shelly-plus-2pm-switch-status",
    "shelly-rpc": "shelly-1pm-mini-gen3-notify-status-partial",
    "shelly-availability": "shelly-plus-2pm-switch-status",
    "zigbee2mqtt-bridge": "z2m-aqara-tvoc-air-quality",
}
# Reasons a refusal may carry: a new one must be named here (and in the docs) on purpose.
REASONS = {"not_json", "non_numeric", "non_finite", "wrong_shape", "too_deep", "too_large",
           "unmapped_value", "unit_mismatch", "unknown_unit", "bad_timestamp",
           "bad_availability"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


def setup(kind: str) -> tuple[TopicMap, dict[str, Any], str]:
    """The TopicMap of the preset's vector, the vector, and the topic to attack (its
    data topic, or its availability topic)."""
    v = VECTORS[PRESETS[kind]]
    source = LocalMqttSettings.model_validate({"type": "mqtt", "map": [v["map"]]})
    m = TopicMap(source.mappings(), units=v.get("units"), availability=source.availability())
    topic = v["topic"]
    if kind == "shelly-availability":
        topic = next(t for t in source.availability() if t.endswith("/online"))
    elif kind == "zigbee2mqtt-bridge":
        topic = "zigbee2mqtt/bridge/state"
    return m, v, topic


def paths(v: dict[str, Any]) -> list[list[str]]:
    """The JSON paths the vector's map reads (none for plain payloads)."""
    source = LocalMqttSettings.model_validate({"type": "mqtt", "map": [v["map"]]})
    return [m.value.split(".") for m in source.mappings() if m.value]


def with_at(path: list[str], value: Any) -> Any:
    doc: Any = value
    for key in reversed(path):
        doc = {key: doc}
    return doc


def check(m: TopicMap, topic: str, payload: bytes) -> None:
    """Decoding the payload raises nothing, yields only finite values or gaps, stamped in
    range, and counts what it refused by a named reason or as missing."""
    before = (sum(m.counters.bad.values()), m.counters.missing_fields,
              m.counters.availability_messages)
    got = m.decode(topic, payload, NOW)
    for s in got:
        assert s.value is None or (isinstance(s.value, float) and abs(s.value) < float("inf"))
        assert 0 <= s.ts < 1 << 63
    after = (sum(m.counters.bad.values()), m.counters.missing_fields,
             m.counters.availability_messages)
    assert got or after != before, (topic, payload[:80])
    assert set(m.counters.bad) <= REASONS, m.counters.bad


def still_reads(m: TopicMap, v: dict[str, Any]) -> None:
    got = {s.sensor: s.value for s in m.decode(v["topic"], v["payload"].encode(), NOW)}
    assert got == pytest.approx(v["expect"], abs=1e-3)


KINDS = sorted(PRESETS)
many = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("kind", KINDS)
@many
@given(payload=st.binary(max_size=300))
def test_random_bytes_are_refused_by_name(kind: str, payload: bytes) -> None:
    m, v, topic = setup(kind)
    check(m, topic, payload)
    still_reads(m, v)


@pytest.mark.parametrize("kind", KINDS)
@many
@given(data=st.data())
def test_a_real_message_cut_short_is_refused_or_partial(kind: str, data: st.DataObject
                                                        ) -> None:
    m, v, topic = setup(kind)
    real = v["payload"].encode()
    cut = data.draw(st.integers(0, max(len(real) - 1, 0)))
    check(m, topic, real[:cut])
    still_reads(m, v)


@pytest.mark.parametrize("kind", KINDS)
@many
@given(data=st.data())
def test_wrong_types_where_the_preset_reads_are_refused_by_name(
        kind: str, data: st.DataObject) -> None:
    m, v, topic = setup(kind)
    wanted = paths(v) or [[]]
    path = data.draw(st.sampled_from(wanted))
    cut = data.draw(st.integers(0, len(path)))  # the wrong type anywhere along the path
    doc = with_at(path[:cut], data.draw(json_values))
    check(m, topic, json.dumps(doc).encode())
    still_reads(m, v)


@pytest.mark.parametrize("kind", KINDS)
@many
@given(depth=st.integers(900, 20_000), opener=st.sampled_from([b"[", b'{"a":', b'"']))
def test_json_nested_past_the_parsers_limit_is_refused(kind: str, depth: int,
                                                       opener: bytes) -> None:
    m, v, topic = setup(kind)
    check(m, topic, opener * depth)
    still_reads(m, v)


@pytest.mark.parametrize("kind", KINDS)
def test_a_message_over_the_size_limit_is_refused_before_it_is_parsed(kind: str) -> None:
    m, v, topic = setup(kind)
    huge = b'{"a":"' + b"x" * MAX_PAYLOAD + b'"}'
    assert m.decode(topic, huge, NOW) == []
    assert m.counters.bad == {"too_large": 1}
    still_reads(m, v)


def test_numbers_no_float_holds_and_times_no_reading_carries_are_refused() -> None:
    m = TopicMap(LocalMqttSettings.model_validate({"type": "mqtt", "map": [
        {"topic": "z/+", "value": "t", "timestamp": "ts", "sensor": "z-{1}"}]}).mappings())
    assert m.decode("z/a", b'{"ts":1700000000,"t":1' + b"0" * 400 + b"}", NOW) == []
    assert m.counters.bad == {"non_finite": 1}
    for ts in (b"1e300", b"-1", b'"9999-12-31T23:59:59"', b"true"):
        [sample] = m.decode("z/a", b'{"t":1,"ts":' + ts + b"}", NOW)
        assert sample == Sample("z-a", NOW, 1.0)  # kept, with its arrival time
    assert m.counters.bad == {"non_finite": 1, "bad_timestamp": 4}


def mqtt_client(url: str) -> aiomqtt.Client:
    host, port = url.removeprefix("mqtt://").split(":")
    return aiomqtt.Client(host, int(port))


async def test_a_running_source_refuses_hostile_messages_and_keeps_reading(
        mqtt_url: str) -> None:
    """Through the real broker: a 2 MiB message, JSON 50,000 levels deep, non-UTF-8 bytes
    and a wrong type, on the device's topic, then its real message: the source counts
    each refusal by name, goes on, and delivers the real readings."""
    run = uuid.uuid4().hex[:8]
    v = VECTORS["tasmota-bme280-pressure-to-a-kpa-sensor"]
    entry = {**v["map"], "device": f"terrace-{run}"}
    topic = f"tele/terrace-{run}/SENSOR"
    settings_ = LocalMqttSettings.model_validate({
        "type": "mqtt", "broker": {"url": mqtt_url}, "persistent_session": False,
        "map": [entry]})
    source = LocalMqttSource(settings_, agent_id=f"robust-{run}", units=v["units"])
    async with draining(source) as got:
        assert await wait_until(source.connected.is_set)
        async with mqtt_client(mqtt_url) as device:
            for hostile in (b"x" * (2 * MAX_PAYLOAD), b"[" * 50_000, b"\xff\xfe\x00{",
                            b'{"BME280":"21.7"}'):
                await device.publish(topic, hostile, qos=1)
            await device.publish(topic, v["payload"].encode(), qos=1)
        assert await wait_until(lambda: len(got) == len(v["expect"]))
    assert {s.sensor: s.value for s in got} == pytest.approx(v["expect"], abs=1e-3)
    stats = source.stats()
    assert (stats["bad_too_large"], stats["bad_too_deep"], stats["bad_not_json"],
            stats["bad_wrong_shape"]) == (1, 1, 1, 3)  # one per field read
    assert stats["messages"] == 5
