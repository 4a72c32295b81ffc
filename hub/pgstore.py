"""The desk's durable state in PostgreSQL: the :class:`~gridcall.hub.store.DeskStore` a hub
uses when hub.yaml names a database (``desk_store: {url_env: VARIABLE}``).

The same tables as SQLite's (events, transitions, silence_steps, incident_steps,
reminders, notified, notified_baseline, desk_snapshots, external_events,
report_steps, closed_alerts, arrival_reminders, photos), made by the numbered
:data:`MIGRATIONS`, each applied once and recorded in ``schema_migrations`` (a hub
starting on a database newer than itself refuses it, naming the versions). Migrating
holds a transaction-level advisory lock, so two hubs starting together do not race. The
ledgers are append-only as in SQLite: a trigger refuses UPDATE, DELETE and TRUNCATE (an
integrity error, so :class:`~gridcall.hub.store.StoreConflict` on either store).

One connection (psycopg 3, autocommit, a transaction where a module asks for one), used
from a worker thread one call at a time, as :class:`gridcall.hub.store.Store` does; the
desk's modules write their SQL once for both stores (:class:`~gridcall.hub.store.Db`).
TCP keepalives are on so a dead server (or the path to it) is noticed within seconds, not
at the kernel's two hours. A lost connection is a ``RetryableError`` and the next call
connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg

from gridcall.hub.store import Db, Rows, StoreConflict
from gridcall.wire import AnomalyEvent
from gridcall.wire.errors import InvariantError, RetryableError

T = TypeVar("T")

def connect(url: str, *, connect_timeout: int = 10, application_name: str = "gridcall-hub"
            ) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to ``url`` with TCP keepalives on and a TCP user timeout
    of 10 s: a silent peer (a dead server, a cut path) is given up after about 5 + 3 × 2
    s when idle, 10 s when a query waits."""
    return psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout,
                           application_name=application_name, keepalives=1,
                           keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
                           tcp_user_timeout=10_000)

_APPEND_ONLY = """
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION gridcall_append_only('{what}');
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION gridcall_append_only('{what}');
"""

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "the desk's tables", """
CREATE FUNCTION gridcall_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_ARGV[0]
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TABLE events (
    agent TEXT NOT NULL, seq BIGINT NOT NULL, sensor TEXT NOT NULL, kind TEXT NOT NULL,
    phase TEXT NOT NULL, ts BIGINT NOT NULL, body BYTEA NOT NULL, PRIMARY KEY (agent, seq)
);
CREATE TABLE transitions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id TEXT NOT NULL, n BIGINT NOT NULL, at BIGINT NOT NULL,
    action TEXT NOT NULL, actor TEXT NOT NULL, state TEXT NOT NULL, tier TEXT NOT NULL,
    unit TEXT NOT NULL, ev_agent TEXT, ev_seq BIGINT, body BYTEA NOT NULL,
    UNIQUE (alert_id, n), UNIQUE (ev_agent, ev_seq)
);
CREATE INDEX transitions_at ON transitions (at, seq);
CREATE TABLE silence_steps (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    silence_id TEXT NOT NULL, n BIGINT NOT NULL, at BIGINT NOT NULL,
    action TEXT NOT NULL, actor TEXT NOT NULL, ev_agent TEXT, ev_seq BIGINT,
    body BYTEA NOT NULL,
    UNIQUE (silence_id, n), UNIQUE (ev_agent, ev_seq)
);
CREATE TABLE incident_steps (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id TEXT NOT NULL, n BIGINT NOT NULL, at BIGINT NOT NULL,
    action TEXT NOT NULL, body BYTEA NOT NULL,
    UNIQUE (incident_id, n)
);
CREATE TABLE reminders (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id TEXT NOT NULL, stint BIGINT NOT NULL, idx BIGINT NOT NULL,
    at BIGINT NOT NULL, unit TEXT NOT NULL, person TEXT NOT NULL, body BYTEA NOT NULL,
    UNIQUE (alert_id, stint, idx)
);
CREATE INDEX reminders_at ON reminders (at, seq);
CREATE TABLE notified (
    alert_id TEXT NOT NULL, n BIGINT NOT NULL, at BIGINT NOT NULL,
    PRIMARY KEY (alert_id, n)
);
CREATE TABLE notified_baseline (seq BIGINT NOT NULL);
""" + "".join(_APPEND_ONLY.format(table=t, what=w) for t, w in (
        ("transitions", "the alert ledger"), ("silence_steps", "the silence ledger"),
        ("incident_steps", "the incident ledger"), ("reminders", "the reminder log")))),
    (2, "desk snapshots (hub/desk/snapshots.py)", """
CREATE TABLE desk_snapshots (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    through_seq BIGINT NOT NULL, through_at BIGINT NOT NULL, config TEXT NOT NULL,
    written_at BIGINT NOT NULL, body BYTEA NOT NULL
);
"""),
    (3, "the external event log (hub/desk/external_log.py)", """
CREATE TABLE external_events (
    system TEXT NOT NULL, event_id TEXT NOT NULL, seq BIGINT NOT NULL,
    at BIGINT NOT NULL, body BYTEA NOT NULL,
    PRIMARY KEY (system, event_id), UNIQUE (system, seq)
);
""" + _APPEND_ONLY.format(table="external_events", what="the external event log")),
    (4, "the report ledger (hub/desk/report_ledger.py)", """
CREATE TABLE report_steps (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_id TEXT NOT NULL, n BIGINT NOT NULL, at BIGINT NOT NULL,
    action TEXT NOT NULL, body BYTEA NOT NULL,
    UNIQUE (report_id, n)
);
""" + _APPEND_ONLY.format(table="report_steps", what="the report ledger")),
    (5, "the closed alerts (hub/desk/closed_alerts.py)", """
CREATE TABLE closed_alerts (
    alert_id TEXT PRIMARY KEY,
    district TEXT NOT NULL, town TEXT NOT NULL, community TEXT NOT NULL, grid TEXT NOT NULL,
    tier TEXT NOT NULL, state TEXT NOT NULL, audit TEXT NOT NULL,
    opened_at BIGINT NOT NULL, closed_at BIGINT NOT NULL, n BIGINT NOT NULL,
    body BYTEA NOT NULL
);
CREATE INDEX closed_alerts_town ON closed_alerts (town, opened_at);
CREATE INDEX closed_alerts_closed ON closed_alerts (closed_at);
"""),
    (6, "the arrival reminder log (hub/desk/arrival_reminders.py)", """
CREATE TABLE arrival_reminders (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id TEXT NOT NULL, department TEXT NOT NULL, whistled_at BIGINT NOT NULL,
    at BIGINT NOT NULL, person TEXT NOT NULL, body BYTEA NOT NULL,
    UNIQUE (alert_id, department, whistled_at)
);
""" + _APPEND_ONLY.format(table="arrival_reminders", what="the arrival reminder log")),
    (7, "the photo store (hub/desk/photos.py)", """
CREATE TABLE photos (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    photo_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, size BIGINT NOT NULL,
    body BYTEA NOT NULL
);
ALTER TABLE photos ALTER COLUMN body SET STORAGE EXTERNAL;
""" + _APPEND_ONLY.format(table="photos", what="the photo store")),
    (8, "the closed alerts counted by state at start (hub/desk/closed_alerts.py)", """
CREATE INDEX closed_alerts_state ON closed_alerts (state);
"""),
)
"""``(version, what, SQL)``, applied in order, each once. Append new ones; never edit one
that was released (a database that ran it would not run it again)."""

