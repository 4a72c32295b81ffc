"""Who is on duty (值班): ``roster.yaml`` (optional) in a config set.

Persons, the weekly shifts of each unit (or department), dated overrides, and each unit's
escalation policy: when to remind the person on duty, then their leader, before the
ladder's own deadline escalation. Example::

    timezone: Asia/Shanghai            # shift times are wall-clock times here
    persons:
      - id: wang-fang
        name: 王芳
        unit: dongyuan-g1              # a unit of topology.yaml, or a department
        contact: {type: apprise, url_env: WANG_FANG_URL}   # as a channel of notify.yaml
        leader: li-ming                # optional: whom reminders go to after them
    shifts:
      dongyuan-g1:
        - {days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00", person: wang-fang}
        - {days: [mon, tue, wed, thu, fri], from: "20:00", to: "08:00", person: zhao-lei}
        - {days: [sat, sun], from: "08:00", to: "08:00", person: zhao-lei}   # 24 h
        - {days: [mon, tue, wed, thu, fri, sat, sun], from: "08:00", to: "08:00",
           person: li-ming, role: leader}                                   # 值班领导
    overrides:
      - {unit: dongyuan-g1, from: "2026-12-24T08:00", to: "2026-12-25T08:00",
         person: chen-jie, reason: 王芳 on leave}
    escalation:                        # reminders, per tier, counted from the hand-over
      default: {A: [5m, 10m, 15m], B: [15m, 30m], C: [1h, 2h], D: [4h]}
      grid: {D: [2h, 6h]}              # a level's own, or a unit's (by id)

A shift starts on each of its ``days`` at ``from`` and ends at ``to`` (the next day if
``to`` is not after ``from``; equal means 24 hours). Shifts of one unit and role may not
overlap, nor may its overrides; an override replaces the weekly shift while it lasts.
Times without a zone are in ``timezone``.

Reminder *i* of a policy goes to rung *i* of the duty chain: the person on duty, then the
unit's duty leader (a ``leader`` shift, else the person's own ``leader``), then that
person's ``leader`` and so on; past the end of the chain the last rung is reminded again.
A unit's policy is the first of: its id, its level, ``default``; a tier it does not list
gets no reminders. The lookups themselves are :mod:`gridcall.hub.desk.duty`.
"""

from __future__ import annotations

import itertools
import re
import zoneinfo
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from gridcall.config.base import Duration, Id, Model, Name, TimeZone, unset_envs
from gridcall.config.notify import Channel
from gridcall.wire.ladder import Tier

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Role = Literal["duty", "leader"]
"""``duty``: the person on duty (值班员), who gets new alerts; ``leader``: the unit's duty
leader (值班领导), reminded after them."""
WEEK_MIN = 7 * 24 * 60

_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _minutes(value: Any) -> Any:
    """``"08:30"`` as minutes after midnight (YAML 1.1 reads an unquoted 08:30 as a
    number of minutes already: sexagesimal)."""
    if isinstance(value, str):
        match = _CLOCK.match(value.strip())
        if match is None:
            raise ValueError(f"{value!r} is not a time of day like '08:00'")
        return int(match[1]) * 60 + int(match[2])
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return value
    raise ValueError(f"{value!r} is not a time of day like '08:00' (quote it)")


Minutes = Annotated[int, BeforeValidator(_minutes)]


