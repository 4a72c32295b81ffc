"""Assessment indicators (督查考核) from the alert ledger: pure, no I/O, no clock.

Units are judged on timeliness, not on how many reports they file (DOMAIN.md). Every
figure here is computed from :class:`~gridcall.hub.desk.lifecycle.Transition` records alone, so it
can
be recomputed for any period from the ledger, and a test can check it by hand.

**Stints: who gets credit.** An alert is the responsibility of one unit at a time. A
*stint* starts when an alert is addressed to a unit (``open``, ``escalate`` or
``reopen``: the transition's ``unit`` with the ``deadlines`` it brings) and ends at the
next ``escalate``/``reopen`` of the alert, or stays open. Each stint is credited to its
unit only, against the deadlines of that stint:

- when the hub escalates an alert because a deadline passed, the unit that held it is
  charged with the missed deadline, and the unit above starts a stint of its own with new
  deadlines (it is not blamed for the time lost below);
- when a unit calls upward by hand (吹哨, a manual ``escalate`` by a unit, not by the hub),
  that call *is* its response: escalation is normal, not a failure, and a grid that
  blows the whistle in time is timely. The stint ends there: the unit called upward is
  judged on arrival and disposal from its own stint on.
- Steps taken by another unit during a stint (a town acknowledging its grid's alert)
  count for the stint: the responsible unit's subtree answered.

**The period.** A stint belongs to the period in which it started (``period_start <=
start < period_end``). Its outcome is read from the steps up to ``as_of`` (default: the
period's end; steps after it are ignored), so last week's figures do not change when a
late resolution arrives next week... unless the report is run with a later ``as_of``.

**Definitions**, for one stint with deadlines ``R`` (response), ``A`` (arrival),
``D`` (disposal), start ``s`` and end ``e`` (the next escalate/reopen, else ``as_of``):

- *response*: the first ``acknowledge``, ``false_alarm`` or manual ``escalate`` in the
  stint (each is an answer to the call), at time ``r``. Judged when it happened, or when
  ``R <= e`` (the deadline passed with no answer). Timely when ``r <= R``.
- *arrival*: the first ``arrive`` in the stint. Judged when it happened, or when
  ``A <= e`` and the stint had not ended in a false alarm or a call upward before ``A``.
  Timely when it happened at or before ``A``.
- *disposal*: the ``resolve`` in the stint. Judged like arrival, with ``D``.
- *response timeliness rate* (呼应及时率) = timely responses / judged responses; the
  *arrival* and *disposal timeliness rates* (处置及时率) likewise.
- *resolution rate* (解决率) = stints resolved / stints whose outcome is due: resolved,
  escalated away (by hand or by the hub), or still open with ``D`` passed. False alarms
  and stints still within their disposal deadline are left out.
- *false-alarm rate* = stints closed as a false alarm / stints (calls and reopenings).
- *whistle rate* (吹哨率) = stints the unit ended by calling upward by hand / stints
  (calls and reopenings). Too low means the mechanism is unused, too high that routine
  handling fails.
- *breaches*: stints the hub escalated because a deadline passed (counted, not a rate).
  When the hub raises an alert's tier by a rule (new evidence, spread), the stint ends
  without blame: neither a breach nor a whistle.
- *median response / disposal time*: seconds from the stint's start to its response /
  resolution, over the stints that had one (late ones included).
- *calls* = stints started in the period by an ``open`` or ``escalate``: the alerts
  handed to the unit. A *reopening* (a recurrence, a unit's reopening, a failed audit)
  is the same call coming back, not a new one: its stint is judged like any other (it
  has deadlines of its own, and the unit must respond and dispose again), but it is
  counted apart, as *reopens*. So the number of calls is what was asked of the unit,
  and a matter that keeps coming back shows as reopenings of it, never as more work
  done (units are judged on effect, not on how many reports they handle: DOMAIN.md).
- *satisfaction rate* (满意率) = ratings 满意 or 基本满意 / ratings, over the reporters'
  ratings (``rate`` steps) of the stint's handling: a rating given once the alert was
  closed belongs to the stint that closed it (a person's report, issue 18).

A rate whose denominator is 0 is ``None`` (nothing to judge), never 0.

**Silences.** Silenced time is not counted against a unit: given ``defer`` (the desk's
:meth:`~gridcall.hub.desk.desk.Desk.defer`), a stint's deadline that falls inside a
silence of the alert's scope is judged at the silence's end, as the desk escalates it.
The API, the InfluxDB writer and ``gridcall hub report``
(:func:`gridcall.hub.desk.silence.deferral`, from the store alone) all pass it.

**Departments** are judged on their own times only (吹哨报到,
:mod:`gridcall.hub.desk.whistle`): a department's row covers its *calls*, each dispatch
that whistled it, never the stints of the units whose alert it was on (a department that
was never called has no row; one that never acted has no response time). For one call,
whistled at ``s`` with report-in deadline ``R``, promised arrival ``A`` and the alert's
disposal deadline then ``D``, ending when the alert closed (resolved or a false alarm),
else at ``as_of``:

- *response* is its ``report_in`` (报到), judged against ``R``; *arrival* its
  ``dept_arrive`` against ``A``; *disposal* its ``dept_dispose`` against ``D``; each
  judged when it happened, or when its deadline passed before the call ended;
- *resolution rate*: calls disposed of / calls whose disposal is due (disposed, or ``D``
  passed before the call ended); a false alarm before its disposal is left out;
- *breaches* count its missed arrivals supervised by the district (督办); departments do
  not whistle, so their whistle rate is None;
- *calls*: whistles in the period, the department's first on each alert; a whistle
  on an alert it was called to before (called anew once its call was disposed of,
  as on a reopened alert) is a *reopen*, judged as a call but counted apart; medians
  are seconds from the whistle.

**Persons.** A person's row (group ``person``, asked for by ``groups``) covers every
stint handed to them as the person on duty of its unit (roster.yaml; the ``on_duty`` of
the step that started it), with the same definitions: the call came on their watch, so
its response is theirs, whoever in the unit answered; a department's person, every
call sent to them as its person on duty, judged as the department's calls are. Ledgers
from before roster.yaml have no ``on_duty``: their stints count for no person.

**Matters and tiers.** A matter's row (group ``matter``) covers the stints of its alerts;
a tier's row (group ``tier``, key ``A``...``D``) the stints that started at that tier
(an escalation starts a stint at the tier above). Same definitions.

**Closure control and audits** (:mod:`gridcall.hub.desk.audits`). A close that waited
for approval counts as done when it was *requested* (the unit's own step), once it is
approved: the approver's delay is not the unit's, and the deadlines do not run while it
waits; a rejected request counts for nothing. A request is an answer to the call.

- *audits*: verdicts recorded on the closings of the stints (an ``audit`` step after
  the close that ended the stint, before any reopening); *audit-pass rate* (稽查合格率)
  = passed / audits. The audit is read as of ``as_of`` like everything else. A
  department's call counts the verdict on the closing of the alert it was called to.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from operator import attrgetter
from typing import Literal

from gridcall.hub.desk.lifecycle import HUB, SATISFIED, Rating, Transition
from gridcall.hub.ingest.sinks.lineproto import escape_measurement, escape_tag
from gridcall.wire.ladder import LEVELS

Group = Literal["unit", "department", "person", "matter", "tier"]
STARTS = frozenset({"open", "escalate", "reopen"})
BREACH = "deadline passed"
"""How the desk's reason for a deadline escalation ends ("response deadline passed");
the hub's other escalations (a tier rule on new evidence) are not breaches."""