_MIGRATE_LOCK = 0x67726964_6D696772  # 'gridmigr': the advisory lock migrating holds


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def migrate(conn: psycopg.Connection[tuple[object, ...]], where: str) -> list[int]:
    """Apply the migrations ``conn``'s database lacks; the versions applied."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
                     "KEY, what TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        done = {int(str(r[0])) for r in
                conn.execute("SELECT version FROM schema_migrations").fetchall()}
        known = {v for v, _, _ in MIGRATIONS}
        if done - known:
            raise InvariantError(
                f"desk store {where} has schema versions {sorted(done - known)} this hub "
                f"does not know (it knows up to {max(known)}): a newer gridcall migrated it")
        for version, what, sql in MIGRATIONS:
            if version not in done:
                conn.execute(sql.encode())
                conn.execute("INSERT INTO schema_migrations (version, what) VALUES (%s, %s)",
                             (version, what))
                applied.append(version)
    return applied


class PgDb:
    """:class:`~gridcall.hub.store.Db` over a psycopg connection in autocommit mode."""

    dialect: Literal["sqlite", "postgresql"] = "postgresql"

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self.conn = conn

    @staticmethod
    def _sql(sql: str) -> bytes:
        # the desk's SQL has no literal '?' or '%': placeholders only
        return sql.replace("%", "%%").replace("?", "%s").encode()

    def execute(self, sql: str, params: Sequence[object] = ()) -> Rows:
        try:
            return self.conn.execute(self._sql(sql), params)
        except psycopg.errors.IntegrityError as exc:
            raise StoreConflict(str(exc)) from exc

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        try:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        except psycopg.errors.IntegrityError as exc:
            raise StoreConflict(str(exc)) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def create(self, schema: str) -> None:
        """Nothing: :data:`MIGRATIONS` made every table at connect."""


class PgStore:
    """``async with PgStore(url) as store``: the desk's tables in PostgreSQL."""

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._lock = threading.Lock()
        self.migrated: list[int] = []
        """The migrations this store applied when it connected (none if up to date)."""

    def __repr__(self) -> str:
        return f"desk store {redact(self.url)}"

    async def __aenter__(self) -> Self:
        def open_() -> psycopg.Connection[tuple[object, ...]]:
            conn = connect(self.url, connect_timeout=self.connect_timeout)
            try:
                self.migrated = migrate(conn, redact(self.url))
            except BaseException:
                conn.close()
                raise
            return conn
        self._conn = await asyncio.to_thread(open_)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)

    @property
    def conn(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None:
            raise InvariantError(f"{self!r} used outside 'async with'")
        return self._conn

    async def sql(self, fn: Callable[[Db], T]) -> T:
        """Run ``fn`` with the connection. The server unreachable or the connection lost
        is a ``RetryableError`` (the caller's message is not acknowledged and comes again,
        as with SQLite's ``OperationalError``); the next call connects again."""
        def locked() -> T:
            with self._lock:
                conn = self.conn
                if conn.closed:
                    conn = self._conn = connect(self.url, connect_timeout=self.connect_timeout)
                return fn(PgDb(conn))
        try:
            return await asyncio.to_thread(locked)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise RetryableError(f"{self!r}: {type(exc).__name__}: {exc}") from exc

    async def record_event(self, event: AnomalyEvent, body: bytes) -> bool:
        """Store the event; False if ``(agent, seq)`` was stored before (a redelivery)."""
        def insert(db: Db) -> bool:
            return db.execute(
                "INSERT INTO events VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (event.agent, event.seq, event.sensor, event.kind, event.phase, event.ts,
                 body)).rowcount == 1
        return await self.sql(insert)


__all__ = ["MIGRATIONS", "PgDb", "PgStore", "connect", "migrate", "redact"]
