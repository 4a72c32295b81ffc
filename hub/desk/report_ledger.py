"""The report ledger: every :class:`~gridcall.hub.desk.reports.ReportStep` (file, link),
append-only, in the hub store's database beside the alert ledger, under the same guards:
triggers refuse UPDATE and DELETE and ``(report_id, n)`` is unique (PostgreSQL: migration 4
of :mod:`gridcall.hub.pgstore`)."""

from __future__ import annotations

import msgspec

from gridcall.hub.desk.ledger import LedgerConflict
from gridcall.hub.desk.reports import ReportStep
from gridcall.hub.store import Db, DeskStore, StoreConflict

SCHEMA = """
CREATE TABLE IF NOT EXISTS report_steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id TEXT NOT NULL, n INTEGER NOT NULL, at INTEGER NOT NULL,
    action TEXT NOT NULL, body BLOB NOT NULL,
    UNIQUE (report_id, n)
);
CREATE TRIGGER IF NOT EXISTS report_steps_no_update BEFORE UPDATE ON report_steps
BEGIN SELECT RAISE(ABORT, 'the report ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS report_steps_no_delete BEFORE DELETE ON report_steps
BEGIN SELECT RAISE(ABORT, 'the report ledger is append-only'); END;
"""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ReportStep)


class ReportLedger:
    """Append-only report steps in ``store``'s database; use inside ``async with store``."""

    def __init__(self, store: DeskStore) -> None:
        self.store = store
        self._ready = False

    def _db(self, db: Db) -> Db:
        if not self._ready:
            db.create(SCHEMA)
            self._ready = True
        return db

    async def append(self, step: ReportStep) -> None:
        """Write the step; LedgerConflict if it is there already."""
        row = (step.report_id, step.n, step.at, step.action, _encoder.encode(step))

        def insert(db: Db) -> None:
            self._db(db)
            try:
                with db.transaction():
                    db.execute("INSERT INTO report_steps (report_id, n, at, action, body) "
                               "VALUES (?,?,?,?,?)", row)
            except StoreConflict as exc:
                raise LedgerConflict(f"report ledger already holds step {step.n} of "
                                     f"{step.report_id}: {exc}") from exc
        await self.store.sql(insert)

    async def all(self) -> list[ReportStep]:
        """Every step in the order written."""
        rows = await self.store.sql(lambda db: self._db(db).execute(
            "SELECT body FROM report_steps ORDER BY seq").fetchall())
        return [_decoder.decode(r[0]) for r in rows]
