"""Silences (maintenance windows): pure, no I/O, no clock.

A :class:`Silence` holds back new alerts for one *scope* (an edge agent, a sensor, a grid
or a matter) from ``start`` to ``end``, with a reason and an author (a unit). It holds
only inside its author's subtree: a community's silence of ``NOISE-NUISANCE`` mutes
noise in that community's grids, not the town's. While it holds, an anomaly it covers is
*muted*: written to the silence ledger as evidence (:class:`SilenceStep` ``mute``), but
it opens, joins and reopens no alert, so nothing is published or sent.

An alert already open in the scope stays open (people close it); a deadline of it that
falls inside the silence waits for the silence's end (:meth:`SilenceBook.defer`): the
desk does not escalate it meanwhile, and the indicators judge the deadline as moved, so
silenced time is not counted against the unit.

Every change is a :class:`SilenceStep` in the silence ledger
(:mod:`gridcall.hub.desk.silence_ledger`): ``add``, ``lift`` (by a unit, before its end),
``expire`` (the end passed: written by the desk at the end's instant) and ``mute``.
:func:`apply` folds them, as :func:`gridcall.hub.desk.lifecycle.apply` folds an alert's.

Who may set what (:func:`draft`): the scope must lie inside the author's subtree (an
agent: every grid its sensors are in), and the silence may last at most the
``max_duration`` of the author's level (``silences`` in matters.yaml); a longer one needs
a unit of the level that may set it. A unit may lift a silence set inside its own
subtree (its own, or one of a unit below it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal, get_args

from gridcall.config import ConfigSet, Unit
from gridcall.config.desk_rules import SilenceRules
from gridcall.hub.desk.lifecycle import Transition
from gridcall.wire.clock import NS
from gridcall.wire.ladder import UnitLevel

ScopeKind = Literal["agent", "sensor", "grid", "matter"]
SCOPE_KINDS: tuple[ScopeKind, ...] = get_args(ScopeKind)
SilenceAction = Literal["add", "lift", "expire", "mute"]
SilenceStatus = Literal["pending", "active", "lifted", "expired"]


class SilenceRefused(ValueError):
    """A silence that may not be set or lifted; nothing was written. ``forbidden``: the
    caller's level or subtree does not allow it (rather than a malformed request);
    ``outside``: it is the subtree (the API then says only "outside your area": the
    message names places and units the caller may not see)."""

    def __init__(self, message: str, *, forbidden: bool = False,
                 outside: bool = False) -> None:
        super().__init__(message)
        self.forbidden = forbidden or outside
        self.outside = outside


class NoSuchSilence(LookupError):
    def __init__(self, silence_id: str) -> None:
        super().__init__(f"no silence {silence_id!r}")
        self.silence_id = silence_id


class SilenceEnded(ValueError):
    """Lifting a silence that has already ended (lifted or expired)."""


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


@dataclass(frozen=True, slots=True)
class Target:
    """What a silence is matched against: an anomaly, or an open alert."""

    agent: str
    sensor: str
    grid: str
    matter: str
    place: tuple[str, ...]
    """The sensor's grid path (district, town, community, grid)."""

    def id_of(self, kind: ScopeKind) -> str:
        match kind:
            case "agent":
                return self.agent
            case "sensor":
                return self.sensor
            case "grid":
                return self.grid
            case "matter":
                return self.matter


