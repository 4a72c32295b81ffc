"""Sensors on a local MQTT broker as an agent's source: Tasmota, Zigbee2MQTT, ESPHome,
Shelly, or any firmware that publishes numbers or JSON.

:class:`TopicMap` is the pure part: (topic, payload, arrival time) → samples, with every
payload it could not use counted by reason in ``bad`` (``not_json``, ``non_numeric``,
``non_finite``, ``unknown_sensor``, ``wrong_shape`` for a level of the JSON path that is
there but of another kind, ``too_large`` over :data:`MAX_PAYLOAD`, ``too_deep`` for JSON
nested past the parser's limit...) and logged once per topic and reason, never raised;
``bad_timestamp`` (no time, or one outside 1970-2262) is counted too, but the reading is
kept with its arrival time. A JSON ``null`` or a text
``nan``/``None`` becomes a sample without a value (the sensor answered, nothing to read),
which the agent's detectors see as a dropout (counted as ``gaps``); on a field with a
value map or events it is no reading at all (Zigbee2MQTT's ``"action": null``: nothing
happened), as the empty action reset is. A mapped field absent
from its message is normal (devices send partial reports): counted as ``missing_fields``.

:class:`LocalMqttSource` subscribes at QoS 1 with aiomqtt, in a persistent session under a
fixed client id (``persistent_session``), and reconnects with backoff, forever: what the
devices publish at QoS 1 while the agent restarts or is cut off, the broker keeps for it
and delivers when it is back. A broker that itself restarts without persistence costs the
readings published meanwhile, and nothing else. A message the broker sends again because
it never took our acknowledgement (flagged DUP, same packet identifier, topic and
payload) is skipped and counted as ``redeliveries_skipped``
(:mod:`gridcall.edge_agent.redelivery`). A message is acknowledged once the agent kept
what it gave (after the source's next wait, when the agent journals), not on receipt: a
kill -9 in between leaves it with the broker for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt

from gridcall.config import AgentSpec
from gridcall.config.local_mqtt import (
    EventSpec,
    LocalMqttSettings,
    TopicMapping,
    parse_path,
)
from gridcall.config.units import UnitError, convert, quantity
from gridcall.edge_agent.commissioning import (
    Check,
    CheckOptions,
    OpenSource,
    impossible,
    probe_broker,
    read_samples,
    skipped,
    values,
)
from gridcall.edge_agent.kind import SourceKind
from gridcall.edge_agent.redelivery import Redeliveries
from gridcall.edge_agent.sources import DeviceEvent, Sample
from gridcall.wire.backoff import Reconnect
from gridcall.wire.broker import (
    MQTT_RECONNECT,
    describe_failure,
    mqtt_outcome,
)
from gridcall.wire.cancelsafe import cancel_safe
from gridcall.wire.clock import Clock, from_epoch, from_iso, wall_clock

log = logging.getLogger(__name__)

NO_VALUE_WORDS = frozenset({"nan", "none", "null", "unknown", "unavailable"})
"""Plain-text "no value": ESPHome publishes ``nan`` for a sensor without a state (and
``None`` from some lambdas), Home Assistant-style bridges ``unknown``/``unavailable``. A
gap (a sample without a value, a dropout), like JSON ``null``; not a bad payload."""
TRUE_WORDS = frozenset({"true", "on", "open", "opened", "yes", "1"})
FALSE_WORDS = frozenset({"false", "off", "closed", "close", "no", "0"})
"""Plain-text booleans: ESPHome ON/OFF, Shelly Gen1 true/false and open/close."""
MAX_PAYLOAD = 1 << 20
"""The largest message decoded (1 MiB): the devices' own are a few kB (a Shelly
``NotifyFullStatus`` ~3 kB, a Tasmota ``SENSOR`` with 18 DS18x20 ~1.2 kB); a larger one is
refused as ``too_large`` before it is parsed."""
_MAX_LOGGED = 1000
"""(topic, reason) pairs logged at WARNING before the rest go to DEBUG only."""
_MISSING = object()
UNIT_REASONS = frozenset({"unit_mismatch", "unknown_unit"})
"""Why a value was refused for its unit (config/units.py, and a unit that is no text)."""


class BadPayload(Exception):
    """A message we could not turn into a reading; ``reason`` is the counter's key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Route:
    levels: tuple[str, ...]
    mapping: TopicMapping
    value_path: tuple[str | int, ...] | None
    ts_path: tuple[str | int, ...] | None
    tz: ZoneInfo
    unit_path: tuple[str | int, ...] | None = None
    measures: str | None = None
    """The quantity the sensor's unit measures (``temperature``, ``pressure``), or None:
    where set, a boolean is refused (:func:`to_number`)."""
    template: bool = False
    """The sensor id is made from the topic (``flood-{1}``): known per message only."""

    def captures(self, topic: tuple[str, ...]) -> tuple[str, ...] | None:
        """The levels the ``+`` wildcards matched, or None if the topic does not match.

        By hand rather than aiomqtt's ``Topic.matches``: that says only yes or no, and
        sensor templates need what each ``+`` matched.
        """
        got: list[str] = []
        for i, level in enumerate(self.levels):
            if level == "#":
                return tuple(got)
            if i >= len(topic):
                return None
            if level == "+":
                got.append(topic[i])
            elif level != topic[i]:
                return None
        return tuple(got) if len(topic) == len(self.levels) else None


