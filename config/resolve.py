"""Cross-file checks, and the resolved config set the runtimes use.

:func:`load_config` is the one entry point: it reads the folder, validates each file,
checks every reference between files (a sensor's grid and agent, an agent's sensors, a
matter's departments and sensor kinds), merges per-kind defaults into each sensor, and
returns a frozen :class:`ConfigSet`, or raises :class:`ConfigError` listing every problem.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from gridcall.config.calendars import NO_CALENDARS, CalendarsFile, check_order_in
from gridcall.config.duty import NO_DUTY, DutyFile, Override, overlaps
from gridcall.config.external import NO_EXTERNAL, ExternalFile
from gridcall.config.loader import ConfigError, Loc, Problem, RawSet, format_path, read_set
from gridcall.config.models import (
    AgentSettings,
    AgentsFile,
    Department,
    DetectorSettings,
    HubFile,
    HubSettings,
    Limits,
    Location,
    Matter,
    MatterDeadlines,
    SensorsFile,
    Topology,
)
from gridcall.config.notify import NotifyFile
from gridcall.config.plans import LEVEL_ROLES, Plan
from gridcall.config.rules import MatterCatalog
from gridcall.config.sources import SourceSettings, map_problems, mapped_sensors
from gridcall.wire.ladder import Tier, UnitLevel
from gridcall.wire.provenance import Owners, Screen

NO_NOTIFY = NotifyFile()



@dataclass(frozen=True, slots=True)
class Unit:
    """A rung of the ladder. ``path`` holds the ids from the district down to this unit."""

    id: str
    name: str
    level: UnitLevel
    path: tuple[str, ...]
    location: Location
    tags: tuple[str, ...] = ()

    @property
    def parent(self) -> str | None:
        return self.path[-2] if len(self.path) > 1 else None


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """A sensor with its kind's defaults merged in and its place on the ladder."""

    id: str
    kind: str
    unit_of_measure: str
    grid: str
    path: tuple[str, str, str, str]
    agent: str
    coordinates: tuple[float, float]
    interval_s: float
    limits: Limits
    detector: DetectorSettings
    tags: tuple[str, ...]
    name: str


@dataclass(frozen=True, slots=True)
class AgentSpec:
    id: str
    name: str
    grid: str
    source: SourceSettings
    sensors: tuple[SensorSpec, ...]
    settings: AgentSettings


@dataclass(frozen=True, slots=True)
class ConfigSet:
    directory: Path
    topology: Topology
    matters: MatterCatalog
    hub: HubSettings
    units: Mapping[str, Unit]
    departments: Mapping[str, Department]
    sensors: Mapping[str, SensorSpec]
    agents: Mapping[str, AgentSpec]
    _matter_index: Mapping[tuple[str, str], Matter]
    notify: NotifyFile = NO_NOTIFY
    """Notification channels per unit (``notify.yaml``; none if the file is absent)."""
    duty: DutyFile = NO_DUTY
    """Persons, shifts and escalation policies (``roster.yaml``; none if absent)."""
    calendars: CalendarsFile = NO_CALENDARS
    """Working-hour calendars for deadlines in working time (``calendars.yaml``)."""
    external: ExternalFile = NO_EXTERNAL
    """Departments' business systems that call the desk (``external.yaml``)."""

    @property
    def district(self) -> Unit:
        return self.units[self.topology.district.id]

    def units_at(self, level: UnitLevel) -> list[Unit]:
        return [u for u in self.units.values() if u.level == level]

    def matter_for(self, sensor_kind: str, anomaly_kind: str) -> Matter | None:
        """The matter an anomaly of this kind on this sensor kind makes; a trigger naming
        the sensor kind wins over a ``"*"`` trigger. A ``fault`` (a value the sensor cannot
        produce) that no trigger names goes where a ``stuck`` sensor does: catalogs written
        before agents reported faults send them to their device-fault matter unchanged."""
        found = self._matter_index.get((sensor_kind, anomaly_kind)) or self._matter_index.get(
            ("*", anomaly_kind)
        )
        if found is None and anomaly_kind == "fault":
            return self.matter_for(sensor_kind, "stuck")
        return found

    def deadlines_for(self, matter: Matter, tier: Tier | None = None) -> MatterDeadlines:
        """The matter's deadlines, at ``tier`` if given (see :mod:`gridcall.config.rules`)."""
        if tier is None:
            return matter.deadlines or self.matters.default_deadlines[matter.type]
        return self.matters.deadlines_at(matter.code, matter.type, matter.deadlines, tier)

    def owners(self) -> Owners:
        """Which agent speaks for each sensor (:mod:`gridcall.wire.provenance`)."""
        return Owners.of((s.id, s.agent) for s in self.sensors.values())

    def screen(self) -> Screen:
        """The hub's check of reading batches: its owners and ``hub.max_batch_readings``."""
        return Screen(self.owners(), max_readings=self.hub.max_batch_readings)


