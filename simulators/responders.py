"""Simulated duty staff for the demo: the units answer some alerts in time and let others
run past their deadlines, so the desk has escalations and the indicators have something
to measure.

Whoever holds an alert after a step answers the current stage (response, arrival,
disposal) in time with probability ``in_time``, at a random moment before the deadline;
otherwise it does nothing and the deadline escalates the alert to the next level, whose
staff get their own chance. A disposal is a false alarm with probability ``false_alarm``.
Acting happens in :meth:`Responders.run` (never inside the desk's hook, which runs under
the desk's lock), on the hub's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass

from gridcall.hub.desk.desk import BadAction, Change, Desk, NotFound, OutsideSubtree, UnknownUnit
from gridcall.hub.desk.lifecycle import Action, IllegalTransition
from gridcall.wire.clock import Clock


@dataclass(frozen=True, slots=True)
class Plan:
    at: int
    action: Action
    unit: str
    n: int
    """The step the plan answers: a later step (an escalation) makes it moot."""


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
        self.taken = 0
        self.moot = 0
        desk.add_hook(self.on_change)

    async def on_change(self, change: Change) -> None:
        state = change.alert
        previous = self.plans.get(state.alert_id)
        if change.transition.action == "evidence" and previous is not None:
            return  # more evidence does not change who must do what by when
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
        self.plans[state.alert_id] = Plan(at, action, state.unit, state.n)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = self.clock()
            for alert_id, plan in sorted(self.plans.items(), key=lambda kv: kv[1].at):
                if plan.at > now:
                    continue
                if self.plans.get(alert_id) is plan:
                    del self.plans[alert_id]
                try:
                    if self.desk.get(alert_id).n != plan.n:
                        self.moot += 1
                        continue
                    # at the planned moment: a poll that comes late must not make it late
                    await self.desk.act(alert_id, plan.action, plan.unit, now=plan.at,
                                        note="simulated duty staff")
                    self.taken += 1
                except (IllegalTransition, NotFound, OutsideSubtree, UnknownUnit, BadAction):
                    self.moot += 1  # the alert moved on (escalated) before the plan came due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_interval)
