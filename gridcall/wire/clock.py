"""The one clock type and its time helpers.

Everything that needs "now" takes a :data:`Clock`: a callable returning POSIX time in
integer nanoseconds. :func:`time.time_ns` is the wall clock; the simulators'
:class:`~gridcall.simulators.clock.SimClock` is one too, so a whole district can run on
simulated time. Durations between ``Clock`` readings are nanoseconds; the helpers below
convert at the edges (config durations, log lines, sleeps in seconds).

The helpers read times as people and devices write them (ISO 8601, epoch numbers of any
unit, datetimes) into nanoseconds exactly, and write them back for people.

Waiting (backoff, poll intervals) is measured on the event loop's monotonic time, never on
a ``Clock``, which may jump (NTP) or be simulated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

NS = 1_000_000_000
"""Nanoseconds in a second."""
DAY_NS = 86_400 * NS
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    """``clock()`` is the current time, POSIX nanoseconds."""

    def __call__(self) -> int: ...


wall_clock: Clock = time.time_ns
"""The system's wall clock (the default wherever a ``clock`` is taken)."""

Monotonic = Callable[[], float]
"""Seconds on a clock that never jumps (:func:`time.monotonic`), for measuring waits and
how long something has lasted; never a moment on the desk's or a reading's time line."""


def ns(delta: timedelta | float) -> int:
    """A duration (a timedelta, exactly; or seconds, rounded) in whole nanoseconds."""
    if isinstance(delta, timedelta):
        return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000
    return round(delta * NS)


def seconds(ns_: int | float) -> float:
    """Nanoseconds as seconds."""
    return ns_ / NS


def from_datetime(when: datetime, tz: tzinfo = UTC) -> int:
    """A moment as POSIX nanoseconds, exactly (a time without a zone is in ``tz``)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return ns(when - EPOCH)


def from_iso(text: str, tz: tzinfo = UTC) -> int:
    """ISO 8601 (``Z`` for UTC; no zone: ``tz``) as POSIX nanoseconds; ValueError if it
    is not ISO 8601."""
    return from_datetime(datetime.fromisoformat(text.strip()), tz)


def from_epoch(number: int | float) -> int:
    """An epoch number in seconds, milliseconds, microseconds or nanoseconds, told apart
    by size (below 1e11 seconds, 1e14 ms, 1e17 µs), as nanoseconds."""
    magnitude = abs(number)
    factor = NS if magnitude < 1e11 else 10**6 if magnitude < 1e14 else (
        10**3 if magnitude < 1e17 else 1)
    return number * factor if isinstance(number, int) else round(number * factor)


def utc_text(ns_: int, *, with_seconds: bool = True) -> str:
    """``2026-12-06 06:20:05 UTC`` (or without the seconds), for people."""
    when = datetime.fromtimestamp(ns_ / NS, UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC" if with_seconds else "%Y-%m-%d %H:%M UTC")
