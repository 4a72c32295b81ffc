"""The hub API's models: what its endpoints answer and accept (pydantic, frozen), the
error documentation of the routes and :class:`ApiError`, the one exception a route
raises to answer a 4xx/5xx. Pure data: no desk, no I/O."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gridcall.hub.api.plan_models import PlanOut, PlanTickOut
from gridcall.hub.desk.indicators import Indicator
from gridcall.hub.desk.lifecycle import Action, AlertState, Rating, Transition
from gridcall.hub.desk.roster import Health, Liveness
from gridcall.wire import AlertAction, AlertStatus, Tier, UnitLevel

API_VERSION = "1"


OUTSIDE = "outside your area"
"""The whole of a 403 for an alert or unit outside the caller's subtree: it names no
path, unit or alert the caller may not see."""


class ApiError(Exception):
    def __init__(self, status: int, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        """Sent with the answer (a 429's ``Retry-After``)."""


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
    grids: list[str] = Field(default_factory=list, description="Every grid the alert "
                             "concerns when more than its own: an edge agent's outage "
                             "lists each grid its sensors are in.")
    overdue: str = Field(default="", description="The deadline (response, arrival, "
                         "disposal) that passed where the alert can go no higher (tier A at "
                         "the district, a device fault at its top tier): overdue there, "
                         "its duty leader paged. Empty otherwise.")

    incident: str = Field(default="", description="The incident it is in (GET "
                          "/v1/incidents/{id}), else empty.")
    department_calls: list[DeptCallOut] = Field(
        default_factory=list, description="The departments dispatched to it (吹哨) and how "
        "each answered, in the order called.")
    pending_close: str = Field(default="", description="A close awaiting approval by the "
                               "level closure.approval names for the tier (resolve, "
                               "false_alarm; docs/desk.md), else empty: `due` is null "
                               "meanwhile.")
    pending_by: str = Field(default="", description="The unit that asked for that close.")
    audit: str = Field(default="", description="The audit of its latest closing: sampled "
                       "(in the audit queue), pass, fail; empty if none.")
    plan: PlanOut | None = Field(default=None, description="The matter's plan (一事一预案) "
                                 "as the alert opened with it; null if the catalog gives "
                                 "none.")
    plan_done: list[PlanTickOut] = Field(default_factory=list, description="The plan's "
                                         "steps ticked off so far, first first.")

    @classmethod
    def of(cls, state: AlertState, incident: str = "") -> AlertOut:
        a = state.alert
        due = state.due()
        return cls.model_validate({
            "incident": incident,
            **{f: getattr(a, f) for f in (
                "alert_id", "state", "tier", "unit", "unit_level", "unit_path", "matter",
                "matter_name", "matter_type", "departments", "sensor", "sensor_kind", "grid",
                "anomaly_kind", "severity", "score", "value", "detected_at", "opened_at",
                "deadlines", "n", "last_action", "reason", "escalations", "grids",
                "overdue", "plan", "plan_done")},
            "updated_at": a.updated_at or state.last.at, "place": list(state.place),
            "due": None if due is None else {"name": due[0], "at": due[1]},
            "department_calls": [
                {**{f: getattr(c, f) for f in DeptCallOut.model_fields if f != "stage"},
                 "stage": c.stage} for c in state.dept_calls],
            "pending_close": state.pending, "pending_by": state.pending_by,
            "audit": state.audit,
        })


class DeptCallOut(Out):
    """One department called to the alert (吹哨) and how it answered (报到, on site,
    disposal), each with the person; docs/desk.md, 吹哨报到."""

    department: str
    stage: Literal["whistled", "reported_in", "arrived", "disposed"]
    whistled_at: int
    whistled_by: str = Field(description="The unit (or hub) whose dispatch called it.")
    report_by: int = Field(description="Its report-in deadline (ns).")
    arrive_by: int = Field(description="Its promised arrival (ns): 30 minutes after the "
                           "whistle unless its config says otherwise.")
    dispose_by: int = Field(description="The alert's disposal deadline when it was called.")
    on_duty: str = Field(description="Its person on duty then, whom the call was sent to.")
    reported_at: int | None
    reported_person: str
    arrived_at: int | None
    arrived_person: str
    disposed_at: int | None
    disposed_person: str
    supervised_at: int | None = Field(description="When its missed arrival went to the "
                                      "district command centre (督办), if it did.")
    supervised_by: str = Field(description="The district's person on duty it went to.")


class WhistledOut(Out):
    department: str
    report_by: int
    arrive_by: int
    on_duty: str


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
    person: str = Field(default="", description="The person who took the step (a "
                        "person's token; roster.yaml), else empty.")
    person_unit: str = Field(default="", description="That person's unit or department.")
    on_duty: str = Field(default="", description="On open, escalate and reopen: the person "
                         "on duty at the unit the alert was handed to, whom it was sent to; "
                         "on supervise: the district's person on duty.")
    department: str = Field(default="", description="On a department's step (report_in, "
                            "dept_arrive, dept_dispose) and on supervise: the department.")
    whistled: list[WhistledOut] = Field(default_factory=list, description="On a dispatch: "
                                        "the departments it called, with their deadlines "
                                        "and person on duty.")
    photos: list[str] = Field(default_factory=list, description="Photos that came with "
                              "the step (a report's, a note's): GET "
                              "/v1/alerts/{alert_id}/photos/{id}.")
    rating: Rating | None = Field(default=None, description="On rate: the reporter's "
                                  "rating (satisfied 满意, basically_satisfied 基本满意, "
                                  "dissatisfied 不满意); `reason` names the report.")
    request: str = Field(default="", description="On request_close: the close asked for "
                         "(resolve, false_alarm).")
    verdict: str = Field(default="", description="On audit: pass or fail.")
    plan_step: str = Field(default="", description="On a plan_step: the step of the "
                           "alert's plan ticked off.")

    @classmethod
    def of(cls, t: Transition) -> TransitionOut:
        return cls.model_validate(t)


class ReminderOut(Out):
    """A reminder the desk sent before the alert escalated (roster.yaml's escalation
    policies; docs/desk.md). Recorded in the reminder log, not a step of the alert."""

    stint: int = Field(description="The step that handed the alert to `unit`.")
    index: int = Field(description="0 for the policy's first reminder of that stint.")
    at: int
    unit: str
    person: str = Field(description="Whom it went to; empty: the unit's channels.")
    person_unit: str
    respond_by: int = Field(description="The response deadline it reminded of.")


class ArrivalReminderOut(Out):
    """A reminder the desk sent to a whistled department before its promised arrival
    (topology.yaml's ``remind_before``; docs/desk.md). Recorded in the arrival reminder
    log, not a step of the alert."""

    department: str
    whistled_at: int = Field(description="The whistle of the call it reminded of (ns).")
    at: int
    arrive_by: int = Field(description="The promised arrival it reminded of (ns).")
    person: str = Field(description="Whom it went to; empty: the department's channels.")
    stage: str = Field(description="Where the call stood: whistled or reported_in.")


class AlertDetail(Out):
    alert: AlertOut
    history: list[TransitionOut]
    reminders: list[ReminderOut] = Field(default=[], description="The reminders sent, "
                                         "first first.")
    arrival_reminders: list[ArrivalReminderOut] = Field(
        default=[], description="The reminders sent to departments before their promised "
        "arrival, first first.")


class DepartmentMe(Out):
    department: str
    name: str
    towns: list[str] = Field(description="Its area of action: these towns; empty: the "
                             "whole district.")
    arrival_s: float = Field(description="Its promised arrival after a whistle (s).")
    report_in_s: float = Field(description="By when it must report in after one (s).")
    remind_before_s: float | None = Field(
        default=None, description="How long before the promised arrival its person on "
        "duty is reminded (s); null: no reminder.")
    person: str | None = Field(default=None, description="The person the token was "
                               "issued to (roster.yaml), null for the department's token.")
    on_duty: str | None = Field(default=None, description="Its person on duty now.")


class DepartmentAlertList(Out):
    department: str
    now: int = Field(default=0, description="The desk's clock (ns): countdowns to the "
                     "promised arrivals count from it.")
    count: int = Field(description="Alerts matching, on all pages.")
    offset: int
    alerts: list[AlertOut]


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
    person: str | None = Field(default=None, description="The person the token was "
                               "issued to (roster.yaml), null for a unit's token.")


class IndicatorList(Out):
    unit: str
    period_start: int
    period_end: int
    rows: list[Indicator]
    """gridcall.hub.desk.indicators.Indicator itself (pydantic takes the dataclass), so the
    API cannot drift from the computation."""


class SensorHealthOut(Out):
    sensor: str
    grid: str
    health: Health = Field(description="ok, stuck, missing, fault, offline as the agent "
                           "reports it; unknown while the agent is not online or does not "
                           "report it.")


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
    """Every refusal's body, whatever the status (hub/api/guard.py)."""

    detail: str = Field(description="What was refused and why, for a person.")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionBody(Body):
    note: str = Field(default="", max_length=2000, description="Free text for the record.")


class EscalateBody(Body):
    reason: str = Field(min_length=1, max_length=2000,
                        description="Why the unit calls upward (吹哨); required.")
    note: str = Field(default="", max_length=2000)


class ReopenBody(Body):
    reason: str = Field(min_length=1, max_length=2000,
                        description="Why the closed alert opens again (the matter is not "
                        "disposed of after all); required.")
    note: str = Field(default="", max_length=2000)


class DispatchBody(Body):
    departments: list[str] = Field(default_factory=list, description="Department ids; "
                                   "empty: the matter's responsibility list.")
    note: str = Field(default="", max_length=2000)


class DepartmentActionBody(Body):
    note: str = Field(default="", max_length=2000, description="Free text for the record.")
    person: str = Field(default="", max_length=64, description="Who acted (a person of "
                        "the department in roster.yaml), with the department's own token; "
                        "a person's token names them already.")


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The request could not be read."},
    401: {"model": Problem, "description": "No token, or an unknown one."},
    408: {"model": Problem, "description": "The body did not arrive in time after the "
          "request's headers (30 s; the photo routes: their limit at 32 KiB/s)."},
    413: {"model": Problem, "description": "The body is larger than the API takes."},
    422: {"model": Problem, "description": "A malformed body or parameter: not JSON, not "
          "valid UTF-8 or Unicode, a field out of bounds, an unknown unit or department."},
    503: {"model": Problem, "description": "A standby hub, which serves reads only: a "
          "change is refused, naming the hub that holds the desk, with `Retry-After` "
          "(docs/api.md)."},
}
"""Declared on every route of the app (``FastAPI(responses=...)``), so a route added
later documents them too."""
ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "Outside the caller's area."},
    404: {"model": Problem, "description": "No such alert."},
}
ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS, 409: {"model": Problem, "description": "The lifecycle refuses the action now."},
}


