"""Which ledger steps have had their notifications, so none is lost to a crash.

The desk writes a step to the ledger and only then calls its hooks; a hub killed between
the two (or stopped while a webhook was still being retried) would never notify that
step. :class:`NotifyOutbox` closes the gap the way an outbox does: a step's
notifications are *done* once every delivery of it was sent or given up, and that is
recorded in ``notified`` beside the ledger. At start, :meth:`pending` lists the notified
kinds of step (:data:`gridcall.hub.notify.notifier.NOTIFIED_ACTIONS`) that the ledger holds and
``notified`` does not, and :func:`replay` sends them again, with the alert as it stands
now. A delivery may so be sent twice (the crash came after the send, before the mark):
at least once, like the rest of the pipeline.

A ledger that predates this table gets a baseline: the steps already there when the
table was made count as notified (there is no telling which were), so the first start
after an upgrade does not resend a district's history.
"""

from __future__ import annotations

import msgspec

from gridcall.hub.desk.desk import Change, Desk
from gridcall.hub.desk.ledger import SCHEMA as LEDGER_SCHEMA
from gridcall.hub.desk.lifecycle import Transition
from gridcall.hub.store import Db, DeskStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS notified (
    alert_id TEXT NOT NULL, n INTEGER NOT NULL, at INTEGER NOT NULL,
    PRIMARY KEY (alert_id, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notified_baseline (seq INTEGER NOT NULL);
"""

_decoder = msgspec.json.Decoder(Transition)


class NotifyOutbox:
    """``notified`` in ``store``'s database; use inside ``async with store``."""

    def __init__(self, store: DeskStore) -> None:
        self.store = store

    async def setup(self) -> None:
        """Make the tables; on first use, take the ledger's steps so far as notified."""
        def make(db: Db) -> None:
            db.create(LEDGER_SCHEMA)
            with db.transaction():  # SQLite: the tables and the baseline together
                if db.dialect == "sqlite":
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                if db.execute("SELECT count(*) FROM notified_baseline").fetchone()[0] == 0:
                    db.execute("INSERT INTO notified_baseline SELECT coalesce(max(seq), 0) "
                               "FROM transitions")
        await self.store.sql(make)

    async def done(self, alert_id: str, n: int, at: int) -> None:
        """Every delivery of step ``n`` of ``alert_id`` was sent or given up (or it had
        no channel)."""
        await self.store.sql(lambda db: db.execute(
            "INSERT INTO notified VALUES (?,?,?) ON CONFLICT DO NOTHING", (alert_id, n, at)))

    async def pending(self, actions: frozenset[str]) -> list[Transition]:
        """Steps of these ``actions`` after the baseline whose notifications are not
        done, in ledger order."""
        marks = ",".join("?" * len(actions))
        sql = (f"SELECT t.body FROM transitions t WHERE t.action IN ({marks}) "
               "AND t.seq > (SELECT max(seq) FROM notified_baseline) AND NOT EXISTS "
               "(SELECT 1 FROM notified x WHERE x.alert_id = t.alert_id AND x.n = t.n) "
               "ORDER BY t.seq")

        rows = await self.store.sql(lambda db: db.execute(sql, sorted(actions)).fetchall())
        return [_decoder.decode(r[0]) for r in rows]


async def changes_to_replay(desk: Desk, steps: list[Transition]) -> list[Change]:
    """The :class:`~gridcall.hub.desk.desk.Change` each step made, to notify again: the alert as it
    stands now (what a person should act on), the units the step concerned (after an
    escalation both the unit that held it and the new one)."""
    changes: list[Change] = []
    for t in steps:
        state = await desk.find(t.alert_id)
        units: tuple[str, ...] = (t.unit,)
        if t.n > 1:
            before = (await desk.history(t.alert_id))[t.n - 2]
            if before.unit != t.unit:
                units = (t.unit, before.unit)
        changes.append(Change(state, t, units))
    return changes
