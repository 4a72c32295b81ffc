"""Closure control and audits (效果抽查、结果稽查): pure, no I/O, no clock.

The district judges by effect, so closing is checked twice (docs/desk.md, "Closure
control and audits"; the rules are ``closure`` and ``audits`` in matters.yaml,
:mod:`gridcall.config.audits`):

- **before**: closing (resolve, false alarm) an alert of a tier that ``closure.approval``
  names needs a unit of that level or above. A unit below it only *requests* the close
  (a ``request_close`` step); a unit of the approving level approves it (its own
  ``resolve`` or ``false_alarm`` step) or rejects it (``reject_close``, the deadlines
  moved on by the time the request waited: :func:`resumed`);
- **after**: each closing is drawn for the audit queue at the rate ``audits`` gives its
  tier and matter (a ``sample`` step by the hub, in the same transaction as the close);
  an auditor records ``pass`` or ``fail`` (an ``audit`` step); a fail reopens the alert
  with its reason (the auditor's ``reopen`` step), and the unit must handle it again.

The desk (:mod:`gridcall.hub.desk.desk`) writes the steps; this module decides them.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridcall.config import Unit
from gridcall.config.audits import AuditRules, ClosureRules
from gridcall.hub.desk.lifecycle import CLOSED, HUB, AlertState, Transition, step
from gridcall.wire import Deadlines
from gridcall.wire.ladder import LEVELS, UnitLevel

DEFAULT_AUDITS = AuditRules()
"""Without ``audits`` in matters.yaml: nothing sampled, the district audits by hand."""


class NotPermitted(PermissionError):
    """A unit that may not approve, reject or audit this alert (its level); nothing was
    written. The message names the level that may."""


def approver_needed(rules: ClosureRules, state: AlertState, unit: Unit) -> UnitLevel | None:
    """The level whose approval ``unit`` needs to close ``state`` now, or None."""
    return rules.needs_approval(state.tier, unit.level)


def approver_of(rules: ClosureRules, state: AlertState) -> str:
    """The unit that approves closing ``state`` now: the unit of the approving level in
    whose subtree the alert lies (its district, its town...), else its responsible unit."""
    level = rules.approver_level(state.tier)
    if level is None or LEVELS.index(level) >= len(state.place):
        return state.unit
    return state.place[LEVELS.index(level)]


def check_approver(rules: ClosureRules, state: AlertState, unit: Unit) -> None:
    """NotPermitted unless ``unit`` may approve or reject the close pending on ``state``."""
    need = approver_needed(rules, state, unit)
    if need is not None:
        raise NotPermitted(
            f"closing a tier-{state.tier} alert needs approval by a {need} or above "
            f"(closure.approval in matters.yaml); {unit.level} {unit.id} may not "
            "approve or reject it")


def check_auditor(rules: AuditRules, unit: Unit) -> None:
    if not rules.may_audit(unit.level):
        raise NotPermitted(f"audits are recorded by a {rules.by} or above (audits.by in "
                           f"matters.yaml), not by {unit.level} {unit.id}")


def sample(rules: AuditRules | None, closed: AlertState) -> Transition | None:
    """The hub's ``sample`` step for ``closed`` (an alert its latest step closed), at the
    same instant, if its draw falls under its tier's and matter's rate."""
    if rules is None or closed.state not in CLOSED or closed.audit:
        return None
    rate = rules.rate(closed.tier, closed.alert.matter)
    draw = rules.draw(closed.alert_id, closed.n)
    if draw >= rate:
        return None
    return step(closed, "sample", at=closed.last.at, actor=HUB,
                reason=f"sampled for audit: draw {draw:.3f} under rate {rate:g} for tier "
                       f"{closed.tier} {closed.alert.matter}")


def resumed(deadlines: Deadlines, asked_at: int, at: int) -> Deadlines:
    """The deadlines after a rejected request: each still ahead when the close was asked
    for (``asked_at``) moves on by the time the request waited (``at - asked_at``), so
    the approver's wait is not the unit's; those already past stay as they were."""
    wait = max(0, at - asked_at)

    def moved(deadline: int) -> int:
        return deadline + wait if deadline > asked_at else deadline
    return Deadlines(response=moved(deadlines.response), arrival=moved(deadlines.arrival),
                     disposal=moved(deadlines.disposal))


def queue(states: Iterable[AlertState], status: str = "sampled") -> list[AlertState]:
    """Alerts whose latest closing has audit ``status`` (``sampled``: the queue), oldest
    closing first."""
    return sorted((s for s in states if s.audit == status and s.state in CLOSED),
                  key=lambda s: (s.closed_at or 0, s.alert_id))


def pending(states: Iterable[AlertState]) -> list[AlertState]:
    """Alerts with a close awaiting approval, oldest request first."""
    return sorted((s for s in states if s.pending), key=lambda s: (s.pending_at, s.alert_id))