# --------------------------------------------------------------------------- the board


class AreaOut(Out):
    id: str
    name: str
    level: UnitLevel
    parent: str | None
    polygon: list[list[list[float]]] | None = Field(
        description="GeoJSON polygon rings of [lon, lat]; null when the config gives a point.")
    point: list[float] | None
    centre: list[float] = Field(description="[lon, lat] of the ring's mean point.")


class SensorOut(Out):
    id: str
    name: str
    kind: str
    grid: str
    lon: float
    lat: float


class BoardMap(Out):
    """The caller's subtree on the map: itself and every unit below, top down."""

    unit: Me
    areas: list[AreaOut]
    sensors: list[SensorOut]
    names: dict[str, str] = Field(description="id → name of the units of the subtree and "
                                  "above it, the departments and their persons: what the "
                                  "page shows instead of an id.")
    matters: dict[str, str] = Field(description="code → name of the catalog's matters.")
    agents: dict[str, str] = Field(description="id → name of the edge agents with a sensor "
                                   "in the subtree.")


class Risk(Out):
    id: str = Field(description="Grid or sensor id.")
    risk: int = Field(description="Highest open tier: 1 D, 2 C, 3 B, 4 A (absent: 0).")
    open: int = Field(description="Open alerts counted.")


class BoardAlert(AlertOut):
    actions: list[Action] = Field(description="What the lifecycle allows on it now.")
    plan_steps: int | None = Field(default=None, description="How many steps its plan "
                                   "has (null: no plan); the plan itself (`plan`, null "
                                   "here) is in GET /v1/alerts/{id}.")
    unit_name: str
    grid_name: str
    community_name: str
    approver: str = Field(default="", description="While a close awaits approval "
                          "(`pending_close`): the unit that approves it, the one of "
                          "closure.approval's level above the alert; else empty.")
    approver_name: str = Field(default="", description="That unit's name.")
    may_approve: bool = Field(default=False, description="Whether the caller may approve "
                              "or reject that close (POST /v1/alerts/{id}/approve, "
                              "/reject).")


