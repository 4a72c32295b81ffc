"""Home Assistant MQTT discovery → a draft of an agent's local-MQTT ``map``.

Firmware that speaks Home Assistant discovery (Tasmota, ESPHome, Zigbee2MQTT, Shelly...)
announces each of its sensors, retained, on ``<prefix>/<component>/<object_id>/config`` or
the node form ``<prefix>/<component>/<node_id>/<object_id>/config``: the state topic, a
value template, the unit, the topics on which the device says it is online.
``gridcall edge discover`` listens there for a while and writes
these as plain mappings, so a technician renames the sensors to the district's ids
instead of reading topics off ``mosquitto_sub``. Pure: (topic, payload) in, entries and
YAML text out; the listening is in the CLI.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gridcall.config.base import ID_PATTERN

MAX_CONFIG = 64 * 1024
"""The largest discovery config read (64 kiB); a Zigbee2MQTT sensor's is ~1 kB."""
COMPONENTS = ("sensor", "binary_sensor")
"""Discovery components that are measurements; others (switch, light...) are skipped."""

# Home Assistant's abbreviations of discovery keys (those read here).
_ABBREVIATIONS = {
    "stat_t": "state_topic", "val_tpl": "value_template", "unit_of_meas": "unit_of_measurement",
    "dev_cla": "device_class", "uniq_id": "unique_id", "avty_t": "availability_topic",
    "pl_on": "payload_on", "pl_off": "payload_off", "dev": "device", "obj_id": "object_id",
    "stat_cla": "state_class", "avty": "availability", "avty_mode": "availability_mode",
    "pl_avail": "payload_available", "pl_not_avail": "payload_not_available",
    "t": "topic",
}
_TEMPLATE = re.compile(
    r"^\{\{\s*value_json((?:\.[A-Za-z_][\w-]*|\[\s*'[^']+'\s*\]|\[\s*\"[^\"]+\"\s*\]|\[\d+\])+)"
    r"\s*(?:\|\s*(?:float|int|round(?:\(\s*\d*\s*\))?|default\([^)]*\))\s*)*\}\}$")
_PART = re.compile(r"\.([A-Za-z_][\w-]*)|\[\s*'([^']+)'\s*\]|\[\s*\"([^\"]+)\"\s*\]|\[(\d+)\]")
_NOT_ID = re.compile(r"[^A-Za-z0-9_.-]+")
_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Discovered:
    """One announced measurement, as a plain mapping's parts."""

    config_topic: str
    component: str
    state_topic: str
    value: str | None
    """The JSON path the value template reads; None for a plain payload."""
    sensor: str
    """A suggested sensor id (from unique_id or object id): rename to the district's."""
    name: str = ""
    unit: str = ""
    device_class: str = ""
    values: tuple[tuple[str, float], ...] = ()
    """A binary sensor's payload_on/payload_off as a value map, when not ON/OFF."""
    note: str = ""
    """Why the draft needs a look (a template it could not translate...)."""
    availability: tuple[tuple[str, str | None, str | None], ...] = ()
    """The announced availability topics, each with the device's own (online, offline)
    payloads when it names them: a plain mapping's ``availability``."""
    text: bool = False
    """A sensor announced with no unit, device class or state class: Home Assistant
    keeps its state as text (Tasmota's DS18B20 ``Id``, a Zigbee2MQTT ``action``), so it
    is no numeric reading; the draft leaves it out, as a commented hint (a person gives it
    a value map or ``events`` if it should be read)."""


def _expand(doc: dict[str, Any]) -> dict[str, Any]:
    out = {_ABBREVIATIONS.get(k, k): v for k, v in doc.items()}
    base = out.get("~")
    if isinstance(base, str):
        for k, v in list(out.items()):
            if k.endswith("_topic") and isinstance(v, str):
                if v.startswith("~"):
                    out[k] = base + v[1:]
                elif v.endswith("~"):
                    out[k] = v[:-1] + base
    return out


