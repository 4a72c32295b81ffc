"""The closed alerts, as a table beside the ledger: each closed alert's state as it stands,
so the desk need not hold every alert it ever closed in memory (issue 20 item 4).

One row per alert that is closed now (resolved or false alarm): its place (district,
town, community, grid), tier, state, audit, when it opened and closed, its step count and
its state (msgpack, :class:`~gridcall.hub.desk.lifecycle.AlertState`). The desk writes it
in the same ledger transaction as the step that leaves the alert closed (a close, and each
step after it: a sample, an audit, a rating), and deletes it in the one that reopens it
(:meth:`ClosedAlerts.writer`), so the table and the ledger never disagree. Like a snapshot
it is a cache, never the truth: every row is the fold of the alert's ledger rows, and
:meth:`gridcall.hub.desk.desk.Desk.start` writes it for every closed alert it holds (a
ledger written before the table existed fills it at its first start).

Its reads list a unit's closed alerts (by place, tier, state, audit) and give one alert's
state by its id; the desk merges them with the alerts it holds (which win)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import msgspec

from gridcall.hub.desk.appendlog import BodyLog, Table
from gridcall.hub.desk.lifecycle import AlertState
from gridcall.hub.store import Db, DeskStore

TABLE = Table(
    name="closed_alerts", what="the closed alerts", append_only=False, row_id="alert_id",
    columns=("alert_id", "district", "town", "community", "grid", "tier", "state", "audit",
             "opened_at", "closed_at", "n"),
    schema="""
CREATE TABLE IF NOT EXISTS closed_alerts (
    alert_id TEXT PRIMARY KEY,
    district TEXT NOT NULL, town TEXT NOT NULL, community TEXT NOT NULL, grid TEXT NOT NULL,
    tier TEXT NOT NULL, state TEXT NOT NULL, audit TEXT NOT NULL,
    opened_at INTEGER NOT NULL, closed_at INTEGER NOT NULL, n INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS closed_alerts_town ON closed_alerts (town, opened_at);
CREATE INDEX IF NOT EXISTS closed_alerts_closed ON closed_alerts (closed_at);
CREATE INDEX IF NOT EXISTS closed_alerts_state ON closed_alerts (state);
""")
"""PostgreSQL's is migrations 5 and 8 of :mod:`gridcall.hub.pgstore`."""

PLACE = ("district", "town", "community", "grid")

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AlertState)

_UPSERT = (
    f"INSERT INTO closed_alerts ({', '.join((*TABLE.columns, 'body'))}) "
    f"VALUES ({','.join('?' * (len(TABLE.columns) + 1))}) ON CONFLICT (alert_id) DO UPDATE "
    "SET " + ", ".join(f"{c} = excluded.{c}" for c in (*TABLE.columns[1:], "body")))


def row(state: AlertState) -> tuple[object, ...]:
    """The row of a closed alert."""
    place = (*state.place, "", "", "", "")[:4]
    return (state.alert_id, *place, state.tier, state.state, state.audit, state.opened_at,
            state.closed_at if state.closed_at is not None else state.last.at, state.n,
            _encoder.encode(state))


def decode(body: bytes) -> AlertState:
    return _decoder.decode(body)


class ClosedAlerts:
    """The closed alerts in ``store``'s database; use inside ``async with store``."""

    def __init__(self, store: DeskStore) -> None:
        self.log = BodyLog(store, TABLE)

    @property
    def store(self) -> DeskStore:
        return self.log.store

    def writer(self, states: Iterable[AlertState]) -> Callable[[Db], None] | None:
        """Writes, inside the ledger's transaction, each alert's row as its latest state
        in ``states`` leaves it: closed, its row; open (reopened), none. None if nothing
        is to be written."""
        latest = {s.alert_id: s for s in states}
        put = [row(s) for s in latest.values() if not s.is_open]
        drop = [(s.alert_id,) for s in latest.values() if s.is_open and s.reopened]
        if not put and not drop:
            return None

        def write(db: Db) -> None:
            if put:
                db.executemany(_UPSERT, put)
            if drop:
                db.executemany("DELETE FROM closed_alerts WHERE alert_id = ?", drop)
        return write

    async def put(self, states: Sequence[AlertState], *, batch: int = 5000) -> int:
        """Write the rows of these closed alerts that the table lacks or holds at another
        step (start-up: the ones the desk holds); how many were written."""
        closed = [s for s in states if not s.is_open]
        have: dict[str, int] = {}
        for i in range(0, len(closed), 500):
            ids = [s.alert_id for s in closed[i:i + 500]]
            sql = ("SELECT alert_id, n FROM closed_alerts WHERE alert_id IN "
                   f"({','.join('?' * len(ids))})")

            def known(db: Db, sql: str = sql, ids: list[str] = ids) -> list[tuple[str, int]]:
                return [(str(r[0]), int(r[1]))
                        for r in self.log.db(db).execute(sql, ids).fetchall()]
            have.update(await self.store.sql(known))
        rows = [row(s) for s in closed if have.get(s.alert_id) != s.n]
        for i in range(0, len(rows), batch):
            chunk = rows[i:i + batch]

            def write(db: Db, chunk: list[tuple[object, ...]] = chunk) -> None:
                self.log.db(db)
                with db.transaction():
                    db.executemany(_UPSERT, chunk)
            await self.store.sql(write)
        return len(rows)

    async def get(self, alert_id: str) -> AlertState | None:
        """The alert's state if it is closed (None: no row, open or unknown)."""
        found = await self.log.bodies("alert_id = ?", (alert_id,))
        return decode(found[0]) if found else None

    async def many(self, alert_ids: Iterable[str]) -> list[AlertState]:
        """The states of these alerts that have a row (in no particular order)."""
        ids = sorted(set(alert_ids))
        out: list[AlertState] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out += [decode(b) for b in await self.log.bodies(
                f"alert_id IN ({','.join('?' * len(chunk))})", chunk)]
        return out

    async def keys(self, *, prefix: Sequence[str] = (), tier: str | None = None,
                   states: Iterable[str] | None = None, audit: str | None = None,
                   closed_since: int | None = None) -> list[tuple[int, str]]:
        """``(opened_at, alert_id)`` of the closed alerts in the subtree of ``prefix`` (a
        unit's path), of ``tier``, in one of ``states``, whose audit is ``audit``, closed
        at or after ``closed_since``."""
        where: list[str] = []
        params: list[object] = []
        for column, value in zip(PLACE, prefix, strict=False):
            where.append(f"{column} = ?")
            params.append(value)
        if tier is not None:
            where.append("tier = ?")
            params.append(tier)
        if states is not None:
            wanted = sorted(set(states))
            if not wanted:
                return []
            where.append(f"state IN ({','.join('?' * len(wanted))})")
            params += wanted
        if audit is not None:
            where.append("audit = ?")
            params.append(audit)
        if closed_since is not None:
            where.append("closed_at >= ?")
            params.append(max(-(2**63), min(2**63 - 1, closed_since)))  # a 64-bit column
        sql = "SELECT opened_at, alert_id FROM closed_alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self.store.sql(lambda db: self.log.db(db).execute(sql, params).fetchall())
        return [(int(r[0]), str(r[1])) for r in rows]

    async def count_by_state(self) -> dict[str, int]:
        rows = await self.store.sql(lambda db: self.log.db(db).execute(
            "SELECT state, count(*) FROM closed_alerts GROUP BY state").fetchall())
        return {str(r[0]): int(r[1]) for r in rows}


__all__ = ["TABLE", "ClosedAlerts", "decode", "row"]
