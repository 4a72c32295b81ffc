"""The hand-over route: who is on duty at a unit now and next, and its open alerts with
their coming deadlines (:mod:`gridcall.hub.desk.handover`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gridcall.config import ConfigSet
from gridcall.config.duty import Person
from gridcall.hub.api.auth import Caller, subtree
from gridcall.hub.api.models import (
    ERRORS,
    HandoverItemOut,
    HandoverOut,
    PersonOut,
    StretchOut,
)
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.duty import Stretch
from gridcall.hub.desk.handover import Handover, handover
from gridcall.wire.clock import Clock


def person_out(p: Person | None) -> PersonOut | None:
    return None if p is None else PersonOut(id=p.id, name=p.name, unit=p.unit)


def stretch_out(s: Stretch | None) -> StretchOut | None:
    if s is None:
        return None
    return StretchOut(person=PersonOut(id=s.person.id, name=s.person.name, unit=s.person.unit),
                      start=s.start, end=s.end, override=s.override)


def handover_out(h: Handover) -> HandoverOut:
    return HandoverOut(
        unit=h.unit, at=h.at, on_duty=stretch_out(h.on_duty), next=stretch_out(h.next),
        leader=person_out(h.leader), horizon=h.horizon,
        alerts=[HandoverItemOut(
            alert_id=i.alert_id, matter=i.matter, matter_name=i.matter_name, tier=i.tier,
            state=i.state, unit=i.unit, held=i.held, grid=i.grid, deadline=i.deadline,
            due_at=i.due_at, overdue=i.overdue, in_shift=i.in_shift, on_duty=i.on_duty)
            for i in h.items])


def router(desk: Desk, cfg: ConfigSet, clock: Clock) -> APIRouter:
    """``/v1/handover`` over ``desk``, at ``clock``'s now unless asked for another time."""
    app = APIRouter()

    @app.get("/v1/handover", response_model=HandoverOut, responses=ERRORS,
             tags=["duty"])
    def get_handover(
        unit: Caller,
        of: Annotated[str | None, Query(alias="unit", description="A unit in your subtree "
                                        "(default: yours).")] = None,
        at: Annotated[int | None, Query(ge=0, description="The moment, ns (default: now): "
                                        "a shift change ahead, say.")] = None,
    ) -> HandoverOut:
        """A unit's hand-over at a shift change: who is on duty now and next (roster.yaml),
        its duty leader, and the open alerts of its subtree with the deadline each waits
        on next, soonest first; those due before the incoming stretch ends are marked
        `in_shift`. Deadlines are as the desk will judge them (held by silences)."""
        root = subtree(cfg, unit, of)
        return handover_out(handover(cfg, desk.alerts(unit=root.id, open_only=True), root.id,
                                     clock() if at is None else at, defer=desk.defer,
                                     on_duty_of=desk.handed_to))

    return app
