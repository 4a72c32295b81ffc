"""The desk's policy: what an alert becomes, in one place. Pure: a function of the config
set, the facts given and the time; no I/O, no clock, no memory.

Three questions, each answered with a :class:`Decision` (tier, route, deadlines, reason):

- :meth:`Policy.opening`: what an opening event becomes: the matter's base tier raised by
  the tier rules of :mod:`gridcall.config.rules` (severity, sensitive sites, spread);
- :meth:`Policy.on_evidence`: what new evidence raises: the tier the rules (now with spread
  and persistence) put an open alert at, if above its tier; None otherwise;
- :meth:`Policy.on_breach`: what a deadline breach escalates to: one tier up, or None at A
  (nowhere higher to go); :meth:`Policy.on_call_upward` is the same step for a unit's call.

Every decision's route and deadlines come from :meth:`Policy.at_tier`, the one lookup: the
responsible unit follows the tier up the ladder from the sensor's grid (D grid,
C community, B town, A district with the town), and the deadlines are the matter's at
that tier (the order is in :mod:`gridcall.config.rules`), counted from the decision's
instant. The desk (:mod:`gridcall.hub.desk.desk`) only groups, commits and calls hooks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from gridcall.config import ConfigSet, SensorSpec
from gridcall.config.calendars import NO_CALENDARS, CalendarsFile
from gridcall.config.models import Matter, MatterDeadlines, Responsibility
from gridcall.config.plans import Plan
from gridcall.config.rules import TierRules
from gridcall.hub.desk.intake import Call
from gridcall.wire import AnomalyEvent, Deadlines, Departments, RiskAlert, Severity
from gridcall.wire.clock import NS, ns
from gridcall.wire.ladder import RESPONSIBLE_LEVEL, Tier, UnitLevel, above, tier_up

UNCLASSIFIED = Matter(
    code="UNCLASSIFIED", name="未归类异常", type="daily", base_tier="B",
    departments=Responsibility(), plan=Plan(summary="No matter in the catalog claims this "
    "anomaly; the district (区政府兜底) owns it until the catalog is extended."),
)

ADDRESS_DEPTH: Mapping[Tier, int] = MappingProxyType({"D": 4, "C": 3, "B": 2, "A": 2})
"""How many levels of the sensor's path (district, town, community, grid) address the
alert."""

Place = tuple[str, str, str, str]
"""A sensor's grid path: district, town, community, grid."""


class UnknownSensor(LookupError):
    def __init__(self, sensor: str, agent: str) -> None:
        super().__init__(f"event from agent {agent!r} names sensor {sensor!r}, "
                         "which is not in the config")
        self.sensor = sensor


@dataclass(frozen=True, slots=True)
class Route:
    unit: str
    level: UnitLevel
    address: tuple[str, ...]
    """The unit path the alert topic is built from. For tier A it is the town's path,
    so the town and the district (subscribed to its whole tree) both receive it."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Where an alert stands after a decision of the policy."""

    tier: Tier
    route: Route
    deadlines: Deadlines
    """Absolute (ns, desk clock), counted from the decision's instant."""
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    tier: Tier
    up: int
    reasons: tuple[str, ...]
    """One per rule that raised the tier, e.g. ``"spread: 3 sensors within 30m +1"``."""

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def route(tier: Tier, sensor_path: Place) -> Route:
    level = RESPONSIBLE_LEVEL[tier]
    address = sensor_path[: ADDRESS_DEPTH[tier]]
    unit = sensor_path[0] if tier == "A" else address[-1]
    return Route(unit, level, address)


def absolute(deadlines: MatterDeadlines, opened_at: int,
             calendars: CalendarsFile = NO_CALENDARS) -> Deadlines:
    """The deadlines counted from ``opened_at`` (ns): plain durations on the wall clock,
    working time in the block's calendar (:mod:`gridcall.config.calendars`)."""
    cal = deadlines.calendar
    return Deadlines(response=calendars.due(opened_at, deadlines.response, cal),
                     arrival=calendars.due(opened_at, deadlines.arrival, cal),
                     disposal=calendars.due(opened_at, deadlines.disposal, cal))


