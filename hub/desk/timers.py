"""The desk's deadline timers: which open alert waits on which deadline, and which have
passed by a given instant. Pure bookkeeping, no clock: the desk asks with its ``now``.
The desk keeps a second heap of the same kind for its reminders.

A heap of ``(deadline, alert, step n)``, one entry armed per step that leaves an alert
open. An entry whose alert has moved on since (a later step) is stale: the desk drops it
when it comes up, so each look costs only the deadlines that passed, not a scan of every
alert. Entries taken for a write that then failed are put back, so nothing is lost.
"""

from __future__ import annotations

import heapq
from typing import NamedTuple


class Timer(NamedTuple):
    deadline: int
    """When it fires (ns, desk clock)."""
    alert_id: str
    n: int
    """The alert's step when it was armed; a later step makes it stale. (For a reminder:
    the step that started its stint, see :mod:`gridcall.hub.desk.reminders`.)"""
    which: int = 0
    """Which reminder of the stint (deadlines: always 0)."""


class DeadlineTimers:
    def __init__(self) -> None:
        self._heap: list[Timer] = []

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, deadline: int, alert_id: str, n: int, which: int = 0) -> None:
        heapq.heappush(self._heap, Timer(deadline, alert_id, n, which))

    def next(self) -> int | None:
        """The earliest deadline armed (stale entries included: a timer may wake for
        nothing, never too late)."""
        return self._heap[0].deadline if self._heap else None

    def take_due(self, now: int) -> list[Timer]:
        """Every entry whose deadline is at or before ``now``, earliest first, taken off."""
        taken: list[Timer] = []
        while self._heap and self._heap[0].deadline <= now:
            taken.append(heapq.heappop(self._heap))
        return taken

    def entries(self) -> list[Timer]:
        """Every entry armed, earliest first (for a snapshot)."""
        return sorted(self._heap)

    def restore(self, timers: list[Timer]) -> None:
        """Arm ``timers`` (from a snapshot) in place of what is armed."""
        self._heap = list(timers)
        heapq.heapify(self._heap)

    def put_back(self, timers: list[Timer]) -> None:
        """Entries taken for steps that were not written: armed again."""
        for timer in timers:
            heapq.heappush(self._heap, timer)


__all__ = ["DeadlineTimers", "Timer"]
