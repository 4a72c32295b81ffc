"""The reminder log: every reminder the desk sent, append-only, in SQLite beside the
alert ledger (the hub's desk store).

A reminder is written here *before* it is sent, once: ``(alert_id, stint, idx)`` is
unique and triggers refuse UPDATE and DELETE, as in the ledger. At start-up the desk
reads it back, so a reminder already sent is not sent again. Why reminders are not
ledger steps: :mod:`gridcall.hub.desk.reminders`.
"""

from __future__ import annotations

import msgspec

from gridcall.hub.desk.reminders import Reminder
from gridcall.hub.store import Db, DeskStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS reminders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL, stint INTEGER NOT NULL, idx INTEGER NOT NULL,
    at INTEGER NOT NULL, unit TEXT NOT NULL, person TEXT NOT NULL, body BLOB NOT NULL,
    UNIQUE (alert_id, stint, idx)
);
CREATE INDEX IF NOT EXISTS reminders_at ON reminders (at, seq);
CREATE TRIGGER IF NOT EXISTS reminders_no_update BEFORE UPDATE ON reminders
BEGIN SELECT RAISE(ABORT, 'the reminder log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS reminders_no_delete BEFORE DELETE ON reminders
BEGIN SELECT RAISE(ABORT, 'the reminder log is append-only'); END;
"""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Reminder)


class ReminderLog:
    """Append-only reminders in ``store``'s database; use inside ``async with store``."""

    def __init__(self, store: DeskStore) -> None:
        self.store = store
        self._ready = False

    def _db(self, db: Db) -> Db:
        if not self._ready:
            db.create(SCHEMA)
            self._ready = True
        return db

    async def append(self, reminder: Reminder) -> bool:
        """Write it; False (nothing written) if it is there already."""
        r = reminder
        row = (r.alert_id, r.stint, r.index, r.at, r.unit, r.person, _encoder.encode(r))

        def insert(db: Db) -> bool:
            cur = self._db(db).execute(
                "INSERT INTO reminders (alert_id, stint, idx, at, unit, person, body) "
                "VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING", row)
            return cur.rowcount == 1
        return await self.store.sql(insert)

    async def all(self, *, since: int | None = None, until: int | None = None
                  ) -> list[Reminder]:
        """Every reminder by time, optionally only ``since <= at < until``."""
        lo = since if since is not None else -(2**63)
        hi = until if until is not None else 2**63 - 1
        rows = await self.store.sql(lambda db: self._db(db).execute(
            "SELECT body FROM reminders WHERE at >= ? AND at < ? ORDER BY at, seq",
            (lo, hi)).fetchall())
        return [_decoder.decode(r[0]) for r in rows]

    async def of_alert(self, alert_id: str) -> list[Reminder]:
        rows = await self.store.sql(lambda db: self._db(db).execute(
            "SELECT body FROM reminders WHERE alert_id = ? ORDER BY at, seq",
            (alert_id,)).fetchall())
        return [_decoder.decode(r[0]) for r in rows]


__all__ = ["ReminderLog"]
