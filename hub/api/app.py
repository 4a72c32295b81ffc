"""The hub's HTTP API for units and their apps (FastAPI): alerts, actions, indicators,
edge agents.

Every request carries a unit's bearer token (:mod:`gridcall.hub.api.tokens`); the unit may see and
act
on alerts in its own subtree only: a grid on its grid's alerts, a community on its grids',
a town on its communities' and grids', the district on all. The sensor's place decides
(``AlertState.place``), not the unit currently responsible, so a grid still sees the alert
it called upward.

Misuse gets a 4xx with a reason in ``detail`` and writes nothing:

====  ==========================================================================
401   no token, or a token the tokens file does not know
403   the alert or unit is outside the caller's subtree; a grid dispatching
404   no such alert
409   the lifecycle refuses the action now (IllegalTransition's message)
422   a malformed body or parameter, an unknown department, a call upward with no reason
====  ==========================================================================

(Deadlines that passed before a refused action still fire, as they would at the desk's
next tick; the refused action itself writes nothing.)

Times are integers, nanoseconds since the Unix epoch, as everywhere in gridcall's wire
contract. The OpenAPI document is published as docs/openapi.json
(``python scripts/make_openapi.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from gridcall.config import ConfigSet, Unit
from gridcall.hub.api.tokens import TokenFile
from gridcall.hub.desk.desk import BadAction, Desk, NotFound, OutsideSubtree, UnknownUnit
from gridcall.hub.desk.indicators import Indicator, indicators
from gridcall.hub.desk.lifecycle import AlertState, IllegalTransition, Transition
from gridcall.hub.desk.roster import Health, Liveness, Roster
from gridcall.wire import AlertAction, AlertStatus, Tier, UnitLevel
from gridcall.wire.clock import Clock

API_VERSION = "1"


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


# --------------------------------------------------------------------------- models


class Out(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class DeadlinesOut(Out):
    response: int = Field(description="Acknowledge by (ns since the epoch).")
    arrival: int = Field(description="Be on site by (ns).")
    disposal: int = Field(description="Resolve by (ns).")


class DepartmentsOut(Out):
    lead: str
    co: list[str]


class Due(Out):
    name: Literal["response", "arrival", "disposal"]
    at: int


class AlertOut(Out):
    """An alert as it stands (the retained MQTT copy carries the same fields)."""

    alert_id: str
    state: AlertStatus
    tier: Tier
    unit: str = Field(description="The responsible unit now.")
    unit_level: UnitLevel
    unit_path: list[str]
    place: list[str] = Field(description="The sensor's district/town/community/grid.")
    matter: str
    matter_name: str
    matter_type: str
    departments: DepartmentsOut
    sensor: str
    sensor_kind: str
    grid: str
    anomaly_kind: str
    severity: str
    score: float
    value: float | None
    detected_at: int
    opened_at: int
    updated_at: int
    deadlines: DeadlinesOut
    due: Due | None = Field(description="The deadline the alert waits on now; null once "
                            "closed.")
    n: int = Field(description="Transitions so far.")
    last_action: AlertAction
    reason: str
    escalations: int

    @classmethod
    def of(cls, state: AlertState) -> AlertOut:
        a = state.alert
        due = state.due()
        return cls.model_validate({
            **{f: getattr(a, f) for f in (
                "alert_id", "state", "tier", "unit", "unit_level", "unit_path", "matter",
                "matter_name", "matter_type", "departments", "sensor", "sensor_kind", "grid",
                "anomaly_kind", "severity", "score", "value", "detected_at", "opened_at",
                "deadlines", "n", "last_action", "reason", "escalations")},
            "updated_at": a.updated_at or state.last.at, "place": list(state.place),
            "due": None if due is None else {"name": due[0], "at": due[1]},
        })


class TransitionOut(Out):
    """One step of an alert's history: who, when, what, why, and the alert after it."""

    n: int
    action: AlertAction
    at: int
    actor: str = Field(description='The unit that acted, or "hub".')
    note: str
    reason: str
    state: AlertStatus
    tier: Tier
    unit: str
    unit_level: UnitLevel
    deadlines: DeadlinesOut
    departments: list[str] = Field(description="Lead first.")
    sensor: str

    @classmethod
    def of(cls, t: Transition) -> TransitionOut:
        return cls.model_validate(t)