@dataclass(frozen=True, slots=True)
class Silence:
    silence_id: str
    scope: Scope
    start: int
    end: int
    """The planned end (ns); see :attr:`ends_at`."""
    reason: str
    author: str
    """The unit that set it."""
    author_level: UnitLevel
    within: tuple[str, ...]
    """The author's path: the silence holds only inside this subtree."""
    created_at: int
    lifted_at: int | None = None
    lifted_by: str = ""
    expired: bool = False
    muted: int = 0
    """Anomalies it held back (``mute`` steps)."""
    n: int = 1
    """Its last step's number."""
    author_person: str = ""
    """The person (roster.yaml) whose token set it, "" for a unit's token."""
    lifted_by_person: str = ""

    @property
    def ends_at(self) -> int:
        """When it ends (or ended): lifted early, else its planned end."""
        if self.lifted_at is not None:
            return max(self.start, min(self.lifted_at, self.end))
        return self.end

    @property
    def ended(self) -> bool:
        return self.lifted_at is not None or self.expired

    def active(self, at: int) -> bool:
        return self.start <= at < self.ends_at

    def covers(self, target: Target) -> bool:
        return (target.place[:len(self.within)] == self.within
                and target.id_of(self.scope.kind) == self.scope.id)

    def mutes(self, target: Target, at: int) -> bool:
        return self.active(at) and self.covers(target)

    def status(self, now: int) -> SilenceStatus:
        if self.lifted_at is not None:
            return "lifted"
        if self.expired or now >= self.end:
            return "expired"
        return "active" if now >= self.start else "pending"


@dataclass(frozen=True, slots=True)
class SilenceStep:
    """One step of a silence, as the silence ledger stores it."""

    silence_id: str
    n: int
    action: SilenceAction
    at: int
    actor: str
    """The unit that added or lifted it; ``"hub"`` for expire and mute."""
    note: str = ""
    person: str = ""
    """The person (roster.yaml) who added or lifted it, "" for a unit's token."""
    silence: Silence | None = None
    """Only on ``add``: the silence as set."""
    evidence: tuple[str, int] | None = None
    """Only on ``mute``: the anomaly event ``(agent, seq)`` held back."""
    sensor: str = ""
    matter: str = ""


class IllegalSilenceStep(ValueError):
    pass


def apply(silence: Silence | None, step: SilenceStep) -> Silence:
    """The silence after ``step``; IllegalSilenceStep for a step that does not follow."""
    if silence is None:
        if step.action != "add" or step.silence is None or step.n != 1:
            raise IllegalSilenceStep(f"silence {step.silence_id}: {step.action} (step "
                                     f"{step.n}) needs an add step first")
        return step.silence
    if step.silence_id != silence.silence_id or step.n != silence.n + 1:
        raise IllegalSilenceStep(f"step {step.n} of {step.silence_id} does not follow step "
                                 f"{silence.n} of {silence.silence_id}")
    match step.action:
        case "add":
            raise IllegalSilenceStep(f"silence {step.silence_id} is added once")
        case "lift":
            if silence.ended:
                raise IllegalSilenceStep(f"silence {step.silence_id} already ended")
            return replace(silence, lifted_at=step.at, lifted_by=step.actor,
                           lifted_by_person=step.person, n=step.n)
        case "expire":
            if silence.ended:
                raise IllegalSilenceStep(f"silence {step.silence_id} already ended")
            return replace(silence, expired=True, n=step.n)
        case "mute":
            return replace(silence, muted=silence.muted + 1, n=step.n)


def _span(length: timedelta) -> str:
    s = int(length.total_seconds())
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out += f"{s // size}{unit}"
            s %= size
    return out or "0s"


def _scope_paths(config: ConfigSet, scope: Scope) -> list[tuple[str, ...]]:
    """The grid paths the scope reaches (none for a matter: it holds wherever its author
    may look); SilenceRefused for an id the config does not know."""
    match scope.kind:
        case "agent":
            agent = config.agents.get(scope.id)
            if agent is None:
                raise SilenceRefused(f"no edge agent {scope.id!r} in agents.yaml")
            grids = dict.fromkeys([agent.grid, *(s.grid for s in agent.sensors)])
            return [config.units[g].path for g in grids]
        case "sensor":
            sensor = config.sensors.get(scope.id)
            if sensor is None:
                raise SilenceRefused(f"no sensor {scope.id!r} in sensors.yaml")
            return [sensor.path]
        case "grid":
            unit = config.units.get(scope.id)
            if unit is None or unit.level != "grid":
                raise SilenceRefused(f"no grid {scope.id!r} in topology.yaml"
                                     + (f" ({scope.id} is a {unit.level})" if unit else ""))
            return [unit.path]
        case "matter":
            if not any(m.code == scope.id for m in config.matters.matters):
                raise SilenceRefused(f"no matter {scope.id!r} in matters.yaml")
            return []


