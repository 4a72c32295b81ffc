"""The alert routes: the caller's unit, its alerts, and the actions on them (acknowledge,
arrive, resolve, false alarm, call upward, dispatch), each refused with a 4xx that
writes nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gridcall.config import ConfigSet, Unit
from gridcall.hub.api.auth import AlertId, Caller, CallerPerson, subtree, visible
from gridcall.hub.api.models import (
    ACTION_ERRORS,
    ERRORS,
    OUTSIDE,
    ActionBody,
    AlertDetail,
    AlertList,
    AlertOut,
    ApiError,
    ArrivalReminderOut,
    DispatchBody,
    EscalateBody,
    Me,
    ReminderOut,
    ReopenBody,
    TransitionOut,
)
from gridcall.hub.desk.desk import (
    BadAction,
    Desk,
    NotFound,
    OutsideSubtree,
    Unchanged,
    UnknownUnit,
)
from gridcall.hub.desk.lifecycle import AlertState, IllegalTransition
from gridcall.wire import AlertAction, AlertStatus, Tier
from gridcall.wire.clock import Clock


async def alert_detail(desk: Desk, state: AlertState) -> AlertDetail:
    """The alert as it stands with its history and reminders (every route that answers
    an alert after an action answers this)."""
    history = await desk.history(state.alert_id)
    reminders = await desk.reminders_of(state.alert_id)
    arrival = await desk.arrival_reminders_of(state.alert_id)
    return AlertDetail(alert=AlertOut.of(state, desk.incident_id(state.alert_id)),
                       history=[TransitionOut.of(t) for t in history],
                       reminders=[ReminderOut.model_validate(r) for r in reminders],
                       arrival_reminders=[ArrivalReminderOut.model_validate(r)
                                          for r in arrival])


def router(desk: Desk, cfg: ConfigSet, clock: Clock) -> APIRouter:
    """``/v1/me``, ``/v1/alerts`` and the actions over ``desk``; ``clock`` gives the desk's
    time (ns) for each action."""
    app = APIRouter()

    @app.get("/v1/me", response_model=Me, responses=ERRORS, tags=["units"])
    def me(unit: Caller, person: CallerPerson) -> Me:
        """The unit the token belongs to (and the person, for a person's token)."""
        return Me(unit=unit.id, name=unit.name, level=unit.level, path=list(unit.path),
                  person=person or None)

    @app.get("/v1/alerts", response_model=AlertList, responses=ERRORS, tags=["alerts"])
    async def list_alerts(
        unit: Caller,
        of: Annotated[str | None, Query(alias="unit", description="A unit in your subtree "
                                        "(default: yours); its whole subtree is listed.")
                      ] = None,
        tier: Annotated[Tier | None, Query()] = None,
        state: Annotated[list[AlertStatus] | None, Query(description="Repeat for several."
                                                         )] = None,
        open_only: Annotated[bool, Query(alias="open", description="Only alerts not yet "
                                         "resolved or false alarms.")] = False,
        limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many, "
                                    "from `offset`.")] = 1000,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> AlertList:
        """Alerts whose sensor lies in the unit's subtree, oldest first; ``count`` is how
        many match, ``alerts`` the page ``[offset, offset + limit)`` of them."""
        root = subtree(cfg, unit, of)
        count, page = await desk.listing(unit=root.id, tier=tier, state=state,
                                         open_only=open_only, offset=offset, limit=limit)
        return AlertList(unit=root.id, count=count, offset=offset,
                         alerts=[AlertOut.of(s, desk.incident_id(s.alert_id))
                                 for s in page])

    @app.get("/v1/alerts/{alert_id}", response_model=AlertDetail, responses=ERRORS,
             tags=["alerts"])
    async def get_alert(unit: Caller, alert_id: AlertId) -> AlertDetail:
        """One alert with its whole history, first step first."""
        return await alert_detail(desk, await visible(desk, unit, alert_id))

    async def act(unit: Unit, alert_id: str, action: AlertAction, *, note: str = "",
                  reason: str = "", departments: tuple[str, ...] = (),
                  person: str = "") -> AlertDetail:
        await visible(desk, unit, alert_id)
        try:
            change = await desk.act(alert_id, action, unit.id, now=clock(), note=note,
                                    reason=reason, departments=departments, person=person)
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None
        except OutsideSubtree:
            raise ApiError(403, OUTSIDE) from None
        except IllegalTransition as exc:
            raise ApiError(409, str(exc)) from None
        except (BadAction, UnknownUnit) as exc:
            raise ApiError(422, str(exc)) from None
        except Unchanged as exc:  # a repeat: the alert as it stands, nothing written
            return await alert_detail(desk, exc.state)
        # the alert as it stands: after a call upward to tier B or A, with the hub's
        # dispatch of the plan's departments that followed it
        return await alert_detail(desk, await desk.find(change.alert.alert_id))

    def simple(action: AlertAction, path: str, summary: str) -> None:
        async def endpoint(unit: Caller, person: CallerPerson, alert_id: AlertId,
                           body: ActionBody | None = None) -> AlertDetail:
            return await act(unit, alert_id, action, note=(body or ActionBody()).note,
                             person=person)
        endpoint.__doc__ = summary
        app.post(f"/v1/alerts/{{alert_id}}/{path}", response_model=AlertDetail,
                 responses=ACTION_ERRORS, tags=["actions"], name=action,
                 operation_id=action)(endpoint)

    simple("acknowledge", "acknowledge", "Acknowledge the alert (the response).")
    simple("arrive", "arrive", "Report arrival on site (after acknowledging).")
    simple("resolve", "resolve", "Report the matter disposed of (after arriving).")
    simple("false_alarm", "false-alarm", "Close the alert as a false alarm.")

    @app.post("/v1/alerts/{alert_id}/escalate", response_model=AlertDetail,
              responses=ACTION_ERRORS, tags=["actions"], operation_id="escalate")
    async def escalate(unit: Caller, person: CallerPerson, alert_id: AlertId,
                       body: EscalateBody) -> AlertDetail:
        """Call upward (吹哨) with a reason: the alert's tier rises one step and the unit
        above becomes responsible, with new deadlines. Counted in the whistle rate,
        and as the caller's response: calling upward in time is answering in time. The
        same call upward again (same unit, same reason, nothing in between) is a 409."""
        return await act(unit, alert_id, "escalate", note=body.note, reason=body.reason,
                         person=person)

    @app.post("/v1/alerts/{alert_id}/reopen", response_model=AlertDetail,
              responses=ACTION_ERRORS, tags=["actions"], operation_id="reopen")
    async def reopen(unit: Caller, person: CallerPerson, alert_id: AlertId,
                     body: ReopenBody) -> AlertDetail:
        """Reopen a closed alert (resolved or false alarm) in the caller's area, with a
        reason: the matter is not disposed of after all. It opens again at its tier, with
        its responsible unit and new deadlines, as when the anomaly recurs. An alert that
        is open is a 409."""
        return await act(unit, alert_id, "reopen", note=body.note, reason=body.reason,
                         person=person)

    @app.post("/v1/alerts/{alert_id}/dispatch", response_model=AlertDetail,
              responses=ACTION_ERRORS, tags=["actions"], operation_id="dispatch")
    async def dispatch(unit: Caller, person: CallerPerson, alert_id: AlertId,
                       body: DispatchBody) -> AlertDetail:
        """Dispatch departments to the alert (吹哨): for a community, town or district at
        or above the responsible level (a grid calls upward instead). Each department
        called is sent the call through its person on duty and must arrive by its
        promised time (30 minutes by default) or be supervised by the district (督办); a
        department outside its area of action is refused (422). Dispatching only
        departments whose calls are under way writes nothing and answers the alert as
        it stands (a retried request is safe)."""
        await visible(desk, unit, alert_id)  # 404 / 403 for the alert itself come first
        if unit.level == "grid":
            raise ApiError(403, f"grid {unit.id} cannot dispatch departments; call upward "
                                "(POST .../escalate) and the level above dispatches")
        return await act(unit, alert_id, "dispatch", note=body.note,
                         departments=tuple(body.departments), person=person)

    return app