def time_of_day(minutes: int) -> time:
    """A :data:`Minutes` value as the clock time it names (``f"{t:%H:%M}"`` to show it)."""
    return time(minutes // 60, minutes % 60)


def _moment(value: Any) -> Any:
    """ISO 8601 text (YAML may have read it as a datetime already)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a date and time like "
                             "'2026-12-24T08:00'") from None
    raise ValueError(f"{value!r} is not a date and time like '2026-12-24T08:00'")


Moment = Annotated[datetime, BeforeValidator(_moment)]


class Person(Model):
    id: Id
    name: Name
    unit: Id
    """A unit of topology.yaml or a department id."""
    contact: Channel | None = None
    """Where the person is reached (a channel as in notify.yaml, usually ``apprise`` with
    the URL in an environment variable); without one, the unit's channels are used."""
    leader: Id | None = None
    """The person reminded after this one when the unit has no duty leader on shift."""


class Shift(Model):
    days: tuple[Day, ...] = Field(min_length=1)
    start: Minutes = Field(alias="from")
    end: Minutes = Field(alias="to")
    person: Id
    role: Role = "duty"

    @property
    def length(self) -> int:
        """Minutes; a shift whose end is not after its start runs into the next day."""
        return (self.end - self.start) % (24 * 60) or 24 * 60

    def spans(self) -> list[tuple[int, int]]:
        """Where it lies in the week, as minutes from Monday 00:00 (may pass the week's
        end: a Sunday night shift)."""
        return [(DAYS.index(d) * 24 * 60 + self.start,
                 DAYS.index(d) * 24 * 60 + self.start + self.length) for d in self.days]


class Override(Model):
    unit: Id
    start: Moment = Field(alias="from")
    end: Moment = Field(alias="to")
    person: Id
    role: Role = "duty"
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("give a time zone on both 'from' and 'to', or on neither")
        if self.end <= self.start:
            raise ValueError(f"'to' ({self.end.isoformat()}) is not after 'from' "
                             f"({self.start.isoformat()})")
        return self


Reminders = tuple[Duration, ...]
"""When to remind, counted from the moment the alert was handed to the unit."""


class Policy(Model):
    """Reminders per tier (a tier not listed gets none)."""

    A: Reminders = ()
    B: Reminders = ()
    C: Reminders = ()
    D: Reminders = ()

    @field_validator("A", "B", "C", "D")
    @classmethod
    def _increasing(cls, value: Reminders) -> Reminders:
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("reminders must come later and later (e.g. [10m, 20m, 30m])")
        return value

    def at(self, tier: Tier) -> tuple[timedelta, ...]:
        reminders: tuple[timedelta, ...] = getattr(self, tier)
        return reminders


class DutyFile(Model):
    timezone: TimeZone = "UTC"
    persons: tuple[Person, ...] = ()
    shifts: dict[Id, tuple[Shift, ...]] = Field(default_factory=dict)
    """Per unit (or department) id."""
    overrides: tuple[Override, ...] = ()
    escalation: dict[Id, Policy] = Field(default_factory=dict)
    """``default``, a level (``grid``, ``community``, ``town``, ``district``) or a unit id."""

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def person(self, person_id: str) -> Person | None:
        for p in self.persons:
            if p.id == person_id:
                return p
        return None

    def policy_for(self, unit: str, level: str | None) -> Policy | None:
        """The unit's escalation policy: its own, its level's, or the default."""
        for key in (unit, level, "default"):
            if key is not None and key in self.escalation:
                return self.escalation[key]
        return None

    def unset_env(self) -> list[str]:
        """``persons[id].contact.VARIABLE`` for each contact variable not set."""
        return [f"persons[{p.id}].contact.{m}" for p in self.persons if p.contact is not None
                for m in unset_envs(p.contact, p.contact.secret_envs)]


def overlaps(spans: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Pairs of indices whose weekly spans ``(start, end, index)`` overlap (the week wraps
    around: a Sunday night shift meets Monday morning)."""
    found: set[tuple[int, int]] = set()
    for i, (a0, a1, ai) in enumerate(spans):
        for b0, b1, bi in spans[i + 1:]:
            if ai == bi:
                continue
            for shift in (-WEEK_MIN, 0, WEEK_MIN):
                if a0 < b1 + shift and b0 + shift < a1:
                    found.add((min(ai, bi), max(ai, bi)))
    return sorted(found)


NO_DUTY = DutyFile()

__all__ = ["DAYS", "NO_DUTY", "Day", "DutyFile", "Override", "Person", "Policy", "Role",
           "Shift", "overlaps"]
