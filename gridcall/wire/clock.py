"""The one clock type and its time helpers.

Everything that needs "now" takes a :data:`Clock`: a callable returning POSIX time in
integer nanoseconds. :func:`time.time_ns` is the wall clock; the simulators'
:class:`~gridcall.simulators.clock.SimClock` is one too, so a whole district can run on
simulated time. Durations between ``Clock`` readings are nanoseconds; the helpers below
convert at the edges (config durations, log lines, sleeps in seconds).

Waiting (backoff, poll intervals) is measured on the event loop's monotonic time, never on
a ``Clock``, which may jump (NTP) or be simulated.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Protocol

NS = 1_000_000_000
"""Nanoseconds in a second."""
DAY_NS = 86_400 * NS


class Clock(Protocol):
    """``clock()`` is the current time, POSIX nanoseconds."""

    def __call__(self) -> int: ...


wall_clock: Clock = time.time_ns
"""The system's wall clock (the default wherever a ``clock`` is taken)."""


def ns(delta: timedelta | float) -> int:
    """A duration (a timedelta, exactly; or seconds, rounded) in whole nanoseconds."""
    if isinstance(delta, timedelta):
        return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000
    return round(delta * NS)


def seconds(ns_: int | float) -> float:
    """Nanoseconds as seconds."""
    return ns_ / NS
