"""Encoding and checked decoding of wire messages.

Decoding never raises anything but :class:`MalformedMessage`, whose ``reason`` is a
short, stable label (used as a counter key) and whose message says what was wrong and
where. :class:`Decoder` keeps a counter per reason so rates can be reported without a
log line per bad message.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TypeVar

import msgspec

from gridcall.wire import topics
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


class Decoder:
    """Reusable, checked decoders for every message type, with a counter of rejects."""

    def __init__(self) -> None:
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

    def readings(self, topic: str, payload: bytes) -> ReadingBatch:
        agent = self._agent(topic, "readings")
        batch = self._decode(self._readings, topic, payload)
        self._same_agent(topic, agent, batch.agent)
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
        return event

    def status(self, topic: str, payload: bytes) -> AgentStatus:
        agent = self._agent(topic, "status")
        status = self._decode(self._status, topic, payload)
        self._same_agent(topic, agent, status.agent)
        return status

    def alert(self, topic: str, payload: bytes) -> RiskAlert:
        return self._decode(self._alert, topic, payload)