@dataclass(frozen=True, slots=True)
class Stint:
    """One unit's turn with one alert, and what happened in it (times in ns)."""

    alert_id: str
    unit: str
    unit_level: str
    start: int
    end: int
    """The next escalate/reopen of the alert, or ``as_of``."""
    response_deadline: int
    arrival_deadline: int
    disposal_deadline: int
    departments: tuple[str, ...]
    responded_at: int | None = None
    arrived_at: int | None = None
    resolved_at: int | None = None
    false_alarm_at: int | None = None
    whistle_at: int | None = None
    """A manual escalation by a unit (not the hub) that ended the stint."""
    breached: bool = False
    """The hub escalated the alert out of this stint (a deadline passed)."""
    on_duty: str = ""
    """The person on duty the alert was handed to (roster.yaml), "" if nobody; for a
    department's call, its person on duty the call was sent to."""
    supervised: bool = False
    """A department's call whose missed arrival was supervised (督办)."""
    ratings: tuple[Rating, ...] = ()
    """Reporters' ratings of the handling (``rate`` steps after the stint closed the
    alert), in the order given."""
    matter: str = ""
    tier: str = ""
    """The alert's matter, and its tier when the stint started."""
    requested: str = ""
    """A close awaiting approval (resolve, false_alarm), and when it was asked for."""
    requested_at: int | None = None
    audit: str = ""
    """The verdict on the stint's closing: "", ``pass`` or ``fail``."""
    reopen: bool = False
    """Started by a ``reopen`` (for a department: a whistle on an alert it was called
    to before): the same call again, counted as a reopening, not a call."""

    @property
    def stopped_at(self) -> int | None:
        """When the stint stopped needing arrival and disposal: a false alarm or a call
        upward (the unit above takes it from there)."""
        times = [t for t in (self.false_alarm_at, self.whistle_at) if t is not None]
        return min(times) if times else None

    def judged(self, done_at: int | None, deadline: int) -> bool:
        if done_at is not None:
            return True
        stopped = self.stopped_at
        return deadline <= self.end and (stopped is None or stopped >= deadline)


