"""Config for an agent whose sensors publish on a local MQTT broker (on the device or the LAN).

An agent's ``source`` may be ``{type: mqtt, broker: {...}, map: [...]}``. Each entry of
``map`` is either a plain mapping (a topic filter, a JSON path to the value, a sensor) or a
**preset** for common firmware, which is sugar for plain mappings::

    source:
      type: mqtt
      broker: {url: mqtt://127.0.0.1:1883}
      map:
      - {preset: tasmota, device: cabinet-3, fields: {DS18B20.Temperature: water-temp-07}}
      - {preset: zigbee2mqtt, device: kitchen-smoke, fields: {smoke: smoke-12}}
      - {topic: "flood/+/level", value: level.cm, sensor: "flood-{1}", scale: 0.1}

Presets (the firmware's default topic layout; ``topic_prefix`` overrides its first part;
``device`` may hold ``/``, as Zigbee2MQTT friendly names like ``kitchen/floor_light`` do):

- ``tasmota``: ``tele/<device>/SENSOR``, JSON; fields are paths like ``DS18B20.Temperature``
  or ``AM2301.Humidity`` (an array element: ``"ENERGY.Total[1]"``, quoted in a YAML flow
  mapping). A device with its own FullTopic gives it as ``full_topic``
  (``%topic%/%prefix%/``, ``lights/%prefix%/%topic%/``...).
- ``zigbee2mqtt``: ``zigbee2mqtt/<friendly name>``, JSON; fields like ``temperature``,
  ``smoke``, ``contact`` (Zigbee2MQTT: ``true`` = closed), ``water_leak``.
- ``esphome``: ``<node>/sensor/<name>/state``, a plain number (``nan`` or ``None``, a gap,
  when the sensor has none); fields are ``<name>`` or ``<component>/<name>``
  (``binary_sensor/door``: ON/OFF).
- ``shelly`` (Gen2/Gen3): fields are ``<component>.<path>``, e.g. ``temperature:0.tC``,
  ``switch:0.apower``, read from ``<device id>/status/<component>`` (the component's
  status JSON, with "generic status update over MQTT" on) or, with ``via: rpc``, from the
  RPC notifications ``NotifyStatus``/``NotifyFullStatus`` on ``<device id>/events/rpc``
  (on by default), stamped with their ``ts``.
- ``shelly-gen1``: ``shellies/<device id>/<field>``, plain values; fields like
  ``sensor/temperature``, ``sensor/flood`` (true/false), ``relay/0/power``.

Booleans map to 1 (true, ON, open) and 0 (false, OFF, closed); ``invert`` swaps them.
Text and event fields take a value map: ``{sensor: s, values: {vibration: 1, tilt: 2}}``
(Zigbee2MQTT ``action``), ESPHome ``text_sensor/<name>`` or ``binary_sensor/<name>``.
A text may raise an anomaly event instead of (or beside) a number:
``{sensor: s, events: {vibration: out_of_limits, drop: {kind: fault, severity: minor}}}``,
or ``events: {true: out_of_limits}`` for a smoke detector's ``"smoke": true``. The event
starts when the text comes (once: the same text again, in later messages, is the same
episode) and ends at the next value that is not that text (``"smoke": false``, another
action, Zigbee2MQTT's empty action reset). A text that is only in ``events`` is no reading.
On a field with ``values`` or ``events`` a JSON null (Zigbee2MQTT's ``"action": null``) is
such a reset too, no dropout; ``unknown``/``nan`` there are a gap unless the map names them.

**Units.** Where the firmware says which unit a value is in (Tasmota's ``TempUnit`` /
``PressureUnit`` beside its readings, Shelly's ``tC``/``tF``), the value is converted to
the sensor's configured unit (°F → °C, mmHg → hPa...), or refused and counted as
``unit_mismatch`` when the sensor's unit is not one of that quantity; a field with its own
``scale``/``offset`` is left as written. Plain mappings may say it with ``source_unit``
or ``source_unit_path``.

**Availability.** Each preset also listens to its firmware's availability topic and marks
the entry's sensors ``offline`` at once when the device (or its bridge) says so, ``ok``
again when it says online (``availability: false`` turns this off):

- ``tasmota``: ``tele/<device>/LWT``, ``Online`` / ``Offline``;
- ``zigbee2mqtt``: ``zigbee2mqtt/bridge/state`` (the bridge: every Zigbee2MQTT sensor
  behind it) and ``zigbee2mqtt/<device>/availability``, each either legacy plain text
  ``online``/``offline`` or JSON ``{"state":"online"}``;
- ``esphome``: ``<node>/status``, ``online`` / ``offline``;
- ``shelly``: ``<device id>/online`` and ``shelly-gen1``: ``shellies/<device id>/online``,
  ``true`` / ``false``.

A plain mapping may name its device's availability topics itself, as Home Assistant
discovery announces them (``gridcall edge discover`` drafts them):
``{topic: tele/plug001/SENSOR, value: ENERGY.Total, sensor: s, availability: [{topic:
tele/plug001/LWT, online: Online, offline: Offline}]}``; ``online``/``offline`` are the
device's own payloads (Home Assistant's ``payload_available``/``payload_not_available``),
matched exactly, beside the words above. While any of them says offline, the sensor is.

Availability messages are retained by the firmware and are taken even when
``accept_retained`` is off: the retained one is the device's current state.
A leaf module: pydantic only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from gridcall.config.base import (
    ID_PATTERN,
    BrokerSettings,
    Loc,
    Model,
    SourceSettingsModel,
    TimeZone,
)
from gridcall.config.units import canonical, quantity
from gridcall.wire import AnomalyKind, Severity

Preset = Literal["tasmota", "zigbee2mqtt", "esphome", "shelly", "shelly-gen1"]
PRESETS: tuple[Preset, ...] = ("tasmota", "zigbee2mqtt", "esphome", "shelly", "shelly-gen1")

_PLACEHOLDER = re.compile(r"\{(\d+)\}")
TASMOTA_DEVICE_TOKENS = ("%topic%", "%hostname%", "%id%")
"""FullTopic tokens that name the device (https://tasmota.github.io/docs/MQTT/#fulltopic)."""
_TOKEN = re.compile(r"%(prefix|topic|hostname|id)%")
_ID = re.compile(ID_PATTERN)
_PATH_PART = re.compile(r"[^.\[\]]+|\[\d+\]")
_JSON_PATH = re.compile(r"[^.\[\]]+(\[\d+\])*(\.[^.\[\]]+(\[\d+\])*)*")


def _topic_filter(value: str) -> str:
    """An MQTT topic filter: ``+`` and ``#`` only as whole levels, ``#`` only last."""
    if not value or len(value.encode()) > 65535 or "\x00" in value:
        raise ValueError(f"{value!r} is not an MQTT topic filter")
    levels = value.split("/")
    for i, level in enumerate(levels):
        if ("+" in level or "#" in level) and level not in ("+", "#"):
            raise ValueError(f"topic filter {value!r}: '+' and '#' must stand alone in a level")
        if level == "#" and i != len(levels) - 1:
            raise ValueError(f"topic filter {value!r}: '#' may only be the last level")
    return value


def _topic_level(value: str) -> str:
    if not value or any(c in value for c in "/+#\x00"):
        raise ValueError(f"{value!r} must be one MQTT topic level (no '/', '+', '#')")
    return value


def _json_path(value: str) -> str:
    """``a.b[0].c``: keys separated by dots, list indices in brackets."""
    if not _JSON_PATH.fullmatch(value):
        raise ValueError(f"{value!r} is not a JSON path like 'DS18B20.Temperature' or "
                         "'readings[0].value'")
    return value


def _device(value: str) -> str:
    """A device's topic name: one or more levels (Zigbee2MQTT friendly names may hold
    ``/``: ``kitchen/floor_light``), none empty, no wildcard."""
    for level in value.split("/"):
        if not level or any(c in level for c in "+#\x00"):
            raise ValueError(f"device {value!r}: each '/'-separated level must be non-empty "
                             "and without '+' or '#'")
    return value


TopicFilter = Annotated[str, AfterValidator(_topic_filter)]
TopicLevel = Annotated[str, AfterValidator(_topic_level)]
DeviceName = Annotated[str, AfterValidator(_device)]
JsonPath = Annotated[str, AfterValidator(_json_path)]


def parse_path(path: str) -> tuple[str | int, ...]:
    """``"a.b[0]"`` → ``("a", "b", 0)``."""
    return tuple(int(p[1:-1]) if p.startswith("[") else p for p in _PATH_PART.findall(path))


def _word_keys(value: Any) -> Any:
    """YAML reads ``ON``, ``off``, ``yes``, ``true`` as booleans: take them as the words
    ``true``/``false`` (which also match ON/OFF, open/closed... payloads)."""
    if isinstance(value, dict):
        return {("true" if k else "false") if isinstance(k, bool) else str(k): v
                for k, v in value.items()}
    return value


class EventSpec(Model):
    """The anomaly event a text raises (``events`` of a mapping)."""

    kind: AnomalyKind
    severity: Severity = "major"


class Conversion(Model):
    """How a raw value becomes the sensor's reading: ``value * scale + offset`` in ``unit``.

    ``unit``, when given, must be the sensor's unit (checked with the config set), so a
    mapping that forgot a conversion is caught before it reports °F as °C.
    """

    scale: float = 1.0
    offset: float = 0.0
    invert: bool = False
    """Swap 1 and 0 of a boolean value (e.g. Zigbee2MQTT's ``contact``: true = closed)."""
    unit: str | None = None
    values: dict[str, float] | None = None
    """A value map for text and event fields: ``{vibration: 1, tilt: 2}`` for Zigbee2MQTT's
    ``action``, ``{Normal: 0, Alarm: 1}`` for an ESPHome text sensor, ``{true: 1}``
    for a JSON boolean. A mapped text becomes its number as it is (no scale/offset);
    a text not in the map is counted as ``unmapped_value``, an empty one (Zigbee2MQTT's
    action reset) as a missing field. Matched exactly, then ignoring case."""
    events: dict[str, EventSpec] | None = None
    """Texts that raise an anomaly event: ``{vibration: out_of_limits}`` (a kind) or
    ``{drop: {kind: fault, severity: minor}}`` (severity ``major`` unless given); one
    event per episode, which ends at the next value that is not that text (see the
    module doc). Matched like ``values``."""

    @field_validator("values", mode="before")
    @classmethod
    def _text_keys(cls, value: Any) -> Any:
        return _word_keys(value)

    @field_validator("events", mode="before")
    @classmethod
    def _event_keys(cls, value: Any) -> Any:
        """Keys as ``values``'; a plain kind stands for ``{kind: <kind>}``."""
        value = _word_keys(value)
        if isinstance(value, dict):
            return {k: {"kind": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _finite(self) -> Conversion:
        if not all(abs(x) < float("inf") for x in (self.scale, self.offset,
                                                   *(self.values or {}).values())):
            raise ValueError("scale, offset and the value map's numbers must be finite")
        if self.scale == 0:
            raise ValueError("scale 0 would make every reading the offset")
        return self


def _topic_name(value: str) -> str:
    """A topic a device publishes to: a topic filter without wildcards."""
    _topic_filter(value)
    if "+" in value.split("/") or "#" in value.split("/"):
        raise ValueError(f"{value!r} has a wildcard: an availability topic is one topic")
    return value


class AvailabilityTopic(Model):
    """A topic on which a plain mapping's device says whether it is online (Home
    Assistant discovery's ``availability_topic``, or an entry of its ``availability``)."""

    topic: Annotated[str, AfterValidator(_topic_name)]
    online: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    """The device's own "online" payload (``payload_available``), when it is not one of
    the words every availability topic is read with (online, true, 1, any case)."""
    offline: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    """The device's own "offline" payload (``payload_not_available``), likewise."""

    @model_validator(mode="after")
    def _two_words(self) -> AvailabilityTopic:
        if self.online is not None and self.online == self.offline:
            raise ValueError(f"availability {self.topic!r}: online and offline are both "
                             f"{self.online!r}")
        return self


class FieldTarget(Conversion):
    """A preset field's sensor, with optional conversion."""

    sensor: Annotated[str, StringConstraints(pattern=ID_PATTERN)]


class TopicMapping(Conversion):
    """A plain mapping: messages on ``topic`` (a filter; ``+``/``#`` allowed) → ``sensor``.

    ``sensor`` may use ``{1}``, ``{2}``... for the topic levels the ``+`` wildcards matched
    (``topic: flood/+/level``, ``sensor: "flood-{1}"``). ``value`` is the JSON path to the
    value; without it the whole payload is the value (a plain number, ON/OFF, true/false).
    ``timestamp`` is the JSON path to the device's time (epoch s/ms/µs/ns, or ISO 8601;
    naive times are in ``timezone``); without it a reading is stamped when it arrives.
    """

    topic: TopicFilter
    sensor: str
    value: JsonPath | None = None
    timestamp: JsonPath | None = None
    timezone: TimeZone = "UTC"
    source_unit: str | None = None
    """The raw value's unit (``degF``...), converted to the sensor's unit before
    ``scale``/``offset``; refused (counted as ``unit_mismatch``) if the sensor's unit is
    not one of the same quantity (config/units.py)."""
    source_unit_path: JsonPath | None = None
    """The JSON path to the raw value's unit in the payload (Tasmota's ``TempUnit``); when
    the payload has none, the value is taken as in the sensor's unit."""
    availability: tuple[AvailabilityTopic, ...] = ()
    """The topics on which the sensor's device says it is online or offline (see the
    module docstring); none: the sensor's availability is not heard."""

    @model_validator(mode="after")
    def _sensor_template(self) -> TopicMapping:
        wildcards = self.topic.split("/").count("+")
        for n in _PLACEHOLDER.findall(self.sensor):
            if not 1 <= int(n) <= wildcards:
                raise ValueError(f"sensor {self.sensor!r}: {{{n}}} has no '+' level in topic "
                                 f"{self.topic!r} (it has {wildcards})")
        if not _ID.match(_PLACEHOLDER.sub("x", self.sensor)):
            raise ValueError(f"sensor {self.sensor!r} is not a valid id (letters, digits, "
                             "'_', '.', '-', and {n} placeholders)")
        if self.timestamp is not None and self.value is None:
            raise ValueError("a timestamp path needs a JSON payload: give 'value' as well")
        if self.source_unit_path is not None and self.value is None:
            raise ValueError("a source_unit_path needs a JSON payload: give 'value' as well")
        if self.availability and self.is_template:
            raise ValueError(f"availability needs one sensor, not the template "
                             f"{self.sensor!r}: give each device's sensor its own mapping")
        if self.source_unit is not None and canonical(self.source_unit) is None:
            raise ValueError(f"source_unit {self.source_unit!r} is not one gridcall converts "
                             "(degC, degF, K, hPa, Pa, kPa, mmHg, inHg)")
        return self

    @property
    def is_template(self) -> bool:
        return bool(_PLACEHOLDER.search(self.sensor))


class PresetMapping(Model):
    """Sugar for the topic layout of common firmware; see the module docstring."""

    preset: Preset
    device: DeviceName
    """The device's name in its topics; may hold ``/`` (a Zigbee2MQTT friendly name
    ``kitchen/floor_light`` is the topic ``zigbee2mqtt/kitchen/floor_light``)."""
    fields: dict[str, Annotated[str, StringConstraints(pattern=ID_PATTERN)] | FieldTarget] = (
        Field(min_length=1))
    topic_prefix: str | None = None
    """Tasmota: ``tele``; Zigbee2MQTT: the ``base_topic``; Shelly Gen1: ``shellies``;
    ESPHome and Shelly Gen2: replaces ``<device>`` (their ``topic_prefix`` setting)."""
    full_topic: str | None = None
    """``tasmota`` only: the device's FullTopic (Tasmota's command of that name,
    https://tasmota.github.io/docs/MQTT/#fulltopic) when it is not the default
    ``%prefix%/%topic%/``. ``%prefix%`` stands for ``tele`` (or ``topic_prefix``), and the
    token the FullTopic names the device by (``%topic%``, ``%hostname%`` or ``%id%``) for
    ``device``: ``probr/2:study:0.3/%hostname%/%prefix%/`` with device
    ``tasmota_B00960-2400`` reads ``probr/2:study:0.3/tasmota_B00960-2400/tele/SENSOR``."""
    availability: bool = True
    """Listen to the firmware's availability topic (see the module docstring)."""
    via: Literal["status", "rpc"] = "status"
    """``shelly`` only: ``status`` reads ``<device>/status/<component>`` (the "generic
    status update over MQTT" option); ``rpc`` reads the RPC notifications on
    ``<device>/events/rpc`` (``NotifyStatus`` with what changed, ``NotifyFullStatus``
    with everything; on by default on the device), stamped with their ``params.ts``. One
    or the other: a device sending both would give every reading twice."""

    @model_validator(mode="after")
    def _fields(self) -> PresetMapping:
        if self.via != "status" and self.preset != "shelly":
            raise ValueError(f"'via' is for the shelly preset only, not {self.preset}")
        if self.full_topic is not None:
            self._check_full_topic(self.full_topic)
        if self.topic_prefix is not None:
            _topic_filter(self.topic_prefix)
            if "+" in self.topic_prefix.split("/") or "#" in self.topic_prefix:
                raise ValueError("topic_prefix may not contain wildcards")
        for key in self.fields:
            self._split(key)  # raises ValueError naming the field
        return self

    def _check_full_topic(self, full: str) -> None:
        if self.preset != "tasmota":
            raise ValueError(f"'full_topic' is for the tasmota preset only, not {self.preset}")
        named = [t for t in TASMOTA_DEVICE_TOKENS if t in full]
        if len(named) != 1:
            raise ValueError(f"full_topic {full!r} must name the device by one of "
                             f"{', '.join(TASMOTA_DEVICE_TOKENS)} (it has "
                             f"{', '.join(named) or 'none'}); the preset's 'device' is its value")
        if "%" in _TOKEN.sub("", full):
            raise ValueError(f"full_topic {full!r} has a token other than %prefix% and "
                             f"{named[0]}: write its value in full")
        topic = self._tasmota("SENSOR")
        if "+" in topic or "#" in topic or "\x00" in topic:
            raise ValueError(f"full_topic {full!r} makes {topic!r}, not a topic a device "
                             "publishes to (it has a wildcard)")

    def _tasmota(self, leaf: str) -> str:
        """Tasmota's telemetry topic for ``leaf`` (``SENSOR``, ``LWT``): its FullTopic with
        the prefix and the device put in, and the leaf after it."""
        prefix = self.topic_prefix or "tele"
        if self.full_topic is None:
            return f"{prefix}/{self.device}/{leaf}"
        full = self.full_topic.replace("%prefix%", prefix)
        for token in TASMOTA_DEVICE_TOKENS:
            full = full.replace(token, self.device)
        return f"{full.rstrip('/')}/{leaf}"

    def _split(self, key: str) -> tuple[str, str | None]:
        """A field key → (topic, JSON path or None for a plain payload)."""
        p = self.preset
        if p == "tasmota":
            return self._tasmota("SENSOR"), _json_path(key)
        if p == "zigbee2mqtt":
            return f"{self.topic_prefix or 'zigbee2mqtt'}/{self.device}", _json_path(key)
        if p == "esphome":
            component, _, name = key.rpartition("/")
            _topic_level(name)
            if component:
                _topic_level(component)
            return f"{self.topic_prefix or self.device}/{component or 'sensor'}/{name}/state", None
        if p == "shelly":
            component, dot, path = key.partition(".")
            if not dot:
                raise ValueError(f"shelly field {key!r} is not '<component>.<path>', e.g. "
                                 "'temperature:0.tC'")
            _topic_level(component)
            _json_path(path)
            if self.via == "rpc":
                return (f"{self.topic_prefix or self.device}/events/rpc",
                        f"params.{component}.{path}")
            return f"{self.topic_prefix or self.device}/status/{component}", path
        for level in key.split("/"):
            _topic_level(level)
        return f"{self.topic_prefix or 'shellies'}/{self.device}/{key}", None

    def availability_topics(self) -> tuple[str, ...]:
        """The topics on which the firmware says whether the device is online (none when
        ``availability`` is off)."""
        if not self.availability:
            return ()
        p = self.preset
        if p == "tasmota":
            return (self._tasmota("LWT"),)
        if p == "zigbee2mqtt":
            base = self.topic_prefix or "zigbee2mqtt"
            return (f"{base}/bridge/state", f"{base}/{self.device}/availability")
        if p == "esphome":
            return (f"{self.topic_prefix or self.device}/status",)
        if p == "shelly":
            return (f"{self.topic_prefix or self.device}/online",)
        return (f"{self.topic_prefix or 'shellies'}/{self.device}/online",)

    def sensors(self) -> tuple[str, ...]:
        return tuple(t.sensor if isinstance(t, FieldTarget) else t
                     for t in self.fields.values())

    def _unit(self, path: str | None) -> dict[str, str]:
        """Where the firmware states the field's unit: Tasmota's ``TempUnit`` and
        ``PressureUnit`` beside the readings, Shelly's ``tC``/``tF`` in the key."""
        leaf = str(parse_path(path)[-1]) if path else ""
        if self.preset == "tasmota":
            if "Temperature" in leaf or leaf == "DewPoint":
                return {"source_unit_path": "TempUnit"}
            if "Pressure" in leaf:
                return {"source_unit_path": "PressureUnit"}
        if self.preset == "shelly" and leaf in ("tC", "tF"):
            return {"source_unit": "deg" + leaf[1]}
        return {}

    def mappings(self) -> tuple[TopicMapping, ...]:
        """The plain mappings this preset stands for. A field the firmware states the unit
        of is converted to the sensor's unit, unless the field gives its own
        ``scale``/``offset`` (a conversion written by hand before this existed)."""
        out = []
        for key, target in self.fields.items():
            topic, path = self._split(key)
            t = target if isinstance(target, FieldTarget) else FieldTarget(sensor=target)
            unit = self._unit(path) if (t.scale, t.offset) == (1.0, 0.0) else {}
            stamp = {"timestamp": "params.ts"} if self.via == "rpc" else {}
            out.append(TopicMapping.model_validate(dict(
                topic=topic, value=path, sensor=t.sensor, scale=t.scale, offset=t.offset,
                invert=t.invert, unit=t.unit, values=t.values, events=t.events, **unit,
                **stamp)))
        return tuple(out)


def _kind(value: Any) -> str:
    return "preset" if isinstance(value, dict) and "preset" in value else "topic"


MapEntry = Annotated[
    Annotated[PresetMapping, Tag("preset")] | Annotated[TopicMapping, Tag("topic")],
    Discriminator(_kind),
]


class LocalMqttSettings(SourceSettingsModel):
    """An agent source reading sensors from a local MQTT broker."""

    type: Literal["mqtt"]
    broker: BrokerSettings = BrokerSettings()
    map: tuple[MapEntry, ...] = Field(min_length=1)
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    """Default ``gridcall-local-<agent id>``."""
    persistent_session: bool = True
    """Connect with a persistent session (MQTT ``clean_session`` false) under a fixed
    ``client_id``: the broker keeps what devices publish at QoS 1 while the agent
    restarts, and hands it over when it is back (up to the broker's queue limit,
    mosquitto's ``max_queued_messages``, 1000 by default). Those are stamped when they
    arrive unless the mapping reads the device's time (``timestamp``; Shelly ``via: rpc``
    does), so a restart's backlog lands within its first moments. Off: a clean session,
    as before."""
    accept_retained: bool = False
    """Take retained messages delivered on subscribe. Off by default: a retained value
    may be hours old, and would be stamped with the time it arrived."""

    def mappings(self) -> tuple[TopicMapping, ...]:
        """Every plain mapping, presets expanded, in config order."""
        out: list[TopicMapping] = []
        for entry in self.map:
            out += entry.mappings() if isinstance(entry, PresetMapping) else [entry]
        return tuple(out)

    def availability(self) -> dict[str, tuple[str, ...]]:
        """Availability topic → the sensors it speaks for (presets' and plain mappings')."""
        out: dict[str, dict[str, None]] = {}
        for entry in self.map:
            if isinstance(entry, PresetMapping):
                for topic in entry.availability_topics():
                    out.setdefault(topic, {}).update(dict.fromkeys(entry.sensors()))
            else:
                for a in entry.availability:
                    out.setdefault(a.topic, {})[entry.sensor] = None
        return {topic: tuple(sensors) for topic, sensors in out.items()}

    def availability_payloads(self) -> dict[str, tuple[str | None, str | None]]:
        """Availability topic → the device's own (online, offline) payloads, for the
        plain mappings' topics that name them."""
        return {a.topic: (a.online, a.offline) for entry in self.map
                if isinstance(entry, TopicMapping) for a in entry.availability
                if (a.online, a.offline) != (None, None)}

    @model_validator(mode="after")
    def _one_word_per_topic(self) -> LocalMqttSettings:
        said: dict[str, tuple[str | None, str | None]] = {}
        for entry in self.map:
            for a in entry.availability if isinstance(entry, TopicMapping) else ():
                words = said.setdefault(a.topic, (a.online, a.offline))
                if words != (a.online, a.offline):
                    raise ValueError(f"availability topic {a.topic!r} is given payloads "
                                     f"{words} and {(a.online, a.offline)} by two mappings: "
                                     "a device has one pair")
        return self

    def topic_filters(self) -> tuple[str, ...]:
        # availability first: the broker sends retained messages in subscription order,
        # so a device's retained "offline" is known before its retained values arrive
        return tuple(dict.fromkeys([*self.availability(),
                                    *(m.topic for m in self.mappings())]))

    def agent_problems(self, units: Mapping[str, str]) -> list[tuple[Loc, str]]:
        return source_problems(self, units)

    def unset_env(self) -> list[str]:
        return [f"broker.{m}" for m in self.broker.unset_env()]


def source_problems(source: LocalMqttSettings, units: Mapping[str, str]
                    ) -> list[tuple[Loc, str]]:
    """(key path under ``source``, reason) for each mapping naming a sensor that is not
    one of the agent's (``units``: its sensor ids → units), or a unit that is not the
    sensor's, and for each of the agent's sensors no mapping reads (it would never
    report). Template sensors (``{1}``) are checked when messages arrive; a source with
    one may read any of the agent's sensors, so none is reported as unread then."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    mapped: set[str] = set()
    templates = False
    for i, entry in enumerate(source.map):
        pairs: list[tuple[tuple[str | int, ...], TopicMapping]]
        if isinstance(entry, PresetMapping):
            pairs = [(("map", i, "fields", key), m)
                     for key, m in zip(entry.fields, entry.mappings(), strict=True)]
        else:
            pairs = [(("map", i, "sensor"), entry)]
        for loc, m in pairs:
            mapped.add(m.sensor)
            if m.is_template:
                templates = True
                continue
            if m.sensor not in units:
                problems.append((loc, f"sensor {m.sensor!r} is not one of this agent's sensors "
                                      "(sensors.yaml names the agent of each sensor)"))
            elif (m.source_unit is not None
                  and quantity(m.source_unit) != quantity(units[m.sensor])):
                problems.append((loc, f"the value is in {m.source_unit!r} but sensor "
                                      f"{m.sensor!r}'s unit is {units[m.sensor]!r}, not a "
                                      f"{quantity(m.source_unit)} unit"))
            elif m.unit is not None and m.unit != units[m.sensor]:
                problems.append((loc, f"unit {m.unit!r} is not sensor {m.sensor!r}'s unit "
                                      f"{units[m.sensor]!r}; convert with scale/offset and "
                                      "give the sensor's unit"))
    if not templates:
        problems += [(("map",), f"the agent's sensor {sensor!r} is read by no mapping of "
                      "this mqtt source, so it would never report")
                     for sensor in units if sensor not in mapped]
    return problems
