"""The ingest runner: dedup by (agent, seq), batch across messages, write, classify, retry.

Sinks only write or raise (see :mod:`gridcall.hub.ingest.sinks`); this runner owns buffering,
batching
and retries, and counts everything it does not store:

- retryable failures (429, 5xx, connection errors): the data is kept and retried with
  backoff, honouring ``Retry-After``;
- 413: the batch is split in halves until it fits;
- 400/422: the points are rejected and counted (``rejected_readings``);
- 401/403/404: the data is kept and retried slowly; an operator must act.

With a :class:`~gridcall.hub.ingest.spool.Spool`, a chunk the sink cannot take now (a retryable or
operator-must-act error) is written to disk instead of being retried in memory, and counts
as settled: its messages may be acknowledged. While the sink is down, later chunks go
straight to the spool; :meth:`Ingest.run_spool` writes the spool back, oldest first, once
the sink answers again. Without a spool, the runner retries in memory and holds the
messages unacknowledged, so the broker keeps them (back-pressure).

Every batch taken may carry a *token* (for the hub: which MQTT message to acknowledge);
``on_settled(tokens)`` is called once the batch is stored, rejected or spooled, never
before, and never for a batch a drain gave up on (its message is redelivered).

Retrying is unbounded while the hub runs, but not at shutdown: :meth:`Ingest.drain`
writes what is left for at most ``drain_timeout`` seconds, then gives up on the rest, logs an
error naming the sink and what it did not write, and counts it (``unwritten_readings``,
``unwritten_batches``), so a stop always ends and nothing unwritten is claimed as stored.

A sink that keeps failing (a permanent 500, a wrong retention policy, a revoked token) is
not left to retry quietly: once it has failed for ``alarm_after`` seconds without a
success, an ERROR names the sink, its last error, the attempts so far and what waits in
the spool, again every ``alarm_every`` seconds while it lasts (``sink_alarms`` counts
them; ``write_retries`` counts every failed attempt, ``spool_write_failures`` those
writing the spool back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from gridcall.hub.deadletter import DeadLetters
from gridcall.hub.ingest.dedup import SeenBatches
from gridcall.hub.ingest.sinks import (
    BatchTooLargeError,
    ReadingSink,
    RejectedPointsError,
    RetryableSinkError,
    SinkError,
)
from gridcall.hub.ingest.spool import Spool
from gridcall.wire import ReadingBatch, encode, topics
from gridcall.wire.backoff import Backoff, Reconnect
from gridcall.wire.clock import Monotonic
from gridcall.wire.errors import InvariantError, PoisonError, RetryableError
from gridcall.wire.provenance import Refusals, Screen
from gridcall.wire.stats import Scalar, flatten
from gridcall.wire.supervise import Supervisor

log = logging.getLogger(__name__)

WRITE_RETRY_MIN_S = 0.2
"""First wait before writing a failed chunk again (doubling to ``max_backoff``)."""
OPERATOR_RETRY_S = 10.0
"""Least wait after an error only an operator can fix (no database, refused login)."""


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
    """Requests the sink refused as too large (413) and that were written in halves."""
    spool_write_failures: int = 0
    """Failed attempts to write spooled readings back to the sink (also in write_retries,
    which counts every failed attempt but 413 and 400/422)."""
    sink_alarms: int = 0
    """ERROR lines logged because the sink has been failing for ``alarm_after`` s."""
    unwritten_batches: int = 0
    unwritten_readings: int = 0
    spooled_batches: int = 0
    spooled_readings: int = 0
    unspooled_readings: int = 0
    """Readings written to the sink from the spool (also counted in readings_stored)."""
    refused: Counter[str] = field(default_factory=Counter)
    """Readings refused before storing, by reason (:mod:`gridcall.wire.provenance`):
    ``forged`` (another agent's sensor), ``unknown_sensor`` (not in the config),
    ``too_many_readings`` (their batch was longer than ``hub.max_batch_readings``).
    Counted in readings_received too; never in rejected_readings (the sink's refusals)."""
    isolations: int = 0
    """Requests with refused points written again in halves to find the batch at fault."""
    dead_lettered_batches: int = 0
    dead_lettered_readings: int = 0
    """Batches the sink can never take (their points refused), set aside in the
    dead-letter store and acknowledged (their good points, if any, are stored)."""


class _SinkFailedOnData(RejectedPointsError):
    """A sink raised outside its error contract while writing some data: treated like
    refused points (the batch at fault is found and dead-lettered), never as a crash."""

    reason = "sink_error"


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


Token = object
"""Whatever the caller needs back when a batch is settled (the hub: an MQTT message id)."""


class Ingest:
    """Feed with :meth:`put`; :meth:`run` flushes every ``flush_interval`` or when full."""

    def __init__(self, sink: ReadingSink, *, max_points: int = 5000,
                 flush_interval: float = 1.0, max_buffered_points: int = 200_000,
                 spool: Spool | None = None,
                 on_settled: Callable[[list[Token]], None] | None = None,
                 writers: int = 2, alarm_after: float = 60.0, alarm_every: float = 300.0,
                 clock: Monotonic = time.monotonic, screen: Screen | None = None,
                 dead_letters: DeadLetters | None = None,
                 supervisor: Supervisor | None = None) -> None:
        if writers < 1:
            raise ValueError(f"ingest needs at least one writer, got {writers}")
        self.writers = writers
        self.sink = sink
        self.max_points = max_points
        self.flush_interval = flush_interval
        self.max_buffered_points = max_buffered_points
        self.spool = spool
        self.on_settled = on_settled
        self.dead_letters = dead_letters
        """Where batches the sink can never take are kept (None: logged and counted)."""
        self.supervisor = supervisor or Supervisor()
        """Runs the writers and the spool's write-back in :meth:`serve`: restarted if
        they fail (the hub's one supervisor, or one of its own)."""
        self.counters = IngestCounters()
        self.screen = screen
        """Who may speak for which sensor, and how long a batch may be: the hub and
        ``gridcall hub ingest`` always give the config's; None (take every reading) is for
        benchmarks and tests of synthetic streams."""
        self.refusals = Refusals("readings", clock=clock)
        self.alarm_after = alarm_after
        self.alarm_every = alarm_every
        self._clock = clock
        self._failing_since: float | None = None  # clock() of the first failure in a row
        self._failures_in_row = 0
        self._last_alarm: float | None = None
        self.seen = SeenBatches()
        self._buffer: deque[ReadingBatch] = deque()
        self._buffered_points = 0  # buffered or being written: what room is about
        self._queued_points = 0  # buffered, not taken by a writer yet
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        # Every batch taken and not yet stored, rejected or spooled, by (agent, seq) ->
        # readings: buffered, being written, or waiting for room. What a drain gives up on.
        self._unsettled: dict[tuple[str, int], int] = {}
        self._tokens: dict[tuple[str, int], list[Token]] = {}
        self._released = False
        self._last_error: str | None = None
        self._sink_down = False
        self._stopping = False
        self.last_stored_at: float | None = None
        """Wall-clock time of the last write the sink confirmed (for rates)."""
        self._spooled = asyncio.Event()
        if spool is not None and spool.files():
            self._spooled.set()

    async def put(self, batch: ReadingBatch, token: Token | None = None) -> bool:
        """Take a batch (False if it is a duplicate, or if the screen refused all its
        readings); waits while the buffer is full. With a screen, only the readings it
        keeps are buffered; the refused are counted (``refused``) and logged.

        ``token`` comes back through ``on_settled`` once the batch is settled; for a
        duplicate, once the first copy is (at once if it already was)."""
        c = self.counters
        c.batches_received += 1
        key = (batch.agent, batch.seq)
        if not self.seen.add(batch.agent, batch.seq):
            c.duplicate_batches += 1
            if token is not None:
                if key in self._unsettled:
                    self._tokens.setdefault(key, []).append(token)
                elif self.on_settled is not None:
                    self.on_settled([token])
            return False
        c.readings_received += len(batch.readings)
        if self.screen is not None:
            screened = self.screen.batch(batch.agent, batch)
            for reason, n in screened.refused.items():
                c.refused[reason] += n
                self.refusals.note(batch.agent, reason, screened.examples[reason], n)
            if screened.batch is None:  # nothing left to store: settled now
                if token is not None and self.on_settled is not None:
                    self.on_settled([token])
                return False
            batch = screened.batch
        self._unsettled[key] = len(batch.readings)
        if token is not None:
            self._tokens[key] = [token]
        if not self._room.is_set():
            await self._room.wait()
        self._buffer.append(batch)
        self._idle.clear()
        self._buffered_points += len(batch.readings)
        self._queued_points += len(batch.readings)
        if self._queued_points >= self.max_points:
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

    def stats(self) -> dict[str, Scalar]:
        """The runner's counters, flat (:mod:`gridcall.wire.stats`), with the dedup's:
        agents tracked and batches taken again from below its window."""
        return {**flatten(self.counters), "dedup_agents": len(self.seen),
                "dedup_below_window": self.seen.below_window}

    @property
    def pending_points(self) -> int:
        return self._buffered_points

    @property
    def last_error(self) -> str | None:
        """The sink's last failure, as logged (None if it never failed)."""
        return self._last_error

    @property
    def failing_for(self) -> float | None:
        """Seconds since the sink's first failure without a success since (None: it is
        not failing)."""
        if self._failing_since is None:
            return None
        return self._clock() - self._failing_since

    def _failed(self, exc: SinkError, *, spooling: bool) -> None:
        """Count a failed write and raise the alarm when the sink has been failing too
        long: an ERROR for people, at most once every ``alarm_every`` s."""
        c = self.counters
        if spooling:
            c.spool_write_failures += 1
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        self._failures_in_row += 1
        failing_for = now - self._failing_since
        if failing_for < self.alarm_after:
            return
        if self._last_alarm is not None and now - self._last_alarm < self.alarm_every:
            return
        self._last_alarm = now
        c.sink_alarms += 1
        spool = (f"{self.spooled_pending} readings wait in {self.spool}"
                 if self.spool is not None
                 else f"{self._buffered_points} readings wait in memory, unacknowledged")
        log.error("%s has been failing for %.0fs (%d attempts, none succeeded): %s; %s",
                  sink_label(self.sink), failing_for, self._failures_in_row, exc, spool)

    def _succeeded(self) -> None:
        if self._failing_since is not None and self._last_alarm is not None:
            log.warning("%s writes again after failing for %.0fs (%d attempts)",
                        sink_label(self.sink), self._clock() - self._failing_since,
                        self._failures_in_row)
        self._failing_since = None
        self._failures_in_row = 0
        self._last_alarm = None

    @property
    def spooled_pending(self) -> int:
        """Readings spooled by this runner and not yet written back to the sink."""
        c = self.counters
        return c.spooled_readings - c.unspooled_readings

    async def run(self) -> None:
        """``writers`` concurrent writers (two by default: one encodes the next request
        while the sink parses the last, which keeps InfluxDB busy; the acknowledgements
        still go out in arrival order). Each writes full requests as soon as there are
        some, and whatever is buffered every ``flush_interval``. If one fails, the others
        are cancelled with it (what they held goes back to the buffer) and the whole
        group fails: the supervisor starts it again."""
        async with asyncio.TaskGroup() as group:
            for i in range(self.writers):
                group.create_task(self._writer(), name=f"ingest-writer-{i}")

    async def _writer(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._full.wait(), timeout=self.flush_interval)
                full_only = True
            except TimeoutError:
                full_only = False
            await self.flush(full_only=full_only)

    async def flush(self, *, full_only: bool = False) -> None:
        """Write everything buffered now, chunked to ``max_points`` per request (with
        ``full_only``, only full requests: the rest waits for more or for the timer)."""
        while self._buffer and (not full_only or self._queued_points >= self.max_points):
            chunk: list[ReadingBatch] = []
            points = 0
            while self._buffer and (not chunk or points + len(self._buffer[0].readings)
                                    <= self.max_points):
                batch = self._buffer.popleft()
                chunk.append(batch)
                points += len(batch.readings)
            self._queued_points -= points
            if self._queued_points < self.max_points:
                self._full.clear()
            try:
                if self._sink_down and self.spool is not None:
                    await self._spool_chunk(chunk)  # don't wait on a sink known down
                else:
                    await self._write(chunk)
            except BaseException:  # cancelled, or failed: put it back, written again later
                self._requeue(chunk)
                raise
            self._buffered_points -= points
            if self._buffered_points < self.max_buffered_points:
                self._room.set()
        if not self._buffer:
            self._idle.set()

    def _requeue(self, chunk: Sequence[ReadingBatch]) -> None:
        """Put back, in order, what a cancelled write had not settled. (A cancelled
        request may still have reached the sink; writing it again is harmless: the store
        and InfluxDB both keep one point per series and timestamp.)"""
        left = [b for b in chunk if (b.agent, b.seq) in self._unsettled]
        self._buffer.extendleft(reversed(left))
        self._queued_points += sum(len(b.readings) for b in left)
        self._buffered_points -= (sum(len(b.readings) for b in chunk)
                                  - sum(len(b.readings) for b in left))

    async def serve(self, work: Awaitable[None], stop: asyncio.Event,
                    drain_timeout: float) -> Unwritten:
        """Run the writers and the spool's write-back while ``work`` (whatever feeds this
        ingest: a readings consumer) runs; when it returns, write out what is held for at
        most ``drain_timeout`` seconds and return what was not written. A producer waiting
        for room (the sink is down) is released once ``stop`` is set, so that ``work`` can
        see it. The one run-and-drain sequence for the hub and ``gridcall hub ingest``."""
        supervise = self.supervisor.run
        writer = asyncio.create_task(supervise("ingest-writers", self.run),
                                     name="ingest-writer")
        helpers = [asyncio.create_task(supervise("ingest-spool", self.run_spool, stop=stop),
                                       name="ingest-spool"),
                   asyncio.create_task(self._release_on(stop), name="ingest-release")]
        unwritten = Unwritten()
        try:
            await work
        finally:  # a write or spool write cut short is put back, and repeated
            for task in helpers:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            unwritten = await self.stop(writer, drain_timeout)
        return unwritten

    async def _release_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.release_producers()

    async def stop(self, writer: asyncio.Task[None], drain_timeout: float) -> Unwritten:
        """End :meth:`run` (its task is ``writer``) and :meth:`drain`, all within
        ``drain_timeout``. The writers first finish the requests they are in rather than
        being cut short: a request cut short may still have been stored, and writing it
        again stores its points twice in a sink that keeps duplicates (VictoriaMetrics).
        Only a write still not done when the time is up is cancelled (and put back)."""
        started = time.monotonic()
        self._stopping = True
        self._full.set()  # wake writers waiting for a full request
        done, _ = await asyncio.wait({writer}, timeout=drain_timeout)
        if not done:
            writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        return await self.drain(max(0.0, drain_timeout - (time.monotonic() - started)))

    async def drain(self, drain_timeout: float) -> Unwritten:
        """Write out what is buffered, trying for at most ``drain_timeout`` s; then give
        up on the rest: log it as an error naming the sink, count it, and return it.
        (With a spool, a sink that is down only costs the time to spool.)"""
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
            self._tokens.clear()
            self._buffer.clear()
            self._buffered_points = 0
            self._queued_points = 0
            self._full.clear()
            self._room.set()
            self._idle.set()
        if self.spooled_pending > 0:
            log.warning("%s: %d readings wait in the spool %s; they are written when the "
                        "sink answers again (at the next start if not before)",
                        sink_label(self.sink), self.spooled_pending, self.spool)
        return left

    async def drained(self) -> None:
        await self._idle.wait()

    def _settled(self, batches: Sequence[ReadingBatch]) -> None:
        tokens: list[Token] = []
        for b in batches:
            key = (b.agent, b.seq)
            if self._unsettled.pop(key, None) is not None:
                tokens.extend(self._tokens.pop(key, ()))
        if tokens and self.on_settled is not None:
            self.on_settled(tokens)

    async def _spool_chunk(self, chunk: Sequence[ReadingBatch]) -> None:
        spool = self.spool
        if spool is None:
            raise InvariantError("Ingest._spool_chunk called without a spool")
        spooled = await asyncio.to_thread(spool.put, chunk)
        c = self.counters
        c.spooled_batches += len(chunk)
        c.spooled_readings += spooled.readings
        self._settled(chunk)
        self._spooled.set()

    async def run_spool(self, *, max_backoff: float = 5.0) -> None:
        """Write spooled chunks back to the sink, oldest first, whenever there are any;
        retries (at most ``max_backoff`` s apart) while the sink is down."""
        if self.spool is None:
            return
        spool = self.spool
        while True:
            await self._spooled.wait()
            files = await asyncio.to_thread(spool.files)
            if not files:
                self._spooled.clear()
                continue
            for path in files:
                try:
                    batches = await asyncio.to_thread(spool.read, path)
                except ValueError as exc:
                    bad = await asyncio.to_thread(spool.quarantine, path)
                    log.error("%s; moved to %s, NOT written", exc, bad)
                    continue
                n = sum(len(b.readings) for b in batches)
                await self._write(batches, spool_failures=False, max_backoff=max_backoff)
                await asyncio.to_thread(spool.remove, path)
                self.counters.unspooled_readings += n
                log.info("wrote %d spooled readings from %s", n, path.name)

    async def _sink_write(self, chunk: Sequence[ReadingBatch]) -> None:
        """The sink's write, with every failure as a :class:`SinkError`: a sink that
        raises outside that contract (the embedded store's ``RetryableError`` and
        ``PoisonError``; anything else, a bug met on this data) is classified here, so
        no exception of a sink ever ends a writer."""
        try:
            await self.sink.write(chunk)
        except SinkError:
            raise
        except RetryableError as exc:
            raise RetryableSinkError(f"{sink_label(self.sink)}: {exc}") from exc
        except PoisonError as exc:
            raise RejectedPointsError(str(exc)) from exc
        except Exception as exc:  # not in the sink's contract: set the data aside
            raise _SinkFailedOnData(f"{sink_label(self.sink)} failed on these readings: "
                                    f"{type(exc).__name__}: {exc}") from exc

    async def _dead_letter(self, batch: ReadingBatch, reason: str, detail: str) -> bool:
        """Keep a batch the sink can never take in the dead-letter store, and forget it
        was seen, so that a replay (or a redelivery) is taken again. False if it could
        not be kept (no store, or the store failed): it is then still settled, counted as
        rejected, and said in the log."""
        c = self.counters
        c.dead_lettered_batches += 1
        c.dead_lettered_readings += len(batch.readings)
        self.seen.forget(batch.agent, batch.seq)
        if self.dead_letters is None:
            log.error("batch %s/%d NOT stored and not kept (no dead-letter store): %s",
                      batch.agent, batch.seq, detail)
            return False
        return await self.dead_letters.keep(topics.readings_topic(batch.agent),
                                            encode(batch), reason, detail)

    async def _write(self, chunk: Sequence[ReadingBatch], *, spool_failures: bool = True,
                     max_backoff: float = 30.0) -> None:
        retry = Reconnect(Backoff(WRITE_RETRY_MIN_S, max_backoff, jitter=0.1),
                          refused_min=OPERATOR_RETRY_S)
        c = self.counters
        while True:
            try:
                await self._sink_write(chunk)
            except BatchTooLargeError:
                if len(chunk) == 1:
                    log.error("batch %s/%d alone is too large for the sink; rejected",
                              chunk[0].agent, chunk[0].seq)
                    c.rejected_readings += len(chunk[0].readings)
                    await self._dead_letter(chunk[0], "rejected", "too large for the sink")
                    self._settled(chunk)
                    return
                c.splits += 1
                half = len(chunk) // 2
                await self._write(chunk[:half], spool_failures=spool_failures,
                                  max_backoff=max_backoff)
                await self._write(chunk[half:], spool_failures=spool_failures,
                                  max_backoff=max_backoff)
                return
            except RejectedPointsError as exc:
                if len(chunk) > 1:
                    # Which message carries the bad points? Write the halves again until
                    # one batch is left: only it is set aside. (The good points a partial
                    # write already stored are written again: InfluxDB and the embedded
                    # store keep one point per series and timestamp.)
                    c.isolations += 1
                    half = len(chunk) // 2
                    await self._write(chunk[:half], spool_failures=spool_failures,
                                      max_backoff=max_backoff)
                    await self._write(chunk[half:], spool_failures=spool_failures,
                                      max_backoff=max_backoff)
                    return
                # InfluxDB stores the good points of a partial write and says how many it
                # dropped; without that figure, count the whole batch as rejected.
                n = len(chunk[0].readings)
                dropped = exc.dropped if exc.dropped is not None else n
                c.rejected_readings += dropped
                c.readings_stored += n - dropped
                log.warning("sink rejected %d of %d readings of batch %s/%d: %s", dropped, n,
                            chunk[0].agent, chunk[0].seq, exc)
                await self._dead_letter(chunk[0], exc.reason, str(exc))
                self._settled(chunk)
                return
            except SinkError as exc:  # retryable, operator must act, or unclassified
                c.write_retries += 1
                self._last_error = str(exc)
                self._failed(exc, spooling=not spool_failures)
                if spool_failures and self.spool is not None:
                    if not self._sink_down:
                        log.warning("sink write failed (%s); spooling to %s until it "
                                    "answers again", exc, self.spool.folder)
                    self._sink_down = True
                    await self._spool_chunk(chunk)
                    return
                # an operator-must-act error (SinkConfigError, SinkAuthError: FatalError)
                # is REFUSED: retried no faster than every OPERATOR_RETRY_S
                failure = retry.failed(exc, retry_after=exc.retry_after or None)
                log.warning("sink write failed (%s); keeping %d batches, retry in %.1fs",
                            exc, len(chunk), failure.delay)
                await retry.pause(failure)
                continue
            c.batches_stored += len(chunk)
            c.readings_stored += sum(len(b.readings) for b in chunk)
            self.last_stored_at = time.time()
            self._succeeded()
            if self._sink_down:
                log.info("sink answers again")
                self._sink_down = False
            self._settled(chunk)
            return
