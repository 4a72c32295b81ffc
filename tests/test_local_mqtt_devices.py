"""Local-MQTT presets against payloads the devices really publish (issue 19, round two).

Every vector cites where its shape comes from; none is made up. The pure decoding is
tested directly; the availability, session and discovery behaviour against real mosquitto
(GRIDCALL_TEST_MQTT_URL), as the other local-MQTT tests.
"""

from __future__ import annotations

from typing import Any

import pytest

from gridcall.config.local_mqtt import LocalMqttSettings
from gridcall.edge_agent.local_mqtt import TopicMap
from gridcall.edge_agent.sources import Sample

NOW = 1_700_000_000_000_000_000

# ESPHome publishes "nan" on a sensor's state topic when it has no state: the payload
# b'nan' on bedroom_environment/sensor/bedroom_gas/state in
# https://github.com/home-assistant/core/issues/18240 ; since ESPHome 2024.12 it publishes
# "None" instead (https://github.com/esphome/esphome/pull/7768, "Publishing 'None' instead
# of 'NaN' values for sensors in MQTT").
ESPHOME_NAN = b"nan"
ESPHOME_NONE = b"None"
# Zigbee2MQTT publishes only what the device reported; a message from the Aqara door
# sensor without `contact` (https://www.zigbee2mqtt.io/devices/MCCGQ11LM.html exposes
# battery, voltage, device_temperature, power_outage_count, contact; a periodic battery
# report carries the others only).
Z2M_CONTACT_BATTERY_REPORT = (b'{"battery":100,"device_temperature":25,"linkquality":120,'
                              b'"power_outage_count":3,"voltage":3005}')


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
