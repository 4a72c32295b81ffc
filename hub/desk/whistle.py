"""Departments called to an alert, and how each answers (吹哨报到): pure, no I/O, no clock.

A dispatch that names a department *whistles* it (吹哨): the ``dispatch`` step records,
per department newly called, a :class:`Whistled` (by when it must report in and arrive,
and its person on duty then, whom the call was sent to). From then the department acts
for itself with its own token, each step naming the person who took it:

    report_in     whistled, not reported in yet     -> reported in      (报到, its response)
    dept_arrive   reported in, not arrived yet      -> arrived          (on site)
    dept_dispose  arrived, not disposed yet         -> disposed         (its part done)
    supervise     whistled, not arrived, not supervised yet (the hub's step at the promised
                  arrival)                          -> supervised       (督办)

These steps leave the alert's own state, unit and deadlines as they are: the unit still
responds, arrives and resolves. A department's answers are judged on its own times
(:mod:`gridcall.hub.desk.indicators`, "Departments"). A department is whistled anew by a
later dispatch only once its call is disposed of (a reopened alert); a dispatch naming a
department whose call is still under way whistles nothing more.

:class:`DeptCall` is one department's call on one alert, folded from those steps
(:func:`absorb`); :func:`refusal` says why a step may not be taken, for the desk before
writing and for the fold (:mod:`gridcall.hub.desk.lifecycle`) when reading the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

DeptAction = Literal["report_in", "dept_arrive", "dept_dispose", "supervise"]
DEPT_ACTIONS: frozenset[str] = frozenset({"report_in", "dept_arrive", "dept_dispose",
                                          "supervise"})
"""The steps about one department's call (``Transition.department`` names it)."""
BY_DEPARTMENT: frozenset[str] = frozenset({"report_in", "dept_arrive", "dept_dispose"})
"""The steps a department takes itself (with its token)."""

Stage = Literal["whistled", "reported_in", "arrived", "disposed"]


@dataclass(frozen=True, slots=True)
class Whistled:
    """One department a ``dispatch`` step called, as the step records it."""

    department: str
    report_by: int
    """Its report-in deadline (ns): the whistle plus its ``report_in`` (topology.yaml)."""
    arrive_by: int
    """Its promised arrival (ns): the whistle plus its ``arrival`` (30 minutes unless
    configured)."""
    on_duty: str = ""
    """Its person on duty then (roster.yaml), whom the call was sent to; "" if nobody."""


@dataclass(frozen=True, slots=True)
class DeptCall:
    """One department's call on one alert, as the fold of its steps."""

    department: str
    whistled_at: int
    whistled_by: str
    """The unit (or the hub) whose dispatch called it."""
    report_by: int
    arrive_by: int
    dispose_by: int
    """The alert's disposal deadline when it was called."""
    on_duty: str = ""
    reported_at: int | None = None
    reported_person: str = ""
    arrived_at: int | None = None
    arrived_person: str = ""
    disposed_at: int | None = None
    disposed_person: str = ""
    supervised_at: int | None = None
    """When the hub escalated its missed arrival to the district (督办), if it did."""
    supervised_by: str = ""
    """The district's person on duty the supervision was sent to."""

    @property
    def stage(self) -> Stage:
        if self.disposed_at is not None:
            return "disposed"
        if self.arrived_at is not None:
            return "arrived"
        if self.reported_at is not None:
            return "reported_in"
        return "whistled"

    @property
    def active(self) -> bool:
        """Called and not disposed of yet."""
        return self.disposed_at is None

    def arrival_missed(self, now: int) -> bool:
        """Its promised arrival passed by ``now`` without it arriving."""
        return self.arrived_at is None and self.disposed_at is None and self.arrive_by <= now


def find(calls: Iterable[DeptCall], department: str) -> DeptCall | None:
    for c in calls:
        if c.department == department:
            return c
    return None


def refusal(calls: tuple[DeptCall, ...], action: str, department: str
            ) -> str | None:
    """Why ``department`` may not take ``action`` (one of :data:`DEPT_ACTIONS`) on an
    alert with these calls now, or None if it may."""
    call = find(calls, department)
    if call is None:
        return f"{department} was not dispatched to it (no whistle to answer)"
    match action:
        case "report_in":
            if call.reported_at is not None:
                return f"{department} already reported in"
        case "dept_arrive":
            if call.reported_at is None:
                return f"{department} must report in before it arrives"
            if call.arrived_at is not None:
                return f"{department} already arrived"
        case "dept_dispose":
            if call.arrived_at is None:
                return f"{department} must arrive before it reports disposal"
            if call.disposed_at is not None:
                return f"{department} already reported disposal"
        case "supervise":
            if call.arrived_at is not None or call.disposed_at is not None:
                return f"{department} arrived: nothing to supervise"
            if call.supervised_at is not None:
                return f"{department}'s missed arrival is already supervised"
        case _:
            return f"{action} is not a department's step"
    return None


def absorb(calls: tuple[DeptCall, ...], action: str, *, at: int, actor: str, person: str,
           department: str, whistled: tuple[Whistled, ...], dispose_by: int,
           on_duty: str = "") -> tuple[DeptCall, ...]:
    """The calls after a step (any action: only ``dispatch`` with whistles and the
    department steps change them). Assumes :func:`refusal` said yes."""
    if action == "dispatch" and whistled:
        fresh = {w.department: DeptCall(department=w.department, whistled_at=at,
                                        whistled_by=actor, report_by=w.report_by,
                                        arrive_by=w.arrive_by, dispose_by=dispose_by,
                                        on_duty=w.on_duty) for w in whistled}
        kept = tuple(c for c in calls if c.department not in fresh)
        return (*kept, *fresh.values())
    if action not in DEPT_ACTIONS:
        return calls
    return tuple(_answered(c, action, at, person, on_duty) if c.department == department
                 else c for c in calls)


def _answered(call: DeptCall, action: str, at: int, person: str, on_duty: str) -> DeptCall:
    match action:
        case "report_in":
            return replace(call, reported_at=at, reported_person=person)
        case "dept_arrive":
            return replace(call, arrived_at=at, arrived_person=person)
        case "dept_dispose":
            return replace(call, disposed_at=at, disposed_person=person)
        case "supervise":
            return replace(call, supervised_at=at, supervised_by=on_duty)
    return call


def due_supervision(calls: Iterable[DeptCall], now: int) -> list[DeptCall]:
    """The calls whose promised arrival passed by ``now`` unanswered and not supervised
    yet, earliest first."""
    return sorted((c for c in calls if c.arrival_missed(now) and c.supervised_at is None),
                  key=lambda c: (c.arrive_by, c.department))


def next_arrival(calls: Iterable[DeptCall]) -> int | None:
    """The earliest promised arrival still awaited (not arrived, not supervised)."""
    return min((c.arrive_by for c in calls if c.arrived_at is None and c.disposed_at is None
                and c.supervised_at is None), default=None)


__all__ = ["BY_DEPARTMENT", "DEPT_ACTIONS", "DeptAction", "DeptCall", "Stage", "Whistled",
           "absorb", "due_supervision", "find", "next_arrival", "refusal"]
