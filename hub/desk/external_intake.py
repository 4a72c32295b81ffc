"""The desk's door for departments' business systems: map, number, call.

:meth:`ExternalIntake.take` is what both the webhook (``POST /v1/events/external``,
:mod:`gridcall.hub.api.external`) and the MQTT topic ``gridcall/v1/external/<system>``
(:mod:`gridcall.hub.desk.runtime`) do with an event: map it through the system's mapping
(:func:`gridcall.hub.desk.external.translate`; :class:`Unmappable` before anything is
written), give ``(system, event_id)`` its number once in the external event log
(:mod:`gridcall.hub.desk.external_log`), and hand the desk a :class:`Call` of kind
``external`` (:meth:`gridcall.hub.desk.desk.Desk.call`): it opens an alert, joins the
open alert of its matter at the same place as evidence, or reopens a recent one. A
repeat of the event, whenever it comes, is the ledger's duplicate: nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gridcall.hub.desk.desk import Desk, EventOutcome
from gridcall.hub.desk.external import ExternalEvent, Mapped, Unmappable, translate
from gridcall.hub.desk.external_log import ExternalLog
from gridcall.hub.desk.intake import Call

Outcome = Literal["opened", "joined", "reopened", "duplicate"]


@dataclass(frozen=True, slots=True)
class Taken:
    mapped: Mapped
    seq: int
    """The event's number in its system's calls (the ledger's ``ev_seq``)."""
    outcome: Outcome
    result: EventOutcome


def outcome_of(result: EventOutcome) -> Outcome:
    if result.duplicate or not result.steps:
        return "duplicate"
    first = result.steps[0].action
    return "opened" if first == "open" else "reopened" if first == "reopen" else "joined"


class ExternalIntake:
    """Events of external.yaml's systems into ``desk``."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.log = ExternalLog(desk.ledger.store)

    async def take(self, system: str, event: ExternalEvent, *, body: bytes,
                   now: int) -> Taken:
        """Take ``event`` of ``system`` at ``now`` (the desk's clock); ``body`` is what
        the system sent, kept in the log. Unmappable (nothing written) if the mapping
        cannot place it."""
        mapped = translate(self.desk.config, system, event, received_at=now)
        numbered = await self.log.number(system, event.event_id, at=now, body=body)
        call = Call(source=system, seq=numbered.seq, kind="external", matter=mapped.matter,
                    grid=mapped.grid, note=mapped.note, at=mapped.at, tier=mapped.tier,
                    point=mapped.point)
        result = await self.desk.call(call, now)
        return Taken(mapped, numbered.seq, outcome_of(result), result)


__all__ = ["ExternalIntake", "Outcome", "Taken", "Unmappable", "outcome_of"]