def _availability(d: dict[str, Any]) -> tuple[tuple[tuple[str, str | None, str | None], ...],
                                               str]:
    """The announced availability: ``availability_topic`` with ``payload_available`` /
    ``payload_not_available``, and each entry of the ``availability`` list with its own;
    an entry whose topic is no topic name is left out. The second part is a note when an
    entry's ``value_template`` reads other than ``value_json.state`` (which the agent
    reads itself)."""
    entries: list[dict[str, Any]] = []
    if "availability_topic" in d:
        entries.append({"topic": d["availability_topic"],
                        **{k: d[k] for k in ("payload_available", "payload_not_available")
                           if k in d}})
    listed = d.get("availability")
    base = d.get("~")
    for raw in listed if isinstance(listed, list) else []:
        if isinstance(raw, dict):
            e = _expand(raw)
            topic = e.get("topic")
            if isinstance(base, str) and isinstance(topic, str):
                e["topic"] = (base + topic[1:] if topic.startswith("~")
                              else topic[:-1] + base if topic.endswith("~") else topic)
            entries.append(e)
    out: dict[str, tuple[str, str | None, str | None]] = {}
    note = ""
    for e in entries:
        topic = e.get("topic")
        if not isinstance(topic, str) or not _topic_name(topic) or topic in out:
            continue
        online, offline = (_payload(e.get(k)) for k in ("payload_available",
                                                        "payload_not_available"))
        if online is not None and online == offline:
            online = offline = None  # no device says both; let the agent's words decide
        out[topic] = (topic, online, offline)
        template = e.get("value_template")
        if (isinstance(template, str) and template.strip()
                and template_path(template) != "state"):
            note = f"availability value_template not translated: {template.strip()[:60]}"
    return tuple(out.values()), note


def _payload(value: object) -> str | None:
    """An announced availability payload as the text the device sends; None when it is
    none the agent could match (not a scalar, empty, over 256 characters)."""
    if not isinstance(value, str | int | float | bool):
        return None
    text = _word(value).strip()
    return text if 0 < len(text) <= 256 else None


def _word(payload: object) -> str:
    """A payload_on/off as the value map's key: JSON booleans as ``true``/``false``."""
    return ("true" if payload else "false") if isinstance(payload, bool) else str(payload)


def _topic_name(topic: str) -> bool:
    """A topic a device publishes to: non-empty, no wildcard, no NUL, within MQTT's
    65,535 bytes (a state topic with ``+`` or ``#`` is no topic a value arrives on)."""
    return (bool(topic) and not any(c in topic for c in "+#\x00")
            and len(topic.encode()) <= 65_535)


def template_path(template: str) -> str | None:
    """``{{ value_json.temperature }}``, ``{{value_json['AM2301']['Temperature']}}``,
    ``{{ value_json.x | float | round(1) }}`` → ``temperature``, ``AM2301.Temperature``,
    ``x``; None for any other template."""
    m = _TEMPLATE.match(template.strip())
    if m is None:
        return None
    parts: list[str] = []
    for dot, single, double, index in _PART.findall(m.group(1)):
        key = dot or single or double
        if key:
            if any(c in key for c in ".[]"):
                return None  # a key our JSON paths cannot spell
            parts.append(("." if parts else "") + key)
        else:
            parts.append(f"[{index}]")
    return "".join(parts)


def suggest_id(*candidates: str) -> str:
    for c in candidates:
        sid = _NOT_ID.sub("-", c).strip("-._")[:64]
        if sid and _ID.match(sid):
            return sid
    return "sensor"


