"""The incident ledger: every :class:`~gridcall.hub.desk.incidents.IncidentStep` (open,
join), append-only, in the hub store's database beside the alert ledger, under the same
guards: triggers refuse UPDATE and DELETE, and ``(incident_id, n)`` is unique. The log
itself is :mod:`gridcall.hub.desk.appendlog`; its ``writer`` writes an alert's incident
steps in the alert ledger's transaction (:meth:`gridcall.hub.desk.ledger.Ledger.append`
``also``), so an alert and its incident step are written together or not at all.
"""

from __future__ import annotations

from gridcall.hub.desk.appendlog import AppendLog, Row, steps_table
from gridcall.hub.desk.incidents import IncidentStep
from gridcall.hub.store import DeskStore

TABLE = steps_table("incident_steps", "the incident ledger", "incident_id")


def _columns(s: IncidentStep) -> Row:
    return (s.incident_id, s.n, s.at, s.action)


class IncidentLedger(AppendLog[IncidentStep]):
    """Append-only incident steps in ``store``'s database; use inside ``async with store``."""

    def __init__(self, store: DeskStore) -> None:
        super().__init__(store, TABLE, IncidentStep, _columns)

    async def all(self) -> list[IncidentStep]:
        """Every step in the order written."""
        return await self.select()

    async def history(self, incident_id: str) -> list[IncidentStep]:
        return await self.select("incident_id=?", (incident_id,), order="n")
