"""The incident routes (首接负责, :mod:`gridcall.hub.desk.incidents`): the incidents with an
alert in the caller's subtree, and one incident with its alerts and steps. Read only: an
incident forms and grows by the desk's rules; people act on its alerts. The models of
these routes live here with them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import Field

from gridcall.config import ConfigSet
from gridcall.hub.api.auth import Caller, inside, subtree
from gridcall.hub.api.models import ERRORS, OUTSIDE, AlertOut, ApiError, Out
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.incidents import Incident, IncidentAction, IncidentStep
from gridcall.wire import UnitLevel

IncidentId = Annotated[str, Path(pattern=r"^IN[0-9]{6,}$")]


class IncidentOut(Out):
    incident_id: str
    matter: str
    alerts: list[str] = Field(description="Its alerts, first first.")
    grids: list[str]
    lead: str = Field(description="The unit that leads it (see docs/desk.md).")
    lead_level: UnitLevel
    first: str = Field(description="The unit that received it first.")
    opened_at: int
    updated_at: int
    open: bool = Field(description="One of its alerts is still open.")

    @classmethod
    def of(cls, i: Incident, open_: bool) -> IncidentOut:
        return cls(incident_id=i.incident_id, matter=i.matter, alerts=list(i.alerts),
                   grids=list(i.grids), lead=i.lead, lead_level=i.lead_level, first=i.first,
                   opened_at=i.opened_at, updated_at=i.updated_at, open=open_)


class IncidentStepOut(Out):
    n: int
    action: IncidentAction
    at: int
    alerts: list[str] = Field(description="open: the two alerts; join: the one joining.")
    lead: str
    reason: str

    @classmethod
    def of(cls, s: IncidentStep) -> IncidentStepOut:
        return cls(n=s.n, action=s.action, at=s.at, alerts=list(s.alerts), lead=s.lead,
                   reason=s.reason)


class IncidentDetail(Out):
    incident: IncidentOut
    alerts: list[AlertOut] = Field(description="Its alerts as they stand.")
    history: list[IncidentStepOut]


class IncidentList(Out):
    unit: str
    count: int
    incidents: list[IncidentOut]


def router(desk: Desk, cfg: ConfigSet) -> APIRouter:
    """``/v1/incidents`` over ``desk``."""
    app = APIRouter()

    @app.get("/v1/incidents", response_model=IncidentList, responses=ERRORS,
             tags=["incidents"])
    async def list_incidents(
        unit: Caller,
        of: Annotated[str | None, Query(alias="unit", description="A unit in your subtree "
                                        "(default: yours).")] = None,
        open_only: Annotated[bool, Query(alias="open", description="Only those with an "
                                         "alert still open.")] = False,
    ) -> IncidentList:
        """Incidents with an alert in the unit's subtree, oldest first."""
        root = subtree(cfg, unit, of)
        found = await desk.incident_listing(unit=root.id, open_only=open_only)
        return IncidentList(unit=root.id, count=len(found), incidents=[
            IncidentOut.of(i, any(s.is_open for s in states)) for i, states in found])

    @app.get("/v1/incidents/{incident_id}", response_model=IncidentDetail,
             responses={**ERRORS, 404: {"model": ERRORS[404]["model"],
                                        "description": "No such incident."}},
             tags=["incidents"])
    async def get_incident(unit: Caller, incident_id: IncidentId) -> IncidentDetail:
        """One incident: its alerts as they stand (those in your subtree) and its steps."""
        incident = next((i for i in desk.incidents.all() if i.incident_id == incident_id),
                        None)
        if incident is None:
            raise ApiError(404, f"no incident {incident_id!r}")
        known = await desk.states_of(incident.alerts)
        states = [known[a] for a in incident.alerts if a in known]
        mine = [s for s in states if inside(s.place, unit.path)]
        if not mine:
            raise ApiError(403, OUTSIDE)  # names no path, unit or id
        history = await desk.incident_history(incident_id)
        return IncidentDetail(incident=IncidentOut.of(incident,
                                                      any(s.is_open for s in states)),
                              alerts=[AlertOut.of(s, incident_id) for s in mine],
                              history=[IncidentStepOut.of(s) for s in history])

    return app


__all__ = ["IncidentDetail", "IncidentList", "IncidentOut", "IncidentStepOut", "router"]