def _first(current: int | None, t: Transition, *actions: str) -> int | None:
    return t.at if current is None and t.action in actions else current


def _closed_at(stint: Stint, t: Transition) -> int:
    """When a close counts as done: when it was requested, if it waited for approval."""
    if stint.requested == t.action and stint.requested_at is not None:
        return stint.requested_at
    return t.at


def _advance(stint: Stint, t: Transition) -> Stint:
    """``stint`` after a step inside it (one that does not start a new stint)."""
    if t.action == "request_close":
        stint = replace(stint, requested=t.request, requested_at=t.at)
    elif t.action == "reject_close":
        stint = replace(stint, requested="", requested_at=None)
    elif t.action == "audit":
        return replace(stint, audit=t.verdict)
    at = _closed_at(stint, t) if t.action in ("resolve", "false_alarm") else t.at
    done = replace(t, at=at) if at != t.at else t
    return replace(
        stint, departments=t.departments,
        responded_at=_first(stint.responded_at, done, "acknowledge", "false_alarm",
                            "request_close"),
        arrived_at=_first(stint.arrived_at, t, "arrive"),
        resolved_at=_first(stint.resolved_at, done, "resolve"),
        false_alarm_at=_first(stint.false_alarm_at, done, "false_alarm"),
        ratings=(*stint.ratings, t.rating) if t.action == "rate" and t.rating is not None
        else stint.ratings)


def _ended_by(stint: Stint, t: Transition) -> Stint:
    """``stint`` ended by ``t`` (an escalate or reopen of the alert)."""
    if t.action != "escalate":
        return replace(stint, end=t.at)
    if t.actor == HUB:  # a deadline breach, or a tier rule raising the alert (no blame)
        return replace(stint, end=t.at, breached=t.reason.endswith(BREACH))
    return replace(stint, end=t.at, whistle_at=t.at,
                   responded_at=t.at if stint.responded_at is None else stint.responded_at)


Deferral = Callable[[str, int], int]
"""``(alert_id, deadline) -> the deadline as judged`` (moved past silences)."""


def _same(alert_id: str, at: int) -> int:
    return at


def _histories(transitions: Iterable[Transition], as_of: int | None
               ) -> tuple[list[list[Transition]], int]:
    """Each alert's steps up to ``as_of`` in ledger order (by ``n``), and the horizon an
    open stint or call runs to: ``as_of``, else the last step's time."""
    by_alert: dict[str, list[Transition]] = defaultdict(list)
    for t in transitions:
        if as_of is None or t.at <= as_of:
            by_alert[t.alert_id].append(t)
    for history in by_alert.values():
        history.sort(key=lambda t: t.n)
    horizon = as_of if as_of is not None else max(
        (t.at for ts in by_alert.values() for t in ts), default=0)
    return list(by_alert.values()), horizon


