"""The alert ledger: every :class:`~gridcall.hub.desk.lifecycle.Transition`, append-only, in SQLite
(WAL), or PostgreSQL.

It lives in the hub's desk store (:class:`gridcall.hub.store.DeskStore`: SQLite's
:class:`~gridcall.hub.store.Store`, where :data:`SCHEMA` makes it, or PostgreSQL's
:class:`~gridcall.hub.pgstore.PgStore`, whose migrations make the same table).
Rows are never changed or deleted: triggers refuse UPDATE and DELETE, and
``(alert_id, n)`` is unique, so a step is written once even if two writers race.
``(ev_agent, ev_seq)`` is unique too: an anomaly event joins at most one alert, however
often at-least-once delivery brings it.

The state of every alert is the fold of its rows (:func:`gridcall.hub.desk.lifecycle.fold`);
:meth:`Ledger.rebuild` does that at start-up. Writing is the desk's append-only log's
(:mod:`gridcall.hub.desk.appendlog`, :data:`TABLE`); the queries are this module's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

from gridcall.hub.desk.appendlog import AppendLog, LedgerConflict, Row, Table
from gridcall.hub.desk.lifecycle import AlertState, Transition, fold
from gridcall.hub.store import Db, DeskStore

TABLE = Table(
    name="transitions", what="the alert ledger",
    columns=("alert_id", "n", "at", "action", "actor", "state", "tier", "unit", "ev_agent",
             "ev_seq"),
    schema="""
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL, n INTEGER NOT NULL, at INTEGER NOT NULL,
    action TEXT NOT NULL, actor TEXT NOT NULL, state TEXT NOT NULL, tier TEXT NOT NULL,
    unit TEXT NOT NULL, ev_agent TEXT, ev_seq INTEGER, body BLOB NOT NULL,
    UNIQUE (alert_id, n), UNIQUE (ev_agent, ev_seq)
);
CREATE INDEX IF NOT EXISTS transitions_at ON transitions (at, seq);
""")
SCHEMA = TABLE.sqlite_schema
"""The table and its triggers in SQLite (the notify outbox makes it too)."""

_decoder = msgspec.json.Decoder(Transition)


def _columns(t: Transition) -> Row:
    ev_agent, ev_seq = t.evidence if t.evidence else (None, None)
    return (t.alert_id, t.n, t.at, t.action, t.actor, t.state, t.tier, t.unit, ev_agent,
            ev_seq)


class Ledger:
    """Append-only transitions in ``store``'s database; use inside ``async with store``."""

    def __init__(self, store: DeskStore) -> None:
        self.store = store
        self.log = AppendLog(store, TABLE, Transition, _columns)

    def _db(self, db: Db) -> Db:
        """The store's connection, with the ledger's table made on first use (so a
        Ledger may be made before the store is entered)."""
        return self.log.log.db(db)

    async def append(self, *transitions: Transition,
                     also: Callable[[Db], None] | None = None) -> None:
        """Write the steps in one transaction: all of them or none. LedgerConflict if
        one of them (or its anomaly event) is there already. ``also`` writes rows that
        belong with them (an incident's step, in its own table) in the same
        transaction."""
        await self.log.append(*transitions, also=also)

    async def history(self, alert_id: str) -> list[Transition]:
        """The alert's steps, first to last (empty if there is no such alert)."""
        rows = await self.store.sql(lambda db: self._db(db).execute(
            "SELECT body FROM transitions WHERE alert_id=? ORDER BY n", (alert_id,)).fetchall())
        return [_decoder.decode(r[0]) for r in rows]

    async def all(self, *, since: int | None = None, until: int | None = None
                  ) -> list[Transition]:
        """Every step by time (``at``, then the order written; an alert's own steps never
        go back in time), optionally only those with ``since <= at < until``."""
        sql = "SELECT body FROM transitions WHERE at >= ? AND at < ? ORDER BY at, seq"
        lo = since if since is not None else -(2**63)
        hi = until if until is not None else 2**63 - 1
        rows = await self.store.sql(lambda db: self._db(db).execute(sql, (lo, hi)).fetchall())
        return [_decoder.decode(r[0]) for r in rows]

    async def of_alerts(self, alert_ids: Iterable[str], *, until: int | None = None
                        ) -> list[Transition]:
        """The steps of these alerts by time, optionally only those with ``at < until``
        (per alert through the ``(alert_id, n)`` index, not a scan of the ledger)."""
        ids = sorted(set(alert_ids))
        hi = until if until is not None else 2**63 - 1

        def select(db: Db) -> list[tuple[bytes]]:
            self._db(db)
            db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (alert_id TEXT PRIMARY KEY)")
            try:
                db.executemany("INSERT INTO wanted VALUES (?) ON CONFLICT DO NOTHING",
                               [(i,) for i in ids])
                return db.execute(
                    "SELECT t.body FROM wanted w JOIN transitions t ON t.alert_id = w.alert_id "
                    "WHERE t.at < ? ORDER BY t.at, t.seq", (hi,)).fetchall()
            finally:
                db.execute("DELETE FROM wanted")
        rows = await self.store.sql(select)
        return [_decoder.decode(r[0]) for r in rows]

    async def count(self) -> int:
        return await self.store.sql(lambda db: int(
            self._db(db).execute("SELECT count(*) FROM transitions").fetchone()[0]))

    async def has_event(self, agent: str, seq: int) -> str | None:
        """The alert the anomaly event ``(agent, seq)`` was folded into, if any."""
        row = await self.store.sql(lambda db: self._db(db).execute(
            "SELECT alert_id FROM transitions WHERE ev_agent=? AND ev_seq=?",
            (agent, seq)).fetchone())
        return None if row is None else str(row[0])

    async def rebuild(self) -> dict[str, AlertState]:
        """Every alert's state, folded from the whole ledger (start-up)."""
        return fold(await self.all())

    async def after(self, seq: int) -> list[Transition]:
        """The steps written after row ``seq``, by time (a snapshot's tail)."""
        rows = await self.store.sql(lambda db: self._db(db).execute(
            "SELECT body FROM transitions WHERE seq > ? ORDER BY at, seq", (seq,)).fetchall())
        return [_decoder.decode(r[0]) for r in rows]

    async def written_after(self, seq: int) -> list[tuple[int, Transition]]:
        """``(row, step)`` for each step written after row ``seq``, in the order written
        (a standby following the active hub's writes, :meth:`Desk.follow`)."""
        rows = await self.store.sql(lambda db: self._db(db).execute(
            "SELECT seq, body FROM transitions WHERE seq > ? ORDER BY seq", (seq,)).fetchall())
        return [(int(r[0]), _decoder.decode(r[1])) for r in rows]

    async def last_seq(self) -> int:
        """The row number of the latest step written (0 if none)."""
        return await self.store.sql(lambda db: int(self._db(db).execute(
            "SELECT coalesce(max(seq), 0) FROM transitions").fetchone()[0]))

    async def last_at(self) -> int:
        """The latest instant a step is stamped with (0 if none)."""
        return await self.store.sql(lambda db: int(self._db(db).execute(
            "SELECT coalesce(max(at), 0) FROM transitions").fetchone()[0]))

    async def stamped_before(self, seq: int, at: int) -> bool:
        """Whether a step written after row ``seq`` is stamped before ``at`` (then a
        snapshot through ``seq`` is not a prefix of the ledger in time order)."""
        return await self.store.sql(lambda db: self._db(db).execute(
            "SELECT 1 FROM transitions WHERE seq > ? AND at < ? LIMIT 1",
            (seq, at)).fetchone() is not None)


__all__ = ["SCHEMA", "TABLE", "Ledger", "LedgerConflict"]
