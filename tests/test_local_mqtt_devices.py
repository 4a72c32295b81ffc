"""Local-MQTT presets against payloads the devices really publish (issue 19, round two).

Every vector cites where its shape comes from; none is made up. The pure decoding is
tested directly; the availability, session and discovery behaviour against real mosquitto
(GRIDCALL_TEST_MQTT_URL), as the other local-MQTT tests.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiomqtt
import msgspec
import pytest
import yaml

from gridcall.config import ConfigSet
from gridcall.config.local_mqtt import LocalMqttSettings
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.local_mqtt import LocalMqttSource, TopicMap
from gridcall.edge_agent.outbox import Priority
from gridcall.edge_agent.sources import DeviceEvent, Sample
from gridcall.hub.desk.roster import Roster
from gridcall.wire import AgentStatus, AnomalyEvent, ReadingBatch, topics
from tests.polling import wait_until

NOW = 1_700_000_000_000_000_000

# ESPHome publishes "nan" on a sensor's state topic when it has no state: the payload
# b'nan' on bedroom_environment/sensor/bedroom_gas/state in
# https://github.com/home-assistant/core/issues/18240 ; since ESPHome 2024.12 it publishes
# "None" instead (https://github.com/esphome/esphome/pull/7768, "Publishing 'None' instead
# of 'NaN' values for sensors in MQTT").
ESPHOME_NAN = b"nan"
ESPHOME_NONE = b"None"
# Zigbee2MQTT publishes only what the device reported: a contact sensor's battery report
# carries no `contact` (base/livingroom/door, an Aqara MCCGQ01LM, in
# https://github.com/Koenkk/zigbee2mqtt/issues/946 ; its battery as text, "100.00").
Z2M_CONTACT_BATTERY_REPORT = b'{"battery":"100.00","voltage":3035,"linkquality":136}'


# Tasmota SCD30 with SetOption8 1 (°F): "TempUnit":"F" beside the readings; the payload
# of tele/snifferbuddy/SENSOR in https://github.com/solarslurpi/GrowBuddies/blob/
# 9642f976ff3fc248d2e276bf468e79025d5cba07/docs/mqtt.md (tests/data/device_vectors.yaml
# has it too).
TASMOTA_SCD30_F = (b'{"Time":"2022-09-06T08:52:59","ANALOG":{"A0":542},"SCD30":{"CarbonDioxide":'
                   b'814,"eCO2":787,"Temperature":71.8,"Humidity":61.6,"DewPoint":57.9},'
                   b'"TempUnit":"F"}')
# Tasmota BME280 beside a DS18B20 and a BH1750, "PressureUnit":"hPa","TempUnit":"C"
# (Tasmota's default units): tele/Wetterstation2023/SENSOR in
# https://github.com/home-assistant/core/issues/98699 . The same message with SetOption24 1,
# "pressure units mmHg" (https://tasmota.github.io/docs/Commands/#setoption24), writes
# "PressureUnit":"mmHg" and the pressure in mmHg: 1018.0 hPa is 763.6 mmHg.
TASMOTA_BME280_HPA = (b'{"Time":"2023-08-20T11:09:47","DS18B20":{"Id":"3CE10457A8F9",'
                      b'"Temperature":27.9},"BME280":{"Temperature":27.8,"Humidity":54.5,'
                      b'"DewPoint":17.8,"Pressure":1018.0},"BH1750":{"Illuminance":171},'
                      b'"PressureUnit":"hPa","TempUnit":"C"}')
TASMOTA_BME280_MMHG = TASMOTA_BME280_HPA.replace(b'"Pressure":1018.0', b'"Pressure":763.6'
                                                 ).replace(b'"hPa"', b'"mmHg"')
# Shelly Plus H&T temperature:0 status, tC and tF side by side (NotifyFullStatus of a
# shellyplusht, gist.github.com/NelsonMinar/494a0f53785c20290b395639548349fa).
SHELLY_PLUS_HT_TEMPERATURE = b'{"id":0,"tC":19.8,"tF":67.6}'


def settings(*entries: dict[str, Any]) -> LocalMqttSettings:
    return LocalMqttSettings.model_validate({"type": "mqtt", "map": list(entries)})


def topic_map(*entries: dict[str, Any]) -> TopicMap:
    return TopicMap(settings(*entries).mappings())


# --- 1. missing values are gaps ---------------------------------------------------------

def test_esphome_nan_and_none_are_gaps_not_bad_payloads() -> None:
    m = topic_map({"preset": "esphome", "device": "bedroom_environment",
                   "fields": {"bedroom_gas": "gas"}})
    topic = "bedroom_environment/sensor/bedroom_gas/state"
    assert m.decode(topic, ESPHOME_NAN, NOW) == [Sample("gas", NOW, None)]
    assert m.decode(topic, ESPHOME_NONE, NOW) == [Sample("gas", NOW, None)]
    assert m.decode(topic, b"412.5", NOW) == [Sample("gas", NOW, 412.5)]
    assert not m.counters.bad
    assert m.counters.gaps == 2


def test_json_null_is_counted_as_a_gap() -> None:
    m = topic_map({"preset": "zigbee2mqtt", "device": "th", "fields": {"temperature": "t"}})
    assert m.decode("zigbee2mqtt/th", b'{"temperature":null}', NOW) == [Sample("t", NOW, None)]
    assert (m.counters.gaps, dict(m.counters.bad)) == (1, {})


# --- 4. partial messages are normal -----------------------------------------------------

def test_a_partial_message_counts_the_missing_field_and_warns_nobody(
        caplog: pytest.LogCaptureFixture) -> None:
    m = topic_map({"preset": "zigbee2mqtt", "device": "door",
                   "fields": {"contact": "door-1", "battery": "door-1-battery"}})
    caplog.set_level("INFO")
    for _ in range(3):
        got = m.decode("zigbee2mqtt/door", Z2M_CONTACT_BATTERY_REPORT, NOW)
        assert got == [Sample("door-1-battery", NOW, 100.0)]
    assert m.counters.missing_fields == 3
    assert not m.counters.bad
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    said = [r for r in caplog.records if "contact" in r.getMessage()]
    assert [r.levelname for r in said] == ["INFO"]


# --- 2. availability per preset ---------------------------------------------------------
# (preset entry, availability topic, offline payload, online payload), each from the
# firmware's docs:
AVAILABILITY = [
    # Tasmota: LWT topic tele/%topic%/LWT, "Online" on connect, "Offline" as the last
    # will (https://tasmota.github.io/docs/MQTT/ ; Home Assistant configs use
    # availability_topic tele/<topic>/LWT with payload_available "Online",
    # https://pastebin.com/eH1AsQhx).
    ({"preset": "tasmota", "device": "termostato", "fields": {"DHT11.Temperature": "s"}},
     "tele/termostato/LWT", b"Offline", b"Online"),
    # Zigbee2MQTT bridge state: legacy plain "online"/"offline" (zigbee2mqtt.io
    # docs/information/mqtt_topics_and_message_structure.md, "zigbee2mqtt/bridge/state")
    # and the JSON form {"state":"online"} since 1.x's new API
    # (https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html).
    ({"preset": "zigbee2mqtt", "device": "kitchen-smoke", "fields": {"smoke": "s"}},
     "zigbee2mqtt/bridge/state", b"offline", b"online"),
    ({"preset": "zigbee2mqtt", "device": "kitchen-smoke", "fields": {"smoke": "s"}},
     "zigbee2mqtt/bridge/state", b'{"state":"offline"}', b'{"state":"online"}'),
    # Zigbee2MQTT device availability, zigbee2mqtt/FRIENDLY_NAME/availability, "online/
    # offline status ... published when it changes" (same page); legacy text or JSON.
    ({"preset": "zigbee2mqtt", "device": "kitchen-smoke", "fields": {"smoke": "s"}},
     "zigbee2mqtt/kitchen-smoke/availability", b"offline", b"online"),
    ({"preset": "zigbee2mqtt", "device": "kitchen-smoke", "fields": {"smoke": "s"}},
     "zigbee2mqtt/kitchen-smoke/availability", b'{"state":"offline"}',
     b'{"state":"online"}'),
    # ESPHome: birth "online" / will "offline" on <topic_prefix>/status
    # (https://esphome.io/components/mqtt.html, birth_message and will_message; the
    # availability_topic "bedroom_environment/status" in home-assistant/core#18240).
    ({"preset": "esphome", "device": "bedroom_environment", "fields": {"bedroom_gas": "s"}},
     "bedroom_environment/status", b"offline", b"online"),
    # Shelly Gen2: <topic_prefix>/online, true/false
    # (https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/Mqtt).
    ({"preset": "shelly", "device": "shellyplusht-b8d61a8b17cc",
      "fields": {"temperature:0.tC": "s"}},
     "shellyplusht-b8d61a8b17cc/online", b"false", b"true"),
    # Tasmota with its own FullTopic %topic%/%prefix%/: "DVES_ED76DA/tele/LWT = Online
    # (retained)" in https://github.com/arendst/Tasmota/issues/6447 ; "Offline" is the
    # same last will as in the default layout.
    ({"preset": "tasmota", "device": "DVES_ED76DA", "full_topic": "%topic%/%prefix%/",
      "fields": {"DS18B20-2.Temperature": "s"}},
     "DVES_ED76DA/tele/LWT", b"Offline", b"Online"),
    # Shelly Gen1: shellies/<id>/online, payload_available 'true' / not_available 'false'
    # (https://pastebin.com/zWaNqRer, after the Gen1 MQTT API).
    ({"preset": "shelly-gen1", "device": "shelly1-XXXXXX", "fields": {"relay/0/power": "s"}},
     "shellies/shelly1-XXXXXX/online", b"false", b"true"),
]


@pytest.mark.parametrize(("entry", "topic", "down", "up"), AVAILABILITY,
                         ids=[f"{a[0]['preset']}:{a[1]}:{a[2]!r}" for a in AVAILABILITY])
def test_each_preset_takes_its_firmwares_availability_messages(
        entry: dict[str, Any], topic: str, down: bytes, up: bytes) -> None:
    source = settings(entry)
    assert topic in source.topic_filters()
    m = TopicMap(source.mappings(), availability=source.availability())
    assert m.decode(topic, down, NOW) == []
    assert m.offline() == {"s"}
    assert m.sensor_availability() == {"s": (False, NOW)}
    assert m.decode(topic, up, NOW + 1) == []
    assert m.offline() == frozenset()
    assert m.sensor_availability() == {"s": (True, NOW + 1)}
    assert (m.counters.availability_messages, dict(m.counters.bad)) == (2, {})


def test_a_zigbee2mqtt_bridge_speaks_for_every_device_behind_it_and_nonsense_is_counted(
        ) -> None:
    source = settings(
        {"preset": "zigbee2mqtt", "device": "smoke", "fields": {"smoke": "a"}},
        {"preset": "zigbee2mqtt", "device": "door", "fields": {"contact": "b"}},
        {"preset": "zigbee2mqtt", "device": "door", "availability": False,
         "topic_prefix": "z2m-2", "fields": {"contact": "c"}})
    m = TopicMap(source.mappings(), availability=source.availability())
    m.decode("zigbee2mqtt/bridge/state", b"offline", NOW)
    assert m.offline() == {"a", "b"}
    m.decode("zigbee2mqtt/bridge/state", b'{"state":"online"}', NOW)
    m.decode("zigbee2mqtt/door/availability", b'{"state":"offline"}', NOW)
    assert m.offline() == {"b"}
    m.decode("zigbee2mqtt/door/availability", b"maybe", NOW)
    assert m.counters.bad == {"bad_availability": 1}
    assert m.offline() == {"b"}


def test_a_plain_mapping_hears_the_availability_topics_it_names_with_their_payloads(
        ) -> None:
    """What ``gridcall edge discover`` drafts from an announcement's availability: a plain
    mapping naming its device's topics. Tasmota's LWT announced with payload_available
    "Online" (https://github.com/arendst/Tasmota/issues/6447), and a Homie device's
    ``$state``, whose "ready"/"lost" are no words the agent knows by itself
    (https://homieiot.github.io/specification/#device-lifecycle): its payloads, named,
    are matched exactly; unnamed, they are refused as before."""
    source = LocalMqttSettings.model_validate({"type": "mqtt", "map": [
        {"topic": "DVES_ED76DA/tele/SENSOR", "value": "DS18B20-2.Temperature", "sensor": "a",
         "availability": [{"topic": "DVES_ED76DA/tele/LWT", "online": "Online",
                           "offline": "Offline"}]},
        {"topic": "homie/boiler/temp/value", "sensor": "b",
         "availability": [{"topic": "homie/boiler/$state", "online": "ready",
                           "offline": "lost"}]},
        {"topic": "homie/boiler2/temp/value", "sensor": "c",
         "availability": [{"topic": "homie/boiler2/$state"}]}]})
    assert source.availability() == {"DVES_ED76DA/tele/LWT": ("a",),
                                     "homie/boiler/$state": ("b",),
                                     "homie/boiler2/$state": ("c",)}
    assert source.topic_filters()[:3] == tuple(source.availability())
    m = TopicMap(source.mappings(), availability=source.availability(),
                 availability_payloads=source.availability_payloads())
    m.decode("DVES_ED76DA/tele/LWT", b"Offline", NOW)
    m.decode("homie/boiler/$state", b"lost", NOW)
    assert m.offline() == {"a", "b"}
    m.decode("homie/boiler/$state", b"ready", NOW + 1)
    assert m.offline() == {"a"}
    assert m.sensor_availability()["b"] == (True, NOW + 1)
    m.decode("homie/boiler2/$state", b"lost", NOW)  # no payloads named: not understood
    assert m.counters.bad == {"bad_availability": 1}
    assert m.offline() == {"a"}


@pytest.mark.parametrize(("availability", "sensor", "says"), [
    ([{"topic": "homie/+/$state"}], "b", "has a wildcard"),
    ([{"topic": "homie/boiler/$state"}], "flood-{1}", "availability needs one sensor"),
    ([{"topic": "homie/boiler/$state", "online": "ready", "offline": "ready"}], "b",
     "online and offline are both 'ready'"),
])
def test_a_plain_mappings_availability_that_cannot_work_is_refused_saying_why(
        availability: list[dict[str, str]], sensor: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        LocalMqttSettings.model_validate({"type": "mqtt", "map": [
            {"topic": "flood/+/level", "sensor": sensor, "availability": availability}]})


def test_one_availability_topic_has_one_pair_of_payloads() -> None:
    with pytest.raises(ValueError, match="a device has one pair"):
        LocalMqttSettings.model_validate({"type": "mqtt", "map": [
            {"topic": "homie/boiler/t", "sensor": "a", "availability": [
                {"topic": "homie/boiler/$state", "online": "ready", "offline": "lost"}]},
            {"topic": "homie/boiler/h", "sensor": "b", "availability": [
                {"topic": "homie/boiler/$state"}]}]})


def mqtt_client(url: str, **kw: Any) -> aiomqtt.Client:
    host, port = url.removeprefix("mqtt://").split(":")
    return aiomqtt.Client(host, int(port), **kw)


async def drain(source: LocalMqttSource, into: list[Sample]) -> None:
    async for sample in source.samples():
        into.append(sample)


async def test_a_retained_tasmota_last_will_marks_the_sensor_offline_in_agent_and_hub(
        cfg: ConfigSet, mqtt_url: str) -> None:
    """The broker holds Tasmota's retained "Offline" (its last will): the agent takes it
    at subscribe although it skips retained values, reports the sensor ``offline``, the
    hub's roster shows it; "Online" makes it ``ok`` again at once."""
    run = uuid.uuid4().hex[:8]
    spec = cfg.agents["edge-jiufo"]
    sensor = spec.sensors[0].id
    device = f"cabinet-{run}"
    source_cfg = LocalMqttSettings.model_validate({
        "type": "mqtt", "broker": {"url": mqtt_url},
        "map": [{"preset": "tasmota", "device": device,
                 "fields": {"DS18B20.Temperature": sensor}}]})
    spec = replace(spec, id=f"edge-jiufo-{run}", source=source_cfg)
    source = LocalMqttSource(source_cfg, agent_id=spec.id, sensors={s.id for s in spec.sensors})
    agent = EdgeAgent(spec, source)
    lwt = f"tele/{device}/LWT"
    got: list[Sample] = []
    async with mqtt_client(mqtt_url) as device_side:
        await device_side.publish(lwt, b"Offline", qos=1, retain=True)
        task = asyncio.create_task(drain(source, got))
        try:
            assert await wait_until(lambda: sensor in source.map.offline())
            health = agent.health(agent.clock())
            assert health[sensor].state == "offline"
            status = msgspec.json.decode(agent.status(), type=AgentStatus)
            assert status.sensor_health[sensor].state == "offline"
            assert status.source_counters["offline_sensors"] == 1
            # the hub takes the state: its roster reports it for the sensor
            hub_cfg = replace(cfg, agents={**cfg.agents, spec.id: spec})
            roster = Roster(hub_cfg)
            roster.observe(status, status.ts)
            assert roster.view(spec.id, status.ts).sensors[sensor] == "offline"

            await device_side.publish(lwt, b"Online", qos=1, retain=True)
            assert await wait_until(lambda: not source.map.offline())
            assert agent.health(agent.clock())[sensor].state == "ok"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await device_side.publish(lwt, b"", qos=1, retain=True)  # clear the retained
    assert got == []  # availability is no reading



async def test_a_plain_mappings_availability_topic_is_heard_from_the_broker(
        mqtt_url: str) -> None:
    """A drafted plain mapping (``gridcall edge discover``) naming its device's $state with
    Homie's "lost"/"ready" (https://homieiot.github.io/specification/#device-lifecycle):
    the source subscribes to it, takes the retained "lost" and marks the sensor offline,
    then "ready" brings it back."""
    run = uuid.uuid4().hex[:8]
    state = f"homie/boiler-{run}/$state"
    source_cfg = LocalMqttSettings.model_validate({
        "type": "mqtt", "broker": {"url": mqtt_url},
        "map": [{"topic": f"homie/boiler-{run}/temp/value", "sensor": "boiler-t",
                 "availability": [{"topic": state, "online": "ready", "offline": "lost"}]}]})
    source = LocalMqttSource(source_cfg, agent_id=f"edge-{run}", sensors={"boiler-t"})
    got: list[Sample] = []
    async with mqtt_client(mqtt_url) as device_side:
        await device_side.publish(state, b"lost", qos=1, retain=True)
        task = asyncio.create_task(drain(source, got))
        try:
            assert await wait_until(lambda: source.map.offline() == {"boiler-t"})
            await device_side.publish(state, b"ready", qos=1, retain=True)
            assert await wait_until(lambda: not source.map.offline())
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await device_side.publish(state, b"", qos=1, retain=True)  # clear the retained
    assert got == []
    assert not source.map.counters.bad


async def test_a_device_going_offline_reaches_the_hub_at_once_not_at_the_next_heartbeat(
        cfg: ConfigSet, mqtt_url: str) -> None:
    """The agent runs for real (its uplink and its local source on the real mosquitto)
    with a heartbeat of an hour: the status that says the sensor is offline, and the one
    that says it is back, can only be the ones an availability change publishes. The
    hub's roster takes them as they come."""
    run = uuid.uuid4().hex[:8]
    spec = cfg.agents["edge-jiufo"]
    sensor = spec.sensors[0].id
    device = f"cabinet-{run}"
    source_cfg = LocalMqttSettings.model_validate({
        "type": "mqtt", "broker": {"url": mqtt_url}, "client_id": f"local-{run}",
        "persistent_session": False,
        "map": [{"preset": "tasmota", "device": device,
                 "fields": {"DS18B20.Temperature": sensor}}]})
    spec = replace(spec, id=f"edge-jiufo-{run}", source=source_cfg, settings=(
        spec.settings.model_copy(update={"status_interval": timedelta(hours=1)})))
    source = LocalMqttSource(source_cfg, agent_id=spec.id, sensors={s.id for s in spec.sensors})
    agent = EdgeAgent(spec, source, broker_url=mqtt_url)
    roster = Roster(replace(cfg, agents={**cfg.agents, spec.id: spec}))
    lwt = f"tele/{device}/LWT"
    seen: list[str] = []
    stop = asyncio.Event()
    async with mqtt_client(mqtt_url) as hub_side, mqtt_client(mqtt_url) as device_side:
        await hub_side.subscribe(topics.status_topic(spec.id), qos=1)

        async def watch() -> None:
            async for msg in hub_side.messages:
                if isinstance(msg.payload, bytes) and msg.payload:
                    status = msgspec.json.decode(msg.payload, type=AgentStatus)
                    roster.observe(status, status.ts)
                    seen.append(roster.view(spec.id, status.ts).sensors.get(sensor, "?"))

        watching = asyncio.create_task(watch())
        running = asyncio.create_task(agent.run(stop, drain_timeout=5))
        try:
            assert await wait_until(lambda: len(seen) == 1 and source.connected.is_set())
            before = seen[0]  # the status at connect
            assert before != "offline"
            await device_side.publish(lwt, b"Offline", qos=1)
            assert await wait_until(lambda: seen[-1] == "offline")
            await device_side.publish(lwt, b"Online", qos=1)
            assert await wait_until(lambda: seen[-1] == before
                                    and agent.counters.status_on_availability == 2)
        finally:
            stop.set()
            await asyncio.wait([running], timeout=30)
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
    assert agent.counters.status_on_availability == 2
    assert seen.count("offline") == 1


# --- 3. units the device states ---------------------------------------------------------

def unit_map(units: dict[str, str], *entries: dict[str, Any]) -> TopicMap:
    source = settings(*entries)
    return TopicMap(source.mappings(), units=units)


def test_a_tasmota_reading_in_fahrenheit_becomes_the_sensors_celsius() -> None:
    m = unit_map({"t": "degC", "dp": "°C", "h": "%", "co2": "ppm"},
                 {"preset": "tasmota", "device": "snifferbuddy", "fields": {
                     "SCD30.Temperature": "t", "SCD30.DewPoint": "dp", "SCD30.Humidity": "h",
                     "SCD30.CarbonDioxide": "co2"}})
    got = {s.sensor: s.value for s in m.decode("tele/snifferbuddy/SENSOR", TASMOTA_SCD30_F, NOW)}
    assert got["t"] == pytest.approx((71.8 - 32) * 5 / 9)  # 22.1 °C, not 71.8 "°C"
    assert got["dp"] == pytest.approx((57.9 - 32) * 5 / 9)
    assert (got["h"], got["co2"]) == (61.6, 814.0)  # no unit stated for these: as they come
    assert not m.counters.bad


def test_a_fahrenheit_sensor_keeps_fahrenheit_and_a_sensor_of_another_quantity_is_refused(
        ) -> None:
    m = unit_map({"t": "degF"}, {"preset": "tasmota", "device": "snifferbuddy",
                                 "fields": {"SCD30.Temperature": "t"}})
    assert m.decode("tele/snifferbuddy/SENSOR", TASMOTA_SCD30_F, NOW) == [Sample("t", NOW, 71.8)]
    wrong = unit_map({"t": "ppm"}, {"preset": "tasmota", "device": "snifferbuddy",
                                    "fields": {"SCD30.Temperature": "t"}})
    assert wrong.decode("tele/snifferbuddy/SENSOR", TASMOTA_SCD30_F, NOW) == []
    assert wrong.counters.bad == {"unit_mismatch": 1}


def test_tasmota_pressure_in_mmhg_becomes_hpa_and_hpa_stays() -> None:
    entry = {"preset": "tasmota", "device": "Wetterstation2023",
             "fields": {"BME280.Pressure": "p", "BME280.Temperature": "t"}}
    m = unit_map({"p": "hPa", "t": "degC"}, entry)
    topic = "tele/Wetterstation2023/SENSOR"
    hpa = {s.sensor: s.value for s in m.decode(topic, TASMOTA_BME280_HPA, NOW)}
    assert hpa == {"p": 1018.0, "t": 27.8}
    mmhg = {s.sensor: s.value for s in m.decode(topic, TASMOTA_BME280_MMHG, NOW)}
    assert mmhg["p"] == pytest.approx(763.6 * 1.3332236842)  # 1018.0 hPa
    assert mmhg["p"] == pytest.approx(1018.0, abs=0.05)


def test_shelly_tf_is_converted_to_a_celsius_sensor_and_tc_to_a_fahrenheit_one() -> None:
    m = unit_map({"c": "degC", "f": "degF"}, {
        "preset": "shelly", "device": "shellyplusht-b8d61a8b17cc",
        "fields": {"temperature:0.tF": "c", "temperature:0.tC": "f"}})
    got = {s.sensor: s.value for s in m.decode(
        "shellyplusht-b8d61a8b17cc/status/temperature:0", SHELLY_PLUS_HT_TEMPERATURE, NOW)}
    assert got["c"] == pytest.approx(19.8, abs=0.05)
    assert got["f"] == pytest.approx(67.6, abs=0.05)


def test_a_field_with_its_own_scale_and_offset_is_left_as_written() -> None:
    """A conversion written by hand before this existed is not applied twice."""
    m = unit_map({"c": "degC"}, {
        "preset": "shelly", "device": "ht", "fields": {"temperature:0.tF": {
            "sensor": "c", "scale": 5 / 9, "offset": -32 * 5 / 9}}})
    [sample] = m.decode("ht/status/temperature:0", SHELLY_PLUS_HT_TEMPERATURE, NOW)
    assert sample.value == pytest.approx((67.6 - 32) * 5 / 9)


def test_config_refuses_a_stated_unit_for_a_sensor_of_another_quantity(
        cfg: ConfigSet) -> None:
    spec = cfg.agents["edge-jiufo"]
    units = {s.id: s.unit_of_measure for s in spec.sensors}
    noise = next(s for s, u in units.items() if u == "dBA")
    source = settings({"preset": "shelly", "device": "ht",
                       "fields": {"temperature:0.tF": noise}})
    problems = [reason for _, reason in source.agent_problems(units)]
    assert any("'degF'" in p and "not a temperature unit" in p for p in problems), problems


# --- 5. device names with "/" -----------------------------------------------------------

def test_a_zigbee2mqtt_friendly_name_with_slashes_is_its_topic_levels() -> None:
    """"You can use the / separator in friendly_name ... kitchen/floor_light"
    (https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html)."""
    source = settings({"preset": "zigbee2mqtt", "device": "kitchen/floor_light",
                       "fields": {"temperature": "t"}})
    assert source.topic_filters() == ("zigbee2mqtt/bridge/state",
                                      "zigbee2mqtt/kitchen/floor_light/availability",
                                      "zigbee2mqtt/kitchen/floor_light")
    m = TopicMap(source.mappings(), availability=source.availability())
    assert m.decode("zigbee2mqtt/kitchen/floor_light", b'{"temperature":21.5}', NOW) == [
        Sample("t", NOW, 21.5)]
    m.decode("zigbee2mqtt/kitchen/floor_light/availability", b'{"state":"offline"}', NOW)
    assert m.offline() == {"t"}


# --- 8. nothing lost across an agent restart ---------------------------------------------

async def test_what_devices_publish_at_qos1_while_the_agent_is_down_arrives_after_restart(
        mqtt_url: str) -> None:
    """Shelly Gen2 publishes at QoS 1 ("The supported Quality of service level is 1",
    https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/Mqtt); the agent's
    persistent session makes the broker keep those messages while it restarts (with
    ``persistent_session: false`` this test fails: the three are lost)."""
    run = uuid.uuid4().hex[:8]
    client_id = f"gridcall-local-restart-{run}"
    source_cfg = LocalMqttSettings.model_validate({
        "type": "mqtt", "broker": {"url": mqtt_url}, "client_id": client_id,
        "map": [{"preset": "shelly", "device": f"ht-{run}",
                 "fields": {"temperature:0.tC": "t"}}]})
    first = LocalMqttSource(source_cfg, agent_id="a")
    got: list[Sample] = []
    task = asyncio.create_task(drain(first, got))
    try:
        assert await wait_until(first.connected.is_set)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    try:
        async with mqtt_client(mqtt_url) as device:  # the agent is down meanwhile
            for t in (19.8, 19.9, 20.1):
                await device.publish(f"ht-{run}/status/temperature:0",
                                     b'{"id":0,"tC":%.1f,"tF":0}' % t, qos=1)
        second = LocalMqttSource(source_cfg, agent_id="a")
        task = asyncio.create_task(drain(second, got))
        try:
            assert await wait_until(lambda: len(got) == 3)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert [s.value for s in got] == [19.8, 19.9, 20.1]
    finally:  # leave no session behind on the shared broker
        async with mqtt_client(mqtt_url, identifier=client_id, clean_session=True):
            pass


# --- 6. text and event fields: a value map ------------------------------------------------
# Aqara vibration sensor DJT11LM: action is vibration | tilt | drop
# (https://www.zigbee2mqtt.io/devices/DJT11LM.html); the message zigbee2mqtt/
# VibrationSensor in https://github.com/stas-demydiuk/domoticz-zigbee2mqtt-plugin/issues/305
# (tests/data/device_vectors.yaml has it, and the empty-action message that follows it).
Z2M_DJT11LM_VIBRATION = (b'{"battery":100,"voltage":3015,"linkquality":111,"last_seen":'
                         b'"2020-05-04T12:06:19+02:00","angle":87,"angle_x":-1,"angle_y":87,'
                         b'"angle_z":3,"angle_x_absolute":91,"angle_y_absolute":3,'
                         b'"strength":20,"action":"vibration"}')
# With Home Assistant's legacy action sensor on, Zigbee2MQTT sends an empty action after
# each one ("an empty `action` will be send after every published action",
# zigbee2mqtt settings.schema.json, homeassistant.legacy_action_sensor): the second message
# in https://github.com/stas-demydiuk/domoticz-zigbee2mqtt-plugin/issues/305 , cut here to
# its action field (the vectors file has it whole).
Z2M_ACTION_RESET = b'{"action":""}'


def test_zigbee2mqtt_action_through_a_value_map_and_its_reset_is_no_reading() -> None:
    m = topic_map({"preset": "zigbee2mqtt", "device": "gate", "fields": {
        "action": {"sensor": "gate-vib", "values": {"vibration": 1, "tilt": 2, "drop": 3}},
        "battery": "gate-battery"}})
    got = m.decode("zigbee2mqtt/gate", Z2M_DJT11LM_VIBRATION, NOW)
    assert Sample("gate-vib", NOW, 1.0) in got
    assert Sample("gate-battery", NOW, 100.0) in got
    assert m.decode("zigbee2mqtt/gate", Z2M_ACTION_RESET, NOW) == []
    assert m.decode("zigbee2mqtt/gate", b'{"action":"shake"}', NOW) == []
    assert m.counters.bad == {"unmapped_value": 1}
    assert m.counters.missing_fields == 3  # the reset: action, battery; "shake": battery


def test_esphome_text_and_binary_states_through_a_value_map_from_yaml() -> None:
    """ESPHome publishes a text sensor's state as plain text on
    <node>/text_sensor/<name>/state, a binary sensor's as ON/OFF on
    <node>/binary_sensor/<name>/state (https://esphome.io/components/mqtt.html). The map
    is read from YAML as users write it, where ON/OFF become booleans."""
    entry = yaml.safe_load("""
        preset: esphome
        device: pump-house
        fields:
          text_sensor/pump_status: {sensor: pump, values: {Normal: 0, Dry run: 1, Overload: 2}}
          binary_sensor/float: {sensor: float, values: {ON: 5, OFF: 0}}
    """)
    m = topic_map(entry)
    assert m.decode("pump-house/text_sensor/pump_status/state", b"Dry run", NOW) == [
        Sample("pump", NOW, 1.0)]
    assert m.decode("pump-house/text_sensor/pump_status/state", b"normal", NOW) == [
        Sample("pump", NOW, 0.0)]
    assert m.decode("pump-house/binary_sensor/float/state", b"ON", NOW) == [
        Sample("float", NOW, 5.0)]
    assert m.decode("pump-house/binary_sensor/float/state", b"OFF", NOW) == [
        Sample("float", NOW, 0.0)]
    assert not m.counters.bad



# A text that raises an anomaly event (issue 19, item 5: "or an anomaly event of a given
# kind"): once per episode, not per message. The Aqara vibration sensor's action and its
# reset are the vectors above. Bitron AV2010/24A smoke detector: Zigbee2MQTT exposes
# smoke, battery_low, tamper (booleans) and linkquality
# (https://www.zigbee2mqtt.io/devices/AV2010_24A.html; the same fields in
# docs.rs/zigbee2mqtt_types_vendor_smabit__bitron_video_, struct ZigbeeAv201024a); it
# publishes them as one JSON state message, every report carrying them all.
Z2M_AV2010_SMOKE = b'{"battery_low":false,"linkquality":87,"smoke":true,"tamper":false}'
Z2M_AV2010_CLEAR = b'{"battery_low":false,"linkquality":90,"smoke":false,"tamper":false}'
START = DeviceEvent("out_of_limits", "start")
END = DeviceEvent("out_of_limits", "end")


def test_a_zigbee2mqtt_action_raises_one_event_per_episode() -> None:
    m = topic_map({"preset": "zigbee2mqtt", "device": "gate", "fields": {"action": {
        "sensor": "gate-vib",
        "events": {"vibration": "out_of_limits", "drop": {"kind": "fault",
                                                          "severity": "minor"}}}}})
    vibration = m.decode("zigbee2mqtt/gate", Z2M_DJT11LM_VIBRATION, NOW)
    assert vibration == [Sample("gate-vib", NOW, None, "", START)]  # an event, no reading
    assert m.decode("zigbee2mqtt/gate", Z2M_DJT11LM_VIBRATION, NOW + 1) == []  # same one
    assert m.decode("zigbee2mqtt/gate", Z2M_ACTION_RESET, NOW + 2) == [
        Sample("gate-vib", NOW + 2, None, "", END)]
    assert m.decode("zigbee2mqtt/gate", Z2M_ACTION_RESET, NOW + 3) == []  # nothing under way
    assert m.decode("zigbee2mqtt/gate", Z2M_DJT11LM_VIBRATION, NOW + 4) == [
        Sample("gate-vib", NOW + 4, None, "", START)]
    drop = Z2M_DJT11LM_VIBRATION.replace(b'"vibration"', b'"drop"')
    assert m.decode("zigbee2mqtt/gate", drop, NOW + 5) == [  # another kind: one ends
        Sample("gate-vib", NOW + 5, None, "", END),
        Sample("gate-vib", NOW + 5, None, "", DeviceEvent("fault", "start", "minor"))]
    assert not m.counters.bad


def test_a_smoke_detectors_true_raises_one_event_and_its_false_ends_it() -> None:
    """Mapped in YAML as a user writes it (``true`` is a YAML boolean); with a value map
    too, each report is also a reading."""
    entry = yaml.safe_load("""
        preset: zigbee2mqtt
        device: stair-smoke
        fields:
          smoke: {sensor: smoke-12, values: {true: 1, false: 0}, events: {true: out_of_limits}}
          tamper: {sensor: smoke-12-tamper, events: {true: {kind: fault, severity: minor}}}
    """)
    m = topic_map(entry)
    assert m.decode("zigbee2mqtt/stair-smoke", Z2M_AV2010_CLEAR, NOW) == [
        Sample("smoke-12", NOW, 0.0), Sample("smoke-12-tamper", NOW, 0.0)]
    assert m.decode("zigbee2mqtt/stair-smoke", Z2M_AV2010_SMOKE, NOW + 1) == [
        Sample("smoke-12", NOW + 1, 1.0, "", START), Sample("smoke-12-tamper", NOW + 1, 0.0)]
    assert m.decode("zigbee2mqtt/stair-smoke", Z2M_AV2010_SMOKE, NOW + 2) == [
        Sample("smoke-12", NOW + 2, 1.0), Sample("smoke-12-tamper", NOW + 2, 0.0)]
    assert m.decode("zigbee2mqtt/stair-smoke", Z2M_AV2010_CLEAR, NOW + 3) == [
        Sample("smoke-12", NOW + 3, 0.0, "", END), Sample("smoke-12-tamper", NOW + 3, 0.0)]


def test_an_announced_event_goes_out_through_the_agents_outbox_once_per_episode(
        cfg: ConfigSet) -> None:
    spec = cfg.agents["edge-jiufo"]
    sensor = "jiufo-g2-smoke-1"
    source_cfg = LocalMqttSettings.model_validate({"type": "mqtt", "map": [
        {"preset": "zigbee2mqtt", "device": "stair-smoke",
         "fields": {"smoke": {"sensor": sensor, "events": {"true": "out_of_limits"}}}}]})
    spec = replace(spec, source=source_cfg)
    source = LocalMqttSource(source_cfg, agent_id=spec.id, sensors={s.id for s in spec.sensors})
    agent = EdgeAgent(spec, source)
    for i, payload in enumerate([Z2M_AV2010_SMOKE, Z2M_AV2010_SMOKE, Z2M_AV2010_SMOKE,
                                 Z2M_AV2010_CLEAR, Z2M_AV2010_CLEAR, Z2M_AV2010_SMOKE]):
        for sample in source.map.decode("zigbee2mqtt/stair-smoke", payload, NOW + i):
            agent.ingest(*sample)
    agent.seal()
    held = agent.outbox.all()
    events = [msgspec.json.decode(m.payload, type=AnomalyEvent) for m in held
              if m.priority == Priority.EVENT]
    assert [(e.sensor, e.kind, e.phase, e.severity, e.ts) for e in events] == [
        (sensor, "out_of_limits", "start", "major", NOW),
        (sensor, "out_of_limits", "end", "major", NOW + 3),
        (sensor, "out_of_limits", "start", "major", NOW + 5)]
    assert [e.seq for e in events] == sorted({e.seq for e in events})  # each its own seq
    batches = [msgspec.json.decode(m.payload, type=ReadingBatch) for m in held
               if m.priority == Priority.READINGS]
    # "smoke": true is only an event here; the two falses are readings (0.0)
    assert [(r.ts, r.value) for b in batches for r in b.readings] == [(NOW + 3, 0.0),
                                                                      (NOW + 4, 0.0)]
    assert agent.counters.device_events == 3
    assert "no_value" not in agent.counters.skipped  # an event alone is not a dropout


# --- 7. Shelly Gen2/Gen3 RPC notifications on <id>/events/rpc ---------------------------
# NotifyFullStatus of a Shelly Plus H&T waking up (gist.github.com/NelsonMinar/
# 494a0f53785c20290b395639548349fa, "Status from a Shelly Plus Heat & Temperature sensor
# (via MQTT)"), cut to the components read here.
SHELLY_HT_FULL_STATUS = (
    b'{"src":"shellyplusht-b8d61a8b17cc","dst":"shellyplusht-b8d61a8b17cc/events",'
    b'"method":"NotifyFullStatus","params":{"ts":1680962879.62,"ble":{},'
    b'"cloud":{"connected":false},"devicepower:0":{"id":0,"battery":{"V":0.43,"percent":0},'
    b'"external":{"present":true}},"ht_ui":{},"humidity:0":{"id":0,"rh":42.2},'
    b'"mqtt":{"connected":true},"temperature:0":{"id":0,"tC":19.8,"tF":67.6}}}')
# NotifyStatus carries only what changed: "Some or all unchanged attributes of the status
# object may not be visible" (https://shelly-api-docs.shelly.cloud/gen2/General/
# Notifications, NotifyStatus: params ts and component_type:id objects).
SHELLY_NOTIFY_STATUS_SWITCH = (
    b'{"src":"shellypro4pm-f008d1d8b8b8","dst":"shellypro4pm-f008d1d8b8b8/events",'
    b'"method":"NotifyStatus","params":{"ts":1631186545.04,'
    b'"switch:0":{"id":0,"output":true,"source":"button"}}}')


def test_shelly_rpc_notifications_full_and_partial_with_the_devices_time() -> None:
    source = settings(
        {"preset": "shelly", "via": "rpc", "device": "shellyplusht-b8d61a8b17cc",
         "fields": {"temperature:0.tC": "t", "humidity:0.rh": "h"}},
        {"preset": "shelly", "via": "rpc", "device": "shellypro4pm-f008d1d8b8b8",
         "fields": {"switch:0.output": "on", "switch:0.apower": "w"}})
    assert "shellyplusht-b8d61a8b17cc/events/rpc" in source.topic_filters()
    m = TopicMap(source.mappings(), units={"t": "degC", "h": "%", "on": "", "w": "W"})
    got = m.decode("shellyplusht-b8d61a8b17cc/events/rpc", SHELLY_HT_FULL_STATUS, NOW)
    ts = 1_680_962_879_620_000_000
    assert [(s.sensor, s.value) for s in got] == [("t", 19.8), ("h", 42.2)]
    assert all(abs(s.ts - ts) < 1_000 for s in got)  # the device's ts, not arrival
    got = m.decode("shellypro4pm-f008d1d8b8b8/events/rpc", SHELLY_NOTIFY_STATUS_SWITCH, NOW)
    assert [(s.sensor, s.value) for s in got] == [("on", 1.0)]
    assert m.counters.missing_fields == 1  # apower did not change: not in the notification
    assert not m.counters.bad


def test_via_is_for_the_shelly_preset_only() -> None:
    with pytest.raises(ValueError, match="'via' is for the shelly preset only"):
        settings({"preset": "tasmota", "via": "rpc", "device": "d", "fields": {"x": "s"}})


# --- Tasmota's own FullTopic -------------------------------------------------------------

def test_a_tasmota_full_topic_places_the_prefix_and_the_device_where_the_device_does() -> None:
    """https://tasmota.github.io/docs/MQTT/#fulltopic lists FullTopics such as
    tasmota/%topic%/%prefix%/ and %prefix%/home/cellar/%topic%/; %prefix% is tele for
    telemetry (or topic_prefix), the device's token is the preset's device."""
    cases = [("%prefix%/%topic%/", "tele/cab/SENSOR", "tele/cab/LWT"),
             ("tasmota/%topic%/%prefix%/", "tasmota/cab/tele/SENSOR", "tasmota/cab/tele/LWT"),
             ("%prefix%/home/cellar/%topic%", "tele/home/cellar/cab/SENSOR",
              "tele/home/cellar/cab/LWT"),
             ("probr/1:office:0/%hostname%/%prefix%/", "probr/1:office:0/cab/tele/SENSOR",
              "probr/1:office:0/cab/tele/LWT")]
    for full, sensor_topic, lwt in cases:
        source = settings({"preset": "tasmota", "device": "cab", "full_topic": full,
                           "fields": {"AM2301.Temperature": "t"}})
        assert source.topic_filters() == (lwt, sensor_topic), full


@pytest.mark.parametrize(("entry", "says"), [
    ({"preset": "zigbee2mqtt", "full_topic": "%prefix%/%topic%/"},
     "'full_topic' is for the tasmota preset only"),
    ({"full_topic": "%prefix%/home/"}, "must name the device by one of"),
    ({"full_topic": "%prefix%/%topic%/%hostname%/"}, "(it has %topic%, %hostname%)"),
    ({"full_topic": "%prefix%/%topic%/%room%/"}, "has a token other than %prefix%"),
    ({"full_topic": "+/%prefix%/%topic%/"}, "it has a wildcard"),
])
def test_a_full_topic_that_cannot_be_the_devices_is_refused_saying_why(
        entry: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        settings({"preset": "tasmota", "device": "cab", "fields": {"x": "s"}, **entry})