class _Checker:
    def __init__(self, raw: RawSet) -> None:
        self.raw = raw
        self.problems = raw.problems
        self._said: set[Problem] = set()
        self._dropped = raw.dropped_ids

    def add(self, file: str, loc: Loc, reason: str) -> None:
        """A problem at ``loc`` of the file's (possibly salvaged) model, said once."""
        salvaged = self.raw.salvaged.get(file)
        if salvaged is not None:
            loc = salvaged.original(loc)
        doc = self.raw.docs.get(file)
        problem = Problem(file, format_path(loc), reason, doc.line(loc) if doc else None)
        if problem not in self._said:
            self._said.add(problem)
            self.problems.append(problem)

    def ref(self, file: str, loc: Loc, what: str, value: str, known: Collection[str]) -> bool:
        """True if ``value`` is known; else a problem, unless it names an item already
        reported as broken (that would be the same mistake twice)."""
        if value in known:
            return True
        if value in self._dropped:
            return False
        hint = difflib.get_close_matches(value, list(known), n=1)
        self.add(file, loc, f"unknown {what} {value!r}" + (
            f" (did you mean {hint[0]!r}?)" if hint else ""))
        return False


def _walk_units(topo: Topology) -> Iterator[tuple[Loc, Unit]]:
    d = topo.district
    yield ("district",), Unit(d.id, d.name, "district", (d.id,), d.location)
    for ti, t in enumerate(d.towns):
        tl: Loc = ("district", "towns", ti)
        yield tl, Unit(t.id, t.name, "town", (d.id, t.id), t.location)
        for ci, c in enumerate(t.communities):
            cl: Loc = (*tl, "communities", ci)
            yield cl, Unit(c.id, c.name, "community", (d.id, t.id, c.id), c.location)
            for gi, g in enumerate(c.grids):
                yield (*cl, "grids", gi), Unit(
                    g.id, g.name, "grid", (d.id, t.id, c.id, g.id), g.location, g.tags)


