"""Working-hour calendars (``calendars.yaml``, optional): deadlines in working time.

Jiyuan's city-event limits are written in working time: a dirty road within "5 working
hours", illegal construction within "15 working days". A deadline of the catalog
(``matters.yaml``: a matter's ``deadlines``, ``default_deadlines``, ``tier_deadlines``,
``maintenance.deadlines``) may say so, beside plain durations (``30m``, ``2h``, ``7d``),
which stay valid and mean wall-clock time::

    # matters.yaml
    deadlines: {response: 1h, arrival: 4 working hours, disposal: 15 working days,
                calendar: office}     # optional: the calendar's name (default: `default`)

    # calendars.yaml
    default: office                   # the calendar of deadlines that name none
    calendars:
      office:
        timezone: Asia/Shanghai       # the hours below are wall-clock times here
        weekdays: [mon, tue, wed, thu, fri]
        hours:                        # the working periods of a working day
        - {from: "08:30", to: "12:00"}
        - {from: "14:30", to: "18:00"}
        holidays:                     # days off that fall on weekdays, per year
          2026: [2026-01-01, 2026-10-01, 2026-10-02]
        workdays:                     # weekend days worked instead (调休), per year
          2026: [2026-10-10]

- **N working hours** is N hours of the calendar's working periods, counted from the
  moment the deadline starts (an alert opened at 17:00 on a Friday with "2 working
  hours" is due at 09:30 on Monday, with the hours above).
- **N working days** is N times the length of the calendar's working day in working
  hours (7 h above), so "1 working day" from 10:00 on a Friday is 10:00 on Monday, and
  from 19:00 on a Friday (after hours) 18:00 on Monday. Fractions (``1.5 working days``)
  are allowed.
- A holiday is not a working day even on a weekday; a ``workdays`` date is one even on a
  weekend. Each date must lie in the year it is listed under.

A deadline's order (``response <= arrival <= disposal``) is checked when it can be: two
plain durations directly; a plain duration before a working-time one if the plain one is
no longer than the working time could ever be (N working hours are never less than N
hours, N working days never less than N days); two working-time ones by their working
hours. A working-time deadline before a plain one is refused: a holiday could put it
after.

The arithmetic is :meth:`Calendar.add` (pure; time in ns since the epoch, as the desk's
injected clock gives it).
"""

from __future__ import annotations

import itertools
import re
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from gridcall.config.base import Id, Model, TimeZone, parse_duration
from gridcall.config.duty import DAYS, Day, Minutes, time_of_day
from gridcall.wire.clock import from_datetime, ns

NS = 1_000_000_000
SEARCH_DAYS = 3 * 366
"""How far ahead :meth:`Calendar.add` looks for working time before it gives up (a
calendar whose every day is a holiday)."""

_WORKING = re.compile(r"^(\d+(?:\.\d+)?)\s*working\s*(hour|day)s?$")


class WorkSpan(Model):
    """A deadline in working time: ``amount`` working hours or working days."""

    amount: float = Field(gt=0)
    unit: Literal["hours", "days"]

    def __str__(self) -> str:
        amount = f"{self.amount:g}"
        one = self.unit[:-1] if self.amount == 1 else self.unit
        return f"{amount} working {one}"

    def floor(self) -> timedelta:
        """The shortest wall-clock time this can be: working time is a part of all time."""
        return timedelta(hours=self.amount) if self.unit == "hours" else timedelta(
            days=self.amount)

    def working_seconds(self, calendar: Calendar) -> float:
        """How many seconds of the calendar's working periods this is."""
        per = 3600.0 if self.unit == "hours" else calendar.day_seconds()
        return self.amount * per


def parse_deadline(value: Any) -> Any:
    """``"5 working hours"``, ``"15 working days"`` (a :class:`WorkSpan`), or a plain
    duration (``"30m"``, ``"2h"``, ``"7d"``, a number of seconds)."""
    if isinstance(value, str):
        match = _WORKING.match(value.strip().lower())
        if match is not None:
            return WorkSpan(amount=float(match[1]), unit=f"{match[2]}s")  # type: ignore[arg-type]
        if "working" in value.lower():
            raise ValueError(f"{value!r} is not a working-time deadline like '5 working "
                             "hours' or '15 working days'")
    return parse_duration(value)


