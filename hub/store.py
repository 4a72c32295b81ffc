"""The hub's durable store: SQLite in WAL mode.

It keeps the anomaly events (``(agent, seq)`` is unique, so a redelivery is recognised),
the alert ledger's table (:mod:`gridcall.hub.desk.ledger`, which owns it) and, for the embedded
default
with no InfluxDB, the readings too: then it is the hub's
:class:`~gridcall.hub.ingest.sinks.ReadingSink`,
storing each reading once per ``(agent, seq, sensor, ts)``.

Calls run in a worker thread (``asyncio.to_thread``) so the event loop never blocks on disk.

The desk's tables (events, the ledgers, the reminder log, the notify outbox) are reached
through :class:`DeskStore`: this SQLite store, or :class:`gridcall.hub.pgstore.PgStore`
when hub.yaml names a PostgreSQL database (``desk_store``). Their modules write one SQL
for both (``?`` placeholders, ``ON CONFLICT DO NOTHING``) against :class:`Db`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, Self, TypeVar

from gridcall.wire import AnomalyEvent, ReadingBatch
from gridcall.wire.errors import InvariantError, PoisonError, RetryableError
from gridcall.wire.private import private_file

T = TypeVar("T")

SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS readings (
    agent TEXT NOT NULL, seq INTEGER NOT NULL, sensor TEXT NOT NULL, ts INTEGER NOT NULL,
    value REAL NOT NULL, PRIMARY KEY (agent, seq, sensor, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    agent TEXT NOT NULL, seq INTEGER NOT NULL, sensor TEXT NOT NULL, kind TEXT NOT NULL,
    phase TEXT NOT NULL, ts INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (agent, seq)
) WITHOUT ROWID;
"""


class StoreConflict(Exception):
    """A row the store already holds under one of its unique keys (either store's
    integrity error, mapped at the boundary)."""


class Rows(Protocol):
    """What :meth:`Db.execute` returns (a DB-API cursor of either driver)."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Db(Protocol):
    """One connection of a desk store, as the desk's modules use it.

    SQL uses ``?`` placeholders and the subset both SQLite (3.24+) and PostgreSQL
    understand; a unique key's violation raises :class:`StoreConflict`."""

    dialect: Literal["sqlite", "postgresql"]

    def execute(self, sql: str, params: Sequence[object] = ()) -> Rows: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None: ...
    def transaction(self) -> contextlib.AbstractContextManager[None]: ...
    def create(self, schema: str) -> None:
        """Make a module's SQLite tables on first use (``executescript``); nothing on
        PostgreSQL, whose tables the numbered migrations made at connect."""


class DeskStore(Protocol):
    """Where the desk keeps its durable state: :class:`Store` (SQLite) or
    :class:`gridcall.hub.pgstore.PgStore`."""

    async def sql(self, fn: Callable[[Db], T]) -> T:
        """Run ``fn`` with the store's connection in a worker thread, one at a time."""
        ...

    async def record_event(self, event: AnomalyEvent, body: bytes) -> bool:
        """Store the event; False if ``(agent, seq)`` was stored before (a redelivery)."""
        ...


class SqliteDb:
    """:class:`Db` over a sqlite3 connection in autocommit mode."""

    dialect: Literal["sqlite", "postgresql"] = "sqlite"

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, params: Sequence[object] = ()) -> Rows:
        try:
            return self.db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise StoreConflict(str(exc)) from exc

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        try:
            self.db.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise StoreConflict(str(exc)) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            yield

    def create(self, schema: str) -> None:
        self.db.executescript(schema)


class Store:
    """``async with Store(path) as store``; ``":memory:"`` is allowed for tests."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def __aenter__(self) -> Self:
        if self.path != ":memory:":
            private_file(Path(self.path))  # 0600 in a 0700 folder: alerts, readings
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.executescript(SCHEMA)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None

    async def _run(self, fn: Callable[[], T]) -> T:
        def locked() -> T:
            with self._lock:
                return fn()
        return await asyncio.to_thread(locked)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (which uses :attr:`db`) in a worker thread, holding the store's lock;
        for modules that keep their own tables in this database (hub.ledger)."""
        return await self._run(fn)

    async def sql(self, fn: Callable[[Db], T]) -> T:
        """:meth:`run` with the connection as a :class:`Db` (:class:`DeskStore`)."""
        return await self._run(lambda: fn(SqliteDb(self.db)))

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise InvariantError("Store used outside 'async with'")
        return self._db

    # ------------------------------------------------------------------ readings sink

    async def write(self, batches: Sequence[ReadingBatch]) -> None:
        """Store every reading (once per agent, seq, sensor and ts), or raise a sink error
        the ingest runner understands: the database busy, locked or failing
        (``OperationalError``: disk full, I/O) is a ``RetryableError``; rows it refuses (a
        constraint, a number it cannot hold) a ``PoisonError``, so the runner isolates the
        batch that carries them and dead-letters it."""
        rows = [(b.agent, b.seq, r.sensor, r.ts, r.value) for b in batches for r in b.readings]

        def insert() -> None:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT OR IGNORE INTO readings VALUES (?,?,?,?,?)", rows)
        try:
            await self._run(insert)
        except sqlite3.OperationalError as exc:
            raise RetryableError(f"embedded store {self.path}: {exc}") from exc
        except (sqlite3.DatabaseError, OverflowError, ValueError, TypeError) as exc:
            raise PoisonError(f"embedded store {self.path} refused the readings: "
                              f"{type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return f"embedded store {self.path}"

    async def count_readings(self) -> int:
        return await self._run(
            lambda: int(self.db.execute("SELECT count(*) FROM readings").fetchone()[0]))

    async def readings_of(self, agent: str) -> list[tuple[int, str, int, float]]:
        return await self._run(lambda: self.db.execute(
            "SELECT seq, sensor, ts, value FROM readings WHERE agent=? ORDER BY seq, sensor, ts",
            (agent,)).fetchall())

    # ------------------------------------------------------------------ events

    async def record_event(self, event: AnomalyEvent, body: bytes) -> bool:
        """Store the event; False if ``(agent, seq)`` was stored before (a redelivery)."""
        def insert() -> bool:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?)",
                (event.agent, event.seq, event.sensor, event.kind, event.phase, event.ts, body))
            return cur.rowcount == 1
        return await self._run(insert)
