"""The silence ledger: every :class:`~gridcall.hub.desk.silence.SilenceStep` (add, lift,
expire, mute), append-only, in the hub store's database beside the alert ledger
(:mod:`gridcall.hub.desk.ledger`), under the same guards: triggers refuse UPDATE and
DELETE, ``(silence_id, n)`` is unique, and so is a muted anomaly event ``(agent, seq)``,
so a redelivered event is muted once.
"""

from __future__ import annotations

import msgspec

from gridcall.hub.desk.ledger import LedgerConflict
from gridcall.hub.desk.silence import SilenceStep
from gridcall.hub.store import Db, DeskStore, StoreConflict

SCHEMA = """
CREATE TABLE IF NOT EXISTS silence_steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    silence_id TEXT NOT NULL, n INTEGER NOT NULL, at INTEGER NOT NULL,
    action TEXT NOT NULL, actor TEXT NOT NULL, ev_agent TEXT, ev_seq INTEGER,
    body BLOB NOT NULL,
    UNIQUE (silence_id, n), UNIQUE (ev_agent, ev_seq)
);
CREATE TRIGGER IF NOT EXISTS silence_steps_no_update BEFORE UPDATE ON silence_steps
BEGIN SELECT RAISE(ABORT, 'the silence ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS silence_steps_no_delete BEFORE DELETE ON silence_steps
BEGIN SELECT RAISE(ABORT, 'the silence ledger is append-only'); END;
"""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SilenceStep)


class SilenceLedger:
    """Append-only silence steps in ``store``'s database; use inside ``async with store``."""

    def __init__(self, store: DeskStore) -> None:
        self.store = store
        self._ready = False

    def _db(self, db: Db) -> Db:
        if not self._ready:
            db.create(SCHEMA)
            self._ready = True
        return db

    async def append(self, *steps: SilenceStep) -> None:
        """Write the steps in one transaction; LedgerConflict if one is there already."""
        rows = [(s.silence_id, s.n, s.at, s.action, s.actor,
                 s.evidence[0] if s.evidence else None,
                 s.evidence[1] if s.evidence else None, _encoder.encode(s)) for s in steps]

        def insert(db: Db) -> None:
            self._db(db)
            try:
                with db.transaction():
                    db.executemany(
                        "INSERT INTO silence_steps (silence_id, n, at, action, actor, "
                        "ev_agent, ev_seq, body) VALUES (?,?,?,?,?,?,?,?)", rows)
            except StoreConflict as exc:
                raise LedgerConflict(f"silence ledger already holds a step of "
                                     f"{[r[0] for r in rows]} or its event: {exc}") from exc
        await self.store.sql(insert)

    async def all(self) -> list[SilenceStep]:
        """Every step in the order written."""
        rows = await self.store.sql(lambda db: self._db(db).execute(
            "SELECT body FROM silence_steps ORDER BY seq").fetchall())
        return [_decoder.decode(r[0]) for r in rows]

    async def history(self, silence_id: str) -> list[SilenceStep]:
        rows = await self.store.sql(lambda db: self._db(db).execute(
            "SELECT body FROM silence_steps WHERE silence_id=? ORDER BY n",
            (silence_id,)).fetchall())
        return [_decoder.decode(r[0]) for r in rows]
