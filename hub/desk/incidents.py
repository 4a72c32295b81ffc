"""Incidents (首接负责): alerts of one matter that are one event seen in several places.
Pure, no I/O, no clock.

A gas leak seen in two neighbouring grids is one incident, not two calls. The desk keeps
one alert per (matter, grid), each with its own unit and deadlines; an :class:`Incident`
links them, names the unit that leads them, and lets their updates go out as one message
per incident (the notifier, :mod:`gridcall.hub.notify.notifier`).

**What joins.** When an alert opens or reopens, :func:`decide` looks for another open
alert of the same matter that saw its matter within ``incidents.window`` (its last open,
evidence or reopen step) and is either

- in a **neighbouring grid**: declared in topology.yaml (``grids[].neighbours``, either
  side may say it) and/or any grid of the same community (``neighbours:
  [declared, same_community]``), or
- at the **same site**: its sensors within ``site_radius_m`` metres of the new alert's,
  whatever their grids.

If that alert is in an incident, the new alert joins it; if not, the two open a new one.
If several incidents qualify, the oldest wins (an alert is in one incident at most).
Matters in ``exclude`` (device faults by default) never make incidents.

**Who leads.** ``lead: first_covering`` (the default): the unit that first received the
incident (the first alert's responsible unit when the incident formed) leads it, as the
first receiving unit leads multi-unit cases (DOMAIN.md), *if* its subtree covers every
grid of the incident; otherwise, and whenever a join takes the incident beyond the
lead's subtree, the lowest unit whose subtree covers all its grids (the community of two
grids of one community, their town across communities). A grid never leads in another
grid. ``lead: lowest_covering`` always takes the lowest covering unit. The lead is a
coordinator: each alert keeps its own unit, tier and deadlines, and the lead hears of
every update of the incident.

Every incident change is an :class:`IncidentStep` (``open`` with the two alerts,
``join`` with one more) in the incident ledger (:mod:`gridcall.hub.desk.incident_ledger`),
folded by :func:`apply`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from gridcall.config import ConfigSet
from gridcall.config.desk_rules import IncidentRules
from gridcall.wire.clock import ns
from gridcall.wire.ladder import LEVELS, UnitLevel

IncidentAction = Literal["open", "join"]


@dataclass(frozen=True, slots=True)
class Member:
    """What :func:`decide` needs to know of an alert."""

    alert_id: str
    matter: str
    grid: str
    unit: str
    """Its responsible unit now."""
    sensors: tuple[str, ...]
    last_seen: int
    """Its latest open, evidence or reopen step (ns)."""
    open: bool = True


@dataclass(frozen=True, slots=True)
class Incident:
    incident_id: str
    matter: str
    alerts: tuple[str, ...]
    """First first."""
    grids: tuple[str, ...]
    lead: str
    lead_level: UnitLevel
    first: str
    """The unit that first received it."""
    opened_at: int
    updated_at: int
    n: int = 1


@dataclass(frozen=True, slots=True)
class IncidentStep:
    incident_id: str
    n: int
    action: IncidentAction
    at: int
    alerts: tuple[str, ...]
    """``open``: the alert already there and the new one; ``join``: the new one."""
    grids: tuple[str, ...]
    """The incident's grids after the step."""
    lead: str
    lead_level: UnitLevel
    matter: str
    first: str
    reason: str


class IllegalIncidentStep(ValueError):
    pass


def apply(incident: Incident | None, step: IncidentStep) -> Incident:
    if incident is None:
        if step.action != "open" or step.n != 1:
            raise IllegalIncidentStep(f"incident {step.incident_id}: {step.action} (step "
                                      f"{step.n}) needs an open step first")
        return Incident(incident_id=step.incident_id, matter=step.matter, alerts=step.alerts,
                        grids=step.grids, lead=step.lead, lead_level=step.lead_level,
                        first=step.first, opened_at=step.at, updated_at=step.at)
    if step.action != "join" or step.n != incident.n + 1:
        raise IllegalIncidentStep(f"step {step.n} ({step.action}) does not follow step "
                                  f"{incident.n} of {incident.incident_id}")
    return replace(incident, alerts=tuple(dict.fromkeys((*incident.alerts, *step.alerts))),
                   grids=step.grids, lead=step.lead, lead_level=step.lead_level,
                   updated_at=step.at, n=step.n)


class Neighbours:
    """Which grids border which (and which sensors share a site), from the config."""

    def __init__(self, config: ConfigSet, rules: IncidentRules) -> None:
        self.config = config
        self.rules = rules
        pairs: dict[str, set[str]] = {}
        if "declared" in rules.neighbours:
            for town in config.topology.district.towns:
                for community in town.communities:
                    for grid in community.grids:
                        for other in grid.neighbours:
                            pairs.setdefault(grid.id, set()).add(other)
                            pairs.setdefault(other, set()).add(grid.id)
        self._declared = pairs
        self._coords = {s.id: s.coordinates for s in config.sensors.values()}

    def grids(self, a: str, b: str) -> bool:
        """Whether grids ``a`` and ``b`` (different ones) are neighbours."""
        if a == b:
            return False
        if b in self._declared.get(a, ()):
            return True
        if "same_community" in self.rules.neighbours:
            pa, pb = self.config.units[a].path, self.config.units[b].path
            return pa[:3] == pb[:3]
        return False

    def site(self, sensors: Iterable[str], others: Iterable[str]) -> bool:
        """Whether a sensor of ``sensors`` lies within ``site_radius_m`` of one of
        ``others``."""
        radius = self.rules.site_radius_m
        if radius <= 0:
            return False
        span = radius / METRES_PER_DEGREE  # latitude degrees: a cheap first test
        mine = [self._coords[s] for s in sensors if s in self._coords]
        theirs = [self._coords[s] for s in others if s in self._coords]
        return any(abs(p[1] - q[1]) <= span and metres(p, q) <= radius
                   for p in mine for q in theirs)


