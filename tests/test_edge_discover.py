"""``gridcall edge discover``: Home Assistant MQTT discovery → a draft of an agent's
local-MQTT map. The announcements below are the firmwares' own, each cited; the listening
runs against real mosquitto (GRIDCALL_TEST_MQTT_URL).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiomqtt
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gridcall.cli import app
from gridcall.config.local_mqtt import LocalMqttSettings, TopicMapping
from gridcall.edge_agent.discovery import parse, template_path

# Tasmota announcing a DS18B20's Id with the "~" base topic and abbreviated keys: the
# retained homeassistant/sensor/ED76DA_DS18B20-2_Id/config in
# https://github.com/arendst/Tasmota/issues/6447 (keys per
# https://www.home-assistant.io/integrations/mqtt/#using-abbreviations-and-base-topic).
TASMOTA_DS18B20_ID = (
    b'{"name":"nodeMCU Test DS18B20-2 Id","stat_t":"~SENSOR","avty_t":"~LWT",'
    b'"pl_avail":"Online","pl_not_avail":"Offline","uniq_id":"ED76DA_DS18B20-2_Id",'
    b'"device":{"identifiers":["ED76DA"],"connections":[["mac","84:F3:EB:ED:76:DA"]]},'
    b'"~":"DVES_ED76DA/tele/","unit_of_meas":" ","val_tpl":"{{value_json[\'DS18B20-2\'].Id}}"}'
)
# ESPHome, node form homeassistant/sensor/<node>/<object>/config, plain state topic
# (the announcement in https://github.com/home-assistant/core/issues/18240).
ESPHOME_GAS = ('{"unit_of_measurement":"Ω","expire_after":180,"icon":"mdi:gas-cylinder",'
               '"name":"Bedroom Gas","state_topic":"bedroom_environment/sensor/bedroom_gas/'
               'state","availability_topic":"bedroom_environment/status"}').encode()
# Tasmota's energy total, the value two levels deep: line 2 of the Tasmota log in
# https://pastebin.com/XiaKgnUt .
TASMOTA_ENERGY_TOTAL = (
    b'{"name":"plug001 ENERGY Total","stat_t":"tele/plug001/SENSOR","avty_t":"tele/plug001/'
    b'LWT","pl_avail":"Online","pl_not_avail":"Offline","uniq_id":"218FF9_ENERGY_Total",'
    b'"dev":{"ids":["218FF9"]},"unit_of_meas":"kWh","dev_cla":"energy","stat_cla":'
    b'"total_increasing","frc_upd":true,"val_tpl":"{{value_json[\'ENERGY\'][\'Total\']}}"}')


def test_value_templates_become_json_paths_or_are_said_untranslated() -> None:
    assert template_path("{{ value_json.temperature}}") == "temperature"
    assert template_path("{{value_json['DS18S20'].Temperature}}") == "DS18S20.Temperature"
    assert template_path("{{ value_json.x | float | round(1) }}") == "x"
    assert template_path("{{ value_json.a[0].b }}") == "a[0].b"
    assert template_path("{{ 'on' if value_json.x > 3 else 'off' }}") is None


def test_announcements_become_mappings_with_what_they_are() -> None:
    t = parse("homeassistant/sensor/ED76DA_DS18B20-2_Id/config", TASMOTA_DS18B20_ID)
    assert t is not None
    assert (t.state_topic, t.value, t.sensor, t.unit, t.device_class) == (
        "DVES_ED76DA/tele/SENSOR", "DS18B20-2.Id", "ED76DA_DS18B20-2_Id", "", "")
    assert t.text  # its Id is text: no unit, device or state class
    e = parse("homeassistant/sensor/bedroom_environment/bedroom_gas/config", ESPHOME_GAS)
    assert e is not None
    assert (e.state_topic, e.value, e.sensor, e.unit) == (
        "bedroom_environment/sensor/bedroom_gas/state", None, "bedroom_environment-bedroom_gas",
        "Ω")
    o = parse("homeassistant/sensor/218FF9_ENERGY_Total/config", TASMOTA_ENERGY_TOTAL)
    assert o is not None
    assert (o.value, o.unit, o.device_class) == ("ENERGY.Total", "kWh", "energy")
    # a removal (empty retained payload) and a switch are no measurements
    assert parse("homeassistant/sensor/x/config", b"") is None
    assert parse("homeassistant/switch/x/config", b'{"stat_t":"a","cmd_t":"b"}') is None


def test_an_announcement_no_device_sends_is_skipped_and_never_raises() -> None:
    """Nested past the parser's limit, over 64 kiB, not UTF-8, a state topic with a
    wildcard or of another type, a binary sensor whose payload_on is an object: each is
    no mapping (the draft is for people to read, the agent's config then validates it)."""
    topic = "homeassistant/sensor/x/config"
    for payload in (b"[" * 50_000, b'{"a":' * 50_000, b"\xff\xfe{", b"[]", b"42",
                    b'{"stat_t":"' + b"a" * 70_000 + b'"}',
                    b'{"stat_t":"a/+/b"}', b'{"stat_t":"a/#"}', b'{"stat_t":5}'):
        assert parse(topic, payload) is None, payload[:40]
    assert parse("homeassistant/binary_sensor/x/config",
                 b'{"stat_t":"a","pl_on":{"x":1},"pl_off":"0"}') is None


async def announce(url: str, messages: list[tuple[str, bytes]]) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port)) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1, retain=True)


