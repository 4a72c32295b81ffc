"""The board data in service: the board measurements (:mod:`gridcall.hub.board.feed`,
docs/boards.md) and the assessment indicators written through the hub's sink when it
writes line protocol (InfluxDB v1 or v2).

- a snapshot (open alerts, grid and sensor risk, agents) at start, every
  ``hub.boards.interval`` of the hub's clock and at stop: whole, or with
  ``hub.boards.full_every`` > 1 whole once in that many and only what changed in between
  (:mod:`gridcall.hub.board.diff`);
- each fresh anomaly event and each ledger step as they happen (queued, flushed every
  tick);
- the indicators every 60 s (:mod:`gridcall.hub.board.indicator_writer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

from gridcall.config import ConfigSet
from gridcall.hub.board.diff import Plan, SnapshotDiff
from gridcall.hub.board.feed import BoardFeed
from gridcall.hub.board.indicator_writer import IndicatorCounters, run_indicator_writer
from gridcall.hub.board.writer import BoardWriter, LineSink
from gridcall.hub.desk.desk import Change, Desk
from gridcall.hub.desk.roster import Roster
from gridcall.wire import AnomalyEvent
from gridcall.wire.cancelsafe import STOP_BOUND, stop_tasks
from gridcall.wire.clock import Clock, ns
from gridcall.wire.errors import InvariantError

log = logging.getLogger(__name__)


class Boards:
    """The board writers of one hub, over its desk and roster. ``writer`` is None (and
    nothing is written) unless ``enabled`` and the sink writes line protocol."""

    def __init__(self, config: ConfigSet, desk: Desk, roster: Roster, sink: object, *,
                 clock: Clock, enabled: bool = True, tick_interval: float = 1.0,
                 drain_timeout: float = 10.0, agent_clock: Clock | None = None) -> None:
        self.desk = desk
        self.roster = roster
        self.clock = clock
        self.agent_clock: Clock = agent_clock or clock
        """The agents' time base, on which the roster judges them (the hub's clock unless
        the desk runs accelerated, as in a fast demo)."""
        self.settings = config.hub.boards
        self.tick_interval = tick_interval
        self.drain_timeout = drain_timeout
        self.feed = BoardFeed(config)
        self.diff = SnapshotDiff(self.settings.full_every, diffed=(
            f"{self.feed.names['grid_risk']},", f"{self.feed.names['sensor_risk']},"))
        """What of each snapshot to write (all of it unless ``boards.full_every`` > 1)."""
        self.indicator_counters = IndicatorCounters()
        self.writer: BoardWriter | None = None
        """Board data in InfluxDB: when enabled and the sink writes line protocol."""
        write_lines = getattr(sink, "write_lines", None)
        if enabled and callable(write_lines):
            self.writer = BoardWriter(cast(LineSink, sink))
            desk.add_hook(self._on_change)

    def anomaly(self, event: AnomalyEvent) -> None:
        """A fresh anomaly event: its point waits for the next flush."""
        if self.writer is not None:
            self.writer.add(self.feed.anomaly(event))

    async def _on_change(self, change: Change) -> None:
        if self.writer is not None:
            self.writer.add(self.feed.alert_change(change.alert, change.transition))

    def snapshot(self, now: int | None = None) -> bytes:
        """The board snapshot's line protocol at ``now`` (default: the clock)."""
        agents_now = now if now is not None and self.agent_clock is self.clock \
            else self.agent_clock()
        now = self.clock() if now is None else now
        open_alerts = self.desk.alerts(open_only=True)
        return self.feed.snapshot(
            open_alerts, now, agents=self.roster.views(agents_now),
            evidence={s.alert_id: self.desk.sensors_of(s.alert_id) for s in open_alerts})

    def _changed(self, now: int | None = None) -> tuple[Plan, bytes]:
        """The snapshot's lines to write now (hub/board/diff.py) and the plan they follow."""
        agents_now = now if now is not None and self.agent_clock is self.clock \
            else self.agent_clock()
        now = self.clock() if now is None else now
        open_alerts = self.desk.alerts(open_only=True)
        evidence = {s.alert_id: self.desk.sensors_of(s.alert_id) for s in open_alerts}
        plan = self.diff.plan(open_alerts, evidence)
        body = self.feed.snapshot(open_alerts, now, agents=self.roster.views(agents_now),
                                  evidence=evidence, only=plan.alerts,
                                  closed=[s for a in plan.closed
                                          if (s := self.desk.held_alert(a)) is not None])
        return plan, self.diff.lines(plan, body)

    async def write(self, now: int | None = None) -> bool:
        """Write a board snapshot (whole, or what changed: ``boards.full_every``) and the
        event points waiting; False if either failed (or there is no line-protocol
        sink)."""
        if self.writer is None:
            return False
        plan, body = self._changed(now)
        written = await self.writer.snapshot(body)
        self.diff.written(plan, written)
        return await self.writer.flush() and written

    async def _loop(self, stop: asyncio.Event) -> None:
        """A snapshot at start and every ``boards.interval`` of the clock; queued event
        points at every tick. Wakes every ``tick_interval`` of real time, so a simulated
        clock that runs fast gets a snapshot per interval it passes (at most one per
        tick)."""
        if self.writer is None:
            raise InvariantError("Boards._loop started without a board writer")
        interval = ns(self.settings.interval)
        due: int | None = None
        while not stop.is_set():
            now = self.clock()
            if due is None or now >= due:
                await self.write(now)
                due = now + interval
            else:
                await self.writer.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick_interval)

    async def run(self, stop: asyncio.Event) -> None:
        """The board loop and the indicator writer until ``stop`` (or cancelled); nothing
        without a writer."""
        if self.writer is None:
            return
        tasks = [asyncio.create_task(self._loop(stop), name="hub-boards"),
                 asyncio.create_task(run_indicator_writer(
                     self.writer.sink, self.desk.transitions, self.clock, stop,
                     counters=self.indicator_counters, deferral=self.desk.deferral),
                     name="hub-indicators")]
        try:
            await asyncio.gather(*tasks)
        finally:
            await stop_tasks(tasks, STOP_BOUND, what="hub boards", raise_errors=True)

    async def last(self) -> None:
        """At stop: a last snapshot and the event points still queued, within the drain
        timeout (what is not written then is logged by the writer)."""
        if self.writer is None:
            return
        try:
            await asyncio.wait_for(self.write(), max(1.0, self.drain_timeout))
        except TimeoutError:
            log.warning("hub: the last board snapshot was not written within %.0fs; %d "
                        "event point(s) not written", max(1.0, self.drain_timeout),
                        self.writer.pending)


__all__ = ["Boards"]
