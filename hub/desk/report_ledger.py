"""The report ledger: every :class:`~gridcall.hub.desk.reports.ReportStep` (file, link),
append-only, in the hub store's database beside the alert ledger, under the same guards:
triggers refuse UPDATE and DELETE and ``(report_id, n)`` is unique (PostgreSQL: migration 4
of :mod:`gridcall.hub.pgstore`). The log itself is :mod:`gridcall.hub.desk.appendlog`."""

from __future__ import annotations

from gridcall.hub.desk.appendlog import AppendLog, Row, steps_table
from gridcall.hub.desk.reports import ReportStep
from gridcall.hub.store import DeskStore

TABLE = steps_table("report_steps", "the report ledger", "report_id")


def _columns(s: ReportStep) -> Row:
    return (s.report_id, s.n, s.at, s.action)


class ReportLedger(AppendLog[ReportStep]):
    """Append-only report steps in ``store``'s database; use inside ``async with store``.
    ``append(step)`` writes it (LedgerConflict if it is there already)."""

    def __init__(self, store: DeskStore) -> None:
        super().__init__(store, TABLE, ReportStep, _columns)

    async def all(self) -> list[ReportStep]:
        """Every step in the order written."""
        return await self.select()