def _at(doc: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path``; _MISSING when a key or index is absent (a partial message);
    BadPayload (``wrong_shape``) when a level is there but of another kind (a number
    where the path goes on into an object: ``{"DS18B20": 5}`` for
    ``DS18B20.Temperature``), which no partial report explains."""
    root = doc
    for part in path:
        if isinstance(part, int):
            if not isinstance(doc, list):
                raise _wrong_shape(root, path)
            if part >= len(doc):
                return _MISSING
            doc = doc[part]
        else:
            if not isinstance(doc, dict):
                raise _wrong_shape(root, path)
            if part not in doc:
                return _MISSING
            doc = doc[part]
    return doc


def _wrong_shape(doc: Any, path: tuple[str | int, ...]) -> BadPayload:
    """What :func:`_at` raises, found by walking the path again (the error path only)."""
    i = 0
    for i, part in enumerate(path):  # noqa: B007 - i is the level that is not a container
        if isinstance(part, int):
            there = isinstance(doc, list) and part < len(doc)
        else:
            there = isinstance(doc, dict) and part in doc
        if not there:
            break
        doc = doc[part]
    where = ".".join(str(p) for p in path[:i]) or "the payload"
    kind = "null" if doc is None else type(doc).__name__
    wanted = "a list" if isinstance(path[i], int) else "an object"
    return BadPayload("wrong_shape", f"{where} is {kind}, not {wanted} holding "
                      f"{'.'.join(str(p) for p in path)}")


def _boolean(value: bool, invert: bool) -> float:
    return float(value != invert)


class Unmapped(Exception):
    """An empty text or a null where a value map or events are given: an event field's
    reset ("nothing happened"), not a value."""


def _mapped(raw: str | bool, values: Mapping[str, float]) -> float | None:
    """The value map's number for a text or boolean; None for a number in text (taken as
    a number) or a :data:`NO_VALUE_WORDS` text the map does not name (a gap);
    BadPayload (``unmapped_value``) for other text."""
    key = ("true" if raw else "false") if isinstance(raw, bool) else raw.strip()
    if key in values:
        return float(values[key])
    folded = key.casefold()
    for k, v in values.items():
        if k.casefold() == folded:
            return float(v)
    word = (folded in TRUE_WORDS and "true") or (folded in FALSE_WORDS and "false") or ""
    if word in values:  # ON/OFF, open/closed... against a map keyed true/false
        return float(values[word])
    if not key:
        raise Unmapped
    if folded in NO_VALUE_WORDS:
        return None  # "unknown", "nan"...: a gap, as without a map (unless the map names it)
    try:
        float(key)
    except ValueError:
        raise BadPayload("unmapped_value", f"{key[:40]!r} is not in the value map "
                         f"({', '.join(list(values)[:6])})") from None
    return None


def _event_for(raw: str | bool, events: Mapping[str, EventSpec]) -> EventSpec | None:
    """The event a text or boolean raises (matched as the value map matches), or None."""
    key = ("true" if raw else "false") if isinstance(raw, bool) else raw.strip()
    if key in events:
        return events[key]
    folded = key.casefold()
    for k, spec in events.items():
        if k.casefold() == folded:
            return spec
    word = (folded in TRUE_WORDS and "true") or (folded in FALSE_WORDS and "false") or ""
    return events.get(word) if word else None


_STATE_TRUE = TRUE_WORDS - {"1"}
_STATE_FALSE = FALSE_WORDS - {"0"}


def _state(raw: Any, measures: str) -> BadPayload:
    return BadPayload("non_numeric", f"{str(raw)[:40]!r} is a state (on/off, true/false), "
                      f"not a {measures}: a wrong field mapped to this sensor?")


def to_number(raw: Any, m: TopicMapping, unit: tuple[str, str] | None = None, *,
              measures: str | None = None) -> float | None:
    """A raw JSON or text value as the reading (scale/offset applied); None for null and
    the :data:`NO_VALUE_WORDS` (``nan``, ``None``...) in text. BadPayload for text that is
    not a number or a boolean word, objects, a JSON NaN and ±inf. Unmapped for a null
    on a field with a value map or events (nothing happened, no reading). ``unit``: (the
    raw value's unit, the sensor's), converted before scale/offset. ``measures``: the
    quantity of the sensor's unit (temperature, pressure), where a boolean or an ON/OFF
    word the value map does not name is a wrong field mapped: refused, never 1 °C."""
    if raw is None:
        if m.values is not None or m.events is not None:
            # a text or event field's null is "nothing happened" (Zigbee2MQTT's
            # "action": null), as its empty reset is: no reading, not a dropout
            raise Unmapped
        return None
    if m.values is not None and isinstance(raw, str | bool):
        mapped = _mapped(raw, m.values)
        if mapped is not None:
            return mapped
    if isinstance(raw, bool):
        if measures is not None:
            raise _state(raw, measures)
        return _boolean(raw, m.invert)
    if isinstance(raw, str):
        text = raw.strip()
        word = text.lower()
        if word in NO_VALUE_WORDS:
            return None
        if word in _STATE_TRUE or word in _STATE_FALSE:
            if measures is not None:
                raise _state(raw, measures)
            return _boolean(word in TRUE_WORDS, m.invert)
        try:
            raw = float(text)
        except ValueError:
            raise BadPayload("non_numeric", f"{text[:40]!r} is not a number") from None
    if not isinstance(raw, int | float):
        raise BadPayload("non_numeric", f"a {type(raw).__name__}, not a number")
    try:
        value = float(raw)
    except OverflowError:  # an integer of hundreds of digits
        raise BadPayload("non_finite", f"{str(raw)[:20]}... is too large a number") from None
    if unit is not None:  # (the device's unit, the sensor's)
        try:
            value = convert(value, *unit)
        except UnitError as exc:
            raise BadPayload(exc.reason, str(exc)) from None
    value = value * m.scale + m.offset
    if not math.isfinite(value):
        raise BadPayload("non_finite", f"{raw!r} is not a finite number")
    return value


ONLINE_WORDS = frozenset({"online", "true", "1"})
OFFLINE_WORDS = frozenset({"offline", "false", "0"})


def availability_state(payload: bytes,
                       words: tuple[str | None, str | None] = (None, None)) -> bool:
    """An availability message → online? Plain text (Tasmota ``Online``/``Offline``,
    ESPHome and legacy Zigbee2MQTT ``online``/``offline``, Shelly ``true``/``false``) or
    Zigbee2MQTT's JSON ``{"state":"online"}``; ``words``: the device's own (online,
    offline) payloads (a plain mapping's ``availability``), matched exactly first.
    BadPayload (``bad_availability``) else."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadPayload("bad_availability", "not UTF-8 text") from None
    if text and text == words[0]:
        return True
    if text and text == words[1]:
        return False
    state: Any = text
    if text.startswith(("{", '"')):
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            doc = None
        state = doc.get("state") if isinstance(doc, dict) else doc
    word = str(state).strip().lower()
    if word in ONLINE_WORDS:
        return True
    if word in OFFLINE_WORDS:
        return False
    raise BadPayload("bad_availability", f"{text[:40]!r} is neither online nor offline")


def to_timestamp(raw: Any, tz: ZoneInfo) -> int:
    """Epoch seconds / ms / µs / ns (told apart by size) or ISO 8601 → POSIX ns."""
    ns: int | None = None
    try:
        if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
            ns = from_epoch(raw)
        elif isinstance(raw, str):
            ns = from_iso(raw, tz)
    except (ValueError, OverflowError):
        ns = None
    if ns is None:
        raise BadPayload("bad_timestamp",
                         f"{str(raw)[:40]!r} is not an epoch time or ISO 8601")
    if not 0 <= ns <= LATEST_NS:
        raise BadPayload("bad_timestamp", f"{str(raw)[:40]!r} is before 1970 or after "
                         "2262 (no time a reading can carry)")
    return ns


LATEST_NS = (1 << 63) - 1
"""The latest time a reading carries: nanoseconds since 1970 in a signed 64-bit integer
(2262-04-11), as the wire and InfluxDB hold it."""


@dataclass
class TopicMapCounters:
    messages: int = 0
    samples: int = 0
    gaps: int = 0
    """Samples without a value (JSON null, ESPHome ``nan``): dropouts, not errors."""
    availability_messages: int = 0
    """Online/offline messages of the devices (Tasmota LWT, Zigbee2MQTT availability...)."""
    missing_fields: int = 0
    """Mapped fields absent from a message on their topic. Normal: a Zigbee2MQTT device
    reports only what changed, a Tasmota periodic report may lack a switch."""
    bad: Counter[str] = field(default_factory=Counter)


class TopicMap:
    """(topic, payload) → samples for every mapping the topic matches."""

    def __init__(self, mappings: Sequence[TopicMapping], *,
                 sensors: Collection[str] | None = None, name: str = "local-mqtt",
                 availability: Mapping[str, Sequence[str]] | None = None,
                 units: Mapping[str, str] | None = None,
                 availability_payloads: Mapping[str, tuple[str | None, str | None]]
                 | None = None) -> None:
        """``sensors``: the agent's sensor ids, so templates that make an unknown id are
        counted here, with the topic that made it; None: take any id. ``availability``:
        availability topic → the sensors it speaks for
        (:meth:`LocalMqttSettings.availability`). ``units``: sensor → its configured
        unit, for the values whose unit the device states (None: taken as they come).
        ``availability_payloads``: availability topic → the device's own (online,
        offline) payloads (:meth:`LocalMqttSettings.availability_payloads`)."""
        self.units = dict(units) if units is not None else None
        self._measured = {s: q for s, u in (units or {}).items()
                          if (q := quantity(u)) is not None}
        """sensor → the quantity its unit measures (temperature, pressure): a boolean or
        ON/OFF there is a wrong field mapped, refused rather than read as 1 °C."""
        self.availability_topics = {t: tuple(ss) for t, ss in (availability or {}).items()}
        self._availability_payloads = dict(availability_payloads or {})
        self._down: set[str] = set()
        self._changed: dict[str, int] = {}
        self.routes = tuple(
            _Route(tuple(m.topic.split("/")), m,
                   parse_path(m.value) if m.value is not None else None,
                   parse_path(m.timestamp) if m.timestamp is not None else None,
                   ZoneInfo(m.timezone),
                   parse_path(m.source_unit_path) if m.source_unit_path else None,
                   None if m.is_template else self._measured.get(m.sensor), m.is_template)
            for m in mappings)
        # Most mappings (every preset's) name one exact topic: look those up, scan only
        # the wildcard ones.
        self._exact: dict[str, list[_Route]] = {}
        self._wild: list[_Route] = []
        for route in self.routes:
            if "+" in route.levels or "#" in route.levels:
                self._wild.append(route)
            else:
                self._exact.setdefault(route.mapping.topic, []).append(route)
        self.sensors = frozenset(sensors) if sensors is not None else None
        self.name = name
        self.counters = TopicMapCounters()
        self._logged: set[tuple[str, str]] = set()
        self.unit_refusals: dict[str, str] = {}
        """topic → why its value's unit could not be made the sensor's (the first time):
        ``gridcall edge check`` names them."""
        self._episodes: dict[str, EventSpec] = {}
        """sensor → the device-announced episode under way (a mapping's ``events``)."""

    def decode(self, topic: str, payload: bytes, received_ns: int) -> list[Sample]:
        """The samples in one message; bad parts are counted and logged, never raised."""
        self.counters.messages += 1
        if len(payload) > MAX_PAYLOAD:
            self._bad(topic, BadPayload("too_large", f"{len(payload):,} bytes, over the "
                                        f"{MAX_PAYLOAD:,} a device message may be"), None)
            return []
        if topic in self.availability_topics:
            self._availability(topic, payload, received_ns)
            return []
        levels = tuple(topic.split("/"))
        out: list[Sample] = []
        doc: Any = _MISSING
        matches: list[tuple[_Route, tuple[str, ...]]] = [
            (r, ()) for r in self._exact.get(topic, ())]
        matches += [(r, got) for r in self._wild if (got := r.captures(levels)) is not None]
        for route, got in matches:
            m = route.mapping
            if route.value_path is not None and doc is None:
                continue  # not JSON: counted once for the message, at the first route
            try:
                sensor = m.sensor.format(None, *got) if route.template else m.sensor
                if self.sensors is not None and sensor not in self.sensors:
                    raise BadPayload("unknown_sensor", f"sensor {sensor!r} is not this "
                                     "agent's (from the topic)")
                if route.value_path is None:
                    raw = _plain(payload)
                    unit = self._unit(sensor, m, None, None)
                    ts = received_ns
                else:
                    if doc is _MISSING:
                        doc = _json(payload)
                    raw = _at(doc, route.value_path)
                    if raw is _MISSING:
                        self._missing(topic, m)
                        continue
                    unit = self._unit(sensor, m, doc, route.unit_path)
                    ts = self._timestamp(topic, doc, route, received_ns)
                if m.events is not None:
                    announced = self._announced(sensor, ts, raw, m, unit)
                    if announced is not None:
                        out += announced
                        continue
                value = to_number(raw, m, unit, measures=self._measured.get(sensor)
                                  if route.template else route.measures)
            except Unmapped:
                self._missing(topic, m)
                continue
            except BadPayload as exc:
                self._bad(topic, exc, payload)
                if exc.reason in ("not_json", "too_deep"):
                    doc = None  # the other routes on this topic would fail the same way
                continue
            if value is None:
                self.counters.gaps += 1
            out.append(Sample(sensor, ts, value))
        self.counters.samples += len(out)
        return out

    def _announced(self, sensor: str, ts: int, raw: Any, m: TopicMapping,
                   unit: tuple[str, str] | None) -> list[Sample] | None:
        """For a mapping with ``events``: the samples of a message that starts or ends an
        episode the device announced (a start once per episode, an end at the next value
        that is not its text, or the empty reset), or None when it does neither (then it
        is an ordinary value). Raises as :func:`to_number` for what is no value."""
        spec = _event_for(raw, m.events) if m.events and isinstance(raw, str | bool) else None
        active = self._episodes.get(sensor)
        # Zigbee2MQTT's empty action after each one, or its "action": null
        reset = raw is None or (isinstance(raw, str) and not raw.strip())
        if spec is None:
            if active is None:
                if reset:
                    raise Unmapped
                return None
            try:  # another value, or the reset: the episode is over
                value = None if reset else to_number(raw, m, unit)
            except Unmapped:
                value = None
            del self._episodes[sensor]
            return [Sample(sensor, ts, value, "",
                           DeviceEvent(active.kind, "end", active.severity))]
        value = None
        if m.values is not None:
            with contextlib.suppress(Unmapped, BadPayload):
                value = _mapped(raw, m.values)
        if active == spec:  # the same text again: the episode goes on
            return [Sample(sensor, ts, value)] if value is not None else []
        out = []
        if active is not None:
            out.append(Sample(sensor, ts, None, "",
                              DeviceEvent(active.kind, "end", active.severity)))
        self._episodes[sensor] = spec
        out.append(Sample(sensor, ts, value, "", DeviceEvent(spec.kind, "start", spec.severity)))
        return out

    def _availability(self, topic: str, payload: bytes, received_ns: int) -> None:
        try:
            online = availability_state(
                payload, self._availability_payloads.get(topic, (None, None)))
        except BadPayload as exc:
            self._bad(topic, exc, payload)
            return
        self.counters.availability_messages += 1
        if online == (topic not in self._down):
            return
        (self._down.discard if online else self._down.add)(topic)
        for sensor in self.availability_topics[topic]:
            self._changed[sensor] = received_ns
        log.log(logging.INFO if online else logging.WARNING, "%s: %s says %s: sensors %s %s",
                self.name, topic, "online" if online else "offline",
                ", ".join(self.availability_topics[topic]),
                "are back" if online else "are offline until it says online again")

    def offline(self) -> frozenset[str]:
        """The sensors whose device (or bridge) last said it is offline."""
        return frozenset(s for t in self._down for s in self.availability_topics[t])

    def sensor_availability(self) -> dict[str, tuple[bool, int]]:
        """sensor → (online, when that last changed, ns) for each sensor whose device has
        said either since the start."""
        off = self.offline()
        return {s: (s not in off, ts) for s, ts in self._changed.items()}

    def _missing(self, topic: str, m: TopicMapping) -> None:
        """A partial message: counted, and said once per field at INFO (a field that never
        comes shows in ``gridcall edge check`` as a sensor nothing arrived from)."""
        self.counters.missing_fields += 1
        key = (topic, f"missing:{m.value}")
        if key not in self._logged and len(self._logged) < _MAX_LOGGED:
            self._logged.add(key)
            log.info("%s: a message on %s has no %r (for sensor %s); partial messages are "
                     "normal and counted as missing_fields, not logged again", self.name,
                     topic, m.value, m.sensor)

    def _unit(self, sensor: str, m: TopicMapping, doc: Any,
              path: tuple[str | int, ...] | None) -> tuple[str, str] | None:
        """(the unit the device states for the value, the sensor's), or None: no
        conversion (the device states none, or the sensors' units are not known)."""
        if self.units is None or sensor not in self.units:
            return None
        stated: Any = m.source_unit
        if path is not None:
            got = _at(doc, path)
            stated = None if got is _MISSING else got
        if stated is None:
            return None
        if not isinstance(stated, str):
            raise BadPayload("unknown_unit", f"the payload's {m.source_unit_path!r} is "
                             f"{stated!r}, not a unit")
        return stated, self.units[sensor]

    def _timestamp(self, topic: str, doc: Any, route: _Route, received_ns: int) -> int:
        if route.ts_path is None:
            return received_ns
        try:
            raw = _at(doc, route.ts_path)
            if raw is _MISSING:
                raise BadPayload("bad_timestamp", f"no {route.mapping.timestamp!r} in the "
                                 "payload")
            return to_timestamp(raw, route.tz)
        except BadPayload as exc:
            self._bad(topic, exc, None, kept=True)
            return received_ns

    def _bad(self, topic: str, exc: BadPayload, payload: bytes | None, *,
             kept: bool = False) -> None:
        self.counters.bad[exc.reason] += 1
        if exc.reason in UNIT_REASONS and len(self.unit_refusals) < _MAX_LOGGED:
            self.unit_refusals.setdefault(topic, str(exc))
        key = (topic, exc.reason)
        first = key not in self._logged and len(self._logged) < _MAX_LOGGED
        if first:
            self._logged.add(key)
        shown = "" if payload is None else f"; payload {payload[:80]!r}"
        log.log(logging.WARNING if first else logging.DEBUG,
                "%s: %s on %s: %s%s (%s; counted as %r%s)", self.name,
                "bad timestamp" if kept else "message skipped", topic, exc, shown,
                "reading kept with its arrival time" if kept else "no reading", exc.reason,
                "; further ones on this topic are logged at DEBUG" if first else "")


def _json(payload: bytes) -> Any:
    try:
        # The standard library rather than msgspec: it reads NaN and Infinity, so a
        # device sending them is counted as non_finite, not as not_json.
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPayload("not_json", f"not JSON ({exc})") from None
    except RecursionError:
        raise BadPayload("too_deep", "JSON nested deeper than Python's recursion limit "
                         "(~1000 levels)") from None


def _plain(payload: bytes) -> Any:
    """A plain payload: a number, a boolean word, or a JSON scalar (``"23.4"``, true)."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadPayload("non_numeric", "not UTF-8 text") from None
    if text.startswith(("{", "[", '"')) or text in ("true", "false", "null"):
        return _json(payload)
    return text


@dataclass
class LocalMqttCounters:
    connects: int = 0
    connect_failures: int = 0
    credentials_refused: int = 0
    retained_skipped: int = 0


class LocalMqttSource:
    """An agent source: subscribe to the configured topics, yield samples, reconnect."""

    def __init__(self, settings: LocalMqttSettings, *, agent_id: str,
                 sensors: Collection[str] | None = None, clock: Clock = wall_clock,
                 broker_url: str | None = None, units: Mapping[str, str] | None = None
                 ) -> None:
        """``units``: sensor → its configured unit, so values whose unit the device states
        are converted to it (the agent passes them; None: taken as they come)."""
        self.settings = settings
        self.agent_id = agent_id
        self.clock = clock
        self.address = settings.broker.address(broker_url)
        self.map = TopicMap(settings.mappings(), sensors=sensors,
                            name=f"agent {agent_id} local MQTT {self.address}",
                            availability=settings.availability(), units=units,
                            availability_payloads=settings.availability_payloads())
        self.filters = settings.topic_filters()
        self.connection = LocalMqttCounters()
        self.redeliveries = Redeliveries()
        self._dup_mids: set[int] = set()
        """Packet ids of messages that came flagged DUP, until the loop takes them
        (aiomqtt's Message does not carry the flag; paho's message does)."""
        self.connected = asyncio.Event()
        """Set while subscribed: tests and ``gridcall edge check`` wait on it."""

    def sensor_availability(self) -> dict[str, tuple[bool, int]]:
        """For the agent's health: sensor → (online, since ns), as the devices said."""
        return self.map.sensor_availability()

    @property
    def bad(self) -> Counter[str]:
        return self.map.counters.bad

    def stats(self) -> dict[str, int]:
        """For the agent's status message: messages, samples, ``bad_<reason>`` for each
        reason a payload was skipped, and the connection's counters."""
        m, c = self.map.counters, self.connection
        return {"messages": m.messages, "samples": m.samples, "gaps": m.gaps,
                "missing_fields": m.missing_fields,
                "availability_messages": m.availability_messages,
                "offline_sensors": len(self.map.offline()),
                **{f"bad_{reason}": n for reason, n in sorted(m.bad.items())},
                "connects": c.connects, "connect_failures": c.connect_failures,
                "credentials_refused": c.credentials_refused,
                "retained_skipped": c.retained_skipped,
                "redeliveries_skipped": self.redeliveries.skipped}

    def client(self) -> aiomqtt.Client:
        user, password = self.settings.broker.credentials()
        client = aiomqtt.Client(
            self.address.host, self.address.port, username=user, password=password,
            identifier=self.settings.client_id or f"gridcall-local-{self.agent_id}",
            clean_session=not self.settings.persistent_session,
            tls_context=self.address.tls_context(),
            keepalive=int(self.settings.broker.keepalive.total_seconds()))
        # paho's message has the DUP flag, aiomqtt's does not: note the packet ids that
        # came with it (paho calls this on the event loop's thread, as aiomqtt drives it)
        paho = client._client
        queue = paho.on_message
        dups = self._dup_mids

        def on_message(c: Any, userdata: Any, message: Any) -> None:
            if message.dup:
                dups.add(message.mid)
            if queue is not None:
                queue(c, userdata, message)

        paho.on_message = on_message
        # acknowledged by us once what a message gave is kept (samples(), below), not by
        # paho on receipt: a kill in between then costs a redelivery, not the message
        paho.manual_ack_set(True)
        return client

    async def samples(self) -> AsyncIterator[Sample]:
        retry = Reconnect(MQTT_RECONNECT, mqtt_outcome, config=self.settings.broker.credentials,
                          probe=self.address.port_open)  # back within ~0.5 s of the broker
        while True:
            try:
                async with contextlib.AsyncExitStack() as session:
                    # cancel_safe: aiomqtt's connect and subscribe wait through
                    # asyncio.wait_for, which on Python 3.11 may swallow a cancel that
                    # comes with the broker's answer; this loop would then never end. A
                    # client entered meanwhile is on the stack, and disconnected by it.
                    client = await cancel_safe(session.enter_async_context(self.client()),
                                               what=f"{self.map.name}: connect")
                    for topic in self.filters:
                        await cancel_safe(client.subscribe(topic, qos=1),
                                          what=f"{self.map.name}: subscribe")
                    self.connection.connects += 1
                    self.connected.set()
                    retry.connected()
                    paho = client._client
                    async for message in client.messages:
                        taken = self._take(message)
                        for sample in taken:
                            yield sample
                        if message.qos:
                            if taken:
                                # the agent journals what it took when its source next
                                # waits (EdgeAgent._consume): wait once, then acknowledge
                                await asyncio.sleep(0)
                            paho.ack(message.mid, message.qos)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self.connection.connect_failures += 1
                failure = retry.failed(exc)
                if failure.refused:
                    self.connection.credentials_refused += 1
                log.warning("agent %s local MQTT: %s; retrying in %.1fs", self.agent_id,
                            describe_failure(self.address, exc), failure.delay)
                await retry.pause(failure)


    def _take(self, message: aiomqtt.Message) -> list[Sample]:
        """The samples of one message (none for a retained value skipped, or a repeat)."""
        # a retained availability message is the device's state now
        if (message.retain and not self.settings.accept_retained
                and message.topic.value not in self.map.availability_topics):
            self.connection.retained_skipped += 1
            return []
        payload = message.payload
        data = (bytes(payload) if isinstance(payload, bytes | bytearray)
                else b"" if payload is None else str(payload).encode())
        dup = bool(self._dup_mids) and message.mid in self._dup_mids
        if dup:
            self._dup_mids.discard(message.mid)
        if self.redeliveries.repeat(message.mid, message.topic.value, data, qos=message.qos,
                                    dup=dup):
            return []  # sent again, already handed on: the same reading
        return self.map.decode(message.topic.value, data, self.clock())


def _build(spec: AgentSpec, settings: LocalMqttSettings, clock: Clock) -> LocalMqttSource:
    return LocalMqttSource(settings, agent_id=spec.id, clock=clock,
                           sensors={s.id for s in spec.sensors},
                           units={s.id: s.unit_of_measure for s in spec.sensors})


async def _checks(spec: AgentSpec, settings: LocalMqttSettings, options: CheckOptions,
                  open_source: OpenSource | None) -> list[Check]:
    """The local broker (reachable, our login accepted), then a value from each mapped
    sensor within ``options.wait``; the source is opened here, not as the agent would, so
    that retained values count (they show the device did publish)."""
    probe_id = f"gridcall-check-{spec.id}-{uuid.uuid4().hex[:6]}"
    if options.local_broker is not None:
        settings = settings.model_copy(update={"broker": settings.broker.model_copy(
            update={"url": options.local_broker})})
    reach = await probe_broker("local MQTT broker", settings.broker, None,
                               timeout=options.timeout, client_id=probe_id,
                               flag=None if options.local_broker else "--local-broker")
    if reach.status == "FAIL" and ("unreachable" in reach.detail
                                   or "no answer within" in reach.detail):
        # the sensors' broker usually runs on this box: say what to start, not "network"
        reach = dataclasses.replace(reach, fix=(
            "start the broker the sensors publish to: on this box `sudo systemctl start "
            "mosquitto` (`sudo apt-get install mosquitto` if it is not installed); on the LAN "
            "check its host, port and firewall; or check against another broker with "
            "--local-broker URL"))
    if reach.status == "FAIL":
        return [reach]
    # Retained values count here: they show the device did publish, and when a device
    # reports every few minutes they may be all there is within the wait.
    copy = settings.model_copy(update={"client_id": probe_id + "-read",
                                       "accept_retained": True,
                                       "persistent_session": False})
    source = LocalMqttSource(copy, agent_id=spec.id, sensors={s.id for s in spec.sensors},
                             units={s.id: s.unit_of_measure for s in spec.sensors})
    expected = {m.sensor for m in settings.mappings() if not m.is_template}
    got = await read_samples(source, wait=options.wait,
                             done=lambda got: expected <= {s.sensor for s in got})
    seen = {s.sensor for s in got}
    bad = skipped(source)
    return [reach, *_availability_check(source),
            _values_check(source, got, expected, seen, bad, options.wait, spec)]


def _availability_check(source: LocalMqttSource) -> list[Check]:
    """A row only when a device said anything about being online."""
    m = source.map
    if not m.counters.availability_messages:
        return []
    offline = m.offline()
    if not offline:
        return [Check("availability", "PASS", "the devices say they are online")]
    off = sorted(offline)
    down = sorted(t for t, sensors in m.availability_topics.items() if offline & set(sensors))
    return [Check("availability", "FAIL",
                  f"offline (as {', '.join(down)} says): {', '.join(off)}",
                  "power the device up or check its network; its sensors report as "
                  "'offline' until it says online again")]


UNIT_FIX = ("map the field to a sensor of that quantity, or set the device to a unit "
            "gridcall converts (degC, degF, K, hPa, Pa, kPa, mmHg, inHg: Tasmota "
            "SetOption8/SetOption24, Shelly's tC/tF)")


def _values_check(source: LocalMqttSource, got: list[Sample], expected: set[str],
                  seen: set[str], bad: str, wait: float, spec: AgentSpec) -> Check:
    """FAIL when nothing could be read or a value's unit cannot be converted to its
    sensor's (that sensor would never report); WARN for a value outside its kind's
    physical range (the agent would not publish it: as the Modbus and serial checks),
    or when a sensor sent nothing; PASS otherwise."""
    topics = ", ".join(source.filters[:4]) + (" ..." if len(source.filters) > 4 else "")
    units = source.map.unit_refusals
    if units:
        shown = "; ".join(f"{t}: {why}" for t, why in list(units.items())[:3])
        read = f"; read {len(got)} other values" if got else ""
        return Check("source (mqtt)", "FAIL",
                     f"refused for their unit (never published): {shown}{read}", UNIT_FIX)
    if not got and bad:
        return Check("source (mqtt)", "FAIL", f"messages arrived but none could be read: {bad}",
                     "compare the device's payload (mosquitto_sub -v -t '#') with the preset "
                     "and field names in agents.yaml")
    if not got:
        return Check("source (mqtt)", "WARN", f"no message on {topics} within {wait:g}s",
                     "check the device publishes to this broker and topic (mosquitto_sub -v "
                     "-t '#'); a device reporting every few minutes (Tasmota TelePeriod "
                     "300 s) needs a longer --wait")
    missing = sorted(expected - seen)
    detail = f"read {len(got)} values: {values(got)}" + (f"; skipped: {bad}" if bad else "")
    if missing and source.map.counters.missing_fields:
        detail += (f"; {source.map.counters.missing_fields} mapped fields were absent from "
                   "their messages (check the field names)")
    wrong = impossible(got, spec)
    if wrong:
        return Check("source (mqtt)", "WARN", f"{detail}; not published: {'; '.join(wrong)}",
                     "check the mapping's field, scale and unit against the device's "
                     "payload (mosquitto_sub -v -t '#')")
    if missing:
        return Check("source (mqtt)", "WARN", f"{detail}; nothing yet from {', '.join(missing)}",
                     "check those devices publish (or wait longer with --wait)")
    return Check("source (mqtt)", "PASS", detail)


KIND = SourceKind(LocalMqttSettings, build=_build, checks=_checks)
