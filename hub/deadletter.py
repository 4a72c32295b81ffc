"""The dead-letter store: messages that decoded but could not be handled, kept for people.

A message that passes the wire contract can still fail later: a store that refuses its
rows, a desk step that raises, a timestamp outside the hub's window. Such a message is
*poison*: redelivering it fails again, and a broker that redelivers it for ever blocks
everything queued behind it. So it is written here, with its topic, its payload, a short
``reason`` (a stable label, counted) and the error's text, and only then acknowledged.
Nothing is lost and nothing is retried blindly: ``gridcall hub deadletter list`` shows
what is here, and ``gridcall hub deadletter replay`` marks entries for the running hub
(or the next ``hub run``) to take again, through the normal path, once the cause is fixed.

What is *not* poison never comes here: a sink that is down keeps its data (memory or the
spool) and retries; only data that can never be written as it is does.

One SQLite file (WAL, ``hub.deadletter_path``) shared by the hub, its ingest workers and
the CLI: each process opens its own connection; SQLite serialises the writers. The file
is created 0600 (payloads are the town's data). Calls from the event loop run in a worker
thread; a failure to write here is logged and counted, never raised into the caller's
loop: the caller decides (the desk does not acknowledge the message, so the broker keeps
it; the ingest settles it, so that one bad batch cannot hold every acknowledgement
behind it, and it is counted and logged as not kept).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from gridcall.wire.clock import Clock, wall_clock
from gridcall.wire.errors import InvariantError
from gridcall.wire.private import private_file
from gridcall.wire.stats import Scalar

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    at INTEGER NOT NULL,
    source TEXT NOT NULL,
    replay INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dead_letters_replay ON dead_letters (replay) WHERE replay = 1;
"""

MAX_ENTRIES = 100_000
"""Entries kept at most (``hub.deadletter_max_entries``); past it the oldest go, counted:
a device stamping 1970 sends one a second, and the store must not fill the disk."""

REASONS = ("ts_window", "rejected", "sink_error", "desk_error", "malformed_external",
           "unmappable")
