"""The agent's durable outbox: SQLite in WAL mode, events before readings, bounded.

Every message the agent will publish (an anomaly event, a sealed batch of readings) is
written here first; :meth:`Outbox.put` returns once the row is committed. The publisher
reads the head with :meth:`Outbox.peek` (events first, then readings, each in the order
they were put, across restarts: ``id`` is an AUTOINCREMENT key, never reused) and
deletes a message with :meth:`Outbox.ack` only after the broker's PUBACK (QoS 1). A crash
between the PUBACK and the delete means the message is published again after the
restart; the hub stores it once, by ``(agent, seq)``.

**What a commit survives** (``sync``, from ``outbox_sync`` in agents.yaml):

- ``"full"`` (default): ``PRAGMA synchronous=FULL``; each commit fsyncs the WAL, so a
  message ``put`` has returned for survives kill -9 *and* a power cut.
- ``"normal"``: ``PRAGMA synchronous=NORMAL``; the WAL is fsynced only at checkpoints.
  A committed message survives kill -9 (the OS has the write), but a power cut may roll
  back the last commits before the most recent checkpoint (up to ~4 MB of WAL). The
  database itself stays consistent either way.

Readings are already batched (one commit per ``batch_max_readings`` readings or per
``batch_interval``), so "full" costs one fsync per batch, not per reading; acks are
deleted a publish window at a time, and that commit is not fsynced by itself even with
"full" (a lost delete only means a harmless redelivery; the next put's fsync covers it).
The agent puts what one tick of its source sealed (several batches when many devices
answer at once) in one :meth:`Outbox.group`: one commit, one fsync, for all of them.
Readings read but not yet sealed are in the agent's journal
(:mod:`gridcall.edge_agent.journal`, a plain file, not fsynced: a kill -9 loses none of
them, a power cut up to one batch); the ``journal`` table holds the last generation of it
a stored batch sealed. docs/benchmarks.md has the measured cost of both policies.

**Bounds.** ``max_bytes`` bounds the payload bytes held (the file adds SQLite's page
overhead; freed pages are reused, not returned) and ``max_age`` the age of a message by
the agent's clock. Past a bound the oldest *readings* go first; events are kept unless
``drop_events``. A message stamped before 2020 (a Pi that booted without a clock) is
never dropped by age, only by size: a clock that later jumps forward would otherwise
make it look decades old. Every drop is counted in ``drops`` (persisted in the same
transaction, so totals survive restarts) and logged.

An unreadable outbox file (not SQLite, damaged) is moved aside to ``*.corrupt-<ns>``
with an error naming it, and the agent starts with an empty outbox rather than not at all.

Calls run on the event loop's thread: a commit is one small write (plus one fsync with
"full"), a few milliseconds on an SD card, at about one batch a second.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Literal

from gridcall.wire.clock import Clock, wall_clock
from gridcall.wire.errors import InvariantError
from gridcall.wire.private import private_file

log = logging.getLogger(__name__)

SyncPolicy = Literal["full", "normal"]
PLAUSIBLE_NS = 1_577_836_800 * 10**9
"""2020-01-01: a message stamped earlier was made before the clock was set."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    priority INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    readings INTEGER NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_head ON messages (priority, id);
CREATE TABLE IF NOT EXISTS drops (what TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY CHECK (id = 1),
                                    sealed INTEGER NOT NULL);