def stints(transitions: Iterable[Transition], *, as_of: int | None = None,
           defer: Deferral | None = None) -> list[Stint]:
    """Every stint in ``transitions`` (any order; per alert by ``n``), with what happened
    in it up to ``as_of`` (default: up to the last step); deadlines moved by ``defer``."""
    moved = defer or _same
    histories, horizon = _histories(transitions, as_of)
    out: list[Stint] = []
    for history in histories:
        first = history[0].alert
        matter = first.matter if first is not None else ""
        current: Stint | None = None
        for t in history:
            if t.action not in STARTS:
                if current is not None:  # a ledger always starts with open
                    current = _advance(current, t)
                continue
            if current is not None:
                out.append(_ended_by(current, t))
            current = Stint(
                alert_id=t.alert_id, unit=t.unit, unit_level=t.unit_level, start=t.at,
                end=horizon, response_deadline=moved(t.alert_id, t.deadlines.response),
                arrival_deadline=moved(t.alert_id, t.deadlines.arrival),
                disposal_deadline=moved(t.alert_id, t.deadlines.disposal),
                departments=t.departments, on_duty=t.on_duty, matter=matter, tier=t.tier,
                reopen=t.action == "reopen")
        if current is not None:
            out.append(current)
    return out


@dataclass(frozen=True, slots=True)
class Indicator:
    """The figures of one unit or department over one period. Rates are in [0, 1] or
    None when there was nothing to judge; times in seconds."""

    group: Group
    key: str
    """The unit id or department id."""
    level: str
    """The unit's level (grid, community, town, district), or "department"."""
    period_start: int
    period_end: int
    calls: int
    """Alerts handed to the unit (or whistles of the department) in the period; a
    reopening is not a new call (``reopens``)."""
    responses_judged: int
    responses_timely: int
    arrivals_judged: int
    arrivals_timely: int
    disposals_judged: int
    disposals_timely: int
    resolution_due: int
    resolved: int
    false_alarms: int
    whistles: int
    breaches: int
    response_timeliness_rate: float | None
    arrival_timeliness_rate: float | None
    disposal_timeliness_rate: float | None
    resolution_rate: float | None
    false_alarm_rate: float | None
    whistle_rate: float | None
    median_response_s: float | None
    median_disposal_s: float | None
    rated: int = 0
    """Reporters' ratings of the stints' handling."""
    satisfied: int = 0
    """Of them, 满意 or 基本满意."""
    satisfaction_rate: float | None = None
    """满意率 = satisfied / rated."""
    audits: int = 0
    audits_passed: int = 0
    audit_pass_rate: float | None = None
    """稽查合格率: audits passed / audits (the module docstring)."""
    reopens: int = 0
    """Reopenings handed to it in the period: the same calls again, judged like calls
    (their stints are in the timeliness rates) but not counted in ``calls``."""

    def as_dict(self) -> dict[str, str | int | float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _median_s(values: Sequence[int]) -> float | None:
    return statistics.median(values) / 1e9 if values else None


def summarize(group: Group, key: str, level: str, period_start: int, period_end: int,
              of: Sequence[Stint]) -> Indicator:
    """One :class:`Indicator` over the stints ``of``."""
    resp = [s for s in of if s.judged(s.responded_at, s.response_deadline)]
    resp_ok = [s for s in resp if s.responded_at is not None
               and s.responded_at <= s.response_deadline]
    arr = [s for s in of if s.judged(s.arrived_at, s.arrival_deadline)]
    arr_ok = [s for s in arr if s.arrived_at is not None and s.arrived_at <= s.arrival_deadline]
    dis = [s for s in of if s.judged(s.resolved_at, s.disposal_deadline)]
    dis_ok = [s for s in dis if s.resolved_at is not None
              and s.resolved_at <= s.disposal_deadline]
    resolved = [s for s in of if s.resolved_at is not None]
    due = [s for s in of if s.false_alarm_at is None and (
        s.resolved_at is not None or s.whistle_at is not None or s.breached
        or s.disposal_deadline <= s.end)]
    false_alarms = sum(s.false_alarm_at is not None for s in of)
    whistles = sum(s.whistle_at is not None for s in of)
    turns = len(of)
    reopens = sum(s.reopen for s in of)
    ratings = [r for s in of for r in s.ratings]
    satisfied = sum(r in SATISFIED for r in ratings)
    audited = [s for s in of if s.audit]
    passed = sum(s.audit == "pass" for s in audited)
    return Indicator(
        group=group, key=key, level=level, period_start=period_start, period_end=period_end,
        calls=turns - reopens, responses_judged=len(resp), responses_timely=len(resp_ok),
        arrivals_judged=len(arr), arrivals_timely=len(arr_ok), disposals_judged=len(dis),
        disposals_timely=len(dis_ok), resolution_due=len(due), resolved=len(resolved),
        false_alarms=false_alarms, whistles=whistles,
        breaches=sum(s.breached for s in of),
        response_timeliness_rate=_rate(len(resp_ok), len(resp)),
        arrival_timeliness_rate=_rate(len(arr_ok), len(arr)),
        disposal_timeliness_rate=_rate(len(dis_ok), len(dis)),
        resolution_rate=_rate(len(resolved), len(due)),
        false_alarm_rate=_rate(false_alarms, turns),
        whistle_rate=_rate(whistles, turns),
        median_response_s=_median_s([s.responded_at - s.start for s in of
                                     if s.responded_at is not None]),
        median_disposal_s=_median_s([s.resolved_at - s.start for s in of
                                     if s.resolved_at is not None]),
        rated=len(ratings), satisfied=satisfied,
        satisfaction_rate=_rate(satisfied, len(ratings)),
        audits=len(audited), audits_passed=passed,
        audit_pass_rate=_rate(passed, len(audited)), reopens=reopens,
    )


def department_calls(transitions: Iterable[Transition], *, as_of: int | None = None
                     ) -> list[Stint]:
    """Every department's call in ``transitions`` (any order; per alert by ``n``) up to
    ``as_of``, as a :class:`Stint` of the department (``unit``, level "department"):
    whistled at ``start``, its report-in, promised arrival and disposal deadlines, and its
    own report-in (``responded_at``), arrival and disposal (``resolved_at``); ``end`` is
    when the alert closed, else ``as_of``; ``false_alarm_at`` when the alert was closed
    as a false alarm before it disposed of its part; ``ratings``: the reporters' ratings
    of the alert's handling (its satisfaction rate, as the units'); ``audit``: the verdict
    on the alert's closing (its audit-pass rate, as the units'); a failed audit stays the
    call's verdict when the reopened alert is closed again and passes without the
    department being called anew (a new dispatch starts a new call)."""
    histories, horizon = _histories(transitions, as_of)
    out: list[Stint] = []
    for history in histories:
        live: dict[str, Stint] = {}
        called: set[str] = set()
        for t in history:
            if t.action == "dispatch":
                for w in t.whistled:
                    if w.department in live:
                        out.append(live.pop(w.department))
                    again = w.department in called
                    called.add(w.department)
                    live[w.department] = Stint(
                        alert_id=t.alert_id, unit=w.department, unit_level="department",
                        start=t.at, end=horizon, response_deadline=w.report_by,
                        arrival_deadline=w.arrive_by, disposal_deadline=t.deadlines.disposal,
                        departments=(w.department,), on_duty=w.on_duty, reopen=again)
            elif t.department in live:
                c = live[t.department]
                live[t.department] = replace(
                    c, responded_at=_first(c.responded_at, t, "report_in"),
                    arrived_at=_first(c.arrived_at, t, "dept_arrive"),
                    resolved_at=_first(c.resolved_at, t, "dept_dispose"),
                    supervised=c.supervised or t.action == "supervise")
            elif t.action == "rate" and t.rating is not None:  # the handling, rated
                for dep, c in list(live.items()):
                    live[dep] = replace(c, ratings=(*c.ratings, t.rating))
            elif t.action == "audit":  # the closing, audited: for each department on it
                # a failed audit stays the call's verdict: a pass on the closing after the
                # reopening judges work the department was not called to again for
                for dep, c in list(live.items()):
                    live[dep] = replace(c, audit="fail" if c.audit == "fail" else t.verdict)
            elif t.action in ("resolve", "false_alarm"):
                for dep, c in list(live.items()):
                    if c.resolved_at is None:
                        live[dep] = replace(c, end=min(c.end, t.at), false_alarm_at=(
                            t.at if t.action == "false_alarm" else None))
        out.extend(live.values())
    return out


def indicators(transitions: Iterable[Transition], period_start: int, period_end: int, *,
               as_of: int | None = None, groups: Sequence[Group] = ("unit", "department"),
               defer: Deferral | None = None) -> list[Indicator]:
    """Indicators of every unit and department that had a call in
    ``[period_start, period_end)``, judged as of ``as_of`` (default ``period_end``).
    Units first (by level from the district down, then id), then departments by id,
    then (if asked for in ``groups``) persons by id: a person's stints are those handed
    to them as the person on duty (``Transition.on_duty``), then matters by code, then
    tiers from A to D.
    ``defer``: see the module docstring (silences)."""
    if period_end <= period_start:
        raise ValueError(f"period end {period_end} is not after its start {period_start}")
    judged_at = period_end if as_of is None else as_of
    transitions = list(transitions)  # read twice: the units' stints, the departments' calls
    in_period = [s for s in stints(transitions, as_of=judged_at, defer=defer)
                 if period_start <= s.start < period_end]
    out: list[Indicator] = []
    if "unit" in groups:
        order: dict[str, int] = {level: i for i, level in enumerate(LEVELS)}
        for unit, of in sorted(_grouped(in_period, attrgetter("unit")).items(),
                               key=lambda kv: (order.get(kv[1][0].unit_level, 9), kv[0])):
            out.append(summarize("unit", unit, of[0].unit_level, period_start, period_end, of))
    calls = [c for c in department_calls(transitions, as_of=judged_at)
             if period_start <= c.start < period_end] if (
        "department" in groups or "person" in groups) else []
    if "department" in groups:
        for dep, of in sorted(_grouped(calls, attrgetter("unit")).items()):
            row = summarize("department", dep, "department", period_start, period_end, of)
            out.append(replace(row, breaches=sum(c.supervised for c in of),
                               whistles=0, whistle_rate=None))
    # a person's: the stints handed to them on duty; a department's person's: the calls
    on_duty = [s for s in (*in_period, *calls) if s.on_duty] if "person" in groups else []
    breakdowns: tuple[tuple[Group, Sequence[Stint], Callable[[Stint], str]], ...] = (
        ("person", on_duty, attrgetter("on_duty")),
        ("matter", in_period, attrgetter("matter")),
        ("tier", in_period, attrgetter("tier")))
    for group, of_group, key_of in breakdowns:
        if group in groups:
            for key, of in sorted(_grouped(of_group, key_of).items()):
                out.append(summarize(group, key, group, period_start, period_end, of))
    return out


def _grouped(of: Iterable[Stint], key_of: Callable[[Stint], str]) -> dict[str, list[Stint]]:
    """The stints ``of`` by ``key_of``, each group in the order given."""
    out: dict[str, list[Stint]] = defaultdict(list)
    for s in of:
        out[key_of(s)].append(s)
    return out


def by_unit(rows: Iterable[Indicator]) -> dict[str, Indicator]:
    """The unit rows of :func:`indicators`, by unit id."""
    return {r.key: r for r in rows if r.group == "unit"}


# --------------------------------------------------------------------------- InfluxDB

COUNTS = ("calls", "responses_judged", "responses_timely", "arrivals_judged",
          "arrivals_timely", "disposals_judged", "disposals_timely", "resolution_due",
          "resolved", "false_alarms", "whistles", "breaches", "rated", "satisfied", "audits",
          "audits_passed", "reopens")
RATES = ("response_timeliness_rate", "arrival_timeliness_rate", "disposal_timeliness_rate",
         "resolution_rate", "false_alarm_rate", "whistle_rate", "median_response_s",
         "median_disposal_s", "satisfaction_rate", "audit_pass_rate")


def line_protocol(rows: Iterable[Indicator], *, period: str,
                  measurement: str = "indicator",
                  extra_tags: Mapping[str, str] | None = None) -> bytes:
    """One line per row, at the period's end (ns)::

        indicator,group=unit,id=dongyuan-g1,level=grid,period=7d calls=4i,...,
            response_timeliness_rate=0.75 1700000000000000000

    Counts are integers; rates and medians are floats and left out when None (InfluxDB
    has no null), so ``mean(response_timeliness_rate)`` skips periods with nothing to
    judge. Writing the same period again overwrites the same points (same series, time).
    """
    head = escape_measurement(measurement)
    if not head:
        raise ValueError(f"measurement {measurement!r} is empty once escaped")
    base = dict(extra_tags or {})
    lines: list[str] = []
    for r in rows:
        tags = {**base, "group": r.group, "id": r.key, "level": r.level, "period": period}
        tag_text = "".join(f",{escape_tag(k)}={escape_tag(v)}"
                           for k, v in sorted(tags.items()) if escape_tag(v))
        values = [f"{name}={getattr(r, name)}i" for name in COUNTS]
        for name in RATES:
            value = getattr(r, name)
            if value is not None and math.isfinite(value):
                values.append(f"{name}={float(value)!r}")
        lines.append(f"{head}{tag_text} {','.join(values)} {r.period_end}\n")
    return "".join(lines).encode()