def draft(config: ConfigSet, rules: SilenceRules, *, silence_id: str, scope: Scope,
          start: int, end: int, reason: str, author: Unit, now: int,
          person: str = "") -> Silence:
    """A silence ``author`` may set at ``now``, or SilenceRefused saying why not. A start
    before ``now`` is taken as ``now``: a silence holds back what comes, not what came."""
    if scope.kind not in SCOPE_KINDS:
        raise SilenceRefused(f"scope {scope.kind!r} is not one of {list(SCOPE_KINDS)}")
    if not reason.strip():
        raise SilenceRefused("a silence needs a reason (who is working on what)")
    for path in _scope_paths(config, scope):
        if path[:len(author.path)] != author.path:
            raise SilenceRefused(
                f"{author.level} {author.id} may not silence {scope}: it reaches "
                f"{'/'.join(path)}, outside {'/'.join(author.path)}", outside=True)
    start = max(start, now)
    if end <= start:
        raise SilenceRefused(f"the silence would end at {end}, not after its start "
                             f"{start} (ns)")
    length = timedelta(microseconds=(end - start) // 1000)
    allowed = rules.max_duration.of(author.level)
    if length > allowed:
        who = rules.max_duration.lowest_allowed(length)
        needs = (f"a {who} or above may set it" if who is not None
                 else f"no level may (the district's limit is "
                      f"{_span(rules.max_duration.district)})")
        raise SilenceRefused(
            f"a {author.level} may silence for at most {_span(allowed)}, not "
            f"{_span(length)}: {needs} (silences.max_duration in matters.yaml)",
            forbidden=who is not None)
    return Silence(silence_id=silence_id, scope=scope, start=start, end=end,
                   reason=reason.strip(), author=author.id, author_level=author.level,
                   within=author.path, created_at=now, author_person=person)


def may_lift(silence: Silence, unit: Unit) -> None:
    """SilenceRefused (forbidden) unless ``unit`` may lift ``silence``: it was set inside
    the unit's subtree."""
    if silence.within[:len(unit.path)] != unit.path:
        raise SilenceRefused(f"{unit.level} {unit.id} may not lift {silence.silence_id}: "
                             f"it was set by {silence.author_level} {silence.author}, "
                             f"outside {'/'.join(unit.path)}", outside=True)


REPEAT_WITHIN_NS = 60 * NS
"""A silence set again within this of the first (its start and its end) is a repeat."""


def repeat_of(existing: Iterable[Silence], wanted: Silence,
              within: int = REPEAT_WITHIN_NS) -> Silence | None:
    """The silence ``wanted`` repeats, if any: one not ended with the same scope, reason
    and author (unit) whose start and end are each within ``within`` of ``wanted``'s. A
    request sent twice (a double click, a client's retry after a lost answer) gives the
    same silence again, its default start (now) and so its end moved by the seconds in
    between; a different scope, reason, author or window is another silence, and so is
    one set again after the first was lifted or expired."""
    for s in existing:
        if (not s.ended and s.scope == wanted.scope and s.reason == wanted.reason
                and s.author == wanted.author and abs(s.start - wanted.start) <= within
                and abs(s.end - wanted.end) <= within):
            return s
    return None


class SilenceBook:
    """Every silence, folded from its steps; answers what holds where and when."""

    def __init__(self) -> None:
        self._all: dict[str, Silence] = {}
        self._live: dict[str, Silence] = {}
        """Silences not ended yet (the ones that can mute)."""
        self._next = 1

    def absorb(self, step: SilenceStep) -> Silence:
        silence = apply(self._all.get(step.silence_id), step)
        self._all[silence.silence_id] = silence
        if silence.ended:
            self._live.pop(silence.silence_id, None)
        else:
            self._live[silence.silence_id] = silence
        number = silence.silence_id.removeprefix("SI")
        if number.isdigit():
            self._next = max(self._next, int(number) + 1)
        return silence

    def next_id(self) -> str:
        return f"SI{self._next:06d}"

    def get(self, silence_id: str) -> Silence:
        try:
            return self._all[silence_id]
        except KeyError:
            raise NoSuchSilence(silence_id) from None

    def all(self) -> list[Silence]:
        """Every silence, oldest first."""
        return list(self._all.values())

    def holding(self, target: Target, at: int) -> Silence | None:
        """The silence that mutes ``target`` at ``at`` (the first set), if any."""
        for silence in self._live.values():
            if silence.mutes(target, at):
                return silence
        return None

    def due(self, now: int) -> list[Silence]:
        """Silences whose end passed by ``now`` with no expire step yet, by end."""
        return sorted((s for s in self._live.values() if s.end <= now),
                      key=lambda s: (s.end, s.silence_id))

    def next_end(self) -> int | None:
        return min((s.end for s in self._live.values()), default=None)

    def windows(self, target: Target) -> list[tuple[int, int]]:
        """``[start, end)`` of every silence that covers ``target``, ended ones too."""
        return sorted((s.start, s.ends_at) for s in self._all.values()
                      if s.covers(target) and s.ends_at > s.start)

    def defer(self, target: Target, at: int) -> int:
        """``at`` moved past every silence of ``target`` it falls in (see :func:`defer`)."""
        return defer(at, self.windows(target))


def defer(at: int, windows: Iterable[tuple[int, int]]) -> int:
    """``at``, or if it falls inside one of ``windows`` (``[start, end)``) the end of it,
    again and again while the end falls inside another: a deadline that passes during a
    silence falls due when the silence ends.

    >>> defer(5, [(0, 10), (10, 20)]), defer(25, [(0, 10)]), defer(10, [(0, 10)])
    (20, 25, 10)
    """
    ordered = sorted(windows)
    moved = True
    while moved:
        moved = False
        for start, end in ordered:
            if start <= at < end:
                at, moved = end, True
    return at


def deferral(steps: Iterable[SilenceStep], transitions: Iterable[Transition]
             ) -> Callable[[str, int], int]:
    """What :meth:`gridcall.hub.desk.desk.Desk.defer` answers, from the ledgers alone (the
    silence steps and the alerts' transitions): for a report read from a store."""
    book = SilenceBook()
    for step in steps:
        book.absorb(step)
    targets: dict[str, Target] = {}
    for t in transitions:
        if t.action == "open" and t.alert is not None:
            place = tuple(t.alert.place) or tuple(t.unit_path)
            targets[t.alert_id] = Target(agent=t.alert.agent, sensor=t.alert.sensor,
                                         grid=place[-1], matter=t.alert.matter, place=place)

    def defer_(alert_id: str, at: int) -> int:
        target = targets.get(alert_id)
        return at if target is None else book.defer(target, at)
    return defer_


def span_text(ns_: int) -> str:
    """A length in ns as ``1d2h`` (for notes)."""
    return _span(timedelta(seconds=ns_ / NS))


__all__ = ["SCOPE_KINDS", "IllegalSilenceStep", "NoSuchSilence", "Scope", "ScopeKind",
           "Silence", "SilenceAction", "SilenceBook", "SilenceEnded", "SilenceRefused",
           "SilenceStatus", "SilenceStep", "Target", "apply", "defer", "deferral", "draft",
           "may_lift",
           "span_text"]
