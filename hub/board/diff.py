"""Which points of a board snapshot to write when only what changed is written
(``hub.boards.full_every`` > 1; pure, no I/O).

Once in ``full_every`` writes every point is written (a full snapshot); in between:

- ``open_alert`` for an open alert with a step or a sensor not written yet, and a
  closing point (``open=0``) for one written open that is open no more (in a full
  snapshot too);
- ``grid_risk`` and ``sensor_risk`` lines whose tags and fields differ from the last
  written (their fields hold no time);
- every ``agent_state`` line (few; their ages change every time).

Every series gets a point at least once per full snapshot, so a reader taking the
latest point per series over ``full_every + 1`` intervals sees every one, none of them
older than its last change (the boards' window, gridcall/boards/dashboards.py). Nothing
is remembered of a write that failed: the next one is full.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gridcall.hub.desk.lifecycle import AlertState


@dataclass(frozen=True, slots=True)
class Plan:
    full: bool
    alerts: frozenset[str] | None
    """The open alerts to write (None: all)."""
    closed: tuple[str, ...]
    """Alerts written open before and closed since: a closing point each."""


class SnapshotDiff:
    def __init__(self, full_every: int, *, diffed: Iterable[str]) -> None:
        """``diffed``: the line prefixes (``grid_risk,``, ``sensor_risk,``) of the lines
        written only when they changed."""
        if full_every < 1:
            raise ValueError(f"boards.full_every must be at least 1, got {full_every}")
        self.full_every = full_every
        self.diffed = tuple(p.encode() for p in diffed)
        self._since_full: int | None = None
        """Writes since the last full one (None: the next is full)."""
        self._alerts: dict[str, tuple[int, int]] = {}
        """alert -> (step n, sensors) as last written open."""
        self._lines: set[bytes] = set()
        self._next_alerts: dict[str, tuple[int, int]] = {}
        self._next_lines: set[bytes] = set()

    def plan(self, open_alerts: Iterable[AlertState],
             sensors: Mapping[str, Iterable[str]]) -> Plan:
        marks = {s.alert_id: (s.n, len(tuple(sensors.get(s.alert_id, ()))))
                 for s in open_alerts}
        self._next_alerts = marks
        # a closing point in a full snapshot too: the alert's open points are still in
        # the readers' window (with full_every 1 the window is the old two intervals,
        # and nothing is remembered: no closing points, as before)
        closed = tuple(sorted(a for a in self._alerts if a not in marks)) \
            if self.full_every > 1 else ()
        if self._since_full is None or self._since_full + 1 >= self.full_every:
            return Plan(True, None, closed)
        changed = frozenset(a for a, mark in marks.items() if self._alerts.get(a) != mark)
        return Plan(False, changed, closed)

    def lines(self, plan: Plan, body: bytes) -> bytes:
        """The lines of ``body`` (a snapshot made for ``plan``) to write."""
        if self.full_every == 1:
            return body  # every point every time: nothing to remember
        keep: list[bytes] = []
        written: set[bytes] = set()
        for line in body.splitlines(keepends=True):
            if line.startswith(self.diffed):
                key = line.rsplit(b" ", 1)[0]
                written.add(key)
                if not plan.full and key in self._lines:
                    continue
            keep.append(line)
        self._next_lines = written
        return b"".join(keep)

    def written(self, plan: Plan, ok: bool) -> None:
        """The write of ``plan`` succeeded (``ok``) or failed (then the next is full)."""
        if not ok:
            self._since_full = None
            return
        self._since_full = 0 if plan.full else (self._since_full or 0) + 1
        if self.full_every > 1:
            self._alerts = self._next_alerts
            self._lines = self._next_lines


__all__ = ["Plan", "SnapshotDiff"]