def _span(span_ns: int) -> str:
    s = span_ns // NS
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def judge(rules: TierRules, base: Tier, *, severity: Severity, tags: Iterable[str],
          spread: Mapping[str, int], persisted_ns: int = 0) -> Verdict:
    """The tier ``base`` rises to under ``rules`` for an anomaly of this severity, on a
    sensor with these site tags, with this spread, reported for ``persisted_ns``."""
    reasons: list[str] = []
    up = 0
    if (n := rules.severity.get(severity, 0)) > 0:
        up += n
        reasons.append(f"severity {severity} +{n}")
    sites: dict[str, int] = {str(k): v for k, v in rules.sites.items()}
    site = max(((sites[t], t) for t in tags if sites.get(t, 0) > 0), default=None)
    if site is not None:
        up += site[0]
        reasons.append(f"site {site[1]} +{site[0]}")
    window = _span(ns(rules.spread.window))
    spread_rule = max(((r.up, r) for r in rules.spread.when if spread.get(r.of, 0) >= r.count),
                      default=None, key=lambda x: x[0])
    if spread_rule is not None:
        r = spread_rule[1]
        up += r.up
        reasons.append(f"spread: {spread[r.of]} {r.of} within {window} +{r.up}")
    lasting = max(((p.up, p) for p in rules.persistence
                   if persisted_ns >= ns(p.longer_than)),
                  default=None, key=lambda x: x[0])
    if lasting is not None:
        p = lasting[1]
        up += p.up
        reasons.append(f"persistence: reported for over {_span(ns(p.longer_than))} +{p.up}")
    return Verdict(tier_up(base, up), up, tuple(reasons))


