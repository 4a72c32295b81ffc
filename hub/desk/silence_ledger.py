"""The silence ledger: every :class:`~gridcall.hub.desk.silence.SilenceStep` (add, lift,
expire, mute), append-only, in the hub store's database beside the alert ledger
(:mod:`gridcall.hub.desk.ledger`), under the same guards: triggers refuse UPDATE and
DELETE, ``(silence_id, n)`` is unique, and so is a muted anomaly event ``(agent, seq)``,
so a redelivered event is muted once. The log itself is :mod:`gridcall.hub.desk.appendlog`.
"""

from __future__ import annotations

from gridcall.hub.desk.appendlog import AppendLog, Row, Table
from gridcall.hub.desk.silence import SilenceStep
from gridcall.hub.store import DeskStore

TABLE = Table(
    name="silence_steps", what="the silence ledger",
    columns=("silence_id", "n", "at", "action", "actor", "ev_agent", "ev_seq"),
    schema="""
CREATE TABLE IF NOT EXISTS silence_steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    silence_id TEXT NOT NULL, n INTEGER NOT NULL, at INTEGER NOT NULL,
    action TEXT NOT NULL, actor TEXT NOT NULL, ev_agent TEXT, ev_seq INTEGER,
    body BLOB NOT NULL,
    UNIQUE (silence_id, n), UNIQUE (ev_agent, ev_seq)
);
""")


def _columns(s: SilenceStep) -> Row:
    ev_agent, ev_seq = s.evidence if s.evidence else (None, None)
    return (s.silence_id, s.n, s.at, s.action, s.actor, ev_agent, ev_seq)


class SilenceLedger(AppendLog[SilenceStep]):
    """Append-only silence steps in ``store``'s database; use inside ``async with store``.
    ``append(*steps)`` writes them in one transaction (LedgerConflict if one, or its
    muted event, is there already)."""

    def __init__(self, store: DeskStore) -> None:
        super().__init__(store, TABLE, SilenceStep, _columns)

    async def all(self) -> list[SilenceStep]:
        """Every step in the order written."""
        return await self.select()

    async def history(self, silence_id: str) -> list[SilenceStep]:
        return await self.select("silence_id=?", (silence_id,), order="n")
