"""Where an agent's readings come from. A source is an async iterable of samples.

The agent does not care whether samples come from a serial device, Modbus, a local MQTT
bus or a simulator; the composition root hands it one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from gridcall.wire import AnomalyKind, Severity


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """An anomaly episode the device itself announced (a local-MQTT mapping's ``events``:
    Zigbee2MQTT ``action: vibration``, a smoke detector's ``"smoke": true``), not one a
    detector found. The source says when it starts and ends; the agent sends it as an
    AnomalyEvent with its own sequence number, through its outbox."""

    kind: AnomalyKind
    phase: Literal["start", "end"]
    severity: Severity = "major"


class Sample(NamedTuple):
    sensor: str
    ts: int  # POSIX nanoseconds
    value: float | None  # None: the device answered but had no value (a dropout)
    fault: str = ""
    """Why the device's answer is no reading ("" for none): ``sentinel``, a fault code of
    the device (a Modbus register's ``faults``); value is None then. The agent marks the
    sensor's health ``fault`` and counts it, rather than a dropout."""
    event: DeviceEvent | None = None
    """An episode the device announced starts or ends with this sample; value None then
    means the message was the event alone (no reading, not a dropout)."""


class Source(Protocol):
    def samples(self) -> AsyncIterator[Sample]: ...


@runtime_checkable
class BurstSource(Protocol):
    """A source that can also hand its samples over a list at a time: everything its
    devices answered since the agent last took (:meth:`bursts`), so that many devices
    polled in one tick cost the agent one hop through the event loop, not one per value.
    The agent takes ``bursts()`` instead of ``samples()`` when a source has it; both give
    the same samples in the same order."""

    def samples(self) -> AsyncIterator[Sample]: ...

    def bursts(self) -> AsyncIterator[list[Sample]]: ...


def availability_of(source: object) -> Mapping[str, tuple[bool, int]]:
    """sensor → (online, since ns) as the source's devices said (a local-MQTT preset's
    availability topic), for the sensors they said it of; empty for a source that cannot
    tell (serial, Modbus: a device that does not answer is ``missing``)."""
    get = getattr(source, "sensor_availability", None)
    return get() if callable(get) else {}