def _check_source_map(check: _Checker, index: int, agent: str, source: SourceSettings,
                      agent_of_sensor: Mapping[str, str], own: Collection[SensorSpec]) -> None:
    """A serial or Modbus map: consistent in itself, naming only this agent's sensors, and
    reading every one of them (an unmapped sensor would never report)."""
    at: Loc = ("agents", index, "source")
    for loc, reason in map_problems(source):
        check.add("agents.yaml", (*at, *loc), f"agent {agent!r}: {reason}")
    mapped: set[str] = set()
    for loc, sensor in mapped_sensors(source):
        mapped.add(sensor)
        owner = agent_of_sensor.get(sensor)
        if owner is None and sensor not in check._dropped:
            hint = difflib.get_close_matches(sensor, list(agent_of_sensor), n=1)
            check.add("agents.yaml", (*at, *loc), f"agent {agent!r}: unknown sensor {sensor!r}"
                      + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        elif owner is not None and owner != agent:
            check.add("agents.yaml", (*at, *loc), f"agent {agent!r}: sensor {sensor!r} names "
                      f"agent {owner!r} in sensors.yaml")
    salvaged = check.raw.salvaged.get("agents.yaml")
    if salvaged is not None:
        original = salvaged.original(at)
        if any(loc[:len(original)] == original for loc in salvaged.dropped):
            return  # a broken channel or register was dropped: its own problem says enough
    what = source.map_item
    if what is not None:
        for spec in own:
            if spec.id not in mapped:
                check.add("agents.yaml", at, f"agent {agent!r}: its sensor {spec.id!r} is read "
                          f"by no {what} of this {source.type} source, so it would never report")


def _check_plan(check: _Checker, index: int, plan: Plan,
                departments: Collection[str]) -> None:
    """A matter's plan against topology.yaml: the departments it dispatches and names as
    contacts exist, and each step's role is a level, ``responsible`` or a department."""
    at: Loc = ("matters", index, "plan")
    for j, d in enumerate(plan.dispatch):
        check.ref("matters.yaml", (*at, "dispatch", j, "department"), "department",
                  d.department, departments)
    for j, s in enumerate(plan.steps):
        check.ref("matters.yaml", (*at, "steps", j, "role"), "role (a level, "
                  "'responsible' or a department)", s.role, (*LEVEL_ROLES, *departments))
    for j, c in enumerate(plan.contacts):
        if c.department is not None:
            check.ref("matters.yaml", (*at, "contacts", j, "department"), "department",
                      c.department, departments)


def _check_duty(check: _Checker, duty: DutyFile, owners: Collection[str]) -> None:
    """roster.yaml against the ladder: units and persons named exist, a unit's shifts (and
    its overrides) of one role never overlap, policies name a unit, a level or default."""
    file = "roster.yaml"
    persons: dict[str, int] = {}
    for i, p in enumerate(duty.persons):
        if p.id in persons:
            check.add(file, ("persons", i, "id"), f"duplicate person {p.id!r}: already "
                      f"persons[{persons[p.id]}]")
        persons.setdefault(p.id, i)
        check.ref(file, ("persons", i, "unit"), "unit or department", p.unit, owners)
    for i, p in enumerate(duty.persons):
        if p.leader is not None:
            check.ref(file, ("persons", i, "leader"), "person", p.leader, persons)
    for unit, shifts in duty.shifts.items():
        check.ref(file, ("shifts", unit), "unit or department", unit, owners)
        for j, s in enumerate(shifts):
            check.ref(file, ("shifts", unit, j, "person"), "person", s.person, persons)
        for role in ("duty", "leader"):
            spans = [(a, b, j) for j, s in enumerate(shifts) if s.role == role
                     for a, b in s.spans()]
            for a, b in overlaps(spans):
                check.add(file, ("shifts", unit, b), f"this {role} shift overlaps "
                          f"shifts.{unit}[{a}]: one person on {role} at a time")
    for i, o in enumerate(duty.overrides):
        check.ref(file, ("overrides", i, "unit"), "unit or department", o.unit, owners)
        check.ref(file, ("overrides", i, "person"), "person", o.person, persons)
        for j, other in enumerate(duty.overrides[:i]):
            if (other.unit, other.role) == (o.unit, o.role) and _meets(other, o, duty):
                check.add(file, ("overrides", i), f"overlaps overrides[{j}] of {o.unit} "
                          f"({o.role}): one person on {o.role} at a time")
    for key in duty.escalation:
        check.ref(file, ("escalation", key), "unit, level or 'default'", key,
                  {*owners, "default", "grid", "community", "town", "district"})


def _deadline_blocks(catalog: MatterCatalog) -> Iterator[tuple[Loc, MatterDeadlines]]:
    """Every deadlines block of matters.yaml, with its key path."""
    for type_, d in catalog.default_deadlines.items():
        yield ("default_deadlines", type_), d
    for named, tiers in catalog.tier_deadlines.items():
        for tier, d in tiers.items():
            yield ("tier_deadlines", named, tier), d
    for i, m in enumerate(catalog.matters):
        if m.deadlines is not None:
            yield ("matters", i, "deadlines"), m.deadlines
    if catalog.maintenance is not None and catalog.maintenance.deadlines is not None:
        yield ("maintenance", "deadlines"), catalog.maintenance.deadlines


def _check_calendars(check: _Checker, catalog: MatterCatalog,
                     calendars: CalendarsFile) -> None:
    """Deadlines in working time name a calendar calendars.yaml has, and keep their order
    in its working day."""
    for loc, d in _deadline_blocks(catalog):
        if not d.in_working_time():
            if d.calendar is not None:
                check.ref("matters.yaml", (*loc, "calendar"), "calendar", d.calendar,
                          calendars.calendars)
            continue
        calendar = calendars.named(d.calendar)
        if calendar is None:
            if d.calendar is not None:
                check.ref("matters.yaml", (*loc, "calendar"), "calendar", d.calendar,
                          calendars.calendars)
            else:
                check.add("matters.yaml", loc, "deadlines in working time need a calendar: "
                          "name one (calendar: NAME) or set calendars.yaml's default"
                          + ("" if calendars.calendars else
                             " (calendars.yaml has no calendar)"))
            continue
        why = check_order_in(d.spans(), calendar)
        if why is not None:
            check.add("matters.yaml", loc, "deadlines must satisfy response <= arrival <= "
                      f"disposal: {why}")


def _check_external(check: _Checker, external: ExternalFile, *, matters: Collection[str],
                    grids: Collection[str], departments: Collection[str],
                    agents: Collection[str]) -> None:
    """external.yaml against the rest: matters of the catalog, grids and departments of
    topology.yaml, and ids that are no edge agent's (both number calls in the ledger)."""
    file = "external.yaml"
    for i, s in enumerate(external.systems):
        if s.id in agents:
            check.add(file, ("systems", i, "id"), f"system {s.id!r} has the id of an edge "
                      "agent (agents.yaml): give it an id of its own")
        if s.department is not None:
            check.ref(file, ("systems", i, "department"), "department", s.department,
                      departments)
        for kind, matter in s.events.items():
            check.ref(file, ("systems", i, "events", kind), "matter", matter, matters)
        for site_id, site in s.sites.items():
            check.ref(file, ("systems", i, "sites", site_id, "grid"), "grid", site.grid,
                      grids)


def _meets(a: Override, b: Override, duty: DutyFile) -> bool:
    zone = duty.zone

    def aware(when: datetime) -> datetime:
        return when if when.tzinfo is not None else when.replace(tzinfo=zone)
    return aware(a.start) < aware(b.end) and aware(b.start) < aware(a.end)


def _check_batch_bound(check: _Checker, index: int, agent: str, own_settings: bool,
                       batch: int, hub_limit: int) -> None:
    """An agent must not send batches the hub refuses whole (``too_many_readings``)."""
    if batch <= hub_limit:
        return
    at: Loc = (("agents", index, "settings", "batch_max_readings") if own_settings
               else ("defaults", "batch_max_readings"))
    who = f"agent {agent!r} sends" if own_settings else "agents send"
    check.add("agents.yaml", at, f"{who} up to {batch} readings a batch, but the hub "
              f"refuses batches of more than {hub_limit} (hub.yaml: "
              "hub.max_batch_readings): lower this or raise that")


def load_config(directory: Path | str, *, known_detectors: Collection[str] | None = None,
                check_detector: Callable[[SensorSpec], str | None] | None = None
                ) -> ConfigSet:
    """Read, validate and cross-check a config set; ConfigError lists every problem.

    ``known_detectors`` (names) and ``check_detector`` (why a sensor's detector settings
    would not run, or None) come from the caller, so that config stays free of the
    detector library; ``gridcall`` passes the registry and the edge agent's own check.
    """
    raw = read_set(Path(directory))
    check = _Checker(raw)
    topo = raw.models.get("topology.yaml")
    sensors_file = raw.models.get("sensors.yaml")
    agents_file = raw.models.get("agents.yaml")
    matters_file = raw.models.get("matters.yaml")
    hub_file = raw.models.get("hub.yaml")

    units: dict[str, Unit] = {}
    departments: dict[str, Department] = {}
    ids_seen: dict[str, str] = {}

    def unique(file: str, loc: Loc, value: str, what: str) -> None:
        if value in ids_seen:
            check.add(file, loc, f"duplicate id {value!r}: already used by {ids_seen[value]}")
        else:
            ids_seen[value] = f"{what} in {file}"

    if isinstance(topo, Topology):
        for unit_loc, unit in _walk_units(topo):
            unique("topology.yaml", (*unit_loc, "id"), unit.id, unit.level)
            units.setdefault(unit.id, unit)
        for i, dep in enumerate(topo.departments):
            unique("topology.yaml", ("departments", i, "id"), dep.id, "department")
            departments[dep.id] = dep
    grids = {u.id: u for u in units.values() if u.level == "grid"}
    if isinstance(topo, Topology):
        for t_i, t in enumerate(topo.district.towns):
            for c_i, c in enumerate(t.communities):
                for g_i, g in enumerate(c.grids):
                    for n_i, other in enumerate(g.neighbours):
                        near: Loc = ("district", "towns", t_i, "communities", c_i, "grids",
                                     g_i, "neighbours", n_i)
                        if other == g.id:
                            check.add("topology.yaml", near, f"grid {g.id} cannot neighbour "
                                      "itself")
                        else:
                            check.ref("topology.yaml", near, "grid", other, grids)
        towns = {u.id for u in units.values() if u.level == "town"}
        for i, dep in enumerate(topo.departments):
            for j, town in enumerate(dep.towns):
                check.ref("topology.yaml", ("departments", i, "towns", j), "town", town, towns)

    sensors: dict[str, SensorSpec] = {}
    agent_of_sensor: dict[str, str] = {}
    kinds: Collection[str] = ()
    if isinstance(sensors_file, SensorsFile):
        kinds = sensors_file.kinds
        for i, s in enumerate(sensors_file.sensors):
            unique("sensors.yaml", ("sensors", i, "id"), s.id, "sensor")
            # known by id and agent even if it cannot be resolved below (its grid or kind
            # is wrong, or topology.yaml unreadable): agents.yaml naming it is not wrong
            agent_of_sensor.setdefault(s.id, s.agent)
            ok = check.ref("sensors.yaml", ("sensors", i, "kind"), "sensor kind", s.kind, kinds)
            if topo is not None:
                ok &= check.ref("sensors.yaml", ("sensors", i, "grid"), "grid", s.grid, grids)
            if not ok or s.grid not in grids:
                continue
            kind = sensors_file.kinds[s.kind]
            grid = grids[s.grid]
            sensors[s.id] = SensorSpec(
                id=s.id, kind=s.kind, unit_of_measure=s.unit or kind.unit, grid=s.grid,
                path=(grid.path[0], grid.path[1], grid.path[2], grid.path[3]), agent=s.agent,
                coordinates=s.coordinates,
                interval_s=(s.interval or kind.interval).total_seconds(),
                limits=s.limits or kind.limits, detector=s.detector or kind.detector,
                tags=tuple(dict.fromkeys(s.tags + grid.tags)), name=s.name or s.id,
            )
            det = (s.detector or kind.detector).name
            loc: Loc = ("sensors", i, "detector") if s.detector else (
                "kinds", s.kind, "detector")
            if known_detectors is not None and not check.ref(
                    "sensors.yaml", (*loc, "name"), "detector", det, known_detectors):
                continue
            if check_detector is not None and (reason := check_detector(sensors[s.id])):
                check.add("sensors.yaml", (*loc, "params"), reason)

    agents: dict[str, AgentSpec] = {}
    hub_limit = (hub_file.hub if isinstance(hub_file, HubFile)
                 else HubSettings()).max_batch_readings
    if isinstance(agents_file, AgentsFile):
        agent_ids = {a.id for a in agents_file.agents}
        # each agent's sensors, in sensors.yaml's order: one pass, not one per agent (a
        # scan per agent was 10 s at 10,000 sensors and 1,000 agents)
        own_sensors: dict[str, list[SensorSpec]] = {}
        for spec in sensors.values():
            own_sensors.setdefault(spec.agent, []).append(spec)
        for i, a in enumerate(agents_file.agents):
            unique("agents.yaml", ("agents", i, "id"), a.id, "agent")
            if topo is not None:
                check.ref("agents.yaml", ("agents", i, "grid"), "grid", a.grid, grids)
            listed = a.sensors
            if listed is not None and sensors_file is not None:
                for j, sid in enumerate(listed):
                    at: Loc = ("agents", i, "sensors", j)
                    if check.ref("agents.yaml", at, "sensor", sid, agent_of_sensor) and (
                        agent_of_sensor[sid] != a.id
                    ):
                        check.add("agents.yaml", at, f"sensor {sid!r} names agent "
                                  f"{agent_of_sensor[sid]!r} in sensors.yaml, not {a.id!r}")
            own = tuple(own_sensors.get(a.id, ()))
            # A source's map is checked against the agent's sensors, which need both
            # sensors.yaml and topology.yaml; one that could not be read is its own one
            # problem, not a dozen blamed on agents.yaml.
            if sensors_file is not None and topo is not None:
                for loc, reason in a.source.agent_problems({s.id: s.unit_of_measure
                                                            for s in own}):
                    check.add("agents.yaml", ("agents", i, "source", *loc), reason)
                _check_source_map(check, i, a.id, a.source, agent_of_sensor, own)
            agents[a.id] = AgentSpec(a.id, a.name or a.id, a.grid, a.source, own,
                                     a.settings or agents_file.defaults)
            _check_batch_bound(check, i, a.id, a.settings is not None,
                               agents[a.id].settings.batch_max_readings, hub_limit)
        if isinstance(sensors_file, SensorsFile):
            for i, s in enumerate(sensors_file.sensors):
                check.ref("sensors.yaml", ("sensors", i, "agent"), "agent", s.agent, agent_ids)

    index: dict[tuple[str, str], Matter] = {}
    if isinstance(matters_file, MatterCatalog):
        codes = {m.code for m in matters_file.matters}
        for named in matters_file.tier_deadlines:
            check.ref("matters.yaml", ("tier_deadlines", named),
                      "matter type or matter code", named,
                      {"patrol", "emergency", "daily"} | codes)
        incidents = matters_file.incidents
        if "incidents" in matters_file.model_fields_set:  # the defaults name device faults
            for part, listed in (("matters", incidents.matters),
                                 ("exclude", incidents.exclude)):
                for mi, code in enumerate(listed):
                    check.ref("matters.yaml", ("incidents", part, mi), "matter", code, codes)
        if "inhibit" in matters_file.model_fields_set:  # the default names SENSOR-FAULT
            for ri, rule in enumerate(matters_file.inhibit):
                for mi, code in enumerate(rule.matters):
                    check.ref("matters.yaml", ("inhibit", ri, "matters", mi), "matter", code,
                              codes)
        if matters_file.audits is not None:
            for code in matters_file.audits.matters:
                check.ref("matters.yaml", ("audits", "matters", code), "matter", code, codes)
        upkeep = matters_file.maintenance
        if upkeep is not None:
            for mi, code in enumerate(upkeep.matters):
                check.ref("matters.yaml", ("maintenance", "matters", mi), "matter", code,
                          codes)
            if topo is not None:
                check.ref("matters.yaml", ("maintenance", "department"), "department",
                          upkeep.department, departments)
        claimed: dict[tuple[str, str], str] = {}
        for i, m in enumerate(matters_file.matters):
            unique("matters.yaml", ("matters", i, "code"), m.code, "matter")
            if topo is not None:
                if m.departments.lead is not None:
                    check.ref("matters.yaml", ("matters", i, "departments", "lead"),
                              "department", m.departments.lead, departments)
                for j, dep_id in enumerate(m.departments.co):
                    check.ref("matters.yaml", ("matters", i, "departments", "co", j),
                              "department", dep_id, departments)
                _check_plan(check, i, m.plan, departments)
            for ti, trig in enumerate(m.triggers):
                for ki, kind_id in enumerate(trig.sensor_kinds):
                    if kind_id != "*" and sensors_file is not None:
                        check.ref("matters.yaml", ("matters", i, "triggers", ti, "sensor_kinds",
                                                   ki), "sensor kind", kind_id, kinds)
                    for anomaly in trig.anomaly_kinds:
                        key = (kind_id, anomaly)
                        if key in claimed and claimed[key] != m.code:
                            check.add("matters.yaml", ("matters", i, "triggers", ti),
                                      f"{kind_id}/{anomaly} is already claimed by matter "
                                      f"{claimed[key]!r}; one anomaly makes one matter")
                        claimed[key] = m.code
                        index.setdefault(key, m)

    calendars_file = raw.models.get("calendars.yaml")
    if isinstance(matters_file, MatterCatalog) and isinstance(calendars_file, CalendarsFile):
        _check_calendars(check, matters_file, calendars_file)

    external_file = raw.models.get("external.yaml")
    if isinstance(external_file, ExternalFile) and topo is not None and isinstance(
            matters_file, MatterCatalog):
        _check_external(check, external_file,
                        matters={m.code for m in matters_file.matters} | {"UNCLASSIFIED"},
                        grids=grids, departments=departments, agents=agents)

    notify_file = raw.models.get("notify.yaml")
    if isinstance(notify_file, NotifyFile) and topo is not None:
        for unit_id in notify_file.units:  # a department too: it hears what it leads
            check.ref("notify.yaml", ("units", unit_id), "unit or department", unit_id,
                      set(units) | set(departments))

    duty_file = raw.models.get("roster.yaml")
    if isinstance(duty_file, DutyFile) and topo is not None:
        _check_duty(check, duty_file, set(units) | set(departments))

    if raw.problems or not isinstance(topo, Topology) or not isinstance(
        matters_file, MatterCatalog
    ):
        raise ConfigError(raw.directory, raw.problems)
    hub = hub_file.hub if isinstance(hub_file, HubFile) else HubSettings()
    return ConfigSet(
        directory=raw.directory, topology=topo, matters=matters_file, hub=hub,
        units=MappingProxyType(units), departments=MappingProxyType(departments),
        sensors=MappingProxyType(sensors), agents=MappingProxyType(agents),
        _matter_index=MappingProxyType(index),
        notify=notify_file if isinstance(notify_file, NotifyFile) else NO_NOTIFY,
        duty=duty_file if isinstance(duty_file, DutyFile) else NO_DUTY,
        calendars=calendars_file if isinstance(calendars_file, CalendarsFile)
        else NO_CALENDARS,
        external=external_file if isinstance(external_file, ExternalFile) else NO_EXTERNAL,
    )
