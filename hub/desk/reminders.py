"""Reminders before the ladder escalates: pure, no I/O, no clock.

A unit's escalation policy (``escalation`` in roster.yaml, :class:`gridcall.config.duty.Policy`)
lists, per tier, when to remind, counted from the moment the alert was handed to the unit
(the ``open``, ``escalate`` or ``reopen`` step that started the unit's *stint*).
:func:`schedule` turns it into the reminders of one stint; only those before the
response deadline count, because at that deadline the ladder itself escalates.
Reminder *i* goes to rung *i* of the duty chain (:func:`gridcall.hub.desk.duty.chain`:
the person on duty, the duty leader, each one's leader...), the last rung again past its
end; with nobody on the roster, to the unit's channels.

A reminder is due only while its stint is the alert's current one and the alert still
waits for a response (``opened`` or ``dispatched``): an acknowledgement, a false alarm or
a call upward stops the rest (:func:`still_due`).

Reminders are not steps of the alert's life: they change nothing about it (state, tier,
owner, deadlines), so they are not written to its ledger, which would publish the alert
again to every address at each reminder and change the wire contract. The desk records
each one, before it is sent, in its own append-only log beside the ledger
(:mod:`gridcall.hub.desk.reminder_log`), so a restart never sends one twice and an audit
can read who was reminded when.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridcall.config.duty import DutyFile
from gridcall.hub.desk.duty import chain
from gridcall.hub.desk.lifecycle import AlertState
from gridcall.wire import Tier
from gridcall.wire.clock import ns

WAITING = frozenset({"opened", "dispatched"})
"""The states in which an alert waits for a response: the only ones reminded."""


@dataclass(frozen=True, slots=True)
class Reminder:
    """One reminder, as the log keeps it and the hooks get it."""

    alert_id: str
    stint: int
    """The alert's step that handed it to ``unit`` (its stint's first step)."""
    index: int
    """0 for the policy's first reminder of the stint, 1 for the second..."""
    at: int
    """When it was due (ns, desk clock)."""
    unit: str
    tier: Tier
    person: str
    """Whom it went to (roster.yaml); "" for the unit's channels (nobody on the roster)."""
    person_unit: str = ""
    """That person's unit or department."""
    respond_by: int = 0
    """The response deadline it reminds of."""

    @property
    def key(self) -> tuple[str, int, int]:
        return self.alert_id, self.stint, self.index


def schedule(duty: DutyFile, state: AlertState) -> list[tuple[int, int]]:
    """``(at, index)`` of every reminder of the alert's current stint that falls before
    its response deadline; [] if the step is not a hand-over or the unit's policy has
    none for the tier."""
    t = state.last
    if t.action not in ("open", "escalate", "reopen") or state.state not in WAITING:
        return []
    policy = duty.policy_for(t.unit, t.unit_level)
    if policy is None:
        return []
    times = [(t.at + ns(after), i) for i, after in enumerate(policy.at(t.tier))]
    return [(at, i) for at, i in times if at < t.deadlines.response]


def still_due(state: AlertState, stint: int, current: int) -> bool:
    """Whether a reminder of ``stint`` still has a point: it is the alert's ``current``
    stint (the desk tracks which step started it) and the alert still waits for a
    response."""
    return state.state in WAITING and current == stint


def remind(duty: DutyFile, state: AlertState, stint: int, index: int, at: int) -> Reminder:
    """The reminder ``index`` of ``stint``, due at ``at``: to rung ``index`` of the duty
    chain of the unit holding the alert (the last rung again past its end)."""
    people = chain(duty, state.unit, at)
    person = people[min(index, len(people) - 1)] if people else None
    return Reminder(alert_id=state.alert_id, stint=stint, index=index, at=at, unit=state.unit,
                    tier=state.tier, person=person.id if person else "",
                    person_unit=person.unit if person else "",
                    respond_by=state.deadlines.response)


__all__ = ["WAITING", "Reminder", "remind", "schedule", "still_due"]
