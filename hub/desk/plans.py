"""Plans on alerts (一事一预案): pure, no I/O, no clock.

A matter's plan (:mod:`gridcall.config.plans`) reaches its alerts in three ways:

- **On the alert.** The open step's alert carries the plan as the catalog gave it then
  (:func:`wire_plan`, :func:`planned`): the wire copy, the API and the board show it,
  and the ledger keeps which plan the alert was given.
- **Departments dispatched at tier B and A.** Whenever the desk hands an open alert
  over (it opens, escalates or reopens) and it stands at tier B or A, the plan's
  departments whose condition holds at that tier, whose area the alert is in and whose
  call on it is not under way are called (吹哨) by the hub, as every dispatch calls them
  (:mod:`gridcall.hub.desk.whistle`), in a ``dispatch`` step right after the hand-over
  (after the steps one event made of it), in the same ledger transaction
  (:func:`due_departments`, :func:`auto_dispatch`). Its reason says so: ``plan
  (一事一预案) at tier B: fire_safety, police (at school)``.
- **Steps ticked off.** A unit (or a person of it) ticks a step of the plan: a
  ``plan_step`` step naming it (:func:`tick`). Ticking a step already ticked writes
  nothing (:class:`AlreadyTicked`); a step the plan does not have is refused
  (:class:`NoSuchStep`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import msgspec

from gridcall.config.plans import DispatchCondition, Plan, PlanDispatch
from gridcall.hub.desk import whistle
from gridcall.hub.desk.lifecycle import (
    HANDOVERS,
    HUB,
    AlertState,
    Transition,
    replace_alert,
    step,
)
from gridcall.hub.desk.whistle import Whistled
from gridcall.wire.messages import (
    AlertPlan,
    PlanContactItem,
    PlanDispatchItem,
    PlanResourceItem,
    PlanStepItem,
)

AUTO_TIERS = frozenset({"A", "B"})
"""The tiers at which a plan's departments are dispatched by the hub."""
PLAN_REASON = "plan (一事一预案)"
AUDIT_REOPEN = "audit failed"
"""How the reason of an auditor's reopening begins (:meth:`Desk.audit`)."""
"""How the reason of the hub's dispatch by a plan begins."""


class NoSuchStep(LookupError):
    def __init__(self, alert_id: str, step_id: str, known: Iterable[str]) -> None:
        ids = list(known)
        super().__init__(f"{alert_id} has no plan step {step_id!r}" + (
            f"; its plan's steps: {', '.join(ids)}" if ids else "; its plan has no steps"))
        self.alert_id = alert_id
        self.step_id = step_id


class AlreadyTicked(Exception):
    """The step was ticked off before: nothing written; ``state`` as it stands."""

    def __init__(self, state: AlertState, step_id: str) -> None:
        super().__init__(f"{state.alert_id}: plan step {step_id!r} is ticked off already")
        self.state = state


class PlanPool:
    """One copy of each plan for all the alerts that carry it: every alert of a matter
    was (mostly) given the same plan, and a plan is a screenful of text, so the desk's
    alerts, each decoded from its own ledger row or snapshot, share equal plans."""

    def __init__(self) -> None:
        self._plans: dict[bytes, AlertPlan] = {}
        self._encode = msgspec.msgpack.Encoder().encode

    def share(self, state: AlertState) -> AlertState:
        """``state`` with its alert's plan the pool's copy of it (the same state if it
        has none or has that copy already)."""
        plan = state.alert.plan
        if plan is None:
            return state
        shared = self._plans.setdefault(self._encode(plan), plan)
        if shared is plan:
            return state
        last = state.last  # an open step keeps the alert as drafted: the same plan
        if last.alert is not None and last.alert.plan is plan:
            last = replace(last, alert=replace_alert(last.alert, plan=shared))
        return replace(state, alert=replace_alert(state.alert, plan=shared), last=last)

    def __len__(self) -> int:
        return len(self._plans)


