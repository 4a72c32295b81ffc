"""Scenario files: a config set plus a timeline of what happens, on simulated time.

A scenario (format in ``docs/scenarios.md``) names a config set, a seed, a start, a
duration, optionally a subset of the sensors, and a ``timeline`` of entries at offsets
from the start, each exactly one of:

- ``anomaly``: a labelled anomaly injected into a sensor's stream (ground truth);
- ``action``: a unit's action on an alert, chosen by matter and grid (as the API does);
- ``agent_offline``: an edge agent loses its connection for a while (its last will fires);
- ``weather``: rain in mm/h for a while (sim-kit's rain model drives water levels);
- ``external``: a department's business system (external.yaml) sends an event.

:func:`load_scenario` reads and checks a file the way :mod:`gridcall.config.loader` checks a
config set: every problem names ``file:line``, the key path and the reason, all problems
in one pass (:class:`ScenarioError`). The result, :class:`Scenario`, is frozen and
resolved: the config set is loaded, offsets are absolute times, ``2x`` targets are
numbers in the sensor's unit.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from gridcall.config import EXAMPLES, ConfigError, ConfigSet, Problem, SensorSpec, load_config
from gridcall.config.base import Duration, Id, Model
from gridcall.config.loader import (
    Loc,
    YamlDoc,
    YamlRefused,
    format_path,
    read_yaml,
    validate_doc,
)
from gridcall.config.models import DetectorSettings
from gridcall.simulators.replay import Recording, ReplayError, read_recording
from gridcall.simulators.streams import Injection, Shape
from gridcall.simulators.weather import rain_model
from gridcall.wire.clock import NS, from_datetime

__all__ = [
    "ActionAt",
    "ExternalAt",
    "Outage",
    "ReplayAt",
    "Scenario",
    "ScenarioError",
    "ScenarioFile",
    "Weather",
    "load_scenario",
    "parse_offset",
    "scenario_from_data",
    "with_seed",
]

PACKAGED = Path(__file__).resolve().parent / "scenarios"
"""The scenario library shipped with gridcall (``simulators/scenarios/*.yaml``)."""

DEFAULT_START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC) + timedelta(hours=-8)
"""Monday 5 January 2026, 00:00 China time, when a scenario gives no ``start``."""

_CLOCK = re.compile(r"^(\d+):([0-5]\d)(?::([0-5]\d(?:\.\d+)?))?$")


class _ScenarioLoader(yaml.SafeLoader):
    """Reads ``10:30`` as the string it looks like (an offset), not YAML 1.1's
    sexagesimal integer 630, which would silently turn a time into a number."""


_ScenarioLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if not (tag.endswith((":int", ":float")) and rx.match("10:30"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_offset(value: Any) -> timedelta:
    """An offset from the scenario's start: ``HH:MM`` or ``HH:MM:SS`` (hours may pass 24:
    ``150:00`` is 6 days 6 hours), a duration (``90s``, ``2h30m``, ``3d``) or seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an offset like '00:10', '01:30:00' or '3d'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"an offset cannot be negative, got {value}")
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _CLOCK.match(value.strip())
        if m:
            return timedelta(hours=int(m[1]), minutes=int(m[2]), seconds=float(m[3] or 0))
        from gridcall.config.base import parse_duration

        try:
            parsed = parse_duration(value)
        except ValueError:
            pass
        else:
            if isinstance(parsed, timedelta):
                return parsed
    raise ValueError(f"{value!r} is not an offset like '00:10', '01:30:00' or '3d'")


Offset = Annotated[timedelta, BeforeValidator(parse_offset)]

_FACTOR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*$")


def _target(value: Any) -> Any:
    """``to:`` is a number in the sensor's unit, or ``2x`` (twice its alarm limit)."""
    if isinstance(value, str) and not _FACTOR.match(value):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{value!r} is neither a number nor a multiple of the alarm "
                             "limit like '2x'") from None
    return value


Target = Annotated[float | str, BeforeValidator(_target)]
SHAPES: tuple[Shape, ...] = ("spike", "step", "ramp", "stuck", "dropout", "drift")
ActionName = Literal["acknowledge", "arrive", "resolve", "false_alarm", "escalate", "dispatch",
                     "note", "approve", "reject", "audit", "report_in", "dept_arrive",
                     "dept_dispose", "plan_step"]
"""``approve``, ``reject`` and ``audit`` are closure control and audits (docs/desk.md):
approve or reject the close pending on an alert, record an audit's ``verdict``;
``plan_step`` ticks a ``step`` of the alert's plan off (一事一预案)."""
RatingName = Literal["satisfied", "basically_satisfied", "dissatisfied"]
DEPARTMENT_STEPS: frozenset[str] = frozenset({"report_in", "dept_arrive", "dept_dispose"})
"""The steps a ``department`` takes (吹哨报到); the other actions are a ``unit``'s."""


class _Aliased(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AnomalySpec(Model):
    """``anomaly:``: the sensor's stream takes ``shape`` towards ``to`` from ``at`` for
    ``lasts``; a ramp reaches ``to`` after ``over``."""

    sensor: Id
    shape: Shape = "ramp"
    to: Target | None = None
    over: Duration | None = None
    lasts: Duration = timedelta(minutes=10)
    label: str = ""

    @model_validator(mode="after")
    def _needs_target(self) -> AnomalySpec:
        if self.shape == "rain":
            raise ValueError("'rain' is the rain model's label, not an anomaly shape: "
                             "write a weather: entry (the floods it causes are the truth)")
        if self.shape not in ("stuck", "dropout") and self.to is None:
            raise ValueError(f"a {self.shape} needs 'to': a value or a multiple of the alarm "
                             "limit like '2x'")
        if self.over is not None and self.over > self.lasts:
            raise ValueError("'over' (the ramp) cannot be longer than 'lasts'")
        return self


class ActionSpec(Model):
    """``action:``: ``unit`` does ``do`` on the alert of ``matter`` in ``grid`` (or on
    ``alert`` by id), as the API would for that unit's bearer token (or, with
    ``person``, for the token of that person of the unit); or a ``department`` takes its
    own step (``report_in``, ``dept_arrive``, ``dept_dispose``) as ``person``, as the API
    would for its token."""

    unit: Id | None = None
    department: Id | None = None
    person: Id | None = None
    do: ActionName
    matter: Id | None = None
    grid: Id | None = None
    alert: Id | None = None
    note: str = ""
    reason: str = ""
    departments: tuple[Id, ...] = ()
    verdict: Literal["pass", "fail"] | None = None
    """``do: audit``: the auditor's verdict (a fail needs a ``note``: it reopens)."""
    step: Id | None = None
    """``do: plan_step``: the id of the step of the alert's plan ticked off."""

    @model_validator(mode="after")
    def _selector(self) -> ActionSpec:
        if self.alert is None and self.matter is None and self.grid is None:
            raise ValueError("say which alert: 'matter' and/or 'grid', or 'alert' (an id)")
        if self.do == "escalate" and not (self.reason or self.note).strip():
            raise ValueError("calling upward (do: escalate) needs a 'reason'")
        if self.do == "reject" and not self.reason.strip():
            raise ValueError("rejecting a close (do: reject) needs a 'reason'")
        if (self.do == "audit") != (self.verdict is not None):
            raise ValueError("'verdict' (pass or fail) goes with do: audit, and only there")
        if self.verdict == "fail" and not self.note.strip():
            raise ValueError("a failed audit needs a 'note': the alert reopens with it")
        if (self.unit is None) == (self.department is None):
            raise ValueError("say who acts: a 'unit', or a 'department' (one of them)")
        if self.department is not None and self.do not in DEPARTMENT_STEPS:
            raise ValueError(f"a department takes its own steps (report_in, dept_arrive, "
                             f"dept_dispose), not {self.do}: a unit does that")
        if self.unit is not None and self.do in DEPARTMENT_STEPS:
            raise ValueError(f"{self.do} is a department's step: give 'department' (and "
                             "'person') instead of 'unit'")
        if (self.do == "plan_step") != (self.step is not None):
            raise ValueError("'step' (a step of the alert's plan) goes with do: plan_step, "
                             "and only with it")
        return self


class OfflineSpec(_Aliased):
    """``agent_offline:``: the agent's connection drops (no goodbye: the broker sends its
    last will) and comes back after ``for``; meanwhile its outbox keeps what it reads."""

    agent: Id
    for_: Duration = Field(alias="for")


class WeatherSpec(_Aliased):
    """``weather:``: rain of ``rain`` mm/h for ``for``, over ``area`` (unit ids: grids,
    communities or towns; empty: the whole district)."""

    rain: float = Field(ge=0, le=500)
    for_: Duration = Field(alias="for")
    area: tuple[Id, ...] = ()
    label: str = ""


class ReplaySpec(Model):
    """``replay:``: a recorded CSV (path relative to the scenario file) plays from ``at``
    as the values of the sensors it maps to, ``speed`` times faster than recorded
    (simulators/replay.py reads InfluxDB exports and data-logger files)."""

    file: str
    map: dict[str, Id] = Field(default_factory=dict)
    """Recorded column or series -> sensor id (unmapped ones must be sensor ids)."""
    speed: float = Field(default=1.0, gt=0)
    field: str | None = None
    """The field to play when an InfluxDB export holds several."""
    columns: tuple[str, ...] | None = None
    """Column names of a file without a header (a VictoriaMetrics export)."""


class ExternalSpec(Model):
    """``external:``: the business system ``system`` of external.yaml sends an event (its
    own words: ``type``, ``site``, ``severity``), over its MQTT topic."""

    system: Id
    type: str = Field(min_length=1, max_length=100)
    site: str = Field(min_length=1, max_length=100)
    severity: str | None = None
    event_id: str | None = Field(default=None, min_length=1, max_length=200)
    """Default: ``<system>-<n>``, n counting the scenario's events of the system."""
    description: str = ""


class ReportSpec(Model):
    """``report:``: ``unit`` (and ``person`` of roster.yaml, as their token would) files a
    report of ``matter`` (default UNCLASSIFIED: triage) at ``grid`` or a GPS ``point``,
    through the desk as ``POST /v1/reports`` does."""

    unit: Id
    person: Id | None = None
    matter: Id = "UNCLASSIFIED"
    grid: Id | None = None
    point: tuple[float, float] | None = None
    description: str = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _where(self) -> ReportSpec:
        if self.grid is None and self.point is None:
            raise ValueError("say where: 'grid', or 'point' ([lon, lat])")
        return self


class RateSpec(Model):
    """``rate:``: the reporter rates report ``report`` (an id, ``R000001``), or the latest
    report ``unit`` filed, once its alert is closed."""

    report: str | None = Field(default=None, pattern=r"^R[0-9]{6,}$")
    unit: Id | None = None
    rating: RatingName
    note: str = ""

    @model_validator(mode="after")
    def _which(self) -> RateSpec:
        if (self.report is None) == (self.unit is None):
            raise ValueError("say which report: 'report' (an id) or 'unit' (its latest)")
        return self


class Entry(Model):
    at: Offset
    anomaly: AnomalySpec | None = None
    action: ActionSpec | None = None
    agent_offline: OfflineSpec | None = None
    weather: WeatherSpec | None = None
    replay: ReplaySpec | None = None
    external: ExternalSpec | None = None
    report: ReportSpec | None = None
    rate: RateSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Entry:
        given = [k for k in ("anomaly", "action", "agent_offline", "weather", "replay",
                             "external", "report", "rate") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("each timeline entry has exactly one of anomaly, action, "
                             "agent_offline, weather, replay, external, report, rate (this "
                             f"one has {given or 'none'})")
        return self


def _numbers(value: Any) -> Any:
    """Integers come from the scenario loader as strings (it reads 10:30 as text, and
    with it every integer): numbers again, so a detector gets ``extreme_z: 6`` as 6."""
    if not isinstance(value, dict):
        return value
    return {k: int(v) if isinstance(v, str) and re.fullmatch(r"[-+]?\d+", v.strip()) else v
            for k, v in value.items()}


class DetectorTuning(Model):
    """``detectors:`` per sensor kind: what an integrator sets in ``sensors.yaml``'s
    kinds, changed for this scenario only (fields not given keep the config's)."""

    name: str | None = None
    sensitivity: float | None = Field(default=None, ge=0, le=1)
    refractory: int | None = Field(default=None, ge=0)
    params: Annotated[dict[str, float | int | str | bool] | None,
                      BeforeValidator(_numbers)] = None


class ScenarioFile(Model):
    """The file as written (validated on its own; :func:`load_scenario` cross-checks it
    against the config set it names)."""

    name: str = ""
    description: str = ""
    config: str
    seed: int = 0
    start: datetime = DEFAULT_START
    duration: Duration
    warmup: Offset = timedelta(days=1)
    sensors: tuple[str, ...] | None = Field(default=None, min_length=1)
    detectors: dict[str, DetectorTuning] = Field(default_factory=dict)
    """Sensor kind (or ``"*"``) -> detector settings for this scenario."""
    timeline: tuple[Entry, ...] = ()


# --------------------------------------------------------------------------- resolved


@dataclass(frozen=True, slots=True)
class ActionAt:
    """A unit's action at ``at_ns`` on the alert that ``matter``/``grid``/``alert`` picks."""

    at_ns: int
    unit: str
    do: ActionName
    matter: str | None = None
    grid: str | None = None
    alert: str | None = None
    note: str = ""
    reason: str = ""
    departments: tuple[str, ...] = ()
    where: str = ""
    """``file:line`` of the entry, for messages about it."""
    verdict: str = ""
    """``do: audit``: pass or fail."""
    department: str = ""
    """The department that acts (then ``unit`` is ""): its own step (吹哨报到)."""
    person: str = ""
    """Who of the department (or of the unit) acts (roster.yaml)."""
    step: str = ""
    """``do: plan_step``: the plan's step ticked off."""

    def describe(self) -> str:
        which = self.alert or " ".join(x for x in (self.matter, self.grid) if x)
        return f"{self.unit or self.department} {self.do} {which}"


@dataclass(frozen=True, slots=True)
class ExternalAt:
    """A department's system's event at ``at_ns``: ``body`` is the JSON it publishes on
    ``gridcall/v1/external/<system>``."""

    at_ns: int
    system: str
    event_id: str
    body: bytes
    where: str = ""

    def describe(self) -> str:
        return f"{self.system} event {self.event_id}"


@dataclass(frozen=True, slots=True)
class ReportAt:
    """A report ``unit`` (``person``) files at ``at_ns`` (``report:`` entries)."""

    at_ns: int
    unit: str
    person: str
    matter: str
    grid: str | None
    point: tuple[float, float] | None
    description: str
    where: str = ""

    def describe(self) -> str:
        return f"{self.person or self.unit} reports {self.matter} in " + (
            self.grid or f"{list(self.point or ())}")


@dataclass(frozen=True, slots=True)
class RateAt:
    """A reporter's rating at ``at_ns`` of ``report``, or of ``unit``'s latest report."""

    at_ns: int
    rating: RatingName
    report: str | None = None
    unit: str | None = None
    note: str = ""
    where: str = ""

    def describe(self) -> str:
        return f"{self.report or f'the latest report of {self.unit}'} rated {self.rating}"


@dataclass(frozen=True, slots=True)
class Outage:
    """Agent ``agent`` is cut off from ``at_ns`` for ``duration_s``."""

    at_ns: int
    agent: str
    duration_s: float
    where: str = ""

    @property
    def until_ns(self) -> int:
        return self.at_ns + round(self.duration_s * NS)


@dataclass(frozen=True, slots=True)
class Weather:
    """Rain of ``rain_mm_h`` from ``at_ns`` for ``duration_s``."""

    at_ns: int
    rain_mm_h: float
    duration_s: float
    where: str = ""
    area: tuple[str, ...] = ()
    """Unit ids it rains over (empty: everywhere)."""
    label: str = ""


@dataclass(frozen=True, slots=True)
class ReplayAt:
    """A recording played from ``at_ns`` at ``speed`` (its sensors' values come from it
    while it lasts)."""

    at_ns: int
    recording: Recording
    speed: float = 1.0
    where: str = ""

    @property
    def sensors(self) -> tuple[str, ...]:
        return tuple(self.recording.series)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    config: ConfigSet
    seed: int
    start_ns: int
    duration_s: float
    injections: tuple[Injection, ...] = ()
    """The ground truth: every anomaly the timeline injects (``start`` in POSIX s)."""
    actions: tuple[ActionAt, ...] = ()
    outages: tuple[Outage, ...] = ()
    weather: tuple[Weather, ...] = ()
    externals: tuple[ExternalAt, ...] = ()
    """Events of departments' systems (``external:`` entries)."""
    reports: tuple[ReportAt, ...] = ()
    """Reports from people (``report:`` entries)."""
    ratings: tuple[RateAt, ...] = ()
    """Reporters' ratings (``rate:`` entries)."""
    sensors: tuple[str, ...] | None = None
    """The sensors that are simulated (None: all of the config set's)."""
    path: Path | None = None
    warmup_s: float = 86400.0
    """Normal readings the detectors learn from before the start (no events sent), as a
    field agent restores its learned state from a checkpoint."""
    replays: tuple[ReplayAt, ...] = ()
    """Recorded data played as some sensors' values (``replay:`` entries)."""

    @property
    def end_ns(self) -> int:
        return self.start_ns + round(self.duration_s * NS)

    @property
    def sensor_ids(self) -> tuple[str, ...]:
        return self.sensors if self.sensors is not None else tuple(self.config.sensors)

    @property
    def agent_ids(self) -> tuple[str, ...]:
        """Agents with at least one simulated sensor, in config order."""
        wanted = set(self.sensor_ids)
        return tuple(a.id for a in self.config.agents.values()
                     if any(s.id in wanted for s in a.sensors))


class ScenarioError(Exception):
    """A scenario file with problems; ``problems`` lists every one of them."""

    def __init__(self, path: Path | str, problems: Iterable[Problem]) -> None:
        self.path = Path(path)
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"scenario {path} has {len(self.problems)} problem(s):\n{lines}")


# --------------------------------------------------------------------------- loading


def load_scenario(path: Path | str, *, config: ConfigSet | None = None) -> Scenario:
    """Read, validate and cross-check a scenario file; :class:`ScenarioError` lists every
    problem with ``file:line``, key path and reason. ``path`` may also be the name of a
    packaged scenario (``gas-leak-spreads``). ``config`` overrides the file's ``config:``
    (an integrator's own config set with a shipped timeline)."""
    path = _find(Path(path))
    try:
        doc = read_yaml(path, loader=_ScenarioLoader)
    except FileNotFoundError:
        raise ScenarioError(path, [Problem(str(path), "", _not_found(path))]) from None
    except OSError as exc:
        raise ScenarioError(path, [Problem(str(path), "", f"cannot read: {exc}")]) from None
    except YamlRefused as exc:  # not read as YAML at all (a FIFO, too large, a bomb)
        raise ScenarioError(path, [Problem(path.name, "", exc.problem)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ScenarioError(path, [Problem(
            path.name, "", f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
            mark.line + 1 if mark is not None else None)]) from None
    return scenario_from_doc(doc, base=path.parent, path=path, config=config)


def scenario_from_data(data: dict[str, Any], *, base: Path | str = ".",
                       config: ConfigSet | None = None, name: str = "<scenario>") -> Scenario:
    """A scenario from a mapping (the YAML's shape) built in code, e.g. in a test."""
    return scenario_from_doc(YamlDoc(name, data, {}), base=Path(base), path=None,
                             config=config)


def scenario_from_doc(doc: YamlDoc, *, base: Path, path: Path | None,
                      config: ConfigSet | None = None) -> Scenario:
    where = path if path is not None else Path(doc.file)
    problems = [Problem(doc.file, format_path(loc), f"duplicate key (first given on line "
                        f"{first})", again) for loc, first, again in doc.duplicate_keys]
    result = validate_doc(doc, ScenarioFile)
    if isinstance(result, list):
        raise ScenarioError(where, problems + result)
    spec = result

    def problem(loc: Loc, reason: str) -> None:
        problems.append(Problem(doc.file, format_path(loc), reason, doc.line(loc)))

    if config is None:
        config = _config(spec.config, base, doc, problems)
    if config is None:
        raise ScenarioError(where, problems)

    if spec.detectors:
        config = _tuned(config, spec.detectors, problem)
    sensors = _subset(spec.sensors, config, problem)
    simulated = set(sensors if sensors is not None else config.sensors)
    start_ns = from_datetime(spec.start)
    duration_s = spec.duration.total_seconds()
    injections: list[Injection] = []
    actions: list[ActionAt] = []
    outages: list[Outage] = []
    weather: list[Weather] = []
    replays: list[ReplayAt] = []
    externals: list[ExternalAt] = []
    reports: list[ReportAt] = []
    ratings: list[RateAt] = []
    for i, entry in sorted(enumerate(spec.timeline), key=lambda ie: ie[1].at):
        loc: Loc = ("timeline", i)
        at_s = entry.at.total_seconds()
        line = doc.line(loc)
        here = f"{doc.file}:{line}" if line else doc.file
        if at_s > duration_s:
            problem((*loc, "at"), f"{_hms(at_s)} lies after the scenario's end "
                    f"(duration {_hms(duration_s)})")
        at_ns = start_ns + round(at_s * NS)
        if entry.anomaly is not None:
            inj = _injection(entry.anomaly, at_ns / NS, config, simulated,
                             lambda k, r, loc=loc: problem((*loc, "anomaly", *k), r))
            if inj is not None:
                injections.append(inj)
        elif entry.action is not None:
            a = entry.action
            _action_refs(a, config, lambda k, r, loc=loc: problem((*loc, "action", *k), r))
            actions.append(ActionAt(at_ns, a.unit or "", a.do, a.matter, a.grid, a.alert,
                                    a.note, a.reason, a.departments, here, a.verdict or "",
                                    department=a.department or "", person=a.person or "",
                                    step=a.step or ""))
        elif entry.agent_offline is not None:
            off = entry.agent_offline
            if off.agent not in config.agents:
                problem((*loc, "agent_offline", "agent"), _unknown("agent", off.agent,
                                                                   config.agents))
            outages.append(Outage(at_ns, off.agent, off.for_.total_seconds(), here))
        elif entry.weather is not None:
            w = entry.weather
            for j, unit in enumerate(w.area):
                if unit not in config.units:
                    problem((*loc, "weather", "area", j), _unknown("unit", unit, config.units))
            weather.append(Weather(at_ns, w.rain, w.for_.total_seconds(), here, w.area,
                                   w.label))
        elif entry.external is not None:
            ext = _external(entry.external, at_ns, here, config, externals,
                            lambda k, r, loc=loc: problem((*loc, "external", *k), r))
            if ext is not None:
                externals.append(ext)
        elif entry.report is not None:
            rep = _report(entry.report, at_ns, here, config,
                          lambda k, r, loc=loc: problem((*loc, "report", *k), r))
            if rep is not None:
                reports.append(rep)
        elif entry.rate is not None:
            rt = entry.rate
            if rt.unit is not None and rt.unit not in config.units:
                problem((*loc, "rate", "unit"), _unknown("unit", rt.unit, config.units))
            ratings.append(RateAt(at_ns, rt.rating, rt.report, rt.unit, rt.note, here))
        elif entry.replay is not None:
            r = entry.replay
            try:
                rec = read_recording(base / r.file, mapping=r.map, sensors=simulated,
                                     value_field=r.field, columns=r.columns)
            except ReplayError as exc:
                problem((*loc, "replay", "file"), str(exc))
            else:
                replays.append(ReplayAt(at_ns, rec, r.speed, here))
    if problems:
        raise ScenarioError(where, problems)
    chosen = [config.sensors[s] for s in (sensors or config.sensors)]
    injections.extend(rain_model(weather, seed=spec.seed).labels(chosen))  # its floods
    return Scenario(
        name=spec.name or (path.stem if path is not None else doc.file),
        description=spec.description, config=config, seed=spec.seed, start_ns=start_ns,
        duration_s=duration_s, injections=tuple(injections), actions=tuple(actions),
        outages=tuple(outages), weather=tuple(weather), sensors=sensors, path=path,
        warmup_s=spec.warmup.total_seconds(), replays=tuple(replays),
        externals=tuple(externals), reports=tuple(reports), ratings=tuple(ratings))


def _tuned(config: ConfigSet, tuning: dict[str, DetectorTuning], problem: Any) -> ConfigSet:
    """The config set with the scenario's detector settings per sensor kind (``*``: every
    kind; a named kind wins over ``*``)."""
    kinds = {s.kind for s in config.sensors.values()}
    for kind in tuning:
        if kind != "*" and kind not in kinds:
            problem(("detectors", kind), _unknown("sensor kind", kind, sorted(kinds)))

    def tune(sensor: SensorSpec) -> SensorSpec:
        update: dict[str, Any] = {}
        for key in ("*", sensor.kind):
            t = tuning.get(key)
            if t is not None:
                update.update(t.model_dump(exclude_none=True))
        if not update:
            return sensor
        settings = sensor.detector.model_dump()
        if update.get("name", settings["name"]) != settings["name"]:
            settings["params"] = {}  # another detector: the old one's params do not apply
        # built again, not model_copy'd, so the product's parameters apply to 'default'
        detector = DetectorSettings(**{**settings, **update})
        return dataclasses.replace(sensor, detector=detector)

    sensors = {sid: tune(s) for sid, s in config.sensors.items()}
    agents = {aid: dataclasses.replace(a, sensors=tuple(sensors[s.id] for s in a.sensors))
              for aid, a in config.agents.items()}
    return dataclasses.replace(config, sensors=sensors, agents=agents)


def with_seed(scenario: Scenario, seed: int) -> Scenario:
    """The scenario with another seed; the rain's ground truth is derived again (gauges
    and run-off differ per seed)."""
    chosen = [scenario.config.sensors[s] for s in scenario.sensor_ids]
    kept = tuple(i for i in scenario.injections if i.shape != "rain")
    labels = rain_model(scenario.weather, seed=seed).labels(chosen)
    return dataclasses.replace(scenario, seed=seed, injections=kept + labels)


def _find(path: Path) -> Path:
    """A file as given, or a packaged scenario by name (with or without ``.yaml``)."""
    if path.exists() or path.parent != Path("."):
        return path
    for candidate in (PACKAGED / path.name, PACKAGED / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    return path


def _not_found(path: Path) -> str:
    """Neither a file nor a packaged scenario: for a bare name, the library's names that
    contain it or come close (``gas-leak`` → gas-leak-restaurant, gas-leak-spreads)."""
    if path.parent != Path("."):
        where = "" if path.is_absolute() else f" ({path.absolute()}: a relative path starts " \
            "from the folder the command or pytest runs in)"
        return f"no config folder or scenario file {path}{where}"
    names = sorted(p.stem for p in PACKAGED.glob("*.yaml"))
    wanted = path.name.removesuffix(".yaml")
    near = [n for n in names if wanted.lower() in n.lower()]
    near += [n for n in difflib.get_close_matches(wanted, names, n=3) if n not in near]
    hint = (f"; did you mean {', '.join(near[:5])}?" if near else "")
    return (f"no file {path.name!r} here and no packaged scenario of that name{hint} "
            "(gridcall sim list shows the library)")


def _config(name: str, base: Path, doc: YamlDoc, problems: list[Problem]) -> ConfigSet | None:
    """``config:`` is a folder relative to the scenario file, or a packaged sample."""
    line = doc.line(("config",))
    folder = (base / name) if not Path(name).is_absolute() else Path(name)
    if not folder.is_dir():
        packaged = EXAMPLES / name
        if not packaged.is_dir():
            samples = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
            problems.append(Problem(doc.file, "config", f"{name!r} is neither a folder "
                                    f"(looked in {base}) nor a packaged sample "
                                    f"({', '.join(samples)})", line))
            return None
        folder = packaged
    from gridcall.detectors import REGISTRY
    from gridcall.edge_agent.watch import detector_problem

    try:
        return load_config(folder, known_detectors=set(REGISTRY),
                           check_detector=detector_problem)
    except ConfigError as exc:
        problems.append(Problem(doc.file, "config", f"the config set {folder} has "
                                f"{len(exc.problems)} problem(s)", line))
        problems += exc.problems
        return None


def _subset(patterns: tuple[str, ...] | None, config: ConfigSet,
            problem: Any) -> tuple[str, ...] | None:
    """The ``sensors:`` subset: ids, or shell patterns like ``dongyuan-g3-*``."""
    if patterns is None:
        return None
    chosen: list[str] = []
    for i, pattern in enumerate(patterns):
        if any(c in pattern for c in "*?["):
            hits = fnmatch.filter(config.sensors, pattern)
            if not hits:
                problem(("sensors", i), f"the pattern {pattern!r} matches no sensor")
        else:
            hits = [pattern] if pattern in config.sensors else []
            if not hits:
                problem(("sensors", i), _unknown("sensor", pattern, config.sensors))
        chosen += [h for h in hits if h not in chosen]
    return tuple(chosen)


def _injection(a: AnomalySpec, start_s: float, config: ConfigSet, simulated: set[str],
               problem: Any) -> Injection | None:
    sensor = config.sensors.get(a.sensor)
    if sensor is None:
        problem(("sensor",), _unknown("sensor", a.sensor, config.sensors))
        return None
    if a.sensor not in simulated:
        problem(("sensor",), f"{a.sensor!r} is not among the scenario's sensors: add it to "
                "'sensors:'")
        return None
    target = 0.0
    if isinstance(a.to, str):
        factor = float(_FACTOR.match(a.to)[1])  # type: ignore[index]  # checked by _target
        limit = sensor.limits.alarm_high
        if limit is None:
            limit = sensor.limits.alarm_low
        if limit is None:
            problem(("to",), f"{a.to!r} needs an alarm limit, and sensor {a.sensor!r} "
                    f"({sensor.kind}) has none: give a value in {sensor.unit_of_measure}")
            return None
        target = factor * limit
    elif a.to is not None:
        target = float(a.to)
    ramp = a.over.total_seconds() if a.over is not None else None
    return Injection(sensor=a.sensor, start=start_s, duration=a.lasts.total_seconds(),
                     shape=a.shape, target=target,
                     label=a.label or f"{a.shape} on {a.sensor}", ramp_s=ramp)


def _action_refs(a: ActionSpec, config: ConfigSet, problem: Any) -> None:
    if a.unit is not None and a.unit not in config.units:
        problem(("unit",), _unknown("unit", a.unit, config.units))
    if a.department is not None and a.department not in config.departments:
        problem(("department",), _unknown("department", a.department, config.departments))
    if a.person is not None:
        owner = a.department or a.unit
        who = config.duty.person(a.person)
        if who is None or who.unit != owner:
            mine = [p.id for p in config.duty.persons if p.unit == owner]
            problem(("person",), _unknown(f"person of {owner}", a.person, mine))
    if a.grid is not None and (a.grid not in config.units
                               or config.units[a.grid].level != "grid"):
        grids = [u.id for u in config.units_at("grid")]
        problem(("grid",), _unknown("grid", a.grid, grids))
    codes = [m.code for m in config.matters.matters]
    if a.matter is not None and a.matter not in codes:
        problem(("matter",), _unknown("matter", a.matter, codes))
    for i, d in enumerate(a.departments):
        if d not in config.departments:
            problem(("departments", i), _unknown("department", d, config.departments))
    if a.step is not None and a.matter in codes:
        (matter,) = [m for m in config.matters.matters if m.code == a.matter]
        steps = [s.id for s in matter.plan.steps]
        if a.step not in steps:
            problem(("step",), _unknown(f"step of {a.matter}'s plan", a.step, steps))


def _external(e: ExternalSpec, at_ns: int, here: str, config: ConfigSet,
              before: list[ExternalAt], problem: Any) -> ExternalAt | None:
    """The event a system of external.yaml sends, as JSON. Only the system is checked
    here: an event its mapping cannot place is the hub's to refuse (a dead letter), which
    a scenario may want to show."""
    known = [s.id for s in config.external.systems]
    if e.system not in known:
        problem(("system",), _unknown("system of external.yaml", e.system, known))
        return None
    event_id = e.event_id or f"{e.system}-{1 + sum(b.system == e.system for b in before)}"
    body = {"event_id": event_id, "type": e.type, "site": e.site,
            "severity": e.severity, "occurred_at": at_ns, "description": e.description}
    return ExternalAt(at_ns, e.system, event_id,
                      json.dumps({k: v for k, v in body.items() if v is not None},
                                 ensure_ascii=False).encode(), here)


def _report(r: ReportSpec, at_ns: int, here: str, config: ConfigSet,
            problem: Any) -> ReportAt | None:
    """A report's references checked against the config set: the unit, the person, the
    matter, and the grid (a grid of the unit's subtree). A point is placed by the hub."""
    ok = True
    unit = config.units.get(r.unit)
    if unit is None:
        problem(("unit",), _unknown("unit", r.unit, config.units))
        ok = False
    if r.person is not None and config.duty.person(r.person) is None:
        problem(("person",), _unknown("person of roster.yaml", r.person,
                                      [p.id for p in config.duty.persons]))
        ok = False
    codes = [m.code for m in config.matters.matters]
    if r.matter != "UNCLASSIFIED" and r.matter not in codes:
        problem(("matter",), _unknown("matter", r.matter, codes))
        ok = False
    if r.grid is not None:
        grid = config.units.get(r.grid)
        if grid is None or grid.level != "grid":
            problem(("grid",), _unknown("grid", r.grid,
                                        [u.id for u in config.units_at("grid")]))
            ok = False
        elif unit is not None and grid.path[:len(unit.path)] != unit.path:
            problem(("grid",), f"{r.grid} is outside {r.unit}'s area: a unit reports in "
                    "its own subtree")
            ok = False
    if not ok:
        return None
    return ReportAt(at_ns, r.unit, r.person or "", r.matter, r.grid, r.point, r.description,
                    here)


def _unknown(what: str, value: str, known: Iterable[str]) -> str:
    known = list(known)
    hint = difflib.get_close_matches(value, known, n=1)
    return f"unknown {what} {value!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"

