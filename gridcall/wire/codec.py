"""Encoding and checked decoding of wire messages.

Decoding never raises anything but :class:`MalformedMessage`, whose ``reason`` is a
short, stable label (used as a counter key) and whose message says what was wrong and
where. :class:`Decoder` keeps a counter per reason so rates can be reported without a
log line per bad message.

Bounds: every integer of the contract is below 2**63 (:data:`messages.INT64_END`, checked
by msgspec), and with a :class:`TsWindow` the timestamps of readings and events must lie
within a window around the receiver's clock (reason ``ts_window``): a reading stamped in
1970 by a device that never had the time, or in 2262, would otherwise reach the stores.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from gridcall.wire import topics
from gridcall.wire.clock import NS, Clock, utc_text, wall_clock
from gridcall.wire.messages import ID_PATTERN, AgentStatus, AnomalyEvent, ReadingBatch, RiskAlert

T = TypeVar("T")

_ID = re.compile(ID_PATTERN)
KNOWN_IDS_MAX = 100_000
"""Sensor ids remembered as valid; past this the memory starts over (a hub sees a few
thousand sensors, an attacker cycling ids only makes it check again)."""

_encoder = msgspec.json.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


class MalformedMessage(ValueError):
    """A payload or topic that does not follow the wire contract."""

    def __init__(self, topic: str, reason: str, detail: str) -> None:
        super().__init__(f"malformed message on {topic!r}: {reason}: {detail}")
        self.topic = topic
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TsWindow:
    """How far before and after the receiver's clock a reading's or event's ``ts`` may
    be, in nanoseconds (``hub.ts_window`` in hub.yaml; docs/protocol.md says why its
    defaults are 30 days back and 1 hour ahead)."""

    past: int
    future: int

    def __post_init__(self) -> None:
        if self.past < 0 or self.future < 0:
            raise ValueError(f"a ts window reaches back and ahead by >= 0 ns, got "
                             f"past={self.past}, future={self.future}")

    def describe(self, now: int) -> str:
        return (f"the window {utc_text(max(0, now - self.past))} .. "
                f"{utc_text(now + self.future)} ({self.past / NS:g} s back, "
                f"{self.future / NS:g} s ahead of the receiver's clock)")


class Decoder:
    """Reusable, checked decoders for every message type, with a counter of rejects.

    With ``window``, readings and events whose ``ts`` falls outside it (around
    ``clock()``) are refused as ``ts_window``; without it only the contract's own
    bounds hold (0 <= ts < 2**63)."""

    def __init__(self, *, window: TsWindow | None = None, clock: Clock = wall_clock) -> None:
        self.window = window
        self.clock = clock
        self._readings = msgspec.json.Decoder(ReadingBatch)
        self._event = msgspec.json.Decoder(AnomalyEvent)
        self._status = msgspec.json.Decoder(AgentStatus)
        self._alert = msgspec.json.Decoder(RiskAlert)
        self.malformed: Counter[str] = Counter()
        self._valid_sensor_ids: set[str] = set()

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def stats(self) -> dict[str, int]:
        """Rejects by reason (``malformed.forged``...), flat (:mod:`gridcall.wire.stats`)."""
        return {f"malformed.{reason}": n for reason, n in sorted(self.malformed.items())}

    def _reject(self, topic: str, reason: str, detail: str) -> MalformedMessage:
        self.malformed[reason] += 1
        return MalformedMessage(topic, reason, detail)

    def _decode(self, decoder: msgspec.json.Decoder[T], topic: str, payload: bytes) -> T:
        try:
            return decoder.decode(payload)
        except msgspec.ValidationError as exc:
            raise self._reject(topic, "invalid", str(exc)) from exc
        except msgspec.DecodeError as exc:
            raise self._reject(topic, "not_json", str(exc)) from exc
        except RecursionError:  # msgspec's depth limit raises this, not DecodeError
            raise self._reject(topic, "not_json", "JSON nested deeper than the decoder "
                               "goes") from None

    def _agent(self, topic: str, kind: str) -> str:
        try:
            return topics.agent_of(topic, kind)
        except ValueError as exc:
            raise self._reject(topic, "bad_topic", str(exc)) from exc

    def _same_agent(self, topic: str, on_topic: str, in_payload: str) -> None:
        # The topic's agent is the one the broker let publish there (its ACL): a payload
        # speaking for another is a forgery (gridcall.wire.provenance), not a typo.
        if on_topic != in_payload:
            raise self._reject(
                topic, "forged", f"payload agent {in_payload!r} on {on_topic!r}'s topic"
            )

    def _in_window(self, topic: str, what: str, lo_ts: int, hi_ts: int) -> None:
        window = self.window
        if window is None:
            return
        now = self.clock()
        if lo_ts < now - window.past or hi_ts > now + window.future:
            ts = lo_ts if lo_ts < now - window.past else hi_ts
            raise self._reject(topic, "ts_window", f"{what} ts {ts} ({utc_text(ts)}) is "
                               f"outside {window.describe(now)}")

    def readings(self, topic: str, payload: bytes) -> ReadingBatch:
        agent = self._agent(topic, "readings")
        batch = self._decode(self._readings, topic, payload)
        self._same_agent(topic, agent, batch.agent)
        if self.window is not None and batch.readings:
            stamps = [r.ts for r in batch.readings]
            self._in_window(topic, f"batch {batch.agent}/{batch.seq}: a reading's",
                            min(stamps), max(stamps))
        new = {r.sensor for r in batch.readings} - self._valid_sensor_ids
        if new:
            bad = sorted(i for i in new if not _ID.match(i))
            if bad:
                raise self._reject(topic, "invalid", f"sensor id {bad[0]!r} is not "
                                   "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
            if len(self._valid_sensor_ids) + len(new) > KNOWN_IDS_MAX:
                self._valid_sensor_ids.clear()
            self._valid_sensor_ids |= new
        return batch

    def event(self, topic: str, payload: bytes) -> AnomalyEvent:
        agent = self._agent(topic, "events")
        event = self._decode(self._event, topic, payload)
        self._same_agent(topic, agent, event.agent)
        self._in_window(topic, f"event {event.agent}/{event.seq}:", event.ts, event.ts)
        return event

    def status(self, topic: str, payload: bytes) -> AgentStatus:
        agent = self._agent(topic, "status")
        status = self._decode(self._status, topic, payload)
        self._same_agent(topic, agent, status.agent)
        return status

    def alert(self, topic: str, payload: bytes) -> RiskAlert:
        return self._decode(self._alert, topic, payload)