def _positive(value: timedelta | WorkSpan) -> timedelta | WorkSpan:
    if isinstance(value, timedelta) and value <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return value


Deadline = Annotated[timedelta | WorkSpan, BeforeValidator(parse_deadline),
                     AfterValidator(_positive)]
"""A deadline of the catalog: a plain duration, or working time (:class:`WorkSpan`)."""


def check_order(spans: list[tuple[str, timedelta | WorkSpan]]) -> str | None:
    """Why these deadlines (in order, named) could come out of order, or None. Working
    hours against working days need the calendar: see :func:`check_order_in`."""
    for (a_name, a), (b_name, b) in itertools.pairwise(spans):
        if isinstance(a, timedelta) and isinstance(b, timedelta):
            if a > b:
                return f"{a_name} ({_text(a)}) is longer than {b_name} ({_text(b)})"
        elif isinstance(a, timedelta) and isinstance(b, WorkSpan):
            if a > b.floor():
                return (f"{a_name} ({_text(a)}) could fall after {b_name} ({b}): a plain "
                        "duration before a working-time deadline may be at most as long "
                        f"as {_text(b.floor())}")
        elif isinstance(a, WorkSpan) and isinstance(b, timedelta):
            return (f"{a_name} ({a}) is in working time but {b_name} ({_text(b)}) is not: "
                    "a holiday could put it after; give both in working time")
        elif isinstance(a, WorkSpan) and isinstance(b, WorkSpan) and (
                a.unit == b.unit and a.amount > b.amount):
            return f"{a_name} ({a}) is longer than {b_name} ({b})"
    return None


def check_order_in(spans: list[tuple[str, timedelta | WorkSpan]],
                   calendar: Calendar) -> str | None:
    """Working hours against working days, in ``calendar``'s working day."""
    for (a_name, a), (b_name, b) in itertools.pairwise(spans):
        if isinstance(a, WorkSpan) and isinstance(b, WorkSpan) and (
                a.working_seconds(calendar) > b.working_seconds(calendar)):
            return (f"{a_name} ({a}) is longer than {b_name} ({b}) in a working day of "
                    f"{_text(timedelta(seconds=calendar.day_seconds()))}")
    return None


def _text(span: timedelta) -> str:
    s = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def _day(value: Any) -> Any:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date like '2026-10-01'")


Day_ = Annotated[date, BeforeValidator(_day)]


class Period(Model):
    """A working period of the day, ``from`` to ``to`` on the same day."""

    start: Minutes = Field(alias="from")
    end: Minutes = Field(alias="to")

    @model_validator(mode="after")
    def _same_day(self) -> Period:
        if self.end <= self.start:
            raise ValueError("a working period ends after it starts, on the same day "
                             f"({time_of_day(self.start):%H:%M} to "
                             f"{time_of_day(self.end):%H:%M})")
        return self


def _by_year(value: dict[int, tuple[date, ...]], what: str) -> dict[int, tuple[date, ...]]:
    for year, days in value.items():
        for d in days:
            if d.year != year:
                raise ValueError(f"{what} {d.isoformat()} is listed under {year}")
    return value


