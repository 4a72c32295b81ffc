"""``gridcall edge discover``: Home Assistant MQTT discovery → a draft of an agent's
local-MQTT map. The announcements below are the firmwares' own, each cited; the listening
runs against real mosquitto (GRIDCALL_TEST_MQTT_URL).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiomqtt
import yaml
from typer.testing import CliRunner

from gridcall.cli import app
from gridcall.config.local_mqtt import LocalMqttSettings
from gridcall.edge_agent.discovery import parse, template_path

# Tasmota 8.x announcing a DS18S20 with the "~" base topic and abbreviated keys (a
# device's retained homeassistant/sensor/<id>/config, quoted in a public log of
# tasmota discovery; keys per https://www.home-assistant.io/integrations/mqtt/ ,
# "Using abbreviations and base topic").
TASMOTA_DS18S20 = (
    '{"name":"gen-01 DS18S20 Temperature","stat_t":"~SENSOR","avty_t":"~LWT",'
    '"pl_avail":"Online","pl_not_avail":"Offline","uniq_id":"295AB4_DS18S20_Temperature",'
    '"device":{"identifiers":["295AB4"],"connections":[["mac","3C:71:BF:29:5A:B4"]]},'
    '"~":"gen-01/tele/","unit_of_meas":"°C","val_tpl":"{{value_json[\'DS18S20\'].Temperature}}",'
    '"dev_cla":"temperature"}').encode()
# ESPHome, node form homeassistant/sensor/<node>/<object>/config, plain state topic
# (the announcement in https://github.com/home-assistant/core/issues/18240).
ESPHOME_GAS = ('{"unit_of_measurement":"Ω","expire_after":180,"icon":"mdi:gas-cylinder",'
               '"name":"Bedroom Gas","state_topic":"bedroom_environment/sensor/bedroom_gas/'
               'state","availability_topic":"bedroom_environment/status"}').encode()
# Tasmota's OpenTherm sensor, value three levels deep (a device's announcement quoted in a
# public Tasmota OpenTherm project).
TASMOTA_OPENTHERM = (
    b'{"name":"Opentherm OPENTHERM OT10 lo","stat_t":"tele/tasmota_BB050B/SENSOR",'
    b'"avty_t":"tele/tasmota_BB050B/LWT","pl_avail":"Online","pl_not_avail":"Offline",'
    b'"uniq_id":"BB050B_OPENTHERM_OT10_lo","dev":{"ids":["BB050B"]},"unit_of_meas":" ",'
    b'"ic":"mdi:eye","frc_upd":true,"val_tpl":"{{value_json[\'OPENTHERM\'][\'OT10\'][\'lo\']}}"}')


def test_value_templates_become_json_paths_or_are_said_untranslated() -> None:
    assert template_path("{{ value_json.temperature}}") == "temperature"
    assert template_path("{{value_json['DS18S20'].Temperature}}") == "DS18S20.Temperature"
    assert template_path("{{ value_json.x | float | round(1) }}") == "x"
    assert template_path("{{ value_json.a[0].b }}") == "a[0].b"
    assert template_path("{{ 'on' if value_json.x > 3 else 'off' }}") is None


def test_announcements_become_mappings_with_what_they_are() -> None:
    t = parse("homeassistant/sensor/295AB4_DS18S20_Temperature/config", TASMOTA_DS18S20)
    assert t is not None
    assert (t.state_topic, t.value, t.sensor, t.unit, t.device_class) == (
        "gen-01/tele/SENSOR", "DS18S20.Temperature", "295AB4_DS18S20_Temperature", "°C",
        "temperature")
    e = parse("homeassistant/sensor/bedroom_environment/bedroom_gas/config", ESPHOME_GAS)
    assert e is not None
    assert (e.state_topic, e.value, e.sensor, e.unit) == (
        "bedroom_environment/sensor/bedroom_gas/state", None, "bedroom_environment-bedroom_gas",
        "Ω")
    o = parse("homeassistant/sensor/BB050B_OPENTHERM_OT10_lo/config", TASMOTA_OPENTHERM)
    assert o is not None
    assert o.value == "OPENTHERM.OT10.lo"
    # a removal (empty retained payload) and a switch are no measurements
    assert parse("homeassistant/sensor/x/config", b"") is None
    assert parse("homeassistant/switch/x/config", b'{"stat_t":"a","cmd_t":"b"}') is None


async def announce(url: str, messages: list[tuple[str, bytes]]) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port)) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1, retain=True)


def test_discover_listens_and_writes_a_draft_agents_yaml_loads(
        mqtt_url: str, tmp_path: Path) -> None:
    prefix = f"ha-{uuid.uuid4().hex[:8]}"  # our own prefix on the shared broker
    messages = [(f"{prefix}/sensor/295AB4_DS18S20_Temperature/config", TASMOTA_DS18S20),
                (f"{prefix}/sensor/bedroom_environment/bedroom_gas/config", ESPHOME_GAS),
                (f"{prefix}/switch/relay/config", b'{"stat_t":"a","cmd_t":"b"}')]
    asyncio.run(announce(mqtt_url, messages))
    draft = tmp_path / "draft.yaml"
    try:
        result = CliRunner().invoke(app, ["edge", "discover", "--broker", mqtt_url,
                                          "--listen", "1", "--prefix", prefix, "-o", str(draft)])
    finally:
        asyncio.run(announce(mqtt_url, [(t, b"") for t, _ in messages]))
    assert result.exit_code == 0, result.output
    text = draft.read_text(encoding="utf-8")
    assert "# Bedroom Gas; unit Ω" in text
    source = LocalMqttSettings.model_validate(yaml.safe_load(text)["source"])
    assert {(m.topic, m.value, m.sensor) for m in source.mappings()} == {
        ("gen-01/tele/SENSOR", "DS18S20.Temperature", "295AB4_DS18S20_Temperature"),
        ("bedroom_environment/sensor/bedroom_gas/state", None,
         "bedroom_environment-bedroom_gas")}
