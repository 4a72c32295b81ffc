"""The department routes (吹哨报到): a department's token (``gridcall hub token issue
fire_safety``, or ``--person gao-jun``) reads the alerts of its area of action and takes
its own steps on those it was dispatched to: report in (报到), arrived, disposal reported,
each naming the person who acted. A unit's token is refused here (401), as a
department's is on the units' routes.

An alert outside the department's area is a 403 saying only "outside your area"; a step
it may not take now (not dispatched, out of order, the alert closed) a 409; a person who
is not the department's a 422. Every refusal writes nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gridcall.config import ConfigSet
from gridcall.hub.api.alerts import alert_detail
from gridcall.hub.api.auth import AlertId, DepartmentCaller, DeptCaller
from gridcall.hub.api.models import (
    ACTION_ERRORS,
    ERRORS,
    OUTSIDE,
    AlertDetail,
    AlertOut,
    ApiError,
    DepartmentActionBody,
    DepartmentAlertList,
    DepartmentMe,
)
from gridcall.hub.desk import duty
from gridcall.hub.desk.desk import BadAction, Desk, NotFound, OutsideArea, UnknownDepartment
from gridcall.hub.desk.lifecycle import Action, AlertState, IllegalTransition
from gridcall.wire.clock import Clock


def router(desk: Desk, cfg: ConfigSet, clock: Clock) -> APIRouter:
    """``/v1/department`` and its alerts and steps over ``desk``."""
    app = APIRouter()

    @app.get("/v1/department", response_model=DepartmentMe, responses=ERRORS,
             tags=["departments"])
    def me(caller: DeptCaller) -> DepartmentMe:
        """The department the token belongs to (and the person, for a person's token):
        its area, its promised arrival, and its person on duty now."""
        dep = caller.department
        stretch = duty.on_duty(cfg.duty, dep.id, clock())
        return DepartmentMe(
            department=dep.id, name=dep.name, towns=list(dep.towns),
            arrival_s=dep.arrival.total_seconds(),
            report_in_s=(dep.report_in or dep.arrival).total_seconds(),
            remind_before_s=None if (lead := dep.reminder_lead) is None
            else lead.total_seconds(),
            person=caller.person or None,
            on_duty=stretch.person.id if stretch is not None else None)

    @app.get("/v1/department/alerts", response_model=DepartmentAlertList, responses=ERRORS,
             tags=["departments"])
    async def alerts(
        caller: DeptCaller,
        open_only: Annotated[bool, Query(alias="open", description="Only alerts not yet "
                                         "resolved or false alarms.")] = False,
        called: Annotated[bool, Query(description="Only alerts the department was "
                                      "dispatched to (default); false: every alert of its "
                                      "area.")] = True,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> DepartmentAlertList:
        """Alerts of the department's area (those it was dispatched to unless
        ``called=false``), oldest first, each with ``department_calls``."""
        found = await desk.department_listing(caller.department.id, open_only=open_only,
                                              called_only=called)
        return DepartmentAlertList(
            department=caller.department.id, now=clock(), count=len(found), offset=offset,
            alerts=[AlertOut.of(s, desk.incident_id(s.alert_id))
                    for s in found[offset:offset + limit]])

    async def visible(caller: DepartmentCaller, alert_id: str) -> AlertState:
        try:
            state = await desk.find(alert_id)
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None
        if not caller.department.in_area(state.place):
            raise ApiError(403, OUTSIDE)
        return state

    @app.get("/v1/department/alerts/{alert_id}", response_model=AlertDetail,
             responses=ERRORS, tags=["departments"])
    async def get_alert(caller: DeptCaller, alert_id: AlertId) -> AlertDetail:
        """One alert of the department's area with its whole history."""
        return await alert_detail(desk, await visible(caller, alert_id))

    def person_of(caller: DepartmentCaller, body: DepartmentActionBody) -> str:
        """Who acted: the token's person, else the body's (a person of the department);
        one of them is needed when roster.yaml names persons of the department."""
        dep = caller.department.id
        if caller.person:
            if body.person and body.person != caller.person:
                raise ApiError(422, f"the token is {caller.person}'s: it acts as "
                                    f"{caller.person}, not {body.person}")
            return caller.person
        if body.person:
            who = cfg.duty.person(body.person)
            if who is None or who.unit != dep:
                raise ApiError(422, f"{body.person!r} is not a person of {dep} in "
                                    "roster.yaml")
            return body.person
        if any(p.unit == dep for p in cfg.duty.persons):
            raise ApiError(422, f"name the person of {dep} who acted: 'person' in the body, "
                                "or a person's token (gridcall hub token issue --person ID)")
        return ""

    def step(action: Action, path: str, summary: str) -> None:
        async def endpoint(caller: DeptCaller, alert_id: AlertId,
                           body: DepartmentActionBody | None = None) -> AlertDetail:
            body = body or DepartmentActionBody()
            await visible(caller, alert_id)
            person = person_of(caller, body)
            try:
                change = await desk.department_act(alert_id, action, caller.department.id,
                                                   now=clock(), note=body.note,
                                                   person=person)
            except NotFound as exc:
                raise ApiError(404, str(exc)) from None
            except OutsideArea:
                raise ApiError(403, OUTSIDE) from None
            except IllegalTransition as exc:
                raise ApiError(409, str(exc)) from None
            except (BadAction, UnknownDepartment) as exc:
                raise ApiError(422, str(exc)) from None
            return await alert_detail(desk, change.alert)
        endpoint.__doc__ = summary
        app.post(f"/v1/department/alerts/{{alert_id}}/{path}", response_model=AlertDetail,
                 responses=ACTION_ERRORS, tags=["departments"], name=action,
                 operation_id=action)(endpoint)

    step("report_in", "report-in", "Report in (报到) to an alert the department was "
         "dispatched to: its response, judged against its report-in deadline.")
    step("dept_arrive", "arrive", "Report the department on site (after reporting in), by "
         "its promised arrival or the district supervises it (督办).")
    step("dept_dispose", "dispose", "Report the department's part disposed of (after "
         "arriving).")
    return app
