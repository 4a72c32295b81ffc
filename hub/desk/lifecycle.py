"""The life of a risk alert as a fold over transitions: pure, no I/O, no clock.

Every change to an alert is a :class:`Transition` (who, when, what, why, and the alert's
state, tier, responsible unit, deadlines and departments *after* it). The ledger
(:mod:`gridcall.hub.desk.ledger`) stores them append-only; :func:`apply` folds them into an
:class:`AlertState`, so the same code that moves an alert forward rebuilds it after a
restart. :func:`step` builds the next transition and refuses an illegal one with
:class:`IllegalTransition` before anything is written.

Legal moves (``OPEN`` = opened, dispatched, acknowledged, on_site)::

    open         (no alert yet)             -> opened
    evidence     OPEN                       -> unchanged (a further anomaly joins)
    dispatch     OPEN, by a unit at or above the responsible level
                                            -> dispatched if it was opened, else unchanged
    acknowledge  opened | dispatched        -> acknowledged      (response)
    arrive       acknowledged               -> on_site           (arrival)
    resolve      on_site                    -> resolved          (disposal)
    false_alarm  OPEN                       -> false_alarm
    escalate     OPEN, tier below A         -> opened; a higher tier (one up for a deadline
                                               breach or a call upward, maybe more for a
                                               tier rule), the unit that tier routes to, new
                                               deadlines: the new unit must respond
    reopen       resolved | false_alarm     -> opened; new deadlines (the anomaly recurred
                                               within the reopen window, the hub decides; or
                                               a unit whose area holds it, with a reason),
                                               or an auditor's failed audit
    report_in, dept_arrive, dept_dispose, supervise
                 OPEN                       -> unchanged: a dispatched department's own
                                               steps and the hub's 督办 of one, legal as
                                               :mod:`gridcall.hub.desk.whistle` says
    note         any state                  -> unchanged (a note, maybe photos: before and
                                               after photos of a disposal; issue 18)
    rate         resolved | false_alarm     -> unchanged (a reporter rates the handling:
                                               satisfied, basically satisfied, dissatisfied)
    request_close OPEN, no close pending    -> unchanged; a close (``request``: resolve or
                                               false_alarm) awaits approval by the level
                                               closure.approval names for the tier: its
                                               deadlines wait meanwhile (``due`` is None)
    reject_close OPEN, a close pending      -> unchanged; the request is void, deadlines
                                               back (moved on by the wait: the desk's)
    sample       CLOSED, not sampled yet    -> unchanged; the closing is in the audit queue
    audit        CLOSED, not audited yet    -> unchanged; ``verdict`` pass or fail (a fail
                                               is followed by the auditor's reopen)

A resolve or false_alarm while a close is pending is its approval (the approver's own
step). Escalate voids a pending request (the new unit must respond); reopen clears the
audit of the closing before.
    plan_step    OPEN                       -> unchanged (a step of the alert's plan ticked
                                               off, :mod:`gridcall.hub.desk.plans`)

Which tier, unit and deadlines an escalation or reopening brings is decided by the caller
(the policy, :mod:`gridcall.hub.desk.policy`); this module only holds the legal moves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import msgspec

from gridcall.hub.desk import whistle
from gridcall.hub.desk.whistle import DeptCall, Whistled
from gridcall.wire import (
    AlertAction,
    AlertStatus,
    Deadlines,
    Departments,
    RiskAlert,
    Tier,
    UnitLevel,
)
from gridcall.wire.ladder import LEVELS, above
from gridcall.wire.messages import PlanTick

Rating = Literal["satisfied", "basically_satisfied", "dissatisfied"]
"""满意, 基本满意, 不满意: how a reporter rates the handling of their report."""
RATINGS: tuple[Rating, ...] = get_args(Rating)
SATISFIED: frozenset[Rating] = frozenset({"satisfied", "basically_satisfied"})
"""The ratings the satisfaction rate (满意率) counts as satisfied."""
State = AlertStatus
"""opened, dispatched, acknowledged, on_site, resolved, false_alarm (as in RiskAlert.state)."""
Action = AlertAction
"""open, evidence, dispatch, acknowledge, arrive, resolve, false_alarm, escalate, reopen."""
STATES: tuple[State, ...] = get_args(State)
ACTIONS: tuple[Action, ...] = get_args(Action)
OPEN: frozenset[State] = frozenset({"opened", "dispatched", "acknowledged", "on_site"})
CLOSED: frozenset[State] = frozenset({"resolved", "false_alarm"})

HUB = "hub"
"""The actor of automatic steps (opening, evidence, deadline escalation, reopening)."""
HANDOVERS: frozenset[Action] = frozenset({"open", "escalate", "reopen"})
"""The steps that hand the alert to a unit, with new deadlines (a stint starts)."""

OVERDUE = "overdue: "
"""How the reason of an overdue step begins. A deadline that passes where the alert can go
no higher (tier A, or a device fault's top tier) is an ``evidence`` step by the hub whose
reason is ``"overdue: <deadline> deadline passed ..."``: it pages the unit's duty leader
and sets the wire's ``overdue`` until a step moves the alert on."""


def overdue_of(t: Transition) -> str:
    """The deadline an overdue step says passed (``response``...), or "" for any other."""
    if t.action != "evidence" or t.actor != HUB or not t.reason.startswith(OVERDUE):
        return ""
    return t.reason.removeprefix(OVERDUE).split(" ", 1)[0]


REQUIRES: dict[Action, frozenset[State]] = {
    "open": frozenset(),
    "evidence": OPEN,
    "dispatch": OPEN,
    "acknowledge": frozenset({"opened", "dispatched"}),
    "arrive": frozenset({"acknowledged"}),
    "resolve": frozenset({"on_site"}),
    "false_alarm": OPEN,
    "escalate": OPEN,
    "reopen": CLOSED,
    "report_in": OPEN,
    "dept_arrive": OPEN,
    "dept_dispose": OPEN,
    "supervise": OPEN,
    "note": OPEN | CLOSED,
    "rate": CLOSED,
    "request_close": OPEN,
    "reject_close": OPEN,
    "sample": CLOSED,
    "audit": CLOSED,
    "plan_step": OPEN,
}
"""The states each action may be taken in."""


def _state_after(action: Action, before: State) -> State:
    match action:
        case "open" | "escalate" | "reopen":
            return "opened"
        case "dispatch":
            return "dispatched" if before == "opened" else before
        case "acknowledge":
            return "acknowledged"
        case "arrive":
            return "on_site"
        case "resolve":
            return "resolved"
        case "false_alarm":
            return "false_alarm"
        case ("evidence" | "report_in" | "dept_arrive" | "dept_dispose" | "supervise" | "note"
              | "rate" | "request_close" | "reject_close" | "sample" | "audit"
              | "plan_step"):
            return before


class IllegalTransition(ValueError):
    """An action refused for an alert, with the alert, its state and the reason."""

    def __init__(self, alert_id: str, state: State | None, action: str, why: str) -> None:
        where = f"{alert_id} is {state}" if state else f"{alert_id} does not exist yet"
        super().__init__(f"{where}; {why}")
        self.alert_id = alert_id
        self.state = state
        self.action = action
        self.why = why


@dataclass(frozen=True, slots=True)
class Transition:
    """One step in an alert's life, as the ledger stores it. Fields after ``note`` are the
    alert *after* the step, so any one transition says where the alert stood."""

    alert_id: str
    n: int
    """1, 2, 3 … per alert, without gaps."""
    action: Action
    at: int
    """When (ns, from the injected clock)."""
    actor: str
    """The unit id that acted, or ``"hub"`` for automatic steps."""
    note: str
    state: State
    tier: Tier
    unit: str
    unit_level: UnitLevel
    unit_path: tuple[str, ...]
    """The responsible unit's address (the alert topic's unit levels; for tier A the
    town's path, see :func:`gridcall.hub.desk.policy.route`)."""
    deadlines: Deadlines
    departments: tuple[str, ...]
    """Lead first, then co-handlers and departments dispatched since."""
    reason: str = ""
    """Why: "response deadline passed" for an automatic escalation, the caller's reason
    for a manual one, the rule that raised the tier on opening, "anomaly recurred"."""
    evidence: tuple[str, int] | None = None
    """The anomaly event ``(agent, seq)`` behind an open, evidence or reopen step."""
    sensor: str = ""
    """The sensor of that event (spread across sensors and grids is counted from it)."""
    alert: RiskAlert | None = None
    """Only on ``open``: the alert as drafted (matter, sensor, place, anomaly...)."""
    person: str = ""
    """The person who took the step (their API token names them; roster.yaml), or ""
    for the hub's own steps and a unit's token."""
    person_unit: str = ""
    """That person's unit or department (as roster.yaml had it then)."""
    on_duty: str = ""
    """On a step that hands the alert to a unit (open, escalate, reopen): the person on
    duty there then, whom it was sent to ("" if nobody was). The three person fields came
    with roster.yaml: older ledger rows lack them and read as "". On a ``supervise``
    step: the district's person on duty, whom the 督办 was sent to."""
    department: str = ""
    """On a department's step (report_in, dept_arrive, dept_dispose) and on ``supervise``:
    the department concerned (:mod:`gridcall.hub.desk.whistle`)."""
    whistled: tuple[Whistled, ...] = ()
    """On a ``dispatch``: the departments it called (吹哨), with their deadlines and person
    on duty. Dispatches written before departments acted have none."""
    photos: tuple[str, ...] = ()
    """Photos that came with the step (a report's, a note's): ids in the hub's photo
    store (:mod:`gridcall.hub.desk.photos`). Older rows lack it and read as ()."""
    rating: Rating | None = None
    """On ``rate``: the reporter's rating; its ``reason`` names the report."""
    request: str = ""
    """On ``request_close``: the close asked for, ``resolve`` or ``false_alarm``."""
    verdict: str = ""
    """On ``audit``: ``pass`` or ``fail``."""
    plan_step: str = ""
    """On a ``plan_step``: the id of the step of the alert's plan ticked off."""


@dataclass(frozen=True, slots=True)
class AlertState:
    """An alert as the fold of its transitions. ``alert`` is the current wire form (what
    is published retained on the alert topics)."""

    alert: RiskAlert
    last: Transition
    opened_at: int
    place: tuple[str, ...]
    """The sensor's grid path (district, town, community, grid): the subtree it belongs to."""
    addresses: tuple[tuple[str, ...], ...]
    """Every unit path the alert has been addressed to, oldest first: each keeps a
    retained copy of the current state, so an escalated alert is not left stale below."""
    closed_at: int | None = None
    since: int = 0
    """When the current episode began: the opening, or the latest reopening."""
    escalations: int = 0
    evidence: int = 0
    reopened: int = 0
    dept_calls: tuple[DeptCall, ...] = ()
    """The departments whistled to it and how each answered, in the order called
    (:mod:`gridcall.hub.desk.whistle`)."""
    pending: str = ""
    """A close awaiting approval (``resolve`` or ``false_alarm``), else ""."""
    pending_by: str = ""
    """The unit that asked for it."""
    pending_at: int = 0
    audit: str = ""
    """The latest closing's audit: "" (none), ``sampled`` (in the audit queue),
    ``pass`` or ``fail``; cleared by a reopening."""

    @property
    def alert_id(self) -> str:
        return self.alert.alert_id

    @property
    def state(self) -> State:
        return self.last.state

    @property
    def tier(self) -> Tier:
        return self.last.tier

    @property
    def unit(self) -> str:
        return self.last.unit

    @property
    def unit_level(self) -> UnitLevel:
        return self.last.unit_level

    @property
    def deadlines(self) -> Deadlines:
        return self.last.deadlines

    @property
    def departments(self) -> tuple[str, ...]:
        return self.last.departments

    @property
    def is_open(self) -> bool:
        return self.last.state in OPEN

    @property
    def n(self) -> int:
        return self.last.n

    def due(self) -> tuple[str, int] | None:
        """The deadline the alert is waiting on now, ``(name, ns)``, or None if closed:
        response while opened/dispatched, arrival while acknowledged, disposal on site."""
        if self.pending:  # the approving level holds the ball: nothing runs late below
            return None
        d = self.last.deadlines
        match self.last.state:
            case "opened" | "dispatched":
                return "response", d.response
            case "acknowledged":
                return "arrival", d.arrival
            case "on_site":
                return "disposal", d.disposal
            case _:
                return None


def refusal(state: AlertState, action: Action, *,
            actor_level: UnitLevel | None = None) -> str | None:
    """Why ``action`` may not be taken on ``state`` now, or None if it may."""
    now = state.state
    if action == "open":
        return "an alert is opened once"
    allowed = REQUIRES[action]
    if now not in allowed:
        need = " or ".join(s for s in STATES if s in allowed)
        return f"{action} needs {need}"
    if action == "escalate" and state.tier == "A":
        return "escalate needs a tier below A: the district already holds it"
    if action == "request_close" and state.pending:
        return f"a {state.pending} requested by {state.pending_by} already awaits approval"
    if action == "reject_close" and not state.pending:
        return "reject_close needs a close awaiting approval"
    if action == "sample" and state.audit:
        return f"the closing is already in the audit queue ({state.audit})"
    if action == "audit" and state.audit in ("pass", "fail"):
        return f"the closing was audited already ({state.audit}); a reopening starts anew"
    if action == "dispatch" and actor_level is not None:
        # Tier A is the district and the town jointly (the town is its address): either
        # may dispatch. Otherwise the responsible unit or a level above it.
        path = state.last.unit_path
        lowest = LEVELS[len(path) - 1] if path else state.unit_level
        if LEVELS.index(actor_level) > max(LEVELS.index(lowest),
                                           LEVELS.index(state.unit_level)):
            who = f"{state.unit_level} {state.unit}"
            if lowest != state.unit_level:
                who += f" or its {lowest} {path[-1]}"
            return f"dispatch needs a unit at or above the responsible {who}, not a {actor_level}"
    return None


def check(state: AlertState, action: Action, *, actor_level: UnitLevel | None = None) -> None:
    """IllegalTransition if ``action`` may not be taken on ``state`` now."""
    why = refusal(state, action, actor_level=actor_level)
    if why is not None:
        raise IllegalTransition(state.alert_id, state.state, action, why)


def opening(alert: RiskAlert, *, place: Iterable[str], note: str = "", reason: str = "",
            actor: str = HUB) -> Transition:
    """The first transition of an alert drafted as ``alert`` (state ``opened``)."""
    deps = (alert.departments.lead, *alert.departments.co)
    return Transition(
        alert_id=alert.alert_id, n=1, action="open", at=alert.opened_at, actor=actor,
        note=note, state="opened", tier=alert.tier, unit=alert.unit,
        unit_level=alert.unit_level, unit_path=tuple(alert.unit_path),
        deadlines=alert.deadlines, departments=tuple(dict.fromkeys(deps)), reason=reason,
        evidence=(alert.agent, alert.event_seq), sensor=alert.sensor,
        alert=replace_alert(alert, place=list(place)),
    )


def step(state: AlertState, action: Action, *, at: int, actor: str = HUB, note: str = "",
         reason: str = "", actor_level: UnitLevel | None = None, tier: Tier | None = None,
         unit: str | None = None, unit_level: UnitLevel | None = None,
         unit_path: Iterable[str] | None = None, deadlines: Deadlines | None = None,
         departments: Iterable[str] = (), evidence: tuple[str, int] | None = None,
         sensor: str = "", department: str = "", whistled: Iterable[Whistled] = (),
         request: str = "", verdict: str = "") -> Transition:
    """The transition ``action`` makes from ``state``; IllegalTransition if refused.

    Fields not given stay as they are; ``departments`` are *added* (lead stays first).
    An escalation must give the new tier, unit and deadlines; a reopening new deadlines.
    A department's step names its ``department``; a dispatch lists those it ``whistled``.
    """
    check(state, action, actor_level=actor_level)
    if action in whistle.DEPT_ACTIONS:
        if not department:
            raise ValueError(f"a {action} step needs the department it concerns")
        why = whistle.refusal(state.dept_calls, action, department)
        if why is not None:
            raise IllegalTransition(state.alert_id, state.state, action, why)
    last = state.last
    if action == "escalate" and (tier is None or unit is None or deadlines is None):
        raise ValueError("an escalation needs the new tier, unit and deadlines")
    if action == "escalate" and tier is not None and not above(tier, state.tier):
        raise IllegalTransition(state.alert_id, state.state, action,
                                f"escalate needs a tier above {state.tier}, not {tier}")
    if action == "reopen" and deadlines is None:
        raise ValueError("a reopening needs new deadlines")
    if action == "request_close" and request not in ("resolve", "false_alarm"):
        raise ValueError(f"a close request asks for resolve or false_alarm, not {request!r}")
    if action == "request_close":
        check(state, "resolve" if request == "resolve" else "false_alarm")
    if action == "audit" and verdict not in ("pass", "fail"):
        raise ValueError(f"an audit's verdict is pass or fail, not {verdict!r}")
    if at < last.at:
        raise IllegalTransition(state.alert_id, state.state, action,
                                f"{action} at {at} is before the last step at {last.at}")
    return Transition(
        alert_id=state.alert_id, n=last.n + 1, action=action, at=at, actor=actor, note=note,
        state=_state_after(action, last.state), tier=tier or last.tier,
        unit=unit or last.unit, unit_level=unit_level or last.unit_level,
        unit_path=tuple(unit_path) if unit_path is not None else last.unit_path,
        deadlines=deadlines or last.deadlines,
        departments=tuple(dict.fromkeys((*last.departments, *departments))),
        reason=reason, evidence=evidence, sensor=sensor, department=department,
        whistled=tuple(whistled), request=request, verdict=verdict,
    )


def _pending(state: AlertState, t: Transition) -> tuple[str, str, int]:
    """The close awaiting approval after ``t``: (what, asked by, when)."""
    if t.action == "request_close":
        return t.request, t.actor, t.at
    if t.action in ("reject_close", "escalate", "resolve", "false_alarm", "reopen"):
        return "", "", 0
    return state.pending, state.pending_by, state.pending_at


def _audit(state: AlertState, t: Transition) -> str:
    if t.action == "sample":
        return "sampled"
    if t.action == "audit":
        return t.verdict
    if t.action == "reopen" or t.state in OPEN:
        return ""
    return state.audit


def replace_alert(alert: RiskAlert, **changes: Any) -> RiskAlert:
    return msgspec.structs.replace(alert, **changes)


def apply(state: AlertState | None, t: Transition) -> AlertState:
    """The alert after ``t``. Checks ``t`` against ``state`` (numbering, legality), so a
    ledger that was tampered with or written by buggy code is refused, not half-folded."""
    if state is None:
        if t.action != "open" or t.alert is None or t.n != 1:
            raise IllegalTransition(t.alert_id, None, t.action,
                                    f"{t.action} (step {t.n}) needs an open step first")
        wire = _wire(t.alert, t)
        place = tuple(t.alert.place) or tuple(t.unit_path)
        return AlertState(alert=wire, last=t, opened_at=t.at, place=place, since=t.at,
                          addresses=(t.unit_path,))
    if t.alert_id != state.alert_id or t.n != state.n + 1:
        raise IllegalTransition(t.alert_id, state.state, t.action,
                                f"step {t.n} does not follow step {state.n} of "
                                f"{state.alert_id}")
    check(state, t.action)
    if t.action in whistle.DEPT_ACTIONS:
        why = whistle.refusal(state.dept_calls, t.action, t.department)
        if why is not None:
            raise IllegalTransition(t.alert_id, state.state, t.action, why)
    if t.action == "request_close":  # what would be closed must be closable then
        check(state, "resolve" if t.request == "resolve" else "false_alarm")
    if t.state != _state_after(t.action, state.state):
        raise IllegalTransition(t.alert_id, state.state, t.action,
                                f"{t.action} leads to {_state_after(t.action, state.state)}, "
                                f"not {t.state}")
    addresses = state.addresses
    if t.unit_path not in addresses:
        addresses = (*addresses, t.unit_path)
    pending, pending_by, pending_at = _pending(state, t)
    return AlertState(  # every field named, not dataclasses.replace: half the cost per row
        alert=_wire(state.alert, t), last=t, opened_at=state.opened_at, place=state.place,
        addresses=addresses,
        closed_at=t.at if t.state in CLOSED and state.state not in CLOSED else (
            None if t.action == "reopen" else state.closed_at),
        since=t.at if t.action == "reopen" else state.since,
        escalations=state.escalations + (t.action == "escalate"),
        evidence=state.evidence + (t.action == "evidence" and not overdue_of(t)),
        reopened=state.reopened + (t.action == "reopen"),
        dept_calls=whistle.absorb(
            state.dept_calls, t.action, at=t.at, actor=t.actor, person=t.person,
            department=t.department, whistled=t.whistled, dispose_by=t.deadlines.disposal,
            on_duty=t.on_duty)
        if t.action == "dispatch" or t.action in whistle.DEPT_ACTIONS else state.dept_calls,
        pending=pending, pending_by=pending_by, pending_at=pending_at,
        audit=_audit(state, t),
    )


def _wire(alert: RiskAlert, t: Transition) -> RiskAlert:
    lead, *co = t.departments or (alert.departments.lead,)
    return replace_alert(
        alert, state=t.state, tier=t.tier, unit=t.unit, unit_level=t.unit_level,
        unit_path=list(t.unit_path), deadlines=t.deadlines,
        departments=Departments(lead=lead, co=co), n=t.n, updated_at=t.at,
        last_action=t.action,
        reason=t.reason if t.action in ("open", "escalate") else alert.reason,
        escalations=alert.escalations + (t.action == "escalate"),
        overdue=overdue_of(t) or (alert.overdue if t.action in _KEEPS_OVERDUE else ""),
        plan_done=alert.plan_done if t.action != "plan_step" else [
            *alert.plan_done, PlanTick(step=t.plan_step, at=t.at, by=t.actor,
                                       person=t.person)],
    )


_KEEPS_OVERDUE = frozenset({"evidence", "dispatch", "note", "rate", "plan_step",
                            *whistle.DEPT_ACTIONS})
"""Steps that do not move the alert on: an overdue alert stays overdue after them."""


def fold(transitions: Iterable[Transition]) -> dict[str, AlertState]:
    """Every alert's state from transitions in ledger order (per alert by ``n``)."""
    states: dict[str, AlertState] = {}
    for t in transitions:
        states[t.alert_id] = apply(states.get(t.alert_id), t)
    return states
