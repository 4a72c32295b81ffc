"""The reminder log: every reminder the desk sent, append-only, in SQLite beside the
alert ledger (the hub's desk store).

A reminder is written here *before* it is sent, once: ``(alert_id, stint, idx)`` is
unique and triggers refuse UPDATE and DELETE, as in the ledger. At start-up the desk
reads it back, so a reminder already sent is not sent again. Why reminders are not
ledger steps: :mod:`gridcall.hub.desk.reminders`. The log itself is
:mod:`gridcall.hub.desk.appendlog`.
"""

from __future__ import annotations

from gridcall.hub.desk.appendlog import AppendLog, Row, Table
from gridcall.hub.desk.reminders import Reminder
from gridcall.hub.store import DeskStore

TABLE = Table(
    name="reminders", what="the reminder log",
    columns=("alert_id", "stint", "idx", "at", "unit", "person"),
    schema="""
CREATE TABLE IF NOT EXISTS reminders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL, stint INTEGER NOT NULL, idx INTEGER NOT NULL,
    at INTEGER NOT NULL, unit TEXT NOT NULL, person TEXT NOT NULL, body BLOB NOT NULL,
    UNIQUE (alert_id, stint, idx)
);
CREATE INDEX IF NOT EXISTS reminders_at ON reminders (at, seq);
""")


def _columns(r: Reminder) -> Row:
    return (r.alert_id, r.stint, r.index, r.at, r.unit, r.person)


class ReminderLog:
    """Append-only reminders in ``store``'s database; use inside ``async with store``."""

    def __init__(self, store: DeskStore) -> None:
        self.log = AppendLog(store, TABLE, Reminder, _columns)

    async def append(self, reminder: Reminder) -> bool:
        """Write it; False (nothing written) if it is there already."""
        return await self.log.add(reminder)

    async def all(self, *, since: int | None = None, until: int | None = None
                  ) -> list[Reminder]:
        """Every reminder by time, optionally only ``since <= at < until``."""
        lo = since if since is not None else -(2**63)
        hi = until if until is not None else 2**63 - 1
        return await self.log.select("at >= ? AND at < ?", (lo, hi), order="at, seq")

    async def of_alert(self, alert_id: str) -> list[Reminder]:
        return await self.log.select("alert_id = ?", (alert_id,), order="at, seq")


__all__ = ["ReminderLog"]
