"""The external event log: which number each department's system's event got, durable.

The desk numbers every call by ``(source, seq)``, as edge agents number their anomaly
events, and the ledger's unique ``(ev_agent, ev_seq)`` makes a repeated call a duplicate
(:mod:`gridcall.hub.desk.intake`). A business system numbers its events its own way
(``"WL-2026-000123"``), so this table gives each ``(system, event_id)`` its ``seq`` once,
*before* the call reaches the desk: a repeat of the event (an HTTP retry, an MQTT
redelivery, after a hub restart too) finds its number here and the ledger answers that
the call was taken. A crash between this row and the ledger step leaves the number
without a step: the repeat then goes through, once.

Append-only (UNIQUE ``(system, event_id)`` and ``(system, seq)``, triggers refuse UPDATE
and DELETE), in the desk store's database: SQLite here, PostgreSQL by migration 3 of
:mod:`gridcall.hub.pgstore`. The log itself is :mod:`gridcall.hub.desk.appendlog` (rows
of bytes: the event as it came); the numbering is this module's.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridcall.hub.desk.appendlog import BodyLog, Table
from gridcall.hub.store import Db, DeskStore

TABLE = Table(
    name="external_events", what="the external event log",
    columns=("system", "event_id", "seq", "at"),
    schema="""
CREATE TABLE IF NOT EXISTS external_events (
    system TEXT NOT NULL, event_id TEXT NOT NULL, seq INTEGER NOT NULL,
    at INTEGER NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (system, event_id), UNIQUE (system, seq)
);
""")


@dataclass(frozen=True, slots=True)
class Numbered:
    seq: int
    """The event's number in its system's calls (0, 1, 2 ... in order of first arrival)."""
    first: bool
    """Whether this arrival gave it the number (False: a repeat)."""
    first_at: int
    """When it first arrived (ns, the desk's clock)."""


class ExternalLog:
    """``(system, event_id) -> seq`` in ``store``'s database; use inside ``async with``."""

    def __init__(self, store: DeskStore) -> None:
        self.store = store
        self.log = BodyLog(store, TABLE)

    async def number(self, system: str, event_id: str, *, at: int, body: bytes) -> Numbered:
        """The event's number: the one it got before, or the next of its system's."""
        def run(db: Db) -> Numbered:
            d = self.log.db(db)
            with d.transaction():
                row = d.execute("SELECT seq, at FROM external_events WHERE system = ? AND "
                                "event_id = ?", (system, event_id)).fetchone()
                if row is not None:
                    return Numbered(int(str(row[0])), False, int(str(row[1])))
                top = d.execute("SELECT MAX(seq) FROM external_events WHERE system = ?",
                                (system,)).fetchone()
                seq = 0 if top is None or top[0] is None else int(str(top[0])) + 1
                self.log.writer([(system, event_id, seq, at, body)])(d)
                return Numbered(seq, True, at)
        return await self.store.sql(run)

    async def event_id(self, system: str, seq: int) -> str | None:
        """The system's own id of its call number ``seq`` (None: no such call)."""
        row = await self.store.sql(lambda db: self.log.db(db).execute(
            "SELECT event_id FROM external_events WHERE system = ? AND seq = ?",
            (system, seq)).fetchone())
        return None if row is None else str(row[0])


__all__ = ["ExternalLog", "Numbered"]
