"""The simulated clock: one integer of nanoseconds that moves only when told.

Agents, detectors, the hub's desk and its deadlines all take a
:class:`~gridcall.wire.clock.Clock` (a callable that returns POSIX nanoseconds); handing
them one :class:`SimClock` puts the whole district on simulated time, so a week passes as
fast as the work in it can be done, and the same inputs give the same timeline.
"""

from __future__ import annotations

from gridcall.wire.clock import NS


class SimClock:
    """``clock()`` is the current simulated time in POSIX ns; it never goes backwards."""

    __slots__ = ("_now",)

    def __init__(self, start_ns: int) -> None:
        if start_ns < 0:
            raise ValueError(f"a clock starts at or after the epoch, got {start_ns} ns")
        self._now = int(start_ns)

    def __call__(self) -> int:
        return self._now

    @property
    def now(self) -> int:
        return self._now

    @now.setter
    def now(self, ns: int) -> None:
        """``clock.now = ns`` / ``clock.now += step``: :meth:`advance_to` (never back)."""
        self.advance_to(ns)

    def advance_to(self, ns: int) -> int:
        """Move to ``ns`` (ValueError if it lies in the past); the new time."""
        if ns < self._now:
            raise ValueError(f"the simulated clock cannot go back from {self._now} to {ns} ns")
        self._now = int(ns)
        return self._now

    def advance(self, seconds: float) -> int:
        """Move ``seconds`` forward (ValueError if negative); the new time."""
        if seconds < 0:
            raise ValueError(f"advance needs seconds >= 0, got {seconds}")
        return self.advance_to(self._now + round(seconds * NS))

    def __repr__(self) -> str:
        return f"SimClock({self._now})"
