"""The incident ledger: every :class:`~gridcall.hub.desk.incidents.IncidentStep` (open,
join), append-only, in the hub store's database beside the alert ledger, under the same
guards: triggers refuse UPDATE and DELETE, and ``(incident_id, n)`` is unique.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from gridcall.hub.desk.incidents import IncidentStep
from gridcall.hub.desk.ledger import LedgerConflict
from gridcall.hub.store import Db, DeskStore, StoreConflict
from gridcall.wire.errors import InvariantError

SCHEMA = """
CREATE TABLE IF NOT EXISTS incident_steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL, n INTEGER NOT NULL, at INTEGER NOT NULL,
    action TEXT NOT NULL, body BLOB NOT NULL,
    UNIQUE (incident_id, n)
);
CREATE TRIGGER IF NOT EXISTS incident_steps_no_update BEFORE UPDATE ON incident_steps
BEGIN SELECT RAISE(ABORT, 'the incident ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS incident_steps_no_delete BEFORE DELETE ON incident_steps
BEGIN SELECT RAISE(ABORT, 'the incident ledger is append-only'); END;
"""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(IncidentStep)


class IncidentLedger:
    """Append-only incident steps in ``store``'s database; use inside ``async with store``."""

    def __init__(self, store: DeskStore) -> None:
        self.store = store
        self._ready = False

    def _db(self, db: Db) -> Db:
        if not self._ready:
            db.create(SCHEMA)
            self._ready = True
        return db

    def writer(self, steps: Sequence[IncidentStep]) -> Callable[[Db], None]:
        """Rows to write inside another transaction (the alert ledger's, whose steps they
        link: :meth:`gridcall.hub.desk.ledger.Ledger.append` ``also``), so an alert and
        its incident step are written together or not at all."""
        rows = [(s.incident_id, s.n, s.at, s.action, _encoder.encode(s)) for s in steps]

        def insert(db: Db) -> None:
            if not self._ready:  # making the table (executescript) would commit the caller's
                raise InvariantError("the incident ledger was written before it was read "
                                     "(Desk.start makes its table)")
            db.executemany("INSERT INTO incident_steps (incident_id, n, at, action, body) "
                           "VALUES (?,?,?,?,?)", rows)
        return insert

    async def append(self, *steps: IncidentStep) -> None:
        """Write the steps in one transaction; LedgerConflict if one is there already."""
        insert = self.writer(steps)

        def run(db: Db) -> None:
            self._db(db)  # makes the table first, outside the transaction
            try:
                with db.transaction():
                    insert(db)
            except StoreConflict as exc:
                raise LedgerConflict(f"incident ledger already holds a step of "
                                     f"{[s.incident_id for s in steps]}: {exc}") from exc
        await self.store.sql(run)

    async def all(self) -> list[IncidentStep]:
        """Every step in the order written."""
        rows = await self.store.sql(lambda db: self._db(db).execute(
            "SELECT body FROM incident_steps ORDER BY seq").fetchall())
        return [_decoder.decode(r[0]) for r in rows]

    async def history(self, incident_id: str) -> list[IncidentStep]:
        rows = await self.store.sql(lambda db: self._db(db).execute(
            "SELECT body FROM incident_steps WHERE incident_id=? ORDER BY n",
            (incident_id,)).fetchall())
        return [_decoder.decode(r[0]) for r in rows]