class Calendar(Model):
    """Working days and hours in one time zone, with holidays and 调休 workdays."""

    timezone: TimeZone = "UTC"
    weekdays: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri")
    hours: tuple[Period, ...] = Field(min_length=1)
    holidays: dict[int, tuple[Day_, ...]] = Field(default_factory=dict)
    workdays: dict[int, tuple[Day_, ...]] = Field(default_factory=dict)

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: dict[int, tuple[date, ...]]) -> dict[int, tuple[date, ...]]:
        return _by_year(value, "holiday")

    @field_validator("workdays")
    @classmethod
    def _workdays(cls, value: dict[int, tuple[date, ...]]) -> dict[int, tuple[date, ...]]:
        return _by_year(value, "workday")

    @model_validator(mode="after")
    def _consistent(self) -> Calendar:
        spans = sorted((p.start, p.end) for p in self.hours)
        for (_, a_end), (b_start, _) in itertools.pairwise(spans):
            if b_start < a_end:
                raise ValueError("working periods overlap")
        if not self.weekdays and not self.workdays:
            raise ValueError("a calendar needs weekdays or workdays: it has no working day")
        both = self._days(self.holidays) & self._days(self.workdays)
        if both:
            raise ValueError(f"{min(both).isoformat()} is both a holiday and a workday")
        return self

    @staticmethod
    def _days(by_year: dict[int, tuple[date, ...]]) -> frozenset[date]:
        return frozenset(d for days in by_year.values() for d in days)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def day_seconds(self) -> float:
        """The length of a working day in working time."""
        return float(sum(p.end - p.start for p in self.hours) * 60)

    def is_working_day(self, day: date) -> bool:
        if day in self._days(self.workdays):
            return True
        if day in self._days(self.holidays):
            return False
        return DAYS[day.weekday()] in self.weekdays

    def periods(self, day: date) -> list[tuple[int, int]]:
        """The working periods of ``day`` as (start, end) ns, [] on a day off."""
        if not self.is_working_day(day):
            return []
        zone = self.zone
        out = []
        for p in sorted(self.hours, key=lambda p: p.start):
            a = datetime.combine(day, time_of_day(p.start), zone)
            b = datetime.combine(day, time_of_day(p.end), zone)
            out.append((from_datetime(a), from_datetime(b)))
        return out

    def add(self, start: int, seconds: float) -> int:
        """The instant (ns) at which ``seconds`` of working time have passed since
        ``start`` (ns); ValueError if the calendar has none within three years."""
        left = round(seconds * NS)
        if left <= 0:
            return start
        day = datetime.fromtimestamp(start / NS, UTC).astimezone(self.zone).date()
        for _ in range(SEARCH_DAYS):
            for opens, closes in self.periods(day):
                a = max(opens, start)
                if a >= closes:
                    continue
                if closes - a >= left:
                    return a + left
                left -= closes - a
            day += timedelta(days=1)
        raise ValueError(f"no working time within {SEARCH_DAYS} days: every day is off")


class CalendarsFile(Model):
    """``calendars.yaml``: named calendars and the default one."""

    default: Id | None = None
    """The calendar of working-time deadlines that name none (``calendar:``); with one
    calendar only, it is the default anyway."""
    calendars: dict[Id, Calendar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_known(self) -> CalendarsFile:
        if self.default is not None and self.default not in self.calendars:
            raise ValueError(f"default names {self.default!r}, which is not among the "
                             f"calendars {sorted(self.calendars)}")
        return self

    def named(self, name: str | None) -> Calendar | None:
        """The calendar ``name`` (None: the default), None if there is no such one."""
        if name is None:
            if self.default is not None:
                return self.calendars[self.default]
            if len(self.calendars) == 1:
                return next(iter(self.calendars.values()))
            return None
        return self.calendars.get(name)

    def due(self, start: int, span: timedelta | WorkSpan, calendar: str | None) -> int:
        """The deadline ``span`` after ``start`` (ns): wall-clock for a plain duration,
        in ``calendar``'s working time for a :class:`WorkSpan` (KeyError naming it if the
        file has no such calendar: the loader refuses such a config)."""
        if isinstance(span, timedelta):
            return start + ns(span)
        cal = self.named(calendar)
        if cal is None:
            raise KeyError(f"no calendar {calendar or 'default'!r} in calendars.yaml")
        return cal.add(start, span.working_seconds(cal))


NO_CALENDARS = CalendarsFile()

__all__ = ["NO_CALENDARS", "Calendar", "CalendarsFile", "Deadline", "Period", "WorkSpan",
           "check_order", "check_order_in", "parse_deadline"]
