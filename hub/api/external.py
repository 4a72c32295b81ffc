"""``POST /v1/events/external``: an event of a department's business system
(external.yaml), with that system's own token (``gridcall hub token issue --system
ID``). The system's mapping places it (matter, grid, least tier); an event it cannot
place is a 422 naming what the mapping lacks, and writes nothing. A repeat of an event
(the same ``event_id`` of the same system, whenever it comes) answers 200 with the alert
it went to and writes nothing; a new one 201. A unit's or person's token is refused
here (401), and a system's token everywhere else."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field

from gridcall.config import ConfigSet
from gridcall.hub.api.auth import token_entry
from gridcall.hub.api.models import AlertOut, ApiError, Out, Problem
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.external import ExternalEvent, Unmappable
from gridcall.hub.desk.external_intake import ExternalIntake
from gridcall.wire.clock import Clock

_bearer = HTTPBearer(auto_error=False, description="An external system's token.")


def _system(request: Request,
            creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The external system whose token the request carries; 401 otherwise."""
    cfg: ConfigSet = request.app.state.config
    entry = token_entry(request, creds, issue="gridcall hub token issue --system ID")
    if not entry.system:
        raise ApiError(401, "this is a unit's or a person's token: only an external "
                            "system's token may post its events (gridcall hub token issue "
                            "--system ID)")
    if cfg.external.system(entry.system) is None:
        raise ApiError(401, f"the token belongs to system {entry.system!r}, which "
                            "external.yaml no longer has")
    return entry.system


System = Annotated[str, Depends(_system)]


class ExternalOut(Out):
    """What became of an external event."""

    system: str
    event_id: str
    seq: int = Field(description="The event's number in its system's calls (the ledger's "
                     "evidence key with the system's id).")
    outcome: Literal["opened", "joined", "reopened", "duplicate"] = Field(
        description="opened an alert; joined the open alert of its matter at the same "
        "place as evidence; reopened a recently closed one; duplicate: taken before, "
        "nothing written.")
    matter: str
    grid: str
    alert: AlertOut = Field(description="The alert it went to, as it stands.")


def router(desk: Desk, cfg: ConfigSet, clock: Clock) -> APIRouter:
    app = APIRouter()
    intake = ExternalIntake(desk)

    @app.post("/v1/events/external", response_model=ExternalOut, status_code=201,
              responses={200: {"model": ExternalOut, "description": "A repeat of an event "
                               "taken before: nothing written."},
                         422: {"model": Problem, "description": "A malformed body, or an "
                               "event the system's mapping (external.yaml) cannot place: "
                               "an unknown event type, site or severity."}},
              summary="An event of a department's business system", tags=["external"])
    async def post_event(system: System, event: ExternalEvent, request: Request,
                         response: Response) -> ExternalOut:
        """Map the event through the system's mapping and take it through the desk: it
        opens an alert, joins the open one of its matter at the same place, or reopens
        a recent one; a repeat of its `event_id` writes nothing."""
        body = event.model_dump_json().encode()
        try:
            taken = await intake.take(system, event, body=body, now=clock())
        except Unmappable as exc:
            raise ApiError(422, str(exc)) from None
        state = taken.result.alert
        if state is None:  # a call always lands on an alert
            raise ApiError(500, f"event {event.event_id!r} of {system!r} reached no alert")
        if taken.outcome == "duplicate":
            response.status_code = 200
        return ExternalOut(system=system, event_id=event.event_id, seq=taken.seq,
                           outcome=taken.outcome, matter=taken.mapped.matter,
                           grid=taken.mapped.grid,
                           alert=AlertOut.of(state, desk.incident_id(state.alert_id)))

    return app


__all__ = ["ExternalOut", "router"]