class Policy:
    """The policy of one config set (frozen, so a policy never changes under the desk)."""

    def __init__(self, config: ConfigSet) -> None:
        self.config = config
        self.rules = config.matters.rules
        self._matters: dict[str, Matter] = {m.code: m for m in config.matters.matters}
        self._matters[UNCLASSIFIED.code] = UNCLASSIFIED
        self._unspread = frozenset({config.hub.boards.offline_matter})
        self._per_agent = frozenset({config.hub.boards.offline_matter})

    # ------------------------------------------------------------------ matters

    def matter(self, code: str) -> Matter | None:
        """The catalog's matter ``code`` (or :data:`UNCLASSIFIED`), None if unknown."""
        return self._matters.get(code)

    def matter_for(self, sensor_kind: str, anomaly_kind: str) -> Matter:
        """The matter an anomaly of this kind on this sensor kind makes; UNCLASSIFIED if
        no trigger of the catalog claims it."""
        return self.config.matter_for(sensor_kind, anomaly_kind) or UNCLASSIFIED

    def spreads(self, matter: str) -> bool:
        """Whether spread rules apply to ``matter``: not to an edge agent's outage, which
        is one incident, not one seen spreading."""
        return matter not in self._unspread

    def group(self, matter: str, grid: str, agent: str) -> tuple[str, str]:
        """What an anomaly of ``matter`` in ``grid`` from ``agent`` groups with: the open
        alert of the matter in the grid; for an edge agent's outage, the open outage of
        that agent, whatever grids it serves (one outage, one alert)."""
        return (matter, f"agent:{agent}") if matter in self._per_agent else (matter, grid)

    def sensor(self, event: AnomalyEvent) -> SensorSpec:
        """The sensor the event names; :class:`UnknownSensor` if the config has none."""
        sensor = self.config.sensors.get(event.sensor)
        if sensor is None:
            raise UnknownSensor(event.sensor, event.agent)
        return sensor

    def departments(self, matter: Matter) -> tuple[str, ...]:
        """The departments the catalog names for ``matter``, lead first; for a device
        fault, the maintenance department leads (:mod:`gridcall.config.maintenance`)."""
        upkeep = self.config.matters.maintenance
        first = (upkeep.department,) if self.config.matters.maintained(matter.code) and (
            upkeep is not None) else ()
        return tuple(dict.fromkeys(
            d for d in (*first, matter.departments.lead, *matter.departments.co) if d))

    def ownerless(self, matter: Matter) -> bool:
        """A matter nobody owns: no matter of the catalog claims the anomaly
        (:data:`UNCLASSIFIED`), or the catalog names no lead department for it. The
        district owns it (区政府兜底) at whatever tier it stands. A device fault is owned by
        maintenance, lead or not."""
        if self.config.matters.maintained(matter.code):
            return False
        return matter.code == UNCLASSIFIED.code or matter.departments.lead is None

    def top_tier(self, matter: Matter) -> Tier:
        """The highest tier a missed deadline or a tier rule takes ``matter`` to: A, or
        the maintenance section's ``top_tier`` for a device fault."""
        return self.config.matters.top_tier(matter.code)

    def _held(self, matter: Matter, tier: Tier) -> tuple[Tier, str]:
        """``tier`` held at the matter's top tier, and why if it was."""
        top = self.top_tier(matter)
        if above(tier, top):
            return top, f"held at {top}: a device fault goes to maintenance"
        return tier, ""

    # ------------------------------------------------------------------ decisions

    def at_tier(self, matter: Matter, tier: Tier, place: Place, at: int,
                reason: str) -> Decision:
        """The route and deadlines of ``matter`` at ``tier`` for a sensor at ``place``,
        deadlines counted from ``at``: every decision's one lookup. A matter nobody owns
        goes to the district at any tier (:meth:`ownerless`), addressed as tier A is."""
        where = route("A", place) if self.ownerless(matter) else route(tier, place)
        return Decision(tier=tier, route=where,
                        deadlines=absolute(self.config.deadlines_for(matter, tier), at,
                                           self.config.calendars),
                        reason=reason)

    def opening(self, matter: Matter, sensor: SensorSpec, *, severity: Severity,
                spread: Mapping[str, int], at: int) -> Decision:
        """What an opening anomaly of ``matter`` on ``sensor`` becomes at ``at``."""
        verdict = judge(self.rules, matter.base_tier, severity=severity, tags=sensor.tags,
                        spread=spread)
        tier, held = self._held(matter, verdict.tier)
        why = "; ".join(r for r in (verdict.reason or f"base tier {matter.base_tier}", held)
                        if r)
        return self.at_tier(matter, tier, sensor.path, at, why)

    def on_call(self, matter: Matter, place: Place, *, severity: Severity,
                tags: Iterable[str], at: int, least: Tier | None = None) -> Decision:
        """What a call (a person's report, a system's event) of ``matter`` in the grid at
        ``place`` (with the grid's site ``tags``) becomes at ``at``: the matter's base
        tier raised by the severity and site rules (no spread: a call is no sensor), at
        least ``least`` if given. A call nobody classified (:data:`UNCLASSIFIED`) goes to
        triage at its tier: the town of the place, or the district
        (``hub.reports.triage``); a missed deadline then takes it to the district."""
        verdict = judge(self.rules, matter.base_tier, severity=severity, tags=tags,
                        spread={})
        tier = verdict.tier
        reasons = [verdict.reason or f"base tier {matter.base_tier}"]
        if least is not None and above(least, tier):
            tier = least
            reasons.append(f"the caller's severity puts it at {least}")
        tier, held = self._held(matter, tier)
        why = "; ".join(r for r in (*reasons, held) if r)
        decision = self.at_tier(matter, tier, place, at, why)
        if matter.code == UNCLASSIFIED.code and self.config.hub.reports.triage == "town":
            return replace(decision, route=route("B", place),
                           reason=f"{why}; unclassified: triage at the town")
        return decision

    def on_caller_tier(self, matter: Matter, tier: Tier, place: Place, least: Tier | None,
                       at: int) -> Decision | None:
        """What a call joining an open alert of ``matter`` at ``tier`` raises it to when
        the caller asks for at least ``least`` (an external system's severity mapped to a
        tier, red -> A): that tier (held at the matter's top tier), if above ``tier``;
        None otherwise."""
        if least is None:
            return None
        rise, held = self._held(matter, least)
        if not above(rise, tier):
            return None
        why = "; ".join(r for r in (f"the caller's severity puts it at {least}", held) if r)
        return self.at_tier(matter, rise, place, at, why)

    def on_evidence(self, matter: Matter, tier: Tier, place: Place, *, severity: Severity,
                    tags: Iterable[str], spread: Mapping[str, int], since: int,
                    at: int) -> Decision | None:
        """What new evidence at ``at`` raises an open alert of ``matter`` at ``tier``
        (reported since ``since``) to; None if the rules put it no higher."""
        verdict = judge(self.rules, matter.base_tier, severity=severity, tags=tags,
                        spread=spread, persisted_ns=at - since)
        rise, _ = self._held(matter, verdict.tier)
        if not above(rise, tier):
            return None
        return self.at_tier(matter, rise, place, at, verdict.reason)

    def on_breach(self, matter: Matter, tier: Tier, place: Place, deadline: str,
                  at: int) -> Decision | None:
        """What the breach of ``deadline`` (response, arrival, disposal) at ``at``
        escalates an alert at ``tier`` to: one tier up; None at A (nowhere higher) or at
        the matter's top tier (a device fault stays with maintenance): overdue there."""
        if tier == "A" or not above(self.top_tier(matter), tier):
            return None
        return self.at_tier(matter, tier_up(tier, 1), place, at, f"{deadline} deadline passed")

    def on_call_upward(self, matter: Matter, tier: Tier, place: Place, at: int,
                       reason: str) -> Decision:
        """What a unit's call upward (with its ``reason``) escalates an alert to: one tier
        up (the lifecycle refuses it at A)."""
        return self.at_tier(matter, tier_up(tier, 1), place, at, reason)

    def on_reopen(self, matter: Matter, tier: Tier, place: Place, at: int) -> Decision:
        """A recurrence within the reopen window: the same tier, deadlines anew."""
        return self.at_tier(matter, tier, place, at, "anomaly recurred")

    # ------------------------------------------------------------------ alerts

    def alert(self, event: AnomalyEvent, decision: Decision, *, matter: Matter,
              alert_id: str, at: int, grids: Iterable[str] = ()) -> RiskAlert:
        """The alert ``event`` opens at ``at`` under ``decision``; ``grids``: every grid
        it concerns, when more than the sensor's (an edge agent's outage)."""
        sensor = self.sensor(event)
        where = decision.route
        deps = self.departments(matter)
        if self.ownerless(matter):  # the district leads what nobody owns
            deps = (sensor.path[0], *deps)
        lead, *co = deps
        return RiskAlert(
            alert_id=alert_id, state="opened", matter=matter.code, matter_name=matter.name,
            matter_type=matter.type, tier=decision.tier, unit=where.unit,
            unit_level=where.level, unit_path=list(where.address),
            departments=Departments(lead=lead, co=co),
            sensor=sensor.id, sensor_kind=sensor.kind, grid=sensor.grid,
            anomaly_kind=event.kind, severity=event.severity, score=event.score,
            value=event.value, detected_at=event.ts, opened_at=at,
            deadlines=decision.deadlines, agent=event.agent, event_seq=event.seq,
            reason=decision.reason, grids=list(grids),
        )

    def call_alert(self, call: Call, decision: Decision, *, matter: Matter, place: Place,
                   alert_id: str, at: int) -> RiskAlert:
        """The alert ``call`` opens at ``at`` under ``decision``: its ``sensor`` and
        ``agent`` name the call's source, ``event_seq`` its number, ``anomaly_kind`` its
        kind (``report``, ``external``)."""
        deps = self.departments(matter)
        if self.ownerless(matter):
            deps = (place[0], *deps)
        lead, *co = deps
        where = decision.route
        return RiskAlert(
            alert_id=alert_id, state="opened", matter=matter.code, matter_name=matter.name,
            matter_type=matter.type, tier=decision.tier, unit=where.unit,
            unit_level=where.level, unit_path=list(where.address),
            departments=Departments(lead=lead, co=co),
            sensor=call.source, sensor_kind=call.kind, grid=call.grid,
            anomaly_kind=call.kind, severity=call.severity, score=1.0, value=None,
            detected_at=call.at, opened_at=at, deadlines=decision.deadlines,
            agent=call.source, event_seq=call.seq, reason=decision.reason,
            point=list(call.point) if call.point is not None else [],
        )

    def draft(self, event: AnomalyEvent, *, alert_id: str, now_ns: int,
              matter: Matter | None = None) -> RiskAlert:
        """The alert this event opens at its matter's base tier, before the tier rules
        (for an event whose phase is ``start``); of ``matter`` if given, else of the
        matter the catalog's triggers name. For tools and tests that build alerts
        without a desk."""
        sensor = self.sensor(event)
        matter = matter or self.matter_for(sensor.kind, event.kind)
        decision = self.at_tier(matter, matter.base_tier, sensor.path, now_ns, "")
        return self.alert(event, decision, matter=matter, alert_id=alert_id, at=now_ns)


__all__ = ["ADDRESS_DEPTH", "UNCLASSIFIED", "Decision", "Place", "Policy", "Route",
           "UnknownSensor", "Verdict", "absolute", "judge", "route"]