class AlertDetail(Out):
    alert: AlertOut
    history: list[TransitionOut]


class AlertList(Out):
    unit: str
    count: int = Field(description="Alerts matching, on all pages.")
    offset: int
    alerts: list[AlertOut]


class Me(Out):
    unit: str
    name: str
    level: UnitLevel
    path: list[str]


class IndicatorList(Out):
    unit: str
    period_start: int
    period_end: int
    rows: list[Indicator]
    """gridcall.hub.desk.indicators.Indicator itself (pydantic takes the dataclass), so the API
        cannot
    drift from the computation."""


class SensorHealthOut(Out):
    sensor: str
    grid: str
    health: Health = Field(description="ok, stuck, missing as the agent reports it; "
                           "unknown while the agent is not online or does not report it.")


class AgentOut(Out):
    agent: str
    name: str
    grid: str = Field(description="The grid the agent (its gateway) sits in.")
    town: str
    state: Liveness = Field(description="online; silent (no status for `silent_after` "
                            "heartbeats); lost (its last will: the connection dropped); "
                            "stopped (it said goodbye); unknown (no status yet).")
    online: bool
    heartbeat_s: float
    last_seen_s: float | None = Field(description="Seconds since its latest status; null "
                                      "if the hub never had one.")
    outbox_depth: int = Field(description="Messages waiting for the broker.")
    outbox_age_s: float = Field(description="Age of the oldest of them.")
    dropped: int = Field(description="What its outbox dropped at its bounds, in total.")
    unhealthy_sensors: int
    sensors: list[SensorHealthOut] = Field(description="Its sensors in the unit's "
                                           "subtree.")


class AgentList(Out):
    unit: str
    count: int
    agents: list[AgentOut]


class Problem(Out):
    detail: str


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionBody(Body):
    note: str = Field(default="", max_length=2000, description="Free text for the record.")


class EscalateBody(Body):
    reason: str = Field(min_length=1, max_length=2000,
                        description="Why the unit calls upward (吹哨); required.")
    note: str = Field(default="", max_length=2000)


class DispatchBody(Body):
    departments: list[str] = Field(default_factory=list, description="Department ids; "
                                   "empty: the matter's responsibility list.")
    note: str = Field(default="", max_length=2000)


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No token, or an unknown one."},
    403: {"model": Problem, "description": "Outside the caller's subtree."},
    404: {"model": Problem, "description": "No such alert."},
}
ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS, 409: {"model": Problem, "description": "The lifecycle refuses the action now."},
}


# --------------------------------------------------------------------------- app


def _inside(path: tuple[str, ...], root: tuple[str, ...]) -> bool:
    return path[:len(root)] == root


_bearer = HTTPBearer(auto_error=False, description="A unit's token.")


