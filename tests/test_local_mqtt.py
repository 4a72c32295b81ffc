"""Sensors on a local MQTT broker: presets for Tasmota, Zigbee2MQTT, ESPHome and Shelly turn
the payloads these firmwares really publish into readings; anything else is counted by
reason and never stops the source.

The payloads below are the firmwares' own formats (Tasmota ``tele/<topic>/SENSOR``,
Zigbee2MQTT device state, ESPHome ``<node>/sensor/<name>/state``, Shelly Gen2 status
notifications ``<id>/status/<component>`` and Gen1 ``shellies/<id>/...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest
import yaml
from pydantic import ValidationError

from gridcall.config import SAMPLE_DISTRICT, ConfigError, ConfigSet, load_config
from gridcall.config.local_mqtt import LocalMqttSettings
from gridcall.config.models import Agent, BrokerSettings
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.local_mqtt import LocalMqttSource, TopicMap
from gridcall.edge_agent.redelivery import Redeliveries
from gridcall.edge_agent.sources import Sample
from gridcall.wire import ReadingBatch, topics
from tests.holding_relay import HoldingRelay
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto
from tests.servers import Login

# Each payload is a device's own, from the page or thread named above it
# (tests/data/device_vectors.yaml holds more, with what each must give).
# https://tasmota.github.io/docs/DS18x20/#tasmota-settings
TASMOTA_DS18B20 = (b'{"Time":"2021-07-17T17:29:51","DS18B20":{"Id":"000003287EF1",'
                   b'"Temperature":24.7},"TempUnit":"C"}')
# https://tasmota.github.io/docs/DS18x20/#multiple-sensors
TASMOTA_THREE_DS18B20 = (b'{"Time":"2021-01-02T09:09:44","DS18B20-1":{"Id":"00000566CC39",'
                         b'"Temperature":13.3},"DS18B20-2":{"Id":"0000059352D4","Temperature":'
                         b'1.2},"DS18B20-3":{"Id":"000005937C90","Temperature":22.5},'
                         b'"TempUnit":"C"}')
# https://tasmota.github.io/docs/AM2301/#tasmota-settings (printed there over several lines)
TASMOTA_AM2301 = (b'{"Time":"2019-01-01T00:00:00","AM2301":{"Temperature":24.6,'
                  b'"Humidity":58.2},"TempUnit":"C"}')
# zigbee2mqtt/veranda_climate_sensor (an Aqara WSDCGQ11LM) in
# https://github.com/Koenkk/zigbee2mqtt/issues/946
Z2M_AQARA_TH = (b'{"temperature":7.14,"linkquality":70,"humidity":67.1,"pressure":994,'
                b'"battery":74,"voltage":2955}')
# zigbee/smoke_detector (a Heiman) in https://github.com/Koenkk/zigbee2mqtt/issues/1669
Z2M_SMOKE = (b'{"smoke":true,"battery_low":false,"linkquality":26,'
             b'"last_seen":"2019-06-24T15:30:53.312Z"}')
# zigbee2mqtt/stairs_cupboard_door_sensor in https://github.com/Koenkk/zigbee2mqtt/issues/946
# (quoted there up to "battery"; cut after it)
Z2M_CONTACT = b'{"contact":true,"linkquality":70,"battery":100}'
# The temperature:0 and humidity:0 components of a Shelly Plus H&T's NotifyFullStatus, as
# its status/<component> topics carry them:
# https://gist.github.com/NelsonMinar/494a0f53785c20290b395639548349fa
SHELLY_PLUS_HT_TEMPERATURE = b'{"id":0,"tC":19.8,"tF":67.6}'
SHELLY_PLUS_HT_HUMIDITY = b'{"id":0,"rh":42.2}'
# shellyplus2pm-Einfahrt/status/switch:0 in
# https://github.com/iobroker-community-adapters/ioBroker.shelly/issues/813
SHELLY_PLUS_2PM_SWITCH = (b'{"id":0, "source":"init", "output":false, "apower":0.0, '
                          b'"voltage":230.8, "freq":50.0, "current":0.000, "pf":0.00, '
                          b'"aenergy":{"total":123.585,"by_minute":[0.000,0.000,0.000],'
                          b'"minute_ts":1698999959},"temperature":{"tC":44.9, "tF":112.9}}')

NOW = 1_700_000_000_000_000_000


def source_settings(*entries: dict[str, Any], **extra: Any) -> LocalMqttSettings:
    return LocalMqttSettings.model_validate({"type": "mqtt", "map": list(entries), **extra})


def topic_map(*entries: dict[str, Any]) -> TopicMap:
    return TopicMap(source_settings(*entries).mappings())


# --- presets: real payloads → readings ---------------------------------------------------

def test_tasmota_preset_reads_ds18b20_and_am2301_fields_from_tele_sensor() -> None:
    m = topic_map({"preset": "tasmota", "device": "cabinet-3",
                   "fields": {"DS18B20.Temperature": "water-temp-07"}},
                  {"preset": "tasmota", "device": "boiler",
                   "fields": {"DS18B20-1.Temperature": "flow-t", "DS18B20-2.Temperature":
                              "return-t"}},
                  {"preset": "tasmota", "device": "cold-room",
                   "fields": {"AM2301.Temperature": "room-t", "AM2301.Humidity": "room-rh"}})
    assert m.decode("tele/cabinet-3/SENSOR", TASMOTA_DS18B20, NOW) == [
        Sample("water-temp-07", NOW, 24.7)]
    assert m.decode("tele/boiler/SENSOR", TASMOTA_THREE_DS18B20, NOW) == [
        Sample("flow-t", NOW, 13.3), Sample("return-t", NOW, 1.2)]
    assert m.decode("tele/cold-room/SENSOR", TASMOTA_AM2301, NOW) == [
        Sample("room-t", NOW, 24.6), Sample("room-rh", NOW, 58.2)]
    assert not m.counters.bad


def test_zigbee2mqtt_preset_maps_numbers_and_booleans_smoke_true_is_1() -> None:
    m = topic_map({"preset": "zigbee2mqtt", "device": "stairwell-th",
                   "fields": {"temperature": "stair-t", "humidity": "stair-rh"}},
                  {"preset": "zigbee2mqtt", "device": "kitchen-smoke",
                   "fields": {"smoke": "smoke-12", "battery_low": "smoke-12-battery-low"}},
                  {"preset": "zigbee2mqtt", "device": "cover-7",
                   # Zigbee2MQTT's contact is true when closed: invert so open = 1
                   "fields": {"contact": {"sensor": "cover-7-open", "invert": True}}})
    assert m.decode("zigbee2mqtt/stairwell-th", Z2M_AQARA_TH, NOW) == [
        Sample("stair-t", NOW, 7.14), Sample("stair-rh", NOW, 67.1)]
    assert m.decode("zigbee2mqtt/kitchen-smoke", Z2M_SMOKE, NOW) == [
        Sample("smoke-12", NOW, 1.0), Sample("smoke-12-battery-low", NOW, 0.0)]
    # "contact": true is a closed door: inverted, 0
    assert m.decode("zigbee2mqtt/cover-7", Z2M_CONTACT, NOW) == [Sample("cover-7-open", NOW, 0.0)]


def test_esphome_preset_reads_plain_state_payloads_and_on_off() -> None:
    m = topic_map({"preset": "esphome", "device": "pump-house",
                   "fields": {"water_level": "sump-level",
                              "binary_sensor/door": "pump-house-door"}})
    assert m.decode("pump-house/sensor/water_level/state", b"37.25", NOW) == [
        Sample("sump-level", NOW, 37.25)]
    assert m.decode("pump-house/binary_sensor/door/state", b"ON", NOW) == [
        Sample("pump-house-door", NOW, 1.0)]
    assert m.decode("pump-house/binary_sensor/door/state", b"OFF", NOW) == [
        Sample("pump-house-door", NOW, 0.0)]


def test_shelly_gen2_status_and_gen1_topics() -> None:
    m = topic_map({"preset": "shelly", "device": "shellyplusht-b8d61a8b17cc",
                   "fields": {"temperature:0.tC": "plant-t", "humidity:0.rh": "plant-rh"}},
                  {"preset": "shelly", "device": "shellyplus2pm-Einfahrt",
                   "fields": {"switch:0.apower": "pump-w",
                              "switch:0.temperature.tC": "pump-relay-t",
                              "switch:0.output": "pump-on"}},
                  {"preset": "shelly-gen1", "device": "shellyflood-A4CF12F45D01",
                   "fields": {"sensor/flood": "basement-flood",
                              "sensor/temperature": "basement-t"}},
                  {"preset": "shelly-gen1", "device": "shellydw2-6A2B3C",
                   "fields": {"sensor/state": "gate-open"}})
    dev = "shellyplusht-b8d61a8b17cc/status"
    assert m.decode(f"{dev}/temperature:0", SHELLY_PLUS_HT_TEMPERATURE, NOW) == [
        Sample("plant-t", NOW, 19.8)]
    assert m.decode(f"{dev}/humidity:0", SHELLY_PLUS_HT_HUMIDITY, NOW) == [
        Sample("plant-rh", NOW, 42.2)]
    assert m.decode("shellyplus2pm-Einfahrt/status/switch:0", SHELLY_PLUS_2PM_SWITCH,
                    NOW) == [Sample("pump-w", NOW, 0.0), Sample("pump-relay-t", NOW, 44.9),
                             Sample("pump-on", NOW, 0.0)]
    gen1 = "shellies/shellyflood-A4CF12F45D01/sensor"
    assert m.decode(f"{gen1}/flood", b"true", NOW) == [Sample("basement-flood", NOW, 1.0)]
    assert m.decode(f"{gen1}/temperature", b"22.75", NOW) == [Sample("basement-t", NOW, 22.75)]
    assert m.decode("shellies/shellydw2-6A2B3C/sensor/state", b"open", NOW) == [
        Sample("gate-open", NOW, 1.0)]
    assert m.decode("shellies/shellydw2-6A2B3C/sensor/state", b"close", NOW) == [
        Sample("gate-open", NOW, 0.0)]


def test_topic_prefix_overrides_the_firmware_default() -> None:
    m = topic_map({"preset": "zigbee2mqtt", "device": "th-1", "topic_prefix": "z2m/huangpu",
                   "fields": {"temperature": "t1"}},
                  {"preset": "tasmota", "device": "cab", "topic_prefix": "jiufo/tele",
                   "fields": {"AM2301.Humidity": "rh"}})
    assert m.decode("z2m/huangpu/th-1", Z2M_AQARA_TH, NOW) == [Sample("t1", NOW, 7.14)]
    assert m.decode("jiufo/tele/cab/SENSOR", TASMOTA_AM2301, NOW) == [Sample("rh", NOW, 58.2)]


# --- plain mappings ---------------------------------------------------------------------

def test_wildcard_topic_fills_the_sensor_id_and_scale_offset_apply() -> None:
    m = topic_map({"topic": "flood/+/level", "value": "level.mm", "sensor": "flood-{1}",
                   "scale": 0.1, "offset": -5})
    assert m.decode("flood/jiufo-3/level", b'{"level":{"mm":412}}', NOW) == [
        Sample("flood-jiufo-3", NOW, 36.2)]
    assert m.decode("flood/a/b/level", b'{"level":{"mm":1}}', NOW) == []


def test_device_timestamps_epoch_and_iso_with_zone_naive_in_the_configured_zone() -> None:
    m = topic_map({"topic": "z2m/+", "value": "temperature", "timestamp": "last_seen",
                   "sensor": "t-{1}"},
                  {"topic": "tele/+/SENSOR", "value": "AM2301.Temperature", "timestamp": "Time",
                   "timezone": "Asia/Shanghai", "sensor": "room-{1}"})
    iso = b'{"temperature":21.5,"last_seen":"2024-03-05T14:12:03+08:00"}'
    epoch_ms = b'{"temperature":21.5,"last_seen":1709619123000}'
    expected = 1709619123 * 10**9
    assert m.decode("z2m/a", iso, NOW) == [Sample("t-a", expected, 21.5)]
    assert m.decode("z2m/a", epoch_ms, NOW) == [Sample("t-a", expected, 21.5)]
    # Tasmota's Time is the device's local time without a zone: midnight in Guangzhou
    assert m.decode("tele/x/SENSOR", TASMOTA_AM2301, NOW) == [
        Sample("room-x", 1546272000 * 10**9, 24.6)]


def test_a_bad_timestamp_keeps_the_reading_with_its_arrival_time_and_is_counted() -> None:
    m = topic_map({"topic": "z2m/+", "value": "temperature", "timestamp": "last_seen",
                   "sensor": "t-{1}"})
    assert m.decode("z2m/a", b'{"temperature":21.5,"last_seen":"yesterday"}', NOW) == [
        Sample("t-a", NOW, 21.5)]
    assert m.counters.bad == {"bad_timestamp": 1}


# --- bad payloads ----------------------------------------------------------------------

def test_bad_payloads_are_counted_by_reason_and_never_raise(
        caplog: pytest.LogCaptureFixture) -> None:
    m = TopicMap(source_settings(
        {"preset": "zigbee2mqtt", "device": "th", "fields": {"temperature": "t"}},
        {"preset": "esphome", "device": "node", "fields": {"level": "lvl"}},
        {"topic": "flood/+/level", "sensor": "flood-{1}"},
    ).mappings(), sensors={"t", "lvl", "flood-1"})
    cases = [
        ("zigbee2mqtt/th", b"not json at all", "not_json"),
        ("zigbee2mqtt/th", b"\xff\xfe", "not_json"),
        ("zigbee2mqtt/th", b'{"temperature":"warm"}', "non_numeric"),
        ("zigbee2mqtt/th", b'{"temperature":{"value":3}}', "non_numeric"),
        ("zigbee2mqtt/th", b'{"temperature":NaN}', "non_finite"),
        ("zigbee2mqtt/th", b'{"temperature":1e999}', "non_finite"),
        ("node/sensor/level/state", b"", "non_numeric"),
        ("flood/2/level", b"3.5", "unknown_sensor"),
    ]
    for topic, payload, _ in cases:
        assert m.decode(topic, payload, NOW) == []
    expected: dict[str, int] = {}
    for _, _, reason in cases:
        expected[reason] = expected.get(reason, 0) + 1
    assert m.counters.bad == expected
    assert m.counters.messages == len(cases)
    assert "zigbee2mqtt/th" in caplog.text
    assert "not_json" in caplog.text
    # and it still reads the next good one
    assert m.decode("zigbee2mqtt/th", Z2M_AQARA_TH, NOW) == [Sample("t", NOW, 7.14)]


def test_a_message_that_is_not_json_counts_once_however_many_fields_it_should_have() -> None:
    m = topic_map({"preset": "tasmota", "device": "c", "fields": {
        "AM2301.Temperature": "t", "AM2301.Humidity": "h", "AM2301.DewPoint": "d"}})
    assert m.decode("tele/c/SENSOR", b"Temperature=22.4", NOW) == []
    assert m.counters.bad == {"not_json": 1}


def test_json_null_is_a_dropout_not_an_error() -> None:
    m = topic_map({"preset": "tasmota", "device": "c", "fields": {"AM2301.Temperature": "t"}})
    got = m.decode("tele/c/SENSOR", b'{"Time":"2020-03-05T13:21:42","AM2301":'
                   b'{"Temperature":null,"Humidity":null}}', NOW)
    assert got == [Sample("t", NOW, None)]
    assert not m.counters.bad


# --- config -----------------------------------------------------------------------------

@pytest.mark.parametrize(("entry", "message"), [
    ({"topic": "a/#/b", "sensor": "s"}, "'#' may only be the last level"),
    ({"topic": "a/b+", "sensor": "s"}, "must stand alone"),
    ({"topic": "a/+/b", "sensor": "s-{2}"}, "{2} has no '+' level"),
    ({"topic": "a/b", "sensor": "s", "value": "x..y"}, "is not a JSON path"),
    ({"topic": "a/b", "sensor": "s", "timezone": "Mars/Olympus"}, "is not a time zone"),
    ({"topic": "a/b", "sensor": "s", "scale": 0}, "scale 0"),
    ({"preset": "shelly", "device": "d", "fields": {"tC": "s"}}, "'<component>.<path>'"),
    ({"preset": "tasmota", "device": "a//b", "fields": {"x": "s"}}, "must be non-empty"),
    ({"preset": "zigbee2mqtt", "device": "a/+", "fields": {"x": "s"}}, "without '+' or '#'"),
    ({"preset": "homie", "device": "d", "fields": {"x": "s"}}, "'tasmota'"),
])
def test_bad_mappings_are_refused_with_the_reason(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("+", r"\+")):
        source_settings(entry)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    target = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, target)
    return target


def give_jiufo_an_mqtt_source(directory: Path, source: dict[str, Any]) -> None:
    path = directory / "agents.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for agent in data["agents"]:
        if agent["id"] == "edge-jiufo":
            agent["source"] = source
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_config_set_checks_mapped_sensors_belong_to_the_agent_and_units_match(
        sample: Path) -> None:
    give_jiufo_an_mqtt_source(sample, {"type": "mqtt", "map": [
        {"preset": "zigbee2mqtt", "device": "th",
         "fields": {"temperature": "dongyuan-g1-smoke-1",
                    "noise": {"sensor": "jiufo-g1-noise-1", "unit": "dB"}}},
        {"topic": "x/+", "sensor": "jiufo-{1}"},
    ]})
    with pytest.raises(ConfigError) as info:
        load_config(sample)
    found = [str(p) for p in info.value.problems]
    assert len(found) == 2, found
    assert any("source.map[0].fields.temperature" in p and "'dongyuan-g1-smoke-1' is not one "
               "of this agent's sensors" in p for p in found), found
    assert any("source.map[0].fields.noise" in p and "unit 'dB' is not sensor "
               "'jiufo-g1-noise-1''s unit 'dBA'" in p for p in found), found
    assert all(p.startswith("agents.yaml:") for p in found)


def test_the_sample_district_has_an_agent_reading_a_local_mqtt_bus(cfg: ConfigSet) -> None:
    source = cfg.agents["edge-jiufo"].source
    assert isinstance(source, LocalMqttSettings)
    assert {m.sensor for m in source.mappings()} == {s.id for s in cfg.agents["edge-jiufo"].sensors}
    assert "tele/jiufo-g3-cabinet/SENSOR" in source.topic_filters()
    assert "jiufo-g1-node/sensor/pm25_1/state" in source.topic_filters()


def test_a_sensor_no_mapping_reads_is_reported(sample: Path) -> None:
    give_jiufo_an_mqtt_source(sample, {"type": "mqtt", "broker": {"url": "mqtt://10.0.0.2"},
                                       "map": [{"preset": "esphome", "device": "node-1",
                                                "fields": {"noise": "jiufo-g1-noise-1"}}]})
    with pytest.raises(ConfigError) as info:
        load_config(sample)
    found = [str(p) for p in info.value.problems]
    assert any("agents[8].source.map:" in p and "'jiufo-g1-pm25-1' is read by no mapping"
               in p for p in found), found
    assert not any("jiufo-g1-noise-1" in p for p in found)


# --- against the real broker -----------------------------------------------------------

@contextlib.asynccontextmanager
async def publisher(url: str) -> AsyncIterator[aiomqtt.Client]:
    address = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(address[0], int(address[1])) as client:
        yield client


async def collect(source: LocalMqttSource, into: list[Sample]) -> None:
    async for sample in source.samples():
        into.append(sample)


async def test_presets_read_real_format_payloads_from_mosquitto(mqtt_url: str) -> None:
    run = uuid.uuid4().hex[:8]
    settings = source_settings(
        {"preset": "tasmota", "device": f"cab-{run}", "fields": {"DS18B20.Temperature": "wt"}},
        {"preset": "zigbee2mqtt", "device": f"smoke-{run}", "fields": {"smoke": "sm"}},
        {"preset": "esphome", "device": f"node-{run}", "fields": {"water_level": "lvl"}},
        {"preset": "shelly", "device": f"shellyplusht-{run}", "fields": {"temperature:0.tC":
                                                                        "ht"}},
        {"preset": "shelly-gen1", "device": f"shellyflood-{run}", "fields": {"sensor/flood":
                                                                            "fl"}},
        broker={"url": mqtt_url})
    source = LocalMqttSource(settings, agent_id=f"t-{run}", sensors={"wt", "sm", "lvl", "ht",
                                                                      "fl"})
    got: list[Sample] = []
    task = asyncio.create_task(collect(source, got))
    try:
        assert await wait_until(source.connected.is_set)
        async with publisher(mqtt_url) as pub:
            await pub.publish(f"tele/cab-{run}/SENSOR", TASMOTA_DS18B20, qos=1)
            await pub.publish(f"zigbee2mqtt/smoke-{run}", Z2M_SMOKE, qos=1)
            await pub.publish(f"node-{run}/sensor/water_level/state", b"nan", qos=1)
            await pub.publish(f"node-{run}/sensor/water_level/state", b"37.25", qos=1)
            await pub.publish(f"shellyplusht-{run}/status/temperature:0",
                              SHELLY_PLUS_HT_TEMPERATURE, qos=1)
            await pub.publish(f"shellies/shellyflood-{run}/sensor/flood", b"false", qos=1)
            await pub.publish(f"zigbee2mqtt/smoke-{run}", b"garbage{", qos=1)
        assert await wait_until(lambda: len(got) == 6 and sum(source.bad.values()) == 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert {(s.sensor, s.value) for s in got} == {
        ("wt", 24.7), ("sm", 1.0), ("lvl", None), ("lvl", 37.25), ("ht", 19.8), ("fl", 0.0)}
    assert source.bad == {"not_json": 1}
    counters = source.stats()  # what the agent's status message carries
    assert counters["messages"] == 7
    assert counters["samples"] == 6
    assert counters["gaps"] == 1  # ESPHome's nan: a dropout, not a bad payload
    assert counters["bad_not_json"] == 1
    assert counters["connects"] == 1


async def test_retained_values_are_skipped_unless_asked_for(mqtt_url: str) -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"node-{run}/sensor/level/state"
    async with publisher(mqtt_url) as pub:
        await pub.publish(topic, b"12.5", qos=1, retain=True)
    try:
        entry = {"preset": "esphome", "device": f"node-{run}", "fields": {"level": "lvl"}}
        skipping = LocalMqttSource(source_settings(entry, broker={"url": mqtt_url}),
                                   agent_id=f"a-{run}")
        taking = LocalMqttSource(source_settings(entry, broker={"url": mqtt_url},
                                                 accept_retained=True), agent_id=f"b-{run}")
        skipped: list[Sample] = []
        taken: list[Sample] = []
        tasks = [asyncio.create_task(collect(skipping, skipped)),
                 asyncio.create_task(collect(taking, taken))]
        try:
            assert await wait_until(lambda: skipping.connection.retained_skipped == 1
                                    and len(taken) == 1)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert skipped == []
        assert taken[0].value == 12.5
    finally:
        async with publisher(mqtt_url) as pub:
            await pub.publish(topic, b"", qos=1, retain=True)  # clear the retained message


async def test_refused_credentials_are_counted_and_retried(
        mqtt_auth: Login, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("LOCAL_USER", mqtt_auth.username)
    monkeypatch.setenv("LOCAL_PW", "not-the-password")
    settings = source_settings({"topic": "x/y", "sensor": "s"}, broker={
        "url": mqtt_auth.url, "username_env": "LOCAL_USER", "password_env": "LOCAL_PW"})
    source = LocalMqttSource(settings, agent_id="refused")
    task = asyncio.create_task(collect(source, []))
    try:
        assert await wait_until(lambda: source.connection.credentials_refused >= 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "refused our credentials" in caplog.text


async def test_an_edge_agent_publishes_what_its_local_mqtt_sensors_report(
        cfg: ConfigSet, mqtt_url: str) -> None:
    """Local bus → agent → uplink: the readings reach the hub's topic in a batch."""
    run = uuid.uuid4().hex[:8]
    spec = cfg.agents["edge-jiufo"]
    sensor = "jiufo-g1-noise-1"
    settings = source_settings({"preset": "esphome", "device": f"noise-{run}",
                                "fields": {"noise": sensor}}, broker={"url": mqtt_url})
    spec = replace(spec, id=f"edge-jiufo-{run}", source=settings,
                   settings=spec.settings.model_copy(update={"broker": BrokerSettings(
                       url=mqtt_url)}))
    source = LocalMqttSource(settings, agent_id=spec.id, sensors={s.id for s in spec.sensors})
    agent = EdgeAgent(spec, source)
    batches: list[ReadingBatch] = []
    stop = asyncio.Event()
    async with publisher(mqtt_url) as hub_side:
        await hub_side.subscribe(topics.readings_topic(spec.id), qos=1)

        async def listen() -> None:
            async for message in hub_side.messages:
                assert isinstance(message.payload, bytes)
                batches.append(msgspec.json.decode(message.payload, type=ReadingBatch))

        listener = asyncio.create_task(listen())
        runner = asyncio.create_task(agent.run(stop))
        try:
            assert await wait_until(lambda: source.connected.is_set()
                                    and agent.connected.is_set())
            async with publisher(mqtt_url) as device:
                for level in (55.0, 56.5, 54.25):
                    await device.publish(f"noise-{run}/sensor/noise/state",
                                         str(level).encode(), qos=1)
            assert await wait_until(lambda: sum(len(b.readings) for b in batches) == 3)
        finally:
            stop.set()
            await runner
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
    assert [(r.sensor, r.value) for b in batches for r in b.readings] == [
        (sensor, 55.0), (sensor, 56.5), (sensor, 54.25)]
    assert agent.source_counters()["samples"] == 3  # into the status message