"""The reasons in use: ``ts_window`` (stamped outside the hub's window), ``rejected`` (the
sink refused the batch's points: a 400, a constraint), ``sink_error`` (the sink raised
outside its error contract on this batch), ``desk_error`` (the desk failed on the event),
``malformed_external`` (a department's system's MQTT message that is not an external
event), ``unmappable`` (one its system's mapping in external.yaml cannot place)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    topic: str
    payload: bytes
    reason: str
    detail: str
    at: int
    """When it was dead-lettered (ns, the receiver's wall clock)."""
    source: str
    """Who put it here (the hub's desk, an ingest worker's client id)."""
    replay: bool
    """Marked for replay and not yet taken."""


def _letter(row: Any) -> DeadLetter:
    return DeadLetter(id=int(row[0]), topic=str(row[1]), payload=bytes(row[2]),
                      reason=str(row[3]), detail=str(row[4]), at=int(row[5]),
                      source=str(row[6]), replay=bool(row[7]))


class DeadLetters:
    """``with DeadLetters(path) as letters`` (or :meth:`open`/:meth:`close`)."""

    def __init__(self, path: Path | str, *, source: str = "hub",
                 clock: Clock = wall_clock, max_entries: int = MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"a dead-letter store keeps >= 1 entries, got {max_entries}")
        self.max_entries = max_entries
        self.dropped = 0
        """Oldest entries this process deleted to keep the store at ``max_entries``."""
        self.path = str(path)
        self.source = source
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        """Dead-lettered by this process since it started, by reason."""
        self.failures = 0
        """Messages this process could not dead-letter (the file failed): not acknowledged."""
        self.replayed = 0

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> Self:
        if self._db is not None:
            return self
        if self.path != ":memory:":
            private_file(Path(self.path))  # 0600 in a 0700 folder: the town's data
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                             timeout=10.0)
        db.executescript(SCHEMA)
        self._db = db
        return self

    def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()
            self._db = None

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise InvariantError(f"dead-letter store {self.path} used before open()")
        return self._db

    def _locked(self, fn: Callable[[], T]) -> T:
        with self._lock:
            return fn()

    # ------------------------------------------------------------------ writing

    def put(self, topic: str, payload: bytes, reason: str, detail: str) -> int:
        """Keep one message; returns its id. Raises sqlite3.Error if the file fails."""
        def insert() -> tuple[int, int]:
            db = self.db
            cur = db.execute(
                "INSERT INTO dead_letters (topic, payload, reason, detail, at, source) "
                "VALUES (?,?,?,?,?,?)",
                (topic, bytes(payload), reason, detail[:2000], self.clock(), self.source))
            ident = int(cur.lastrowid or 0)
            over = int(db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
                       ) - self.max_entries
            if over <= 0:
                return ident, 0
            gone = db.execute("DELETE FROM dead_letters WHERE id IN (SELECT id FROM "
                              "dead_letters ORDER BY id LIMIT ?)", (over,)).rowcount
            return ident, gone
        ident, gone = self._locked(insert)
        if gone:
            self.dropped += gone
            if self.dropped == gone or self.dropped % 1000 < gone:
                log.error("dead-letter store %s is full (%d entries): deleted its %d oldest "
                          "(%d so far); look at what keeps failing (gridcall hub deadletter "
                          "list) or raise hub.deadletter_max_entries", self.path,
                          self.max_entries, gone, self.dropped)
        self.counts[reason] += 1
        n = self.counts[reason]
        # a device whose clock is wrong sends a dead letter a second: the first ten of a
        # reason are said, then every thousandth (the counters and /metrics have them all)
        log.log(logging.ERROR if n <= 10 or n % 1000 == 0 else logging.DEBUG,
                "dead-lettered #%d (%s, %d so far) from %s: %s; it is acknowledged and kept "
                "in %s (gridcall hub deadletter list)", ident, reason, n, topic, detail,
                self.path)
        return ident

    async def keep(self, topic: str, payload: bytes, reason: str, detail: str) -> bool:
        """:meth:`put` from the event loop; False (logged, counted in ``failures``) if the
        file failed."""
        try:
            await asyncio.to_thread(self.put, topic, payload, reason, detail)
        except (sqlite3.Error, InvariantError) as exc:
            self.failures += 1
            log.error("could not dead-letter a message from %s (%s: %s): %s; it is NOT "
                      "acknowledged", topic, reason, detail, exc)
            return False
        return True

    # ------------------------------------------------------------------ reading

    def entries(self, *, reason: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` entries (of ``reason``, if given)."""
        sql = "SELECT id, topic, payload, reason, detail, at, source, replay FROM dead_letters"
        args: tuple[object, ...] = ()
        if reason is not None:
            sql += " WHERE reason = ?"
            args = (reason,)
        rows = self._locked(lambda: self.db.execute(sql + " ORDER BY id LIMIT ?",
                                                    (*args, limit)).fetchall())
        return [_letter(r) for r in rows]

    def count_by_reason(self) -> dict[str, int]:
        """Entries in the store now, by reason (every process's)."""
        rows = self._locked(lambda: self.db.execute(
            "SELECT reason, count(*) FROM dead_letters GROUP BY reason").fetchall())
        return {str(r[0]): int(r[1]) for r in rows}

    # ------------------------------------------------------------------ replay

    def mark_replay(self, *, ids: Sequence[int] = (), reason: str | None = None,
                    every: bool = False) -> int:
        """Mark entries for replay (by id, by reason, or all); returns how many."""
        def mark() -> int:
            if every:
                cur = self.db.execute("UPDATE dead_letters SET replay = 1")
            elif reason is not None:
                cur = self.db.execute("UPDATE dead_letters SET replay = 1 WHERE reason = ?",
                                      (reason,))
            else:
                cur = self.db.executemany("UPDATE dead_letters SET replay = 1 WHERE id = ?",
                                          [(i,) for i in ids])
            return cur.rowcount
        return self._locked(mark)

    def take_replays(self, limit: int = 500) -> list[DeadLetter]:
        """Remove and return up to ``limit`` entries marked for replay, oldest first (one
        transaction: two hubs never take the same entry). Taken entries go through the
        normal path again; one that fails again is dead-lettered again, as a new entry."""
        def take() -> list[Any]:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    "SELECT id, topic, payload, reason, detail, at, source, replay "
                    "FROM dead_letters WHERE replay = 1 ORDER BY id LIMIT ?",
                    (limit,)).fetchall()
                db.executemany("DELETE FROM dead_letters WHERE id = ?",
                               [(r[0],) for r in rows])
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return rows
        rows = self._locked(take)
        self.replayed += len(rows)
        return [_letter(r) for r in rows]

    def stats(self) -> dict[str, Scalar]:
        """This process's counters, flat (:mod:`gridcall.wire.stats`): ``dead_lettered.<reason>``
        for every reason, ``failures``, ``replayed``, ``dropped``."""
        out: dict[str, Scalar] = {f"dead_lettered.{r}": self.counts.get(r, 0) for r in REASONS}
        out |= {f"dead_lettered.{r}": n for r, n in self.counts.items() if r not in REASONS}
        out["failures"] = self.failures
        out["replayed"] = self.replayed
        out["dropped"] = self.dropped
        return out
