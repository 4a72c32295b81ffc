"""Simulated duty staff for the demo: the units answer some alerts in time and let others
run past their deadlines, so the desk has escalations and the indicators have something
to measure.

Whoever holds an alert after a step answers the current stage (response, arrival,
disposal) in time with probability ``in_time``, at a random moment before the deadline;
otherwise it does nothing and the deadline escalates the alert to the next level, whose
staff get their own chance. A disposal is a false alarm with probability ``false_alarm``.
Acting happens in :meth:`Responders.run` (never inside the desk's hook, which runs under
the desk's lock), on the hub's clock.

Departments called by a dispatch (吹哨报到) answer too, each on its own clock: with
probability ``in_time`` it reports in before its report-in deadline, arrives before its
promised arrival and reports its part disposed before the alert's disposal deadline,
each as its person on duty; otherwise it stops there, and a missed arrival is supervised
by the district (督办). Department steps do not move the unit's own plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass

from gridcall.hub.desk import whistle
from gridcall.hub.desk.desk import (
    BadAction,
    Change,
    Desk,
    NotFound,
    OutsideArea,
    OutsideSubtree,
    UnknownDepartment,
    UnknownUnit,
)
from gridcall.hub.desk.lifecycle import Action, AlertState, IllegalTransition
from gridcall.wire.clock import Clock


@dataclass(frozen=True, slots=True)
class Plan:
    at: int
    action: Action
    unit: str
    n: int
    """The step the plan answers."""
    where: tuple[str, str, str, int, int] = ("", "", "", 0, 0)
    """The alert's state, unit, tier, escalations and reopenings when it was made: a
    change of any (an escalation, an answer) makes it moot; evidence and departments'
    steps do not."""


def _where(state: AlertState) -> tuple[str, str, str, int, int]:
    # opened and dispatched wait for the same response: a dispatch (the plan's, at tier
    # B and A, right after the alert came) changes nobody's task
    waiting = "opened" if state.state == "dispatched" else state.state
    return (waiting, state.unit, state.tier, state.escalations, state.reopened)


# A department's next step after each stage of its call, and the deadline it aims at.
_NEXT: dict[str, tuple[Action, str]] = {
    "whistled": ("report_in", "report_by"), "reported_in": ("dept_arrive", "arrive_by"),
    "arrived": ("dept_dispose", "dispose_by")}


@dataclass(frozen=True, slots=True)
class DeptPlan:
    at: int
    action: Action
    department: str
    person: str


class Responders:
    def __init__(self, desk: Desk, clock: Clock, *, seed: int = 0,
                 in_time: float = 0.6, false_alarm: float = 0.1,
                 poll_interval: float = 0.05) -> None:
        self.desk = desk
        self.clock = clock
        self.rng = random.Random(seed)
        self.in_time = in_time
        self.false_alarm = false_alarm
        self.poll_interval = poll_interval
        self.plans: dict[str, Plan] = {}
        self.dept_plans: dict[tuple[str, str], DeptPlan] = {}
        """(alert, department) -> its next step, if it will take one."""
        self.dept_taken = 0
        self.taken = 0
        self.moot = 0
        desk.add_hook(self.on_change)

    async def on_change(self, change: Change) -> None:
        state = change.alert
        t = change.transition
        if t.whistled or t.action in whistle.BY_DEPARTMENT:
            for call in state.dept_calls:
                if call.department == t.department or any(
                        w.department == call.department for w in t.whistled):
                    self._plan_department(state, call, t.at)
        previous = self.plans.get(state.alert_id)
        if previous is not None and (t.action == "evidence" or t.action in whistle.DEPT_ACTIONS
                                     or (t.action == "dispatch" and previous.where ==
                                         _where(state))):
            return  # evidence, departments, a dispatch: who must do what by when stays
        self.plans.pop(state.alert_id, None)
        due = state.due()
        if due is None or self.rng.random() >= self.in_time:
            return
        stage, deadline = due
        action: Action
        if stage == "response":
            action = "acknowledge"
        elif stage == "arrival":
            action = "arrive"
        else:
            action = "false_alarm" if self.rng.random() < self.false_alarm else "resolve"
        now = change.transition.at
        at = now + int(self.rng.uniform(0.1, 0.9) * max(0, deadline - now))
        self.plans[state.alert_id] = Plan(at, action, state.unit, state.n, _where(state))

    def _plan_department(self, state: AlertState, call: whistle.DeptCall, now: int) -> None:
        """The department's next step on its call, in time with probability ``in_time``
        (else none: it stops there, and a missed arrival is supervised)."""
        key = (state.alert_id, call.department)
        self.dept_plans.pop(key, None)
        step = _NEXT.get(call.stage)
        if step is None or not state.is_open or self.rng.random() >= self.in_time:
            return
        action, deadline_of = step
        deadline: int = getattr(call, deadline_of)
        at = now + int(self.rng.uniform(0.1, 0.9) * max(0, deadline - now))
        person = call.on_duty or next((p.id for p in self.desk.config.duty.persons
                                       if p.unit == call.department), "")
        self.dept_plans[key] = DeptPlan(at, action, call.department, person)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.act_due(self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_interval)

    async def act_due(self, now: int) -> None:
        """Take every planned step due by ``now`` (units' and departments'), earliest
        first, each at its own planned instant: a poll that comes late must not make it
        late."""
        due: list[tuple[int, str, Plan | None, tuple[str, str], DeptPlan | None]] = [
            (p.at, a, p, ("", ""), None) for a, p in self.plans.items() if p.at <= now]
        due += [(p.at, k[0], None, k, p) for k, p in self.dept_plans.items() if p.at <= now]
        for _, alert_id, plan, key, dept in sorted(due, key=lambda d: (d[0], d[1], d[3])):
            if plan is not None:
                await self._unit_acts(alert_id, plan)
            elif dept is not None:
                await self._department_acts(key, dept)

    async def _unit_acts(self, alert_id: str, plan: Plan) -> None:
        if self.plans.get(alert_id) is plan:
            del self.plans[alert_id]
        try:
            if _where(self.desk.get(alert_id)) != plan.where:
                self.moot += 1
                return
            await self.desk.act(alert_id, plan.action, plan.unit, now=plan.at,
                                note="simulated duty staff")
            self.taken += 1
        except (IllegalTransition, NotFound, OutsideSubtree, UnknownUnit, BadAction):
            self.moot += 1  # the alert moved on (escalated) before the plan came due

    async def _department_acts(self, key: tuple[str, str], plan: DeptPlan) -> None:
        if self.dept_plans.get(key) is plan:
            del self.dept_plans[key]
        try:
            await self.desk.department_act(key[0], plan.action, plan.department,
                                           now=plan.at, person=plan.person,
                                           note="simulated department staff")
            self.dept_taken += 1
        except (IllegalTransition, NotFound, OutsideArea, UnknownDepartment, BadAction):
            self.moot += 1  # closed, or called anew, before the plan came due