def test_agent_model_still_takes_the_plain_source_names() -> None:
    assert Agent.model_validate({"id": "a", "grid": "g"}).source.type == "simulated"
    with pytest.raises(ValidationError):
        Agent.model_validate({"id": "a", "grid": "g", "source": {"type": "mqtt", "map": []}})


def test_edge_run_reads_the_sample_mqtt_agent_and_stops_on_sigterm(
        tmp_path: Path, mqtt_url: str) -> None:
    """`gridcall edge run` on the sample's MQTT agent, both brokers the test mosquitto."""
    config = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, config)
    run = uuid.uuid4().hex[:8]
    agent_id = "edge-jiufo"
    path = config / "agents.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["defaults"].update(broker={"url": mqtt_url}, state_dir=str(tmp_path / "state"))
    jiufo = next(a for a in data["agents"] if a["id"] == agent_id)
    jiufo["source"]["broker"] = {"url": mqtt_url}
    for entry in jiufo["source"]["map"]:
        entry["topic_prefix"] = f"{run}-{entry['device']}"  # this run's devices only
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    tasmota = f"{run}-jiufo-g3-cabinet/jiufo-g3-cabinet/SENSOR"

    async def scenario() -> list[ReadingBatch]:
        batches: list[ReadingBatch] = []
        async with publisher(mqtt_url) as hub_side:
            await hub_side.subscribe(topics.readings_topic(agent_id), qos=1)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from gridcall.cli import app; app()", "edge", "run",
                "--agent", agent_id, "--config", str(config),
                stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            try:
                async def listen() -> None:
                    async for message in hub_side.messages:
                        assert isinstance(message.payload, bytes)
                        got = msgspec.json.decode(message.payload, type=ReadingBatch)
                        if any(r.sensor == "jiufo-g3-temperature-1" for r in got.readings):
                            batches.append(got)
                            return

                listener = asyncio.create_task(listen())
                async with publisher(mqtt_url) as device:
                    for _ in range(200):  # until the agent is subscribed and has read one
                        await device.publish(tasmota, TASMOTA_DS18B20, qos=1)
                        done, _ = await asyncio.wait({listener}, timeout=0.1)
                        if done:
                            break
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                _, stderr = await proc.communicate()
        assert proc.returncode == 0, stderr.decode()
        return batches

    batches = asyncio.run(scenario())
    assert [r.value for b in batches for r in b.readings
            if r.sensor == "jiufo-g3-temperature-1"][:1] == [24.7]