def test_discover_listens_and_writes_a_draft_agents_yaml_loads(
        mqtt_url: str, tmp_path: Path) -> None:
    prefix = f"ha-{uuid.uuid4().hex[:8]}"  # our own prefix on the shared broker
    messages = [(f"{prefix}/sensor/218FF9_ENERGY_Total/config", TASMOTA_ENERGY_TOTAL),
                (f"{prefix}/sensor/bedroom_environment/bedroom_gas/config", ESPHOME_GAS),
                (f"{prefix}/sensor/ED76DA_DS18B20-2_Id/config", TASMOTA_DS18B20_ID),
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
    # the DS18B20's Id is text: a commented hint, not a mapping
    assert '  # - {topic: "DVES_ED76DA/tele/SENSOR", sensor: "ED76DA_DS18B20-2_Id", ' in text
    source = LocalMqttSettings.model_validate(yaml.safe_load(text)["source"])
    # the availability each announced: Tasmota's LWT with its payloads, ESPHome's status
    assert source.availability() == {
        "tele/plug001/LWT": ("218FF9_ENERGY_Total",),
        "bedroom_environment/status": ("bedroom_environment-bedroom_gas",)}
    assert source.availability_payloads() == {"tele/plug001/LWT": ("Online", "Offline")}
    assert {(m.topic, m.value, m.sensor) for m in source.mappings()} == {
        ("tele/plug001/SENSOR", "ENERGY.Total", "218FF9_ENERGY_Total"),
        ("bedroom_environment/sensor/bedroom_gas/state", None,
         "bedroom_environment-bedroom_gas")}


KEYS = ["~", "stat_t", "state_topic", "val_tpl", "value_template", "unit_of_meas",
        "unit_of_measurement", "dev_cla", "device_class", "uniq_id", "unique_id", "name",
        "dev", "device", "pl_on", "pl_off", "payload_on", "payload_off", "obj_id",
        "avty_t", "availability_topic", "pl_avail", "pl_not_avail", "payload_available",
        "payload_not_available", "avty", "availability"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["~/state", "a/+/b", "{{ value_json.t }}", "{{ value_json['a'].b }}",
                       "~LWT", "online"])
    | st.lists(st.fixed_dictionaries({}, optional={
        k: st.none() | st.booleans() | st.text(max_size=8) | st.sampled_from(["~/avty", "a/#"])
        for k in ("t", "topic", "pl_avail", "payload_not_available", "val_tpl")}),
        max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)


announcements = st.builds(
    lambda doc, state: doc if state is None else {**doc, "stat_t": state},
    st.fixed_dictionaries({}, optional=dict.fromkeys(KEYS, json_values)),
    st.none() | st.text(min_size=1, max_size=20)
    | st.sampled_from(["~/state", "~SENSOR", "a/+/b", "a/#"]))


@settings(max_examples=300, deadline=None)
@given(doc=announcements,
       component=st.sampled_from(["sensor", "binary_sensor", "switch"]),
       node=st.booleans())
def test_any_announcement_parses_to_a_mapping_the_config_takes_or_to_nothing(
        doc: dict[str, object], component: str, node: bool) -> None:
    """Whatever keys and types an announcement carries, parse raises nothing, and what it
    drafts is a mapping agents.yaml accepts as it stands."""
    topic = f"homeassistant/{component}/{'node/' if node else ''}obj/config"
    found = parse(topic, json.dumps(doc).encode())
    if found is None:
        return
    entry = {"topic": found.state_topic, "sensor": found.sensor, "value": found.value,
             "values": dict(found.values) or None,
             "availability": [{"topic": t, "online": on, "offline": off}
                              for t, on, off in found.availability]}
    mapping = TopicMapping.model_validate(entry)
    assert mapping.topic == found.state_topic
    assert [a.topic for a in mapping.availability] == [a[0] for a in found.availability]


def test_a_text_sensor_is_a_commented_hint_in_the_draft_never_a_mapping() -> None:
    """Tasmota's DS18B20 Id (its 1-Wire address, text) beside its energy total: the draft
    maps the total and gives the Id as a comment; alone, the Id leaves the map empty."""
    from gridcall.edge_agent.discovery import draft

    ident = parse("homeassistant/sensor/ED76DA_DS18B20-2_Id/config", TASMOTA_DS18B20_ID)
    total = parse("homeassistant/sensor/218FF9_ENERGY_Total/config", TASMOTA_ENERGY_TOTAL)
    assert ident is not None
    assert total is not None
    both = yaml.safe_load(draft([ident, total], "mqtt://127.0.0.1:1883"))
    assert both["source"]["map"] == [{
        "topic": "tele/plug001/SENSOR", "sensor": "218FF9_ENERGY_Total", "value": "ENERGY.Total",
        "availability": [{"topic": "tele/plug001/LWT", "online": "Online", "offline": "Offline"}]}]
    alone = draft([ident], "mqtt://127.0.0.1:1883")
    assert yaml.safe_load(alone)["source"]["map"] == []
    assert "only text sensors announced" in alone
    assert "DS18B20-2.Id" in alone
    # nothing announced at all: the draft still loads (it did not: `[]` was at map's indent)
    assert yaml.safe_load(draft([], "mqtt://127.0.0.1:1883"))["source"]["map"] == []