EARTH_RADIUS_M = 6_371_000
METRES_PER_DEGREE = 2 * math.pi * EARTH_RADIUS_M / 360
"""Along a meridian: two points further apart in latitude are further apart than this."""


def metres(p: tuple[float, float], q: tuple[float, float]) -> float:
    """Great-circle distance between two ``(lon, lat)`` points, in metres."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*p, *q))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def covering(config: ConfigSet, grids: Iterable[str]) -> tuple[str, UnitLevel]:
    """The lowest unit whose subtree holds every one of ``grids``."""
    paths = [config.units[g].path for g in grids]
    common = paths[0]
    for path in paths[1:]:
        k = 0
        while k < min(len(common), len(path)) and common[k] == path[k]:
            k += 1
        common = common[:k]
    return common[-1], LEVELS[len(common) - 1]


def lead_of(config: ConfigSet, rules: IncidentRules, first: str,
            grids: Iterable[str]) -> tuple[str, UnitLevel]:
    """Who leads an incident over ``grids`` that ``first`` received first (see the module
    docstring)."""
    grids = tuple(grids)
    lowest = covering(config, grids)
    if rules.lead == "lowest_covering":
        return lowest
    unit = config.units[first]
    if all(config.units[g].path[:len(unit.path)] == unit.path for g in grids):
        return unit.id, unit.level
    return lowest


class IncidentBook:
    """Every incident, folded from its steps, and which alert is in which."""

    def __init__(self) -> None:
        self._all: dict[str, Incident] = {}
        self._of: dict[str, str] = {}
        self._next = 1

    def absorb(self, step: IncidentStep) -> Incident:
        incident = apply(self._all.get(step.incident_id), step)
        self._all[incident.incident_id] = incident
        for alert_id in incident.alerts:
            self._of.setdefault(alert_id, incident.incident_id)
        number = incident.incident_id.removeprefix("IN")
        if number.isdigit():
            self._next = max(self._next, int(number) + 1)
        return incident

    def next_id(self) -> str:
        return f"IN{self._next:06d}"

    def copy(self) -> IncidentBook:
        """A scratch copy (to decide several steps before any is written)."""
        other = IncidentBook()
        other._all, other._of, other._next = dict(self._all), dict(self._of), self._next
        return other

    def get(self, incident_id: str) -> Incident:
        return self._all[incident_id]

    def of(self, alert_id: str) -> Incident | None:
        incident_id = self._of.get(alert_id)
        return None if incident_id is None else self._all[incident_id]

    def all(self) -> list[Incident]:
        return list(self._all.values())


def decide(config: ConfigSet, rules: IncidentRules, neighbours: Neighbours,
           book: IncidentBook, new: Member, others: Iterable[Member], now: int
           ) -> IncidentStep | None:
    """The incident step an alert that just opened or reopened (``new``) makes, given the
    other alerts (``others``): join the oldest qualifying incident, or open one with the
    oldest qualifying alert; None if nothing qualifies or it is in an incident already."""
    if not rules.makes_incidents(new.matter) or book.of(new.alert_id) is not None:
        return None
    window = ns(rules.window)
    best: tuple[tuple[int, str, str], Member, str] | None = None
    for other in others:
        if (other.alert_id == new.alert_id or other.matter != new.matter or not other.open
                or now - other.last_seen > window):
            continue
        if neighbours.grids(new.grid, other.grid):
            why = f"{new.matter} in neighbouring grids {other.grid} and {new.grid}"
        elif neighbours.site(new.sensors, other.sensors):
            why = (f"{new.matter} at one site ({rules.site_radius_m:g} m) in {other.grid} "
                   f"and {new.grid}")
        else:
            continue
        incident = book.of(other.alert_id)
        rank = ((0, incident.incident_id, other.alert_id) if incident is not None
                else (1, "", other.alert_id))  # the oldest incident, then the oldest alert
        if best is None or rank < best[0]:
            best = (rank, other, why)
    if best is None:
        return None
    _, other, why = best
    why += f" within {_minutes(window)}"
    incident = book.of(other.alert_id)
    if incident is not None:
        grids = tuple(dict.fromkeys((*incident.grids, new.grid)))
        current = config.units[incident.lead]
        keeps = all(config.units[g].path[:len(current.path)] == current.path for g in grids)
        lead, level = ((incident.lead, incident.lead_level) if keeps
                       else lead_of(config, rules, incident.first, grids))
        return IncidentStep(incident.incident_id, incident.n + 1, "join", now,
                            (new.alert_id,), grids, lead, level, new.matter, incident.first,
                            why)
    grids = tuple(dict.fromkeys((other.grid, new.grid)))
    lead, level = lead_of(config, rules, other.unit, grids)
    return IncidentStep(book.next_id(), 1, "open", now, (other.alert_id, new.alert_id),
                        grids, lead, level, new.matter, other.unit, why)


def _minutes(window_ns: int) -> str:
    minutes = window_ns // (60 * 10**9)
    return f"{minutes}m" if minutes else f"{window_ns // 10**9}s"


def members(incident: Incident, states: Mapping[str, Member]) -> list[Member]:
    return [states[a] for a in incident.alerts if a in states]


__all__ = ["IllegalIncidentStep", "Incident", "IncidentAction", "IncidentBook",
           "IncidentStep", "Member", "Neighbours", "apply", "covering", "decide", "lead_of",
           "members", "metres"]