async def test_the_source_reconnects_when_the_local_broker_restarts(tmp_path: Path) -> None:
    """A broker on the box that restarts (an update, a crash) costs only what was
    published while it was away: the source subscribes again by itself, and each message
    is one reading. (A restart that lands before the broker took the source's PUBACK
    makes it send the message again, flagged DUP: the next test makes that happen on
    purpose; the source skips it.)"""
    broker = PrivateMosquitto(tmp_path / "local-broker")
    settings = source_settings({"preset": "esphome", "device": "node", "fields": {"lvl": "l"}},
                               broker={"url": broker.url})
    source = LocalMqttSource(settings, agent_id="restarts")
    got: list[Sample] = []
    with broker:
        task = asyncio.create_task(collect(source, got))
        try:
            assert await wait_until(source.connected.is_set)
            async with publisher(broker.url) as device:
                await device.publish("node/sensor/lvl/state", b"1", qos=1)
            assert await wait_until(lambda: len(got) == 1)
            broker.stop()
            assert await wait_until(lambda: not source.connected.is_set())
            broker.start()
            assert await wait_until(lambda: source.connection.connects == 2, polls=800)
            async with publisher(broker.url) as device:
                await device.publish("node/sensor/lvl/state", b"2", qos=1)
            assert await wait_until(lambda: any(s.value == 2.0 for s in got))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert [s.value for s in got] == [1.0, 2.0]
    assert source.connection.connect_failures >= 1


