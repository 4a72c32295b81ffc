"""Write the board measurements (:mod:`gridcall.hub.board.feed`) through the hub's InfluxDB sink.

Two kinds of writes, with different rules when the sink fails:

- **snapshots** (``open_alert``, ``grid_risk``, ``sensor_risk``, ``agent_state``) are made
  again from the desk and the roster every interval: a failed one is logged and counted,
  never retried (the next one replaces it);
- **events** (``anomaly``, ``alert_change``) happen once: they wait in memory and are
  written with the next flush (every tick of the hub); while the sink fails they are
  kept, up to ``max_pending`` lines, beyond which the oldest are dropped and counted
  (the ledger keeps every step; the boards lose only annotations). Points InfluxDB
  refuses as malformed (400) are dropped and counted, not retried for ever.

The hub owns the schedule (:meth:`gridcall.hub.service.Hub.write_boards`, on its clock); this
module only writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from gridcall.hub.ingest.sinks import RejectedPointsError, SinkError
from gridcall.wire.stats import Scalar, flatten

log = logging.getLogger(__name__)


class LineSink(Protocol):
    async def write_lines(self, body: bytes) -> None: ...


@dataclass
class BoardCounters:
    snapshots: int = 0
    snapshot_points: int = 0
    failed_snapshots: int = 0
    event_points: int = 0
    """Event points (anomaly, alert_change) written."""
    failed_event_writes: int = 0
    rejected_event_points: int = 0
    dropped_event_points: int = 0
    """Dropped because more than ``max_pending`` waited while the sink failed."""


class BoardWriter:
    def __init__(self, sink: LineSink, *, max_pending: int = 100_000,
                 max_request_lines: int = 5_000) -> None:
        if max_pending < 1 or max_request_lines < 1:
            raise ValueError("max_pending and max_request_lines must be at least 1")
        self.sink = sink
        self.max_pending = max_pending
        self.max_request_lines = max_request_lines
        self.counters = BoardCounters()
        self._pending: deque[bytes] = deque()
        self._failing = False
        # One flush at a time: the hub's board loop flushes every tick and write_boards()
        # flushes too (tests, simulations). Two flushes awaiting the same chunk's write
        # both wrote it and both popped it, the second from an empty deque (IndexError
        # out of Hub.run) or, with new points queued meanwhile, dropping unwritten ones.
        self._flushing = asyncio.Lock()

    @property
    def pending(self) -> int:
        """Event points waiting to be written."""
        return len(self._pending)

    def stats(self) -> dict[str, Scalar]:
        """The writer's counters and the points waiting, flat (:mod:`gridcall.wire.stats`)."""
        return {**flatten(self.counters), "pending": self.pending}

    def add(self, lines: bytes) -> None:
        """Queue event points (whole lines) for the next :meth:`flush`."""
        for line in lines.splitlines(keepends=True):
            if len(self._pending) >= self.max_pending:
                self._pending.popleft()
                self.counters.dropped_event_points += 1
            self._pending.append(line)

    async def flush(self) -> bool:
        """Write the queued event points; False (kept, logged once per failing spell) if
        the sink failed. Concurrent calls run one after the other."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> bool:
        while self._pending:
            n = min(len(self._pending), self.max_request_lines)
            chunk = [self._pending[i] for i in range(n)]
            try:
                await self.sink.write_lines(b"".join(chunk))
            except RejectedPointsError as exc:
                # 400: InfluxDB 1.x wrote the good points of the request; retrying
                # would only repeat the refusal.
                self.counters.rejected_event_points += n
                log.warning("boards: InfluxDB refused %d event point(s), dropped: %s", n, exc)
            except SinkError as exc:
                self.counters.failed_event_writes += 1
                if not self._failing:
                    log.warning("boards: %d event point(s) not written yet (kept, up to %d, "
                                "and tried again each tick): %s", len(self._pending),
                                self.max_pending, exc)
                self._failing = True
                return False
            for _ in range(n):
                self._pending.popleft()
            self.counters.event_points += n
        if self._failing:
            log.info("boards: event points written again")
            self._failing = False
        return True

    async def snapshot(self, body: bytes) -> bool:
        """Write one snapshot (in requests of at most ``max_request_lines``); False
        (counted, logged) if the sink failed."""
        lines = body.splitlines(keepends=True)
        try:
            for i in range(0, len(lines), self.max_request_lines):
                await self.sink.write_lines(b"".join(lines[i:i + self.max_request_lines]))
        except SinkError as exc:
            self.counters.failed_snapshots += 1
            log.warning("boards: snapshot not written (%d failed so far; the next one "
                        "replaces it): %s", self.counters.failed_snapshots, exc)
            return False
        self.counters.snapshots += 1
        self.counters.snapshot_points += len(lines)
        return True
