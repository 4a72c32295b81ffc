"""Who is on duty for a unit at a moment: pure lookups over ``roster.yaml``
(:class:`gridcall.config.duty.DutyFile`), no I/O, no clock (the caller gives ``at``, ns).

Not to be confused with :mod:`gridcall.hub.desk.roster`, the roster of *edge agents*.

- :func:`on_duty`: the person on duty (or the duty leader, ``role="leader"``) and the
  stretch they are on for: an override while one lasts, else the weekly shift;
- :func:`next_on_duty`: who takes over after that, and when;
- :func:`duty_leader`: the unit's duty leader at ``at`` (值班领导): a ``leader`` shift,
  else the ``leader`` of the person on duty. The district's fallback pages it;
- :func:`chain`: whom reminders go to, in order: the person on duty, the duty leader,
  then each one's ``leader``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridcall.config.duty import DAYS, DutyFile, Person, Role, time_of_day
from gridcall.wire.clock import DAY_NS, NS, from_datetime

LOOK_AHEAD_DAYS = 8
"""How far :func:`next_on_duty` looks: a weekly roster repeats within a week."""


@dataclass(frozen=True, slots=True)
class Stretch:
    """A person on duty (or duty leader) for a unit from ``start`` to ``end`` (ns)."""

    person: Person
    unit: str
    role: Role
    start: int
    end: int
    override: bool = False
    """From ``overrides`` (a swap, a leave), not the weekly shift."""


def _overrides(duty: DutyFile, unit: str, role: Role) -> Iterator[tuple[int, int, str]]:
    zone = duty.zone
    for o in duty.overrides:
        if o.unit == unit and o.role == role:
            yield from_datetime(o.start, zone), from_datetime(o.end, zone), o.person


def _shifts(duty: DutyFile, unit: str, role: Role, around: int, days: range
            ) -> Iterator[tuple[int, int, str]]:
    """Every weekly shift of the unit that starts on a day in ``days`` (offsets from the
    local date of ``around``), as (start, end, person) in ns."""
    zone = duty.zone
    today = datetime.fromtimestamp(around // NS, zone).date()
    for shift in duty.shifts.get(unit, ()):
        if shift.role != role:
            continue
        for offset in days:
            day = today + timedelta(days=offset)
            if DAYS[day.weekday()] not in shift.days:
                continue
            begin = datetime.combine(day, time_of_day(shift.start), zone)
            end = begin + timedelta(minutes=shift.length)
            yield from_datetime(begin), from_datetime(end), shift.person


def on_duty(duty: DutyFile, unit: str, at: int, role: Role = "duty") -> Stretch | None:
    """Who is on ``role`` for ``unit`` at ``at``: an override that covers ``at`` wins;
    else the weekly shift (its start and end cut where overrides end and begin). None if
    nobody: the unit's own channels are used then."""
    overrides = list(_overrides(duty, unit, role))
    for start, end, person in overrides:
        found = duty.person(person)
        if start <= at < end and found is not None:
            return Stretch(found, unit, role, start, end, override=True)
    for start, end, person in _shifts(duty, unit, role, at, range(-1, 1)):
        found = duty.person(person)
        if start <= at < end and found is not None:
            cut = min((s for s, _, _ in overrides if at < s < end), default=end)
            begin = max((e for _, e, _ in overrides if start < e <= at), default=start)
            return Stretch(found, unit, role, begin, cut)
    return None


def next_on_duty(duty: DutyFile, unit: str, at: int, role: Role = "duty") -> Stretch | None:
    """The next stretch after ``at`` with someone other than the person on ``role`` now
    (or anyone, if nobody is), within :data:`LOOK_AHEAD_DAYS`; None if there is none."""
    now = on_duty(duty, unit, at, role)
    bounds = {t for s, e, _ in _overrides(duty, unit, role) for t in (s, e)}
    bounds |= {t for s, e, _ in _shifts(duty, unit, role, at, range(-1, LOOK_AHEAD_DAYS))
               for t in (s, e)}
    horizon = at + LOOK_AHEAD_DAYS * DAY_NS
    for t in sorted(b for b in bounds if at < b <= horizon):
        then = on_duty(duty, unit, t, role)
        if then is not None and (now is None or then.person.id != now.person.id):
            return then
    return None


def duty_leader(duty: DutyFile, unit: str, at: int) -> Person | None:
    """The duty leader of ``unit`` at ``at``: the person on a ``leader`` shift (or
    override), else the ``leader`` of the person on duty; None if neither is given."""
    leader = on_duty(duty, unit, at, "leader")
    if leader is not None:
        return leader.person
    person = on_duty(duty, unit, at)
    if person is not None and person.person.leader is not None:
        return duty.person(person.person.leader)
    return None


def chain(duty: DutyFile, unit: str, at: int) -> tuple[Person, ...]:
    """Whom reminders for ``unit`` go to at ``at``, in order: the person on duty, the
    duty leader, then each one's own ``leader`` (each person once). Empty if the roster
    names nobody for the unit."""
    out: dict[str, Person] = {}
    first = on_duty(duty, unit, at)
    if first is not None:
        out[first.person.id] = first.person
    leader = duty_leader(duty, unit, at)
    if leader is not None:
        out.setdefault(leader.id, leader)
    last = list(out.values())[-1] if out else None
    while last is not None and last.leader is not None and last.leader not in out:
        nxt = duty.person(last.leader)
        if nxt is None:
            break
        out[nxt.id] = nxt
        last = nxt
    return tuple(out.values())


__all__ = ["LOOK_AHEAD_DAYS", "Stretch", "chain", "duty_leader", "next_on_duty", "on_duty"]