def _caller(request: Request,
            creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Unit:
    """The unit whose token the request carries; 401 otherwise."""
    tokens: TokenFile = request.app.state.tokens
    cfg: ConfigSet = request.app.state.config
    if creds is None:
        raise ApiError(401, "no bearer token: send 'Authorization: Bearer <token>' "
                            "(gridcall hub token issue UNIT)")
    unit_id = tokens.unit_of(creds.credentials)
    if unit_id is None:
        raise ApiError(401, "unknown or revoked token")
    unit = cfg.units.get(unit_id)
    if unit is None:
        raise ApiError(401, f"the token belongs to unit {unit_id!r}, which the config no "
                            "longer has")
    return unit


Caller = Annotated[Unit, Depends(_caller)]
AlertId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


def create_app(desk: Desk, tokens: TokenFile, *, clock: Clock,
               config: ConfigSet | None = None, roster: Roster | None = None) -> FastAPI:
    """The API over ``desk``; ``clock`` gives the desk's time (ns) for each action;
    ``roster``: the hub's agent roster for ``GET /v1/agents`` (503 without one)."""
    cfg = config or desk.config
    app = FastAPI(
        title="gridcall hub API", version=API_VERSION,
        description="Alerts for the unit that must act, and its answers: list and read "
                    "alerts in your subtree, acknowledge, arrive, resolve, mark a false "
                    "alarm, call upward, dispatch departments; indicators. Every request "
                    "needs `Authorization: Bearer <token>` (`gridcall hub token issue "
                    "UNIT`). Times are ns since the Unix epoch.",
    )
    app.state.tokens = tokens
    app.state.config = cfg

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    def visible(unit: Unit, alert_id: str) -> AlertState:
        try:
            state = desk.get(alert_id)
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None
        if not _inside(state.place, unit.path):
            raise ApiError(403, str(OutsideSubtree(unit, state)))
        return state

    def subtree(unit: Unit, of: str | None) -> Unit:
        if of is None:
            return unit
        target = cfg.units.get(of)
        if target is None:
            raise ApiError(422, str(UnknownUnit(of)))
        if not _inside(target.path, unit.path):
            raise ApiError(403, f"{unit.level} {unit.id} may not look at {target.level} "
                                f"{target.id}: outside {'/'.join(unit.path)}")
        return target

    @app.get("/v1/me", response_model=Me, responses=ERRORS, tags=["units"])
    def me(unit: Caller) -> Me:
        """The unit the token belongs to."""
        return Me(unit=unit.id, name=unit.name, level=unit.level, path=list(unit.path))

    @app.get("/v1/alerts", response_model=AlertList, responses=ERRORS, tags=["alerts"])
    def list_alerts(
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
        root = subtree(unit, of)
        found = desk.alerts(unit=root.id, tier=tier, state=state, open_only=open_only)
        page = found[offset:offset + limit]
        return AlertList(unit=root.id, count=len(found), offset=offset,
                         alerts=[AlertOut.of(s) for s in page])

    @app.get("/v1/alerts/{alert_id}", response_model=AlertDetail, responses=ERRORS,
             tags=["alerts"])
    async def get_alert(unit: Caller, alert_id: AlertId) -> AlertDetail:
        """One alert with its whole history, first step first."""
        state = visible(unit, alert_id)
        history = await desk.history(alert_id)
        return AlertDetail(alert=AlertOut.of(state),
                           history=[TransitionOut.of(t) for t in history])

    async def act(unit: Unit, alert_id: str, action: AlertAction, *, note: str = "",
                  reason: str = "", departments: tuple[str, ...] = ()) -> AlertDetail:
        visible(unit, alert_id)
        try:
            change = await desk.act(alert_id, action, unit.id, now=clock(), note=note,
                                    reason=reason, departments=departments)
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None
        except OutsideSubtree as exc:
            raise ApiError(403, str(exc)) from None
        except IllegalTransition as exc:
            raise ApiError(409, str(exc)) from None
        except (BadAction, UnknownUnit) as exc:
            raise ApiError(422, str(exc)) from None
        history = await desk.history(alert_id)
        return AlertDetail(alert=AlertOut.of(change.alert),
                           history=[TransitionOut.of(t) for t in history])

    def simple(action: AlertAction, path: str, summary: str) -> None:
        async def endpoint(unit: Caller, alert_id: AlertId,
                           body: ActionBody | None = None) -> AlertDetail:
            return await act(unit, alert_id, action, note=(body or ActionBody()).note)
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
    async def escalate(unit: Caller, alert_id: AlertId, body: EscalateBody) -> AlertDetail:
        """Call upward (吹哨) with a reason: the alert's tier rises one step and the unit
        above becomes responsible, with new deadlines. Counted in the whistle rate,
        and as the caller's response: calling upward in time is answering in time."""
        return await act(unit, alert_id, "escalate", note=body.note, reason=body.reason)

    @app.post("/v1/alerts/{alert_id}/dispatch", response_model=AlertDetail,
              responses=ACTION_ERRORS, tags=["actions"], operation_id="dispatch")
    async def dispatch(unit: Caller, alert_id: AlertId, body: DispatchBody) -> AlertDetail:
        """Dispatch departments to the alert: for a community, town or district at or
        above the responsible level (a grid calls upward instead)."""
        visible(unit, alert_id)  # 404 / 403 for the alert itself come first
        if unit.level == "grid":
            raise ApiError(403, f"grid {unit.id} cannot dispatch departments; call upward "
                                "(POST .../escalate) and the level above dispatches")
        return await act(unit, alert_id, "dispatch", note=body.note,
                         departments=tuple(body.departments))

    @app.get("/v1/indicators", response_model=IndicatorList, responses=ERRORS,
             tags=["indicators"])
    async def get_indicators(
        unit: Caller,
        of: Annotated[str | None, Query(alias="unit", description="A unit in your subtree "
                                        "(default: yours).")] = None,
        period_s: Annotated[int, Query(alias="period", ge=1, description="Seconds back "
                                       "from `until` (default 7 days).")] = 7 * 86400,
        until: Annotated[int | None, Query(ge=0, description="End of the period, ns "
                                           "(default: now).")] = None,
    ) -> IndicatorList:
        """Indicators of the units in the subtree, and of the departments over the
        subtree's alerts, for alerts handed to them in the period, judged as of the
        period's end or now, whichever is earlier (definitions in hub/desk/indicators.py and
        docs/api.md)."""
        root = subtree(unit, of)
        now = clock()
        end = now if until is None else until
        start = end - period_s * 10**9
        # Only alerts that can have a stint starting in the period: opened before its end
        # and not closed for good before its start (a stint starts at an open, escalate
        # or reopen step, and closed_at is the latest closing). Steps after the end are
        # left out too: the figures are judged as of the end at the latest.
        judged = min(end, now)
        maybe = [s for s in desk.alerts(unit=root.id)
                 if s.opened_at < end and (s.closed_at is None or s.closed_at >= start)]
        steps = await desk.transitions_of(maybe, until=judged + 1)
        rows = [r for r in indicators(steps, start, end, as_of=judged)
                if r.group == "department" or (
                    r.key in cfg.units and _inside(cfg.units[r.key].path, root.path))]
        return IndicatorList(unit=root.id, period_start=start, period_end=end,
                             rows=list(rows))

    from gridcall.hub.board.web import add_board  # it builds on this module's models

    add_board(app, desk, cfg, clock)
    @app.get("/v1/agents", response_model=AgentList, responses={
        **ERRORS, 503: {"model": Problem, "description": "The API runs without the "
                        "hub's agent roster."}}, tags=["agents"])
    def list_agents(
        unit: Caller,
        of: Annotated[str | None, Query(alias="unit", description="A unit in your subtree "
                                        "(default: yours).")] = None,
    ) -> AgentList:
        """The edge agents with a sensor in the unit's subtree, as the hub's roster sees
        them now (status topics: heartbeats and last wills), with those sensors' health.
        An agent silent or lost has an EDGE-OFFLINE alert in each of its grids."""
        root = subtree(unit, of)
        if roster is None:
            raise ApiError(503, "this API runs without the hub's agent roster")
        now = clock()
        out: list[AgentOut] = []
        for spec in cfg.agents.values():
            mine = [s for s in spec.sensors if _inside(s.path, root.path)]
            if not mine:
                continue
            view = roster.view(spec.id, now)
            out.append(AgentOut(
                agent=spec.id, name=spec.name, grid=spec.grid, town=view.town,
                state=view.state, online=view.online, heartbeat_s=view.heartbeat_s,
                last_seen_s=view.last_seen_s, outbox_depth=view.outbox_depth,
                outbox_age_s=view.outbox_age_s, dropped=view.dropped,
                unhealthy_sensors=sum(1 for s in mine if view.sensors[s.id] != "ok"),
                sensors=[SensorHealthOut(sensor=s.id, grid=s.grid, health=view.sensors[s.id])
                         for s in mine]))
        return AgentList(unit=root.id, count=len(out), agents=out)

    return app