def wire_plan(plan: Plan) -> AlertPlan | None:
    """The plan as the alert carries it (None for a matter without one)."""
    if plan.empty:
        return None
    return AlertPlan(
        summary=plan.summary,
        steps=[PlanStepItem(id=s.id, text=s.text, role=s.role) for s in plan.steps],
        dispatch=[PlanDispatchItem(department=d.department, when={
            tier: cond if cond == "always" else cond.text()
            for tier, cond in sorted(d.when.items())}) for d in plan.dispatch],
        resources=[PlanResourceItem(name=r.name, note=r.note) for r in plan.resources],
        contacts=[PlanContactItem(name=c.name, phone=c.phone, department=c.department or "",
                                  note=c.note) for c in plan.contacts],
    )


def due_departments(state: AlertState, plan: Plan, *, tags: tuple[str, ...],
                    in_area: Callable[[str], bool]) -> tuple[PlanDispatch, ...]:
    """The plan's departments due to be called after the steps that handed the alert over
    and left it as ``state`` (none if it is not open at tier B or A): those whose
    condition holds at its tier, for its site tags and severity, whose area of action it
    is in, and whose call on it is not under way (:mod:`gridcall.hub.desk.whistle`)."""
    if state.tier not in AUTO_TIERS or not state.is_open:
        return ()
    severity = state.alert.severity
    return tuple(d for d in plan.dispatch
                 if d.holds(state.tier, tags=tags, severity=severity)
                 and in_area(d.department)
                 and not ((call := whistle.find(state.dept_calls, d.department)) is not None
                          and call.active))


def auto_dispatch(state: AlertState, due: tuple[PlanDispatch, ...],
                  whistled: tuple[Whistled, ...]) -> Transition | None:
    """The hub's ``dispatch`` of the plan's ``due`` departments, calling (吹哨) them as
    ``whistled`` (:meth:`gridcall.hub.desk.desk.Desk.whistles`), at the alert's last
    step's instant; None if it calls nobody."""
    if not whistled:
        return None
    called = {w.department for w in whistled}
    sent = [d for d in due if d.department in called]
    why = ", ".join(d.department + _condition(d.condition(state.tier)) for d in sent)
    return step(state, "dispatch", at=state.last.at, actor=HUB,
                reason=f"{PLAN_REASON} at tier {state.tier}: {why}",
                departments=[d.department for d in sent], whistled=whistled)


def _condition(cond: object) -> str:
    return f" ({cond.text()})" if isinstance(cond, DispatchCondition) else ""


def calls_in(t: Transition) -> bool:
    """Whether ``t`` is a hand-over after which the plan's departments are called: an
    opening, an escalation, a reopening; not an auditor's reopening of a closing that
    failed its audit (the matter is to be put right on the record, not a new call for
    the departments, whose calls were disposed of; a unit may still dispatch them)."""
    return t.action in HANDOVERS and not (
        t.action == "reopen" and t.reason.startswith(AUDIT_REOPEN))


def by_plan(t: Transition) -> bool:
    """Whether ``t`` is the hub's dispatch of a plan's departments."""
    return t.action == "dispatch" and t.actor == HUB and t.reason.startswith(PLAN_REASON)


def tick(state: AlertState, step_id: str, *, at: int, actor: str, note: str = ""
         ) -> Transition:
    """The ``plan_step`` step that ticks ``step_id`` off; NoSuchStep if the alert's plan
    has no such step, AlreadyTicked if it was ticked, IllegalTransition if the alert is
    closed."""
    plan = state.alert.plan
    ids = [s.id for s in plan.steps] if plan is not None else []
    if step_id not in ids:
        raise NoSuchStep(state.alert_id, step_id, ids)
    if any(d.step == step_id for d in state.alert.plan_done):
        raise AlreadyTicked(state, step_id)
    text = next(s.text for s in plan.steps if s.id == step_id) if plan else ""
    t = step(state, "plan_step", at=max(at, state.last.at), actor=actor,
             note=note or text)
    return replace(t, plan_step=step_id)


def planned(t: Transition, plan: Plan | None) -> Transition:
    """An open step whose alert is given ``plan`` (if it has none yet)."""
    if t.action != "open" or t.alert is None or t.alert.plan is not None or plan is None:
        return t
    given = wire_plan(plan)
    if given is None:
        return t
    return replace(t, alert=replace_alert(t.alert, plan=given))


__all__ = [
    "AUTO_TIERS",
    "PLAN_REASON",
    "AlreadyTicked",
    "NoSuchStep",
    "PlanPool",
    "auto_dispatch",
    "by_plan",
    "due_departments",
    "planned",
    "tick",
    "wire_plan",
]
