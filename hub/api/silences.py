"""The silence routes (maintenance windows, :mod:`gridcall.hub.desk.silence`): list, set,
read and lift, each refused with a 4xx that writes nothing. The caller's unit is the
author; it may silence only what lies in its subtree, and for at most its level's
``silences.max_duration`` (matters.yaml): a longer silence is a 403 naming the level
that may set it. The models of these routes live here with them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import Field, model_validator

from gridcall.config import ConfigSet
from gridcall.hub.api.auth import Caller, CallerPerson, subtree
from gridcall.hub.api.models import ERRORS, OUTSIDE, ApiError, Body, Out
from gridcall.hub.desk.desk import Desk, UnknownUnit
from gridcall.hub.desk.silence import (
    NoSuchSilence,
    Scope,
    ScopeKind,
    Silence,
    SilenceAction,
    SilenceEnded,
    SilenceRefused,
    SilenceStatus,
    SilenceStep,
)
from gridcall.wire import UnitLevel
from gridcall.wire.clock import NS, Clock

SilenceId = Annotated[str, Path(pattern=r"^SI[0-9]{6,}$")]


class SilenceOut(Out):
    silence_id: str
    scope: ScopeKind = Field(description="What it holds back: an edge agent, a sensor, a "
                             "grid or a matter (catalog code).")
    id: str = Field(description="The agent, sensor, grid or matter id.")
    start: int = Field(description="ns since the epoch.")
    end: int = Field(description="The planned end (ns).")
    ends_at: int = Field(description="When it ends or ended: the lift if lifted early.")
    status: SilenceStatus = Field(description="pending (starts later), active, lifted, "
                                  "expired.")
    reason: str
    author: str = Field(description="The unit that set it.")
    author_person: str = Field(description="The person whose token set it (roster.yaml); "
                               "empty for a unit's token.")
    author_level: UnitLevel
    within: list[str] = Field(description="The author's path: it holds only there.")
    created_at: int
    lifted_at: int | None
    lifted_by: str
    lifted_by_person: str
    muted: int = Field(description="Anomalies it held back so far.")

    @classmethod
    def of(cls, s: Silence, now: int) -> SilenceOut:
        return cls(silence_id=s.silence_id, scope=s.scope.kind, id=s.scope.id, start=s.start,
                   end=s.end, ends_at=s.ends_at, status=s.status(now), reason=s.reason,
                   author=s.author, author_level=s.author_level, within=list(s.within),
                   created_at=s.created_at, lifted_at=s.lifted_at, lifted_by=s.lifted_by,
                   muted=s.muted, author_person=s.author_person,
                   lifted_by_person=s.lifted_by_person)


class SilenceStepOut(Out):
    n: int
    action: SilenceAction
    at: int
    actor: str = Field(description='The unit, or "hub" for expire and mute.')
    person: str = Field(description="The person who added or lifted it, if a person's "
                        "token did.")
    note: str
    sensor: str = Field(description="mute: the sensor whose anomaly was held back.")
    matter: str = Field(description="mute: the matter it would have raised.")

    @classmethod
    def of(cls, s: SilenceStep) -> SilenceStepOut:
        return cls(n=s.n, action=s.action, at=s.at, actor=s.actor, note=s.note,
                   sensor=s.sensor, matter=s.matter, person=s.person)


class SilenceDetail(Out):
    silence: SilenceOut
    history: list[SilenceStepOut] = Field(description="add, mute..., then lift or expire.")


class SilenceList(Out):
    unit: str
    count: int
    silences: list[SilenceOut]


class SilenceBody(Body):
    scope: ScopeKind
    id: str = Field(min_length=1, max_length=64, description="The agent, sensor, grid or "
                    "matter id.")
    reason: str = Field(min_length=1, max_length=2000, description="Who works on what "
                        "(kept in the ledger).")
    start: int | None = Field(default=None, ge=0, description="ns; default (and at the "
                              "earliest): now.")
    end: int | None = Field(default=None, ge=0, description="ns; give this or duration_s.")
    duration_s: int | None = Field(default=None, ge=1, description="Seconds from the start; "
                                   "give this or end.")

    @model_validator(mode="after")
    def _one_end(self) -> SilenceBody:
        if (self.end is None) == (self.duration_s is None):
            raise ValueError("give exactly one of 'end' (ns) or 'duration_s'")
        return self


class LiftBody(Body):
    note: str = Field(default="", max_length=2000)


SILENCE_ERRORS = {
    **ERRORS,
    403: {"model": ERRORS[403]["model"], "description": "Outside the caller's subtree, "
          "or longer than its level may silence."},
    404: {"model": ERRORS[404]["model"], "description": "No such silence."},
}


def router(desk: Desk, cfg: ConfigSet, clock: Clock) -> APIRouter:
    """``/v1/silences`` over ``desk``; ``clock`` gives the desk's time (ns)."""
    app = APIRouter()

    def found(unit_id: str, silence_id: str) -> Silence:
        try:
            silence = desk.silences.get(silence_id)
        except NoSuchSilence as exc:
            raise ApiError(404, str(exc)) from None
        if silence not in desk.silence_list(unit=unit_id):
            raise ApiError(403, OUTSIDE)  # names no path, unit or id
        return silence

    @app.get("/v1/silences", response_model=SilenceList, responses=ERRORS,
             tags=["silences"])
    def list_silences(
        unit: Caller,
        of: Annotated[str | None, Query(alias="unit", description="A unit in your subtree "
                                        "(default: yours).")] = None,
        current: Annotated[bool, Query(description="Only those not ended (pending or "
                                       "active).")] = False,
    ) -> SilenceList:
        """Silences that may hold in the unit's subtree (set in it, or above it), oldest
        first."""
        root = subtree(cfg, unit, of)
        now = clock()
        found_ = desk.silence_list(unit=root.id, now=now, current=current)
        return SilenceList(unit=root.id, count=len(found_),
                           silences=[SilenceOut.of(s, now) for s in found_])

    @app.post("/v1/silences", response_model=SilenceOut, status_code=201,
              responses={**SILENCE_ERRORS, 422: {"model": ERRORS[403]["model"],
                                                 "description": "An unknown id, times "
                                                 "out of order, no reason."},
                         200: {"model": SilenceOut, "description": "A repeat of a silence "
                               "not ended (same scope, reason and author, start and end "
                               "within 60 s): that silence, nothing written."}},
              tags=["silences"], operation_id="silence")
    async def add(unit: Caller, person: CallerPerson, body: SilenceBody,
                  response: Response) -> SilenceOut:
        """Silence an agent, a sensor, a grid or a matter from ``start`` (default now) to
        ``end`` (or for ``duration_s``). Its anomalies are kept as evidence but open no
        alert and send nothing; deadlines of alerts already open in it wait for its end.
        The same silence sent again (same scope, reason and author, its start and end
        each within 60 s of the first's, the first not ended: a double click, a retry)
        is answered 200 with the first, and writes nothing."""
        now = clock()
        start = now if body.start is None else body.start
        end = body.end if body.end is not None else max(start, now) + (body.duration_s or 0) * NS
        try:
            silence, added = await desk.add_silence_once(
                Scope(body.scope, body.id), start=start, end=end, reason=body.reason,
                author=unit.id, now=now, person=person)
        except SilenceRefused as exc:
            raise ApiError(403 if exc.forbidden else 422,
                           OUTSIDE if exc.outside else str(exc)) from None
        except UnknownUnit as exc:
            raise ApiError(422, str(exc)) from None
        if not added:
            response.status_code = 200
        return SilenceOut.of(silence, now)

    @app.get("/v1/silences/{silence_id}", response_model=SilenceDetail,
             responses=SILENCE_ERRORS, tags=["silences"])
    async def get(unit: Caller, silence_id: SilenceId) -> SilenceDetail:
        """One silence with its steps (add, the anomalies it muted, lift or expire)."""
        silence = found(unit.id, silence_id)
        history = await desk.silence_history(silence_id)
        return SilenceDetail(silence=SilenceOut.of(silence, clock()),
                             history=[SilenceStepOut.of(s) for s in history])

    @app.post("/v1/silences/{silence_id}/lift", response_model=SilenceOut,
              responses={**SILENCE_ERRORS, 409: {"model": ERRORS[403]["model"],
                                                 "description": "It has already ended."}},
              tags=["silences"], operation_id="lift")
    async def lift(unit: Caller, person: CallerPerson, silence_id: SilenceId,
                   body: LiftBody | None = None) -> SilenceOut:
        """End the silence now. A unit may lift one set in its subtree (its own or a
        lower unit's); deadlines it held fall due at once."""
        found(unit.id, silence_id)
        now = clock()
        try:
            silence = await desk.lift_silence(silence_id, unit.id, now=now,
                                              note=(body or LiftBody()).note,
                                              person=person)
        except SilenceRefused as exc:
            raise ApiError(403, OUTSIDE if exc.outside else str(exc)) from None
        except SilenceEnded as exc:
            raise ApiError(409, str(exc)) from None
        return SilenceOut.of(silence, now)

    return app


__all__ = ["LiftBody", "SilenceBody", "SilenceDetail", "SilenceList", "SilenceOut",
           "SilenceStepOut", "router"]