"""


class Priority(IntEnum):
    """Lower goes first."""

    EVENT = 0
    READINGS = 1


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    priority: Priority
    topic: str
    payload: bytes
    readings: int
    created: int


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    """What the outbox holds now (the agent's status message reports it). Not a
    ``stats()`` mapping: that name is the counters protocol (:mod:`gridcall.wire.stats`)."""

    messages: int
    events: int
    readings: int
    bytes: int
    oldest_created: int | None


class OutboxError(RuntimeError):
    """The outbox cannot be written (disk full, read-only, gone); names the file."""


class Outbox:
    """``path`` None keeps the outbox in memory (tests, the demo): same code, no disk."""

    def __init__(self, path: Path | None, *, max_bytes: int = 256 * 2**20,
                 max_age_ns: int = 7 * 86_400 * 10**9, drop_events: bool = False,
                 sync: SyncPolicy = "full", clock: Clock = wall_clock) -> None:
        if sync not in ("full", "normal"):
            raise ValueError(f"outbox sync must be 'full' or 'normal', not {sync!r}")
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_ns = max_age_ns
        self.drop_events = drop_events
        self.sync = sync
        self.clock = clock
        self.drops: Counter[str] = Counter()
        """Persisted totals: ``readings_size``/``batches_size``/``events_size`` and the
        same ``_age``, plus ``outbox_corrupt`` when a damaged file was moved aside."""
        self._inflight: set[int] = set()
        self._over_bound_warned = False
        self._grouping = False
        """Inside :meth:`group`: writes join one transaction, committed when it ends."""
        self._group_begun = False
        self._db = self._open()

    # ------------------------------------------------------------------ opening

    def _where(self) -> str:
        return str(self.path) if self.path is not None else ":memory:"

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._where(), isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.sync.upper()}")
            db.execute("PRAGMA journal_size_limit=4194304")
            db.executescript(SCHEMA)
            row = db.execute("SELECT count(*), coalesce(sum(priority = 0), 0), "
                             "coalesce(sum(readings), 0), coalesce(sum(length(payload)), 0) "
                             "FROM messages").fetchone()
            self.messages, self.events, self.readings, self.bytes = (int(x) for x in row)
            self.drops = Counter({w: int(n) for w, n in db.execute("SELECT what, n FROM drops")})
        except BaseException:
            db.close()
            raise
        return db

    def _open(self) -> sqlite3.Connection:
        if self.path is not None:
            try:
                private_file(self.path)  # 0600 in a 0700 folder
            except OSError as exc:
                raise OutboxError(f"outbox {self.path}: cannot create it ({exc})"
                                  ) from exc
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            # only "not a database" / "malformed" mean a damaged file; anything else (no
            # permission, disk I/O error, locked) is refused, not moved aside
            damaged = "not a database" in str(exc) or "malformed" in str(exc)
            if self.path is None or not damaged:
                raise OutboxError(f"outbox {self._where()}: cannot open it ({exc})") from exc
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.time_ns()}")
            for suffix in ("", "-wal", "-shm"):
                part = Path(str(self.path) + suffix)
                if part.exists():
                    part.rename(Path(str(aside) + suffix))
            log.error("outbox %s is not a readable SQLite database (%s); moved it to %s and "
                      "starting with an empty outbox: what it held is not sent", self.path,
                      exc, aside)
            db = self._connect()
            self.drops["outbox_corrupt"] += 1
            db.execute("INSERT INTO drops VALUES ('outbox_corrupt', 1) "
                       "ON CONFLICT (what) DO UPDATE SET n = n + 1")
            return db

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ writing

    def _fail(self, what: str, exc: sqlite3.Error) -> OutboxError:
        return OutboxError(f"outbox {self._where()}: cannot {what} ({exc})")

    def put(self, priority: Priority, topic: str, payload: bytes, readings: int = 0, *,
            created: int | None = None, sealed_generation: int | None = None) -> int:
        """Store one message durably (see the module doc for "durably"); its id. If the
        outbox is now over ``max_bytes``, the oldest readings are dropped (and counted)
        in the same transaction. ``sealed_generation``: the message seals the journal's
        readings of that generation (:mod:`gridcall.edge_agent.journal`), recorded in the
        same transaction."""
        created = self.clock() if created is None else created
        dropped: Counter[str] = Counter()
        with self._transaction("store a message") as db:
            cur = db.execute("INSERT INTO messages (priority, topic, payload, readings, "
                             "created) VALUES (?,?,?,?,?)",
                             (int(priority), topic, payload, readings, created))
            if sealed_generation is not None:
                db.execute("INSERT INTO journal VALUES (1, ?) ON CONFLICT (id) "
                           "DO UPDATE SET sealed = excluded.sealed", (sealed_generation,))
            self._account(1, priority == Priority.EVENT, readings, len(payload))
            if self.bytes > self.max_bytes:
                dropped = self._shed()
        if dropped:
            self._report(dropped, f"over {self.max_bytes} bytes")
        if cur.lastrowid is None:
            raise InvariantError(f"outbox {self.path}: an INSERT gave no row id")
        return cur.lastrowid

    @property
    def grouping(self) -> bool:
        """Inside :meth:`group`: what is put now is durable only once the group ends."""
        return self._grouping

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """Writes made inside the block share one transaction, committed (and fsynced,
        with ``full``) when the block ends: a message put inside is durable once the
        block has ended, not when :meth:`put` returns. The agent puts all that one tick
        of its source gave (every device that answered) in one group, so many batches
        cost one commit; the block has no ``await``, so nothing is published or polled
        before the commit. On an error the whole group is rolled back and the error
        raised (an SQLite one as :class:`OutboxError`); nested groups join the outer."""
        if self._grouping:
            yield
            return
        self._grouping = True
        try:
            yield
        except BaseException:
            if self._group_begun:
                self._db.execute("ROLLBACK")
                self._reload()
            raise
        else:
            if self._group_begun:
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._db.execute("ROLLBACK")
                    self._reload()
                    raise self._fail("commit a group of messages", exc) from exc
        finally:
            self._grouping = self._group_begun = False

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``. On any error: ``ROLLBACK`` and recount the
        in-memory totals from the table (the block may have moved them); an SQLite error
        becomes an :class:`OutboxError` saying what could not be done, and where. Inside
        :meth:`group` the block joins the group's transaction (begun by the first one),
        and the group commits or rolls back."""
        db = self._db
        if self._grouping:
            try:
                if not self._group_begun:
                    db.execute("BEGIN IMMEDIATE")
                    self._group_begun = True
                yield db
            except sqlite3.Error as exc:
                raise self._fail(what, exc) from exc
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._reload()
                raise
        except sqlite3.Error as exc:
            raise self._fail(what, exc) from exc

    def _account(self, messages: int, event: bool, readings: int, size: int) -> None:
        self.messages += messages
        self.events += messages if event else 0
        self.readings += readings
        self.bytes += size

    def _reload(self) -> None:
        row = self._db.execute("SELECT count(*), coalesce(sum(priority = 0), 0), "
                               "coalesce(sum(readings), 0), coalesce(sum(length(payload)), 0) "
                               "FROM messages").fetchone()
        self.messages, self.events, self.readings, self.bytes = (int(x) for x in row)

    def _delete(self, rows: list[tuple[int, int, int, int]], reason: str) -> Counter[str]:
        """Delete (id, priority, readings, size) rows inside the caller's transaction;
        what was dropped, by counter key."""
        dropped: Counter[str] = Counter()
        self._db.executemany("DELETE FROM messages WHERE id = ?", [(r[0],) for r in rows])
        for _, priority, readings, size in rows:
            event = priority == Priority.EVENT
            self._account(-1, event, -readings, -size)
            if event:
                dropped[f"events_{reason}"] += 1
            else:
                dropped[f"batches_{reason}"] += 1
                dropped[f"readings_{reason}"] += readings
        self._db.executemany("INSERT INTO drops VALUES (?, ?) ON CONFLICT (what) "
                             "DO UPDATE SET n = n + excluded.n", list(dropped.items()))
        self.drops.update(dropped)
        return dropped

    def _candidates(self, priority: Priority, extra: str = "", args: tuple[int, ...] = (),
                    limit: int = 256) -> list[tuple[int, int, int, int]]:
        skip = ",".join(str(i) for i in self._inflight)
        rows = self._db.execute(
            "SELECT id, priority, readings, length(payload) FROM messages WHERE priority = ?"
            + (f" AND id NOT IN ({skip})" if skip else "") + extra + " ORDER BY id LIMIT ?",
            (int(priority), *args, limit)).fetchall()
        return [(int(a), int(b), int(c), int(d)) for a, b, c, d in rows]

    def _shed(self) -> Counter[str]:
        """Drop the oldest readings (then events, if allowed) until within max_bytes."""
        dropped: Counter[str] = Counter()
        order = [Priority.READINGS] + ([Priority.EVENT] if self.drop_events else [])
        for priority in order:
            while self.bytes > self.max_bytes:
                rows = self._candidates(priority)
                if not rows:
                    break
                excess, take = self.bytes - self.max_bytes, []
                for row in rows:
                    take.append(row)
                    excess -= row[3]
                    if excess <= 0:
                        break
                dropped.update(self._delete(take, "size"))
        if self.bytes > self.max_bytes and not self._over_bound_warned:
            self._over_bound_warned = True
            log.warning("outbox %s holds %d bytes of events alone, over its %d-byte bound; "
                        "events are kept (outbox_drop_events is false)", self._where(),
                        self.bytes, self.max_bytes)
        return dropped

    def expire(self, now: int | None = None) -> Counter[str]:
        """Drop readings (and events, if allowed) older than ``max_age_ns``; counted."""
        now = self.clock() if now is None else now
        cutoff = now - self.max_age_ns
        oldest = self.oldest_created()  # cheap: the head of each priority
        if cutoff <= PLAUSIBLE_NS or oldest is None or oldest >= cutoff:
            return Counter()
        order = [Priority.READINGS] + ([Priority.EVENT] if self.drop_events else [])
        dropped: Counter[str] = Counter()
        with self._transaction("drop expired messages"):
            for priority in order:
                while rows := self._candidates(
                        priority, " AND created >= ? AND created < ?",
                        (PLAUSIBLE_NS, cutoff), limit=1024):
                    dropped.update(self._delete(rows, "age"))
        if dropped:
            self._report(dropped, f"older than {self.max_age_ns / 1e9:g} s")
        return dropped

    def _report(self, dropped: Counter[str], why: str) -> None:
        log.warning("outbox %s: dropped %s (%s); totals %s", self._where(),
                    ", ".join(f"{n} {k.split('_')[0]}" for k, n in sorted(dropped.items())
                              if not k.startswith("batches")),
                    why, dict(self.drops))

    # ------------------------------------------------------------------ sending

    def peek(self, limit: int) -> list[OutboxMessage]:
        """The head of the outbox: up to ``limit`` events in order, or, with no event
        waiting, up to ``limit`` reading batches in order. They are held as in flight
        (never dropped by a bound) until :meth:`ack` or :meth:`release`."""
        for priority in Priority:
            rows = self._db.execute(
                "SELECT id, topic, payload, readings, created FROM messages WHERE priority = ? "
                "ORDER BY id LIMIT ?", (int(priority), limit)).fetchall()
            if rows:
                out = [OutboxMessage(int(i), priority, t, bytes(p), int(n), int(c))
                       for i, t, p, n, c in rows]
                self._inflight.update(m.id for m in out)
                return out
        return []

    def ack(self, messages: Iterable[OutboxMessage]) -> None:
        """Delete messages the broker acknowledged, in one transaction. With "full" this
        commit is not fsynced by itself (``synchronous=NORMAL`` for it): the next
        commit's fsync of the WAL makes it durable too, and until then a power cut can
        only bring the window back, to be published again (a redelivery the hub stores
        once), never lose a message."""
        done = list(messages)
        relaxed = self.sync == "full"
        try:
            if relaxed:
                self._db.execute("PRAGMA synchronous=NORMAL")
            with self._transaction("delete acknowledged messages") as db:
                for m in done:
                    if db.execute("DELETE FROM messages WHERE id = ?", (m.id,)).rowcount:
                        self._account(-1, m.priority == Priority.EVENT, -m.readings,
                                      -len(m.payload))
        finally:
            self._inflight.difference_update(m.id for m in done)
            if relaxed:
                self._db.execute("PRAGMA synchronous=FULL")

    def release(self) -> None:
        """Forget what was in flight (the connection dropped before its PUBACKs)."""
        self._inflight.clear()

    # ------------------------------------------------------------------ reading

    def sealed_generation(self) -> int:
        """The last journal generation a stored batch sealed (0: none yet)."""
        row = self._db.execute("SELECT sealed FROM journal WHERE id = 1").fetchone()
        return 0 if row is None else int(row[0])

    def oldest_created(self) -> int | None:
        row = self._db.execute(
            "SELECT min(created) FROM (SELECT created FROM (SELECT created FROM messages "
            "WHERE priority = 0 ORDER BY id LIMIT 1) UNION ALL SELECT created FROM "
            "(SELECT created FROM messages WHERE priority = 1 ORDER BY id LIMIT 1))"
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def depth(self) -> OutboxDepth:
        return OutboxDepth(self.messages, self.events, self.readings, self.bytes,
                           self.oldest_created())

    def all(self) -> list[OutboxMessage]:
        """Everything held, in sending order (tests, ``edge check``)."""
        rows = self._db.execute("SELECT id, priority, topic, payload, readings, created "
                                "FROM messages ORDER BY priority, id").fetchall()
        return [OutboxMessage(int(i), Priority(p), t, bytes(b), int(n), int(c))
                for i, p, t, b, n, c in rows]