class Escalation(Out):
    alert_id: str
    at: int
    actor: str = Field(description='Who called upward, or "hub" for a deadline or tier '
                       'rule.')
    tier: str
    unit: str
    unit_name: str
    reason: str


class BoardState(Out):
    unit: str
    now: int = Field(description="The desk's clock (ns): countdowns count from it.")
    grids: list[Risk]
    sensors: list[Risk]
    alerts: list[BoardAlert] = Field(description="Open alerts, next deadline first.")
    escalations: list[Escalation] = Field(description="Escalations of the open alerts, "
                                          "latest first.")


class BoardChange(Out):
    """One ledger step in the subtree, as the ``change`` event's data."""

    now: int
    alert: BoardAlert
    step: TransitionOut


class PersonOut(Out):
    """A person of roster.yaml as the API shows them (never their contact)."""

    id: str
    name: str
    unit: str


class StretchOut(Out):
    """A person on duty (or duty leader) from ``start`` to ``end`` (ns)."""

    person: PersonOut
    start: int
    end: int
    override: bool = Field(description="From roster.yaml's overrides, not the weekly "
                           "shift.")


class HandoverItemOut(Out):
    alert_id: str
    matter: str
    matter_name: str
    tier: Tier
    state: AlertStatus
    unit: str = Field(description="The unit responsible now.")
    held: bool = Field(description="The unit handing over holds it itself (else another "
                       "unit does: below it, or above it after an escalation).")
    grid: str
    deadline: str = Field(description="The deadline it waits on next: response, arrival "
                          "or disposal.")
    due_at: int
    overdue: bool
    in_shift: bool = Field(description="Due before `horizon`: on the incoming watch.")
    on_duty: str = Field(description="The person it was handed to; empty if nobody.")


class HandoverOut(Out):
    """A unit's hand-over at a shift change (docs/desk.md)."""

    unit: str
    at: int
    on_duty: StretchOut | None
    next: StretchOut | None = Field(description="Who takes over next, and when.")
    leader: PersonOut | None = Field(description="The unit's duty leader now.")
    horizon: int = Field(description="The end of the incoming stretch: deadlines before "
                         "it are the incoming watch's.")
    alerts: list[HandoverItemOut] = Field(description="Open alerts of the subtree, the "
                                          "soonest deadline first.")

