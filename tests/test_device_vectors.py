"""The devices' own payloads, from public docs and issue threads (tests/data/
device_vectors.yaml), through the local-MQTT presets and ``gridcall edge discover``: each
comes out as its source says, or is refused for a counted reason; none is mislabelled.

Every vector names its source precisely (a doc section's anchor, an issue or pull-request
thread, or a file at a commit), and a test holds the file to that.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridcall.config.local_mqtt import LocalMqttSettings, TopicMapping
from gridcall.edge_agent.discovery import Discovered, parse
from gridcall.edge_agent.local_mqtt import TopicMap
from gridcall.edge_agent.sources import availability_of

NOW = 1_700_000_000_000_000_000
VECTORS: dict[str, list[dict[str, Any]]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "device_vectors.yaml").read_text(encoding="utf-8"))
MQTT = VECTORS["mqtt"]
DISCOVERY = VECTORS["discovery"]
MESSAGES = [v for v in MQTT if "topic" in v]
AVAILABILITY = [v for v in MQTT if "availability" in v]

PRECISE = re.compile(
    r"^https://("
    r"[^#\s]+#[\w-]+"                                     # a page's section
    r"|github\.com/[\w.-]+/[\w.-]+/(issues|pull)/\d+"      # an issue or pull-request thread
    r"|github\.com/[\w.-]+/[\w.-]+/blob/[0-9a-f]{40}/\S+"  # a file at a commit
    r"|pastebin\.com/\w+"                                  # a paste (one text, by its id)
    r")$")


def ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["id"] for v in vectors]


def test_every_vector_names_its_source_precisely_and_once() -> None:
    for v in MQTT + DISCOVERY:
        assert PRECISE.match(v["source"]), (v["id"], v["source"])
    names = ids(MQTT) + ids(DISCOVERY)
    assert len(names) == len(set(names))


def test_every_mqtt_vector_checks_a_message_or_a_sequence_of_availability() -> None:
    for v in MQTT:
        assert "topic" in v or v.get("availability"), v["id"]


def close(got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is want
    return got == pytest.approx(want, abs=1e-3)


@pytest.mark.parametrize("v", MESSAGES, ids=ids(MESSAGES))
def test_a_devices_payload_comes_out_as_its_source_says(v: dict[str, Any]) -> None:
    source = LocalMqttSettings.model_validate({"type": "mqtt", "map": [v["map"]]})
    m = TopicMap(source.mappings(), units=v.get("units"),
                 availability=source.availability())
    got = m.decode(v["topic"], v["payload"].encode(), NOW)
    values = {s.sensor: s.value for s in got}
    want: dict[str, float | None] = v["expect"]
    assert sorted(values) == sorted(want), values
    wrong = {k: (values[k], want[k]) for k in want if not close(values[k], want[k])}
    assert not wrong
    assert dict(m.counters.bad) == v.get("bad", {})
    assert m.counters.missing_fields == v.get("missing", 0)
    stamped = round(v["ts"] * 1e9) if "ts" in v else NOW
    assert all(abs(s.ts - stamped) < 1_000 for s in got)
    assert all(s.event is None for s in got)


@pytest.mark.parametrize("v", AVAILABILITY, ids=ids(AVAILABILITY))
def test_a_devices_availability_marks_its_sensors_offline_at_once_and_ok_again(
        v: dict[str, Any]) -> None:
    """Each step is one availability message as the source prints it; after it, the
    entry's sensors are offline (``online: false``) or not, as the agent's status reads
    them (:func:`availability_of`), stamped with that message's arrival when it changed
    their state; availability is no reading, and none is refused."""
    source = LocalMqttSettings.model_validate({"type": "mqtt", "map": [v["map"]]})
    heard = source.availability()
    sensors = frozenset(s for ss in heard.values() for s in ss)
    assert sensors, "the entry listens to no availability topic"
    m = TopicMap(source.mappings(), units=v.get("units"), availability=heard,
                 availability_payloads=source.availability_payloads())
    was = True
    for n, step in enumerate(v["availability"], start=1):
        assert step["topic"] in heard, (n, step["topic"], sorted(heard))
        assert m.decode(step["topic"], step["payload"].encode(), NOW + n) == []
        online: bool = step["online"]
        assert m.offline() == (frozenset() if online else sensors), (n, step)
        said = availability_of(m)
        assert {s: said.get(s, (True, NOW))[0] for s in sensors} == dict.fromkeys(
            sensors, online), (n, step)
        if online != was:
            assert {said[s] for s in sensors} == {(online, NOW + n)}, (n, step)
        was = online
    assert m.counters.availability_messages == len(v["availability"])
    assert not m.counters.bad


@pytest.mark.parametrize("v", DISCOVERY, ids=ids(DISCOVERY))
def test_an_announcement_drafts_the_mapping_that_reads_its_state(v: dict[str, Any]) -> None:
    found = parse(v["config_topic"], v["payload"].encode())
    want = v["expect"]
    if want is None:
        assert found is None
        return
    assert found is not None
    assert (found.state_topic, found.value, found.sensor, found.unit, found.device_class) == (
        want["state_topic"], want["value"], want["sensor"], want["unit"], want["device_class"])
    assert found.text == want.get("text", False)
    assert [list(a) for a in found.availability] == want.get("availability", [])
    if found.availability:
        offline_and_back(found)
    if "values" in want:
        assert [list(p) for p in found.values] == want["values"]
    assert found.note.startswith(want.get("note", "")), found.note
    if "note" not in want:
        assert not found.note
    if "state" in v:  # the draft's mapping, as agents.yaml would hold it, reads the state
        mapping = TopicMapping.model_validate(entry(found))
        m = TopicMap([mapping])
        [sample] = m.decode(found.state_topic, v["state"].encode(), NOW)
        assert close(sample.value, v["reads"])
        assert not m.counters.bad


def entry(found: Discovered) -> dict[str, Any]:
    """The draft's mapping of ``found``, as agents.yaml holds it."""
    return {"topic": found.state_topic, "sensor": found.sensor, "value": found.value,
            "values": dict(found.values) or None,
            "availability": [{"topic": t, "online": on, "offline": off}
                             for t, on, off in found.availability]}


def offline_and_back(found: Discovered) -> None:
    """Each availability topic the draft listens to takes the device down and up again:
    with the payloads the announcement names, or Home Assistant's defaults
    ``offline``/``online`` (https://www.home-assistant.io/integrations/sensor.mqtt/,
    payload_available / payload_not_available) where it names none."""
    source = LocalMqttSettings.model_validate({"type": "mqtt", "map": [entry(found)]})
    assert set(source.topic_filters()) == {found.state_topic, *(a[0] for a in found.availability)}
    m = TopicMap(source.mappings(), availability=source.availability(),
                 availability_payloads=source.availability_payloads())
    for topic, online, offline in found.availability:
        assert m.decode(topic, (offline or "offline").encode(), NOW) == []
        assert m.offline() == {found.sensor}
        assert m.decode(topic, (online or "online").encode(), NOW + 1) == []
        assert m.offline() == frozenset()
    assert not m.counters.bad