def parse(topic: str, payload: bytes, prefix: str = "homeassistant") -> Discovered | None:
    """A discovery message → what it announces; None for a removal (empty payload), a
    component that is no measurement, or a payload that is not a discovery config."""
    levels = topic.split("/")
    if levels[0] != prefix or levels[-1] != "config" or len(levels) not in (4, 5):
        return None
    component, object_id = levels[1], levels[-2]
    if component not in COMPONENTS or not payload.strip():
        return None
    if len(payload) > MAX_CONFIG:
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(doc, dict):
        return None
    d = _expand(doc)
    state = d.get("state_topic")
    if not isinstance(state, str) or not _topic_name(state):
        return None
    template = d.get("value_template")
    value: str | None = None
    note = ""
    if isinstance(template, str) and template.strip():
        value = template_path(template)
        if value is None:
            note = f"value_template not translated: {template.strip()[:80]}"
    values: tuple[tuple[str, float], ...] = ()
    if component == "binary_sensor":
        on, off = d.get("payload_on", "ON"), d.get("payload_off", "OFF")
        # Zigbee2MQTT announces JSON booleans (payload_on: true), which the agent reads
        # as 1/0 without a value map, as it reads ON/OFF
        if (on, off) not in (("ON", "OFF"), (True, False)):
            if not all(isinstance(x, str | int | float) for x in (on, off)):
                return None
            values = ((_word(on), 1.0), (_word(off), 0.0))
    device = d.get("device")
    device_name = device.get("name", "") if isinstance(device, dict) else ""
    name = str(d.get("name") or "")
    label = name if not device_name or str(device_name) in name else f"{device_name} {name}"
    node = levels[2] if len(levels) == 5 else ""
    availability, availability_note = _availability(d)
    note = "; ".join(x for x in (note, availability_note) if x)
    unit = str(d.get("unit_of_measurement") or "").strip()
    text = component == "sensor" and not (unit or d.get("device_class")
                                          or d.get("state_class"))
    return Discovered(
        config_topic=topic, component=component, state_topic=state, value=value,
        sensor=suggest_id(str(d.get("unique_id") or ""), f"{node}-{object_id}" if node
                          else object_id),
        name=label.strip(),
        unit=unit, device_class=str(d.get("device_class") or ""), values=values, note=note,
        availability=availability, text=text)


def draft(found: list[Discovered], broker_url: str) -> str:
    """The YAML of an agent ``source`` reading what was found, one mapping a line, each
    with a comment saying what it is; sensors sorted by state topic. A text sensor
    (:attr:`Discovered.text`) is a commented line: no number comes of it as it stands."""
    lines = [
        "# gridcall edge discover: a draft from Home Assistant MQTT discovery.",
        "# Rename each sensor to its id in sensors.yaml, delete what this agent should not",
        "# read, and put this under the agent in agents.yaml.",
        "source:",
        "  type: mqtt",
        f"  broker: {{url: {json.dumps(broker_url)}}}",
        "  map:",
    ]
    if not any(not d.text for d in found):
        # deeper than `map:` (at its indentation, `[]` would be no YAML at all)
        lines.append("    []  # nothing announced: is discovery on in the devices' firmware?"
                     if not found else "    []  # only text sensors announced (below)")
    for d in sorted(found, key=lambda d: (d.state_topic, d.value or "", d.sensor)):
        entry = {"topic": d.state_topic, "sensor": d.sensor}
        if d.value is not None:
            entry["value"] = d.value
        text = ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in entry.items())
        if d.values:
            text += ", values: {" + ", ".join(f"{json.dumps(k)}: {v:g}" for k, v in d.values) + "}"
        if d.availability:
            text += ", availability: [" + ", ".join(
                "{" + ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in
                                (("topic", t), ("online", on), ("offline", off))
                                if v is not None) + "}"
                for t, on, off in d.availability) + "]"
        hint = ("text, no number (no unit, device or state class): map it with values or "
                "events to read it" if d.text else "")
        about = "; ".join(x for x in (d.name, d.unit and f"unit {d.unit}", d.device_class,
                                      d.note, hint) if x)
        line = f"- {{{text}}}  # {about}" if about else f"- {{{text}}}"
        lines.append(f"  # {line}" if d.text else f"  {line}")
    return "\n".join(lines) + "\n"
