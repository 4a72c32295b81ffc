"""The ingest runner: dedup by (agent, seq), batch across messages, write, classify, retry.

Sinks only write or raise (see :mod:`hub.sinks`); this runner owns buffering, batching
and retries, and counts everything it does not store:

- retryable failures (429, 5xx, connection errors): the data is kept and retried with
  backoff, honouring ``Retry-After``;
- 413: the batch is split in halves until it fits;
- 400/422: the points are rejected and counted (``rejected_readings``);
- 401/403/404: the data is kept and retried slowly; an operator must act.

Retrying is unbounded while the hub runs, but not at shutdown: :meth:`Ingest.drain`
writes what is left for at most ``drain_timeout`` seconds, then gives up on the rest, logs an
error naming the sink and what it did not write, and counts it (``unwritten_readings``,
``unwritten_batches``), so a stop always ends and nothing unwritten is claimed as stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from hub.sinks import (
    BatchTooLargeError,
    ReadingSink,
    RejectedPointsError,
    RetryableSinkError,
    SinkConfigError,
    SinkError,
)
from wire import ReadingBatch

log = logging.getLogger(__name__)


@dataclass
class IngestCounters:
    batches_received: int = 0
    readings_received: int = 0
    duplicate_batches: int = 0
    batches_stored: int = 0
    readings_stored: int = 0
    rejected_readings: int = 0
    write_retries: int = 0
    splits: int = 0
    unwritten_batches: int = 0
    unwritten_readings: int = 0


@dataclass(frozen=True, slots=True)
class Unwritten:
    """What a bounded :meth:`Ingest.drain` gave up on: never confirmed by the sink."""

    batches: int = 0
    readings: int = 0

    def __bool__(self) -> bool:
        return self.batches > 0


def sink_label(sink: object) -> str:
    """The sink as people should read it in a log: its repr (URL without credentials) if
    it has one, else its type."""
    if type(sink).__repr__ is not object.__repr__:
        return repr(sink)
    return type(sink).__name__


class SeenBatches:
    """Which ``(agent, seq)`` pairs were taken recently: a bounded window per agent."""

    def __init__(self, per_agent: int = 65_536) -> None:
        self.per_agent = per_agent
        self._seen: dict[str, OrderedDict[int, None]] = {}

    def add(self, agent: str, seq: int) -> bool:
        """True the first time a pair is seen; False for a duplicate."""
        seen = self._seen.setdefault(agent, OrderedDict())
        if seq in seen:
            return False
        seen[seq] = None
        if len(seen) > self.per_agent:
            seen.popitem(last=False)
        return True


class Ingest:
    """Feed with :meth:`put`; :meth:`run` flushes every ``flush_interval`` or when full."""

    def __init__(self, sink: ReadingSink, *, max_points: int = 5000,
                 flush_interval: float = 1.0, max_buffered_points: int = 200_000) -> None:
        self.sink = sink
        self.max_points = max_points
        self.flush_interval = flush_interval
        self.max_buffered_points = max_buffered_points
        self.counters = IngestCounters()
        self.seen = SeenBatches()
        self._buffer: deque[ReadingBatch] = deque()
        self._buffered_points = 0
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        # Every batch taken and not yet stored or rejected, by (agent, seq) -> readings:
        # buffered, being written, or waiting for room. What a drain gives up on.
        self._unsettled: dict[tuple[str, int], int] = {}
        self._released = False
        self._last_error: str | None = None

    async def put(self, batch: ReadingBatch) -> bool:
        """Take a batch (False if it is a duplicate); waits while the buffer is full."""
        c = self.counters
        c.batches_received += 1
        if not self.seen.add(batch.agent, batch.seq):
            c.duplicate_batches += 1
            return False
        c.readings_received += len(batch.readings)
        self._unsettled[(batch.agent, batch.seq)] = len(batch.readings)
        await self._room.wait()
        self._buffer.append(batch)
        self._idle.clear()
        self._buffered_points += len(batch.readings)
        if self._buffered_points >= self.max_points:
            self._full.set()
        if self._buffered_points >= self.max_buffered_points and not self._released:
            self._room.clear()
        return True

    def release_producers(self) -> None:
        """Stop holding producers back: a :meth:`put` waiting for room goes through (the
        buffer may exceed ``max_buffered_points`` by what was waiting), so a consumer
        that is stopping is not stuck behind a sink that is down. Call it at shutdown,
        before :meth:`drain`."""
        self._released = True
        self._room.set()

    @property
    def pending_points(self) -> int:
        return self._buffered_points

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), timeout=self.flush_interval)
            await self.flush()

    async def flush(self) -> None:
        """Write everything buffered now, chunked to ``max_points`` per request."""
        while self._buffer:
            chunk: list[ReadingBatch] = []
            points = 0
            while self._buffer and (not chunk or points + len(self._buffer[0].readings)
                                    <= self.max_points):
                batch = self._buffer.popleft()
                chunk.append(batch)
                points += len(batch.readings)
            try:
                await self._write(chunk)
            except asyncio.CancelledError:
                self._requeue(chunk)
                raise
            self._buffered_points -= points
            if self._buffered_points < self.max_buffered_points:
                self._room.set()
        self._full.clear()
        self._idle.set()

    def _requeue(self, chunk: Sequence[ReadingBatch]) -> None:
        """Put back, in order, what a cancelled write had not settled. (A cancelled
        request may still have reached the sink; writing it again is harmless: the store
        and InfluxDB both keep one point per series and timestamp.)"""
        left = [b for b in chunk if (b.agent, b.seq) in self._unsettled]
        self._buffer.extendleft(reversed(left))
        self._buffered_points -= (sum(len(b.readings) for b in chunk)
                                  - sum(len(b.readings) for b in left))

    async def drain(self, drain_timeout: float) -> Unwritten:
        """Write out what is buffered, trying for at most ``drain_timeout`` s; then give
        up on the rest: log it as an error naming the sink, count it, and return it."""
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), drain_timeout)
        left = Unwritten(batches=len(self._unsettled), readings=sum(self._unsettled.values()))
        if left:
            c = self.counters
            c.unwritten_batches += left.batches
            c.unwritten_readings += left.readings
            log.error("%s: %d readings in %d batches NOT written; gave up after %.1fs "
                      "(drain timeout %.1fs)%s", sink_label(self.sink), left.readings,
                      left.batches, time.monotonic() - started, drain_timeout,
                      f"; last error: {self._last_error}" if self._last_error else "")
            self._unsettled.clear()
            self._buffer.clear()
            self._buffered_points = 0
            self._full.clear()
            self._room.set()
            self._idle.set()
        return left

    async def drained(self) -> None:
        await self._idle.wait()

    def _settled(self, batches: Sequence[ReadingBatch]) -> None:
        for b in batches:
            self._unsettled.pop((b.agent, b.seq), None)

    async def _write(self, chunk: Sequence[ReadingBatch]) -> None:
        backoff = 0.2
        c = self.counters
        while True:
            try:
                await self.sink.write(chunk)
            except BatchTooLargeError:
                if len(chunk) == 1:
                    log.error("batch %s/%d alone is too large for the sink; rejected",
                              chunk[0].agent, chunk[0].seq)
                    c.rejected_readings += len(chunk[0].readings)
                    self._settled(chunk)
                    return
                c.splits += 1
                half = len(chunk) // 2
                await self._write(chunk[:half])
                await self._write(chunk[half:])
                return
            except RejectedPointsError as exc:
                # InfluxDB stores the good points of a partial write and says how many it
                # dropped; without that figure, count the whole request as rejected.
                n = sum(len(b.readings) for b in chunk)
                dropped = exc.dropped if exc.dropped is not None else n
                c.rejected_readings += dropped
                c.readings_stored += n - dropped
                log.warning("sink rejected %d of %d readings: %s", dropped, n, exc)
                self._settled(chunk)
                return
            except (RetryableSinkError, SinkConfigError) as exc:
                c.write_retries += 1
                self._last_error = str(exc)
                delay = getattr(exc, "retry_after", None) or backoff
                if isinstance(exc, SinkConfigError):
                    delay = max(delay, 10.0)
                log.warning("sink write failed (%s); keeping %d batches, retry in %.1fs",
                            exc, len(chunk), delay)
                await asyncio.sleep(delay * random.uniform(0.9, 1.1))
                backoff = min(backoff * 2, 30.0)
                continue
            except SinkError as exc:  # an unclassified sink error: keep the data, retry
                c.write_retries += 1
                self._last_error = str(exc)
                log.warning("sink write failed (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            c.batches_stored += len(chunk)
            c.readings_stored += sum(len(b.readings) for b in chunk)
            self._settled(chunk)
            return