async def test_a_message_the_restarted_broker_sends_again_is_one_reading(
        tmp_path: Path) -> None:
    """The source's PUBACK never reaches the broker (a relay holds it back), and the
    broker restarts with the source's persistent session on disk: mosquitto sends the
    message again when the session is back, flagged DUP under its packet id (MQTT's QoS 1
    is at least once). The source skips that exact repeat and counts it; the device's
    next message, the same payload again, is a new message and a reading."""
    broker = PrivateMosquitto(tmp_path / "local-broker")
    with broker:
        host, port = broker.url.removeprefix("mqtt://").split(":")
        async with HoldingRelay(host, int(port)) as relay:
            settings = source_settings(
                {"preset": "esphome", "device": "node", "fields": {"lvl": "l"}},
                broker={"url": relay.url})
            source = LocalMqttSource(settings, agent_id="redelivered")
            got: list[Sample] = []
            task = asyncio.create_task(collect(source, got))
            try:
                assert await wait_until(source.connected.is_set)
                relay.holding = True  # from here the broker hears nothing from the source
                async with publisher(broker.url) as device:
                    await device.publish("node/sensor/lvl/state", b"1", qos=1)
                assert await wait_until(lambda: len(got) == 1)
                broker.stop()  # saves the session with "1" unacknowledged
                relay.cut()
                broker.start()
                assert await wait_until(lambda: source.connection.connects == 2, polls=800)
                assert await wait_until(lambda: source.redeliveries.skipped == 1)
                async with publisher(broker.url) as device:
                    await device.publish("node/sensor/lvl/state", b"1", qos=1)
                    await device.publish("node/sensor/lvl/state", b"2", qos=1)
                assert await wait_until(lambda: any(s.value == 2.0 for s in got))
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    assert [s.value for s in got] == [1.0, 1.0, 2.0]
    assert source.stats()["redeliveries_skipped"] == 1


def test_only_an_exact_repeat_flagged_dup_is_skipped() -> None:
    seen = Redeliveries(keep=4)
    assert not seen.repeat(7, "a/b", b"1", qos=1, dup=False)
    assert seen.repeat(7, "a/b", b"1", qos=1, dup=True)  # sent again
    assert not seen.repeat(8, "a/b", b"1", qos=1, dup=False)  # the same value, published again
    assert not seen.repeat(8, "a/b", b"2", qos=1, dup=True)  # not what came under id 8
    assert not seen.repeat(9, "a/c", b"1", qos=1, dup=True)  # an id never seen
    assert not seen.repeat(0, "a/b", b"1", qos=0, dup=False)
    assert not seen.repeat(0, "a/b", b"1", qos=0, dup=True)  # QoS 0 is never redelivered
    for mid in (10, 11, 12, 13):  # id 7 falls out of the four remembered
        seen.repeat(mid, "x", b"", qos=1, dup=False)
    assert not seen.repeat(7, "a/b", b"1", qos=1, dup=True)
    assert seen.skipped == 1
