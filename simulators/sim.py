"""The deterministic simulated district: real agents and a real hub on one simulated clock.

:class:`SimDistrict` runs the edge agents (:class:`gridcall.edge_agent.agent.EdgeAgent`, with their
detectors) and the hub (:class:`gridcall.hub.service.Hub`, with its alert desk) of a config set
over an MQTT broker (embedded amqtt by default, or a real broker URL), all on one
:class:`~gridcall.simulators.clock.SimClock`. Time moves only when told (``advance``), in steps to
the next thing that is due:

- the next sensor sample (each simulated sensor at its configured interval, values from
  :class:`gridcall.simulators.streams.SensorStream` with the scenario's injections);
- the next timeline entry (an anomaly's start, a unit's action, an agent outage, rain);
- the next alert deadline at the desk, and the next heartbeat.

Samples go straight into each agent's detectors (``EdgeAgent.ingest``); when one makes an
anomaly event, the simulator waits until the hub has taken it over the broker (events
are the alert path under test, they always cross it), counting what the agents made
against what the hub handled, never sleeping a fixed time. Only then does time move on,
so the hub stamps every step with the instant it happened, and the same scenario gives
the same alerts, tiers, units and timeline every run.

What differs from a field deployment, on purpose (docs/scenarios.md, "sim mode"):

- **readings** are sealed in bulk (up to 10,000 per batch) and published through the
  broker, but the hub does not store them unless ``store_readings=True``: the alert
  path does not depend on them, and a week of readings through amqtt would dominate the
  run;
- **heartbeats**: each agent's own status (``EdgeAgent.status()``, stamped on the
  simulated clock) is published by the simulator every ``heartbeat_s`` of simulated time
  (default 10 min, which the status carries as its ``heartbeat_s``), because the agent's
  publisher times its heartbeats on the real clock;
- **outages** (``agent_offline``) cut the agent's TCP connection in a relay between it
  and the broker, without an MQTT DISCONNECT, so the broker publishes its last will;
  the agent keeps reading into its outbox and reconnects when the outage ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import aiomqtt

from gridcall.config import EXAMPLES, AgentSpec, ConfigSet, load_config
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.sources import Sample
from gridcall.hub.desk.desk import (
    BadAction,
    Change,
    NotFound,
    NotPermitted,
    OutsideArea,
    OutsideSubtree,
    Unchanged,
    UnknownDepartment,
    UnknownUnit,
)
from gridcall.hub.desk.intake import NowhereKnown, locate
from gridcall.hub.desk.lifecycle import Action, AlertState, IllegalTransition, Transition
from gridcall.hub.desk.plans import AlreadyTicked, NoSuchStep
from gridcall.hub.desk.reporting import AlreadyRated, Reporting
from gridcall.hub.desk.reports import NoSuchReport
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.simulators.clock import SimClock
from gridcall.simulators.embedded import EmbeddedBroker
from gridcall.simulators.replay import RecordedStream
from gridcall.simulators.scenario import (
    DEFAULT_START,
    ActionAt,
    ActionName,
    ExternalAt,
    Outage,
    RateAt,
    ReportAt,
    Scenario,
    Weather,
    load_scenario,
    parse_offset,
    with_seed,
)
from gridcall.simulators.steps import StepRow, step_rows
from gridcall.simulators.streams import Injection, SensorStream, Shape
from gridcall.simulators.uplink import Uplink
from gridcall.simulators.weather import rain_model
from gridcall.wire import AgentStatus, Decoder, MalformedMessage, RiskAlert, topics
from gridcall.wire.broker import BrokerAddress
from gridcall.wire.clock import NS, utc_text
from gridcall.wire.errors import InvariantError

log = logging.getLogger(__name__)

__all__ = ["ScenarioRun", "SimDistrict", "SimStalled", "TimelineEntry", "run_scenario"]

Kind = Literal["alert", "anomaly", "deadline", "refused", "agent_offline", "agent_online",
               "weather", "external", "report", "rate"]
BULK_READINGS = 10_000
"""Readings per batch in sim mode (the most an agent's settings allow)."""


class SimStalled(RuntimeError):
    """The hub did not take what the agents sent within ``settle_timeout`` real seconds
    (a broker that hangs, a hub that died): names what was waited for."""


def hms(seconds: float) -> str:
    """``+HH:MM:SS`` (days as ``1d 02:00:00``) for an offset from the start."""
    s = round(seconds)
    days, s = divmod(s, 86400)
    text = f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"+{days}d {text}" if days else f"+{text}"


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened, at ``offset_s`` simulated seconds after the start."""

    offset_s: float
    kind: Kind
    text: str
    """For people: what happened, who, where, why."""
    alert_id: str = ""
    action: str = ""
    """The ledger action of an ``alert`` entry (open, escalate, acknowledge...) or the
    action of an ``action``/``refused`` entry."""
    matter: str = ""
    tier: str = ""
    unit: str = ""
    level: str = ""
    """The responsible unit's level (district, town, community, grid)."""
    state: str = ""
    grid: str = ""
    sensor: str = ""
    actor: str = ""
    department: str = ""
    """On a department's step (report_in, dept_arrive, dept_dispose) and a ``supervise``
    (督办): the department."""
    person: str = ""
    """Who took the step (a person's token, a department's person), if anyone named."""

    def __str__(self) -> str:
        return f"{hms(self.offset_s)}  {self.text}"


@dataclass(frozen=True, slots=True)
class ScenarioRun:
    """What a run produced: the alerts as they stand at the end, the readable timeline,
    the injections (ground truth) and every ledger step."""

    scenario: Scenario
    alerts: dict[str, RiskAlert]
    timeline: tuple[TimelineEntry, ...]
    injections: tuple[Injection, ...]
    transitions: tuple[Transition, ...]
    samples: int
    events: int
    wall_s: float

    def describe(self) -> str:
        return describe(self.alerts, self.timeline)

    def steps(self) -> list[StepRow]:
        """Every ledger step with its minute and actor (unit, department, person)."""
        return step_rows(self.transitions, self.scenario.config, self.scenario.start_ns)


def describe(alerts: dict[str, RiskAlert], timeline: Iterable[TimelineEntry]) -> str:
    """Alerts and timeline as text (what a failed expectation shows)."""
    lines = [f"alerts ({len(alerts)}):"]
    lines += [f"  {a.alert_id} {a.matter} tier {a.tier} {a.state} at {a.unit} "
              f"({a.unit_level}), grid {a.grid}, sensor {a.sensor}"
              for a in sorted(alerts.values(), key=lambda a: a.alert_id)] or ["  (none)"]
    entries = [f"  {e}" for e in timeline]
    lines += [f"timeline ({len(entries)}):", *(entries or ["  (nothing happened)"])]
    return "\n".join(lines)


# --------------------------------------------------------------------------- plumbing


class _SimHub(Hub):
    """The hub, telling the simulator what it has finished handling."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # a scenario's checks and summaries read every alert at once: its desk holds the
        # closed ones too (Desk.keep_closed; a scenario is small and short)
        self.desk.keep_closed = None
        self.progress = asyncio.Event()
        self.events_seen: dict[str, set[int]] = defaultdict(set)
        self.busy = 0
        """Messages being handled now (the desk may be mid-step for one of them)."""
        self._peek = Decoder()

    async def handle(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        self.busy += 1
        try:
            await super().handle(topic, payload, retained=retained)
        finally:
            self.busy -= 1
            if topic.startswith(f"{topics.PREFIX}/events/"):
                with contextlib.suppress(MalformedMessage):
                    event = self._peek.event(topic, payload)
                    self.events_seen[event.agent].add(event.seq)
            self.progress.set()


class _IdleSource:
    """The agents' source in sim mode: the simulator feeds ``EdgeAgent.ingest`` itself,
    in simulated time order; ``run`` still owns the publisher and the sealer."""

    def __init__(self) -> None:
        self._never = asyncio.Event()

    async def samples(self) -> Any:
        await self._never.wait()
        if False:  # pragma: no cover - makes this an async generator
            yield Sample("", 0, None)


@dataclass(order=True)
class _Due:
    """A timeline item waiting for its instant (ordered by time, then file order)."""

    at_ns: int
    order: int
    item: (Injection | ActionAt | Outage | Weather | ExternalAt | ReportAt | RateAt
           | tuple[str, str]) = field(
        compare=False)
    """An injection start, an action, an outage start, rain, a department's system's
    event, or ("restore", agent)."""


# --------------------------------------------------------------------------- the district


class SimDistrict:
    """A district on simulated time, built from a :class:`Scenario`, a scenario file, a
    config set or a config folder::

        async with SimDistrict("gas-leak-spreads") as district:
            await district.advance(3600)          # or: await district.run()
            district.alerts, district.timeline, district.truth

    ``broker_url``: a real broker instead of the embedded amqtt one. ``settle_timeout``
    bounds (in real seconds) each wait for the hub to take what the agents sent: a
    :class:`SimStalled` names what did not arrive.
    """

    def __init__(self, source: Scenario | ConfigSet | Path | str, *,
                 broker_url: str | None = None, seed: int | None = None,
                 sensors: Iterable[str] | None = None, start_ns: int | None = None,
                 heartbeat_s: float = 600.0, store_readings: bool = False,
                 settle_timeout: float = 60.0, connect_timeout: float = 20.0,
                 speed: float | None = None, warmup_s: float | None = None,
                 progress: Callable[[float, float], None] | None = None,
                 store_path: Path | str | None = None) -> None:
        scenario = _as_scenario(source)
        if warmup_s is not None:
            scenario = dataclasses.replace(scenario, warmup_s=warmup_s)
        if sensors is not None:
            wanted = tuple(sensors)
            unknown = [s for s in wanted if s not in scenario.config.sensors]
            if unknown:
                raise ValueError(f"unknown sensor(s) {unknown} for config "
                                 f"{scenario.config.directory}")
            scenario = dataclasses.replace(scenario, sensors=wanted)
        if seed is not None:
            scenario = with_seed(scenario, seed)
        if start_ns is not None:
            scenario = _shifted(scenario, start_ns)
        if heartbeat_s <= 0 or (speed is not None and speed <= 0):
            raise ValueError("heartbeat_s and speed must be > 0")
        self.scenario = scenario
        self.config = scenario.config
        self.clock = SimClock(scenario.start_ns)
        self.broker_url = broker_url
        self.url = broker_url or ""
        self.heartbeat_ns = round(heartbeat_s * NS)
        self.store_readings = store_readings
        self.settle_timeout = settle_timeout
        self.connect_timeout = connect_timeout
        self.speed = speed
        self.progress = progress
        self.store_path = store_path
        """A SQLite file that keeps the run's hub store (its ledger, reports, audits) for
        ``gridcall hub report --store``; None: in memory, gone with the run."""
        self._timeline: list[TimelineEntry] = []
        self._transitions: list[Transition] = []
        self._injections: list[Injection] = list(scenario.injections)
        self._due: list[_Due] = []
        self._order = 0
        items: list[Injection | ActionAt | Outage | Weather | ExternalAt | ReportAt
                    | RateAt] = [
            *(i for i in scenario.injections if i.shape != "rain"),  # rain: labels only
            *scenario.actions, *scenario.outages, *scenario.weather, *scenario.externals,
            *scenario.reports, *scenario.ratings]
        for item in items:
            self._schedule(_at_ns(item), item)
        self.rain = rain_model(scenario.weather, seed=scenario.seed)
        """The rain of the scenario's weather entries (simulators/weather.py); the loader
        put its floods into the injections as ground truth."""
        self.samples = 0
        self._stack = contextlib.AsyncExitStack()
        self._hub: _SimHub | None = None
        self._hub_task: asyncio.Task[None] | None = None
        self._stop_hub = asyncio.Event()
        self._stop_agents = asyncio.Event()
        self.agents: dict[str, EdgeAgent] = {}
        self._agent_tasks: dict[str, asyncio.Task[None]] = {}
        self._links: dict[str, Uplink] = {}
        self._offline: set[str] = set()
        self._streams: dict[str, SensorStream] = {}
        self._owner: dict[str, EdgeAgent] = {}
        self._heap: list[tuple[int, int, str]] = []
        self._interval: dict[str, int] = {}
        self._next_beat = scenario.start_ns
        self._beats: aiomqtt.Client | None = None
        self._wall0 = 0.0
        self._started = False
        self._overdue: set[tuple[str, str, int]] = set()
        self._next_report = 0

    # ------------------------------------------------------------------ reading

    @property
    def hub(self) -> Hub:
        if self._hub is None:
            raise RuntimeError("the district is not running: use 'async with SimDistrict(...)'")
        return self._hub

    @property
    def _sim_hub(self) -> _SimHub:
        if self._hub is None:
            raise RuntimeError("the district is not running: use 'async with SimDistrict(...)'")
        return self._hub

    @property
    def now(self) -> int:
        return self.clock()

    @property
    def elapsed_s(self) -> float:
        """Simulated seconds since the start."""
        return (self.clock() - self.scenario.start_ns) / NS

    @property
    def alerts(self) -> dict[str, RiskAlert]:
        """Every alert by id, as it stands now."""
        return {s.alert_id: s.alert for s in self.hub.desk.alerts()}

    def alert_states(self) -> list[AlertState]:
        return self.hub.desk.alerts()

    @property
    def timeline(self) -> tuple[TimelineEntry, ...]:
        return tuple(self._timeline)

    @property
    def transitions(self) -> tuple[Transition, ...]:
        return tuple(self._transitions)

    @property
    def truth(self) -> tuple[Injection, ...]:
        """Every anomaly injected so far or scheduled (the ground truth)."""
        return tuple(self._injections)

    @property
    def events(self) -> int:
        return sum(a.counters.events_made for a in self.agents.values())

    def describe(self) -> str:
        return describe(self.alerts, self._timeline)

    def result(self) -> ScenarioRun:
        return ScenarioRun(self.scenario, self.alerts, self.timeline, self.truth,
                           self.transitions, self.samples, self.events,
                           time.monotonic() - self._wall0)

    # ------------------------------------------------------------------ start and stop

    async def __aenter__(self) -> Self:
        self._wall0 = time.monotonic()
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _start(self) -> None:
        url = self.broker_url
        if url is None:
            url = (await self._stack.enter_async_context(EmbeddedBroker())).url
        self.url = url
        """The broker the district runs on (the embedded one's loopback URL by default)."""
        address = BrokerAddress.parse(url)
        store = await self._stack.enter_async_context(
            Store(":memory:" if self.store_path is None else self.store_path))
        hub = _SimHub(self.config, sink=store, store=store, broker_url=url,
                      client_id=f"gridcall-sim-hub-{time.time_ns()}", clock=self.clock,
                      tick_interval=1e6, readings=self.store_readings)
        hub.desk.add_hook(self._on_change)
        self._hub = hub
        self._hub_task = asyncio.create_task(hub.run(self._stop_hub), name="sim-hub")
        self._stack.push_async_callback(self._stop_all)
        await self._wait(hub.subscribed.is_set, f"the hub to subscribe at {address}",
                         self.connect_timeout)
        user, password = self.config.hub.broker.credentials()
        self._beats = await self._stack.enter_async_context(aiomqtt.Client(
            address.host, address.port, identifier=f"gridcall-sim-beats-{time.time_ns()}",
            username=user, password=password, tls_context=address.tls_context()))
        chosen = set(self.scenario.sensor_ids)
        rng = random.Random(self.scenario.seed)
        for agent_id in self.scenario.agent_ids:
            spec = _sim_spec(self.config.agents[agent_id], chosen, self.heartbeat_ns)
            link_url = url
            if not address.tls:
                link = Uplink(address)
                await link.start()
                self._links[agent_id] = link
                link_url = link.url
            agent = EdgeAgent(spec, _IdleSource(), broker_url=link_url, clock=self.clock,
                              seed=self.scenario.seed)
            self.agents[agent_id] = agent
            for sensor in spec.sensors:
                self._owner[sensor.id] = agent
                self._streams[sensor.id] = SensorStream(
                    sensor.id, sensor.kind, seed=self.scenario.seed,
                    injections=self.scenario.injections, place=sensor.path,
                    tags=sensor.tags, weather=self.rain or None,
                    overlays=replayed(self.scenario, sensor.id))
                interval = max(1, round(sensor.interval_s * NS))
                self._interval[sensor.id] = interval
                first = self.clock() + round(rng.uniform(0, sensor.interval_s) * NS)
                heapq.heappush(self._heap, (first, len(self._heap), sensor.id))
        self._warm_up()
        for agent_id, agent in self.agents.items():
            self._agent_tasks[agent_id] = asyncio.create_task(
                agent.run(self._stop_agents), name=f"sim-agent-{agent_id}")
        await self._wait(lambda: all(a.connected.is_set() for a in self.agents.values()),
                         f"the agents to connect to {address}", self.connect_timeout)
        await self._heartbeat()
        self._started = True

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stack.aclose()

    def _warm_up(self) -> None:
        """The detectors learn from ``warmup_s`` of normal readings before the start, at
        each sensor's interval (what they would have seen in the field; no events go out,
        as a field agent restores its learned state from its checkpoint). Without it
        every fresh detector would spend its first minutes learning noise in public."""
        warm = round(self.scenario.warmup_s * NS)
        if warm <= 0:
            return
        for first, _, sensor in sorted(self._heap):
            watch = self._owner[sensor].watches[sensor]
            stream = self._streams[sensor]
            interval = self._interval[sensor]
            t = first - (warm // interval) * interval
            while t < first:
                watch.observe(t, stream.value(t / NS))
                t += interval

    async def _stop_all(self) -> None:
        """Agents first (a clean goodbye: no outage), then the hub, then the relays."""
        for link in self._links.values():
            link.restore()
        self._stop_agents.set()
        if self._agent_tasks:
            await asyncio.gather(*self._agent_tasks.values(), return_exceptions=True)
        hub = self._hub
        if self.store_readings and hub is not None and self._hub_task is not None:
            sent = sum(a.counters.readings_sent for a in self.agents.values())
            with contextlib.suppress(SimStalled):  # the hub's drain says what was not
                await self._wait(lambda: hub.ingest.counters.readings_received >= sent,
                                 "the hub to receive the agents' last readings",
                                 self.settle_timeout)
        self._stop_hub.set()
        if self._hub_task is not None:
            with contextlib.suppress(Exception):
                await self._hub_task
        for link in self._links.values():
            await link.close()

    # ------------------------------------------------------------------ driving time

    async def advance(self, seconds: float | str | timedelta) -> None:
        """Let ``seconds`` (or a duration: ``"10m"``, ``"01:30"``) of simulated time pass."""
        await self.advance_to(self.clock() + round(parse_offset(seconds).total_seconds()
                                                   * NS))

    async def run(self) -> ScenarioRun:
        """Run to the scenario's end; the result."""
        await self.advance_to(max(self.clock(), self.scenario.end_ns))
        return self.result()

    async def advance_to(self, target_ns: int, *,
                         until: Callable[[], bool] | None = None) -> bool:
        """Let simulated time pass until ``target_ns``: every sample, timeline entry,
        deadline and heartbeat due by then happens, in time order. With ``until``, stop
        at the first instant it holds (checked after each step that reached the hub)
        and return True; False if it never held by ``target_ns``."""
        if not self._started:
            raise RuntimeError("the district is not running: use 'async with SimDistrict(...)'")
        if target_ns < self.clock():
            raise ValueError("cannot advance into the past")
        heap = self._heap
        total = self.scenario.duration_s
        self._next_report = self.clock()
        while True:
            other = self._next_other()
            t_sample = heap[0][0] if heap else math.inf
            instant = min(other, t_sample)
            if instant > target_ns:
                break
            if t_sample < other:  # the fast path: samples until something else is due
                await self._samples_until(min(other, target_ns + 1))
            else:
                await self._instant(int(instant))
            if self.clock() >= self._next_report:
                self._report()
            if self._hub_task is not None and self._hub_task.done():
                raise SimStalled(f"the hub stopped: {self._hub_task.exception()!r}")
            if until is not None and until():
                return True
        self.clock.advance_to(target_ns)
        await self._tick(target_ns)
        if self.progress is not None:
            self.progress(min(total, self.elapsed_s), total)
        return until is not None and until()

    def _next_other(self) -> float:
        """The next instant something other than a sample is due."""
        hub = self.hub
        candidates: list[float] = [self._next_beat]
        if self._due:
            candidates.append(self._due[0].at_ns)
        deadline = hub.desk.next_deadline()
        if deadline is not None:
            candidates.append(max(deadline, self.clock()))
        return min(candidates)

    async def _samples_until(self, limit: float) -> None:
        """Feed samples due before ``limit`` in time order; stop early after one that
        made an anomaly event (its alert may bring a deadline before ``limit``)."""
        heap = self._heap
        clock = self.clock
        n = 0
        while heap and heap[0][0] < limit:
            t, order, sensor = heap[0]
            heapq.heapreplace(heap, (t + self._interval[sensor], order, sensor))
            if self.speed is not None:
                await self._pace(t)
            clock.advance_to(t)
            if t >= self._next_report:
                self._report()
            agent = self._owner[sensor]
            made = agent.counters.events_made
            agent.ingest(sensor, t, self._streams[sensor].value(t / NS))
            self.samples += 1
            n += 1
            if agent.counters.events_made != made:
                await self._settle()
                return
            if n % 2000 == 0:
                await asyncio.sleep(0)  # the agents' publishers, MQTT keepalives

    def _report(self) -> None:
        """``progress(done_s, total_s)``, about every 1/200 of the scenario."""
        total = self.scenario.duration_s
        if self.progress is not None:
            self.progress(min(total, self.elapsed_s), total)
        self._next_report = self.clock() + max(NS, round(total * NS / 200))

    async def _instant(self, t: int) -> None:
        """Everything due at ``t``: deadlines, outages, heartbeats, samples, then the
        timeline's actions (a unit acts on the alerts as they stand at that instant)."""
        if self.speed is not None:
            await self._pace(t)
        self.clock.advance_to(t)
        await self._tick(t)
        actions: list[ActionAt | ReportAt | RateAt] = []
        while self._due and self._due[0].at_ns <= t:
            item = heapq.heappop(self._due).item
            if isinstance(item, ActionAt | ReportAt | RateAt):
                actions.append(item)
            elif isinstance(item, Injection):
                self._note("anomaly", f"anomaly injected on {item.sensor}: {item.label} "
                           f"({_shape_text(item)})", sensor=item.sensor)
            elif isinstance(item, Outage):
                await self._cut(item)
            elif isinstance(item, Weather):
                self._note("weather", f"rain {item.rain_mm_h:g} mm/h for "
                           f"{hms(item.duration_s)[1:]}")
            elif isinstance(item, ExternalAt):
                await self._external(item)
            else:
                await self._restore(item[1])
        if self._next_beat <= t:
            await self._heartbeat()
        await self._samples_until(t + 1)
        for action in actions:
            if isinstance(action, ReportAt):
                await self._file(action)
            elif isinstance(action, RateAt):
                await self._rate(action)
            else:
                await self._act(action)

    async def _tick(self, t: int) -> None:
        """The desk's deadlines at ``t``; an alert past one where it can go no higher
        (tier A, or a device fault at its top tier) is overdue (the desk writes an
        overdue step that pages the duty leader): the timeline says so too."""
        desk = self.hub.desk
        await self.hub.tick(t)  # deadlines, and agents fallen silent (the roster)
        for alert_id in sorted(desk.counters.overdue_at_top):
            state = desk.get(alert_id)
            due = state.due()
            if due is None or due[1] > t or (alert_id, *due) in self._overdue:
                continue
            self._overdue.add((alert_id, *due))
            self._note("deadline", f"{alert_id} {state.alert.matter} {due[0]} deadline "
                       f"passed at tier {state.tier}: nowhere higher, it stays with "
                       f"{state.unit_level} "
                       f"{state.unit}", alert_id=alert_id, matter=state.alert.matter,
                       tier=state.tier, unit=state.unit, level=state.unit_level,
                       state=state.state, grid=state.place[-1], action=due[0])

    async def _pace(self, t: int) -> None:
        """At ``speed`` N, let real time catch up with simulated time / N."""
        if self.speed is None:
            raise InvariantError("_pace called on a run without a speed (as fast as it can)")
        due = self._wall0 + (t - self.scenario.start_ns) / NS / self.speed
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    # ------------------------------------------------------------------ waiting

    async def _wait(self, done: Callable[[], bool], what: str, limit: float) -> None:
        """Until ``done()``, woken by each message the hub finishes; SimStalled after
        ``limit`` real seconds. Not a sleep: it returns the moment it holds."""
        hub = self._sim_hub
        loop = asyncio.get_running_loop()
        give_up = loop.time() + limit
        # not while the hub is mid-message: what it does for it (a desk step) belongs to
        # this instant, before anything the simulator does next
        while not (done() and not hub.busy):
            if self._hub_task is not None and self._hub_task.done():
                raise SimStalled(f"the hub stopped while waiting for {what}: "
                                 f"{self._hub_task.exception()!r}")
            left = give_up - loop.time()
            if left <= 0:
                raise SimStalled(f"waited {limit:.0f}s (real) for {what} at "
                                 f"{hms(self.elapsed_s)}; {self._pending()}")
            hub.progress.clear()
            # woken by the hub's progress; the short bound re-checks conditions the hub
            # does not signal (an agent reconnecting)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hub.progress.wait(), min(left, 0.05))

    def _pending(self) -> str:
        seen = self._sim_hub.events_seen
        parts = [f"{a}: {len(seen.get(a, ()))}/{agent.counters.events_made} events taken"
                 + (" (offline)" if a in self._offline else "")
                 for a, agent in self.agents.items()]
        return "; ".join(parts)

    def _settled(self) -> bool:
        seen = self._hub.events_seen if self._hub is not None else {}
        return all(len(seen.get(a, ())) >= agent.counters.events_made
                   for a, agent in self.agents.items() if a not in self._offline)

    async def _settle(self) -> None:
        """Until the hub has handled every event the connected agents made."""
        await self._wait(self._settled, "the hub to take the agents' anomaly events",
                         self.settle_timeout)

    # ------------------------------------------------------------------ timeline items

    def _schedule(self, at_ns: int, item: Injection | ActionAt | Outage | Weather
                  | ExternalAt | ReportAt | RateAt | tuple[str, str]) -> None:
        self._order += 1
        heapq.heappush(self._due, _Due(at_ns, self._order, item))

    async def _heartbeat(self) -> None:
        """Every online agent's own status, stamped now; then wait until the hub has it."""
        now = self.clock()
        self._next_beat = now + self.heartbeat_ns
        client = self._beats
        if client is None:
            return
        online = [a for a in self.agents.values() if a.id not in self._offline]
        for agent in online:
            await client.publish(topics.status_topic(agent.id), agent.status(), qos=1,
                                 retain=True)
        await self._wait(lambda: all(self._heard(a.id, now) for a in online),
                         "the hub to take the agents' heartbeats", self.settle_timeout)

    def _heard(self, agent: str, since: int, state: str = "online") -> bool:
        status: AgentStatus | None = self.hub.agents.get(agent)
        if status is None:
            return False
        if state == "will":
            return status.state == "offline" and status.ts == 0
        return status.state == state and status.ts >= since

    async def _cut(self, outage: Outage) -> None:
        link = self._links.get(outage.agent)
        if link is None:
            raise SimStalled(f"{outage.where}: agent_offline needs a plain mqtt:// broker "
                             f"(the relay cannot cut {self.broker_url})")
        if outage.agent in self._offline:
            return
        await self._settle()
        self._offline.add(outage.agent)
        link.cut()
        self._note("agent_offline", f"edge agent {outage.agent} loses its connection for "
                   f"{hms(outage.duration_s)[1:]} ({outage.where})", actor=outage.agent)
        await self._wait(lambda: self._heard(outage.agent, 0, "will"),
                         f"the broker's last will of {outage.agent}", self.settle_timeout)
        self._schedule(outage.until_ns, ("restore", outage.agent))

    async def _restore(self, agent_id: str) -> None:
        link = self._links[agent_id]
        agent = self.agents[agent_id]
        now = self.clock()
        link.restore()
        self._offline.discard(agent_id)
        agent.seal()
        agent._wake.set()  # the harness: a quiet agent would notice the dead link later
        await self._wait(lambda: self._heard(agent_id, now),
                         f"edge agent {agent_id} to reconnect", self.settle_timeout)
        await self._settle()
        self._note("agent_online", f"edge agent {agent_id} is connected again, its outbox "
                   "sent", actor=agent_id)

    async def _external(self, event: ExternalAt) -> None:
        """A department's system publishes its event on its topic; wait until the hub
        has taken it (or dead-lettered it: the timeline says ``refused`` then)."""
        counters = self.hub.runtime.counters
        before = (counters.external_events, counters.external_refused)
        self._note("external", f"{event.describe()} sent ({event.where})",
                   actor=event.system)
        client = self._beats
        if client is None:
            raise SimStalled(f"{event.where}: no broker connection to send {event.describe()}")
        await client.publish(topics.external_topic(event.system), event.body, qos=1)
        await self._wait(lambda: (counters.external_events, counters.external_refused)
                         != before, f"the hub to take {event.describe()}",
                         self.settle_timeout)
        if counters.external_refused != before[1]:
            kept = ("kept as a dead letter" if self.hub.runtime.dead_letters is not None
                    else "logged")
            self._note("refused", f"{event.describe()}: refused by the hub, its mapping "
                       f"cannot place it; {kept} ({event.where})", actor=event.system)

    async def _file(self, report: ReportAt) -> None:
        """A person's report through the desk, as ``POST /v1/reports`` takes it; the
        timeline says which alert it opened or joined (the desk's step follows)."""
        reporting = Reporting.of(self.hub.desk)
        now = self.clock()
        try:
            grid = locate(self.hub.config, grid=report.grid, point=report.point)
            filed, _ = await reporting.file(
                unit=report.unit, person=report.person, matter=report.matter, grid=grid.id,
                point=report.point, description=report.description, photos=(), now=now)
        except (NowhereKnown, BadAction) as exc:
            self._note("refused", f"{report.describe()}: refused, {exc} ({report.where})",
                       action="report", actor=report.person or report.unit)
            return
        how = {"open": "opened", "evidence": "joined as evidence",
               "reopen": "reopened"}.get(filed.joined or "", "went to")
        self._note("report", f"report {filed.report_id} by {report.person or report.unit}: "
                   f"{report.matter} in {grid.id}, {how} {filed.alert_id} ({report.where})",
                   alert_id=filed.alert_id, action="report", matter=report.matter,
                   grid=grid.id, actor=report.person or report.unit)

    async def _rate(self, rate: RateAt) -> None:
        """A reporter's rating of their report, once its alert is closed; a refusal (open,
        rated already, no such report) is written to the timeline as ``refused``."""
        reporting = Reporting.of(self.hub.desk)
        await reporting.start(self.clock())
        rid = rate.report
        if rid is None:
            mine = reporting.mine(rate.unit or "", "")
            rid = mine[-1].report_id if mine else None
        try:
            if rid is None:
                raise NoSuchReport(f"of {rate.unit}")
            view = await reporting.rate(rid, rate.rating, now=self.clock(), note=rate.note)
        except (NoSuchReport, IllegalTransition, AlreadyRated) as exc:
            try:
                f = reporting.book.get(rid or "").filed
                who = f.person or f.unit
            except NoSuchReport:
                who = rate.unit or ""
            self._note("refused", f"{rate.describe()}: refused, {exc} ({rate.where})",
                       action="rate", actor=who)
            return
        f = view.report.filed
        self._note("rate", f"report {rid} rated {rate.rating} by {f.person or f.unit} "
                   f"({rate.where})", alert_id=view.report.alert_id, action="rate",
                   actor=f.person or f.unit)

    async def _act(self, action: ActionAt) -> None:
        if action.department:
            await self.department_act(action.department, action.do, person=action.person,
                                      matter=action.matter, grid=action.grid,
                                      alert=action.alert, note=action.note,
                                      where=action.where)
            return
        await self.act(action.unit, action.do, matter=action.matter, grid=action.grid,
                       alert=action.alert, note=action.note, reason=action.reason,
                       departments=action.departments, where=action.where,
                       verdict=action.verdict, person=action.person,
                       step=action.step)

    async def department_act(self, department: str, do: ActionName, *, person: str = "",
                             matter: str | None = None, grid: str | None = None,
                             alert: str | None = None, note: str = "",
                             where: str = "") -> Change | None:
        """``department`` takes its own step ``do`` (report_in, dept_arrive,
        dept_dispose) now, as ``person``, on the alert ``alert`` or the latest of
        ``matter`` in ``grid`` (吹哨报到), as the API would for its token. A refusal (not
        dispatched, out of order, outside its area) goes to the timeline as
        ``refused``."""
        desk = self.hub.desk
        target = alert or self._pick(matter, grid)
        label = f"{department} {do} " + (alert or " ".join(x for x in (matter, grid) if x))
        suffix = f" ({where})" if where else ""
        if target is None:
            self._note("refused", f"{label}: refused, no such alert{suffix}", action=do,
                       actor=department, matter=matter or "", grid=grid or "")
            return None
        steps: dict[str, Action] = {"report_in": "report_in", "dept_arrive": "dept_arrive",
                                    "dept_dispose": "dept_dispose"}
        try:
            if do not in steps:
                raise BadAction(f"{do} is not a department's step (report_in, dept_arrive, "
                                "dept_dispose)")
            return await desk.department_act(target, steps[do], department,
                                             now=self.clock(), note=note, person=person)
        except (IllegalTransition, NotFound, OutsideArea, UnknownDepartment,
                BadAction) as exc:
            self._note("refused", f"{label}: refused, {exc}{suffix}", action=do,
                       actor=department, alert_id=target, matter=matter or "",
                       grid=grid or "")
            return None

    async def act(self, unit: str, do: ActionName, *, matter: str | None = None,
                  grid: str | None = None, alert: str | None = None, note: str = "",
                  reason: str = "", departments: Iterable[str] = (),
                  where: str = "", verdict: str = "", person: str = "",
                  step: str = "") -> Change | None:
        """``unit`` does ``do`` now on the alert ``alert``, or the latest of ``matter``
        in ``grid`` (open ones first), as the API would (for ``person``'s token of the
        unit when given: the step names them). A refusal is written to the
        timeline as ``refused`` with its reason (and returns None), not raised.
        ``approve``, ``reject`` (a reason) and ``audit`` (a ``verdict``) are the desk's
        closure control and audits (docs/desk.md); ``plan_step`` ticks ``step`` of the
        alert's plan off (a step ticked already is refused too)."""
        desk = self.hub.desk
        target = alert or self._pick(matter, grid)
        label = f"{unit} {do} " + (alert or " ".join(x for x in (matter, grid) if x))
        suffix = f" ({where})" if where else ""
        if target is None:
            self._note("refused", f"{label}: refused, no such alert{suffix}", action=do,
                       actor=unit, matter=matter or "", grid=grid or "")
            return None
        try:
            now = self.clock()
            if do == "approve":
                return await desk.approve_close(target, unit, now=now, note=note,
                                                person=person)
            if do == "reject":
                return await desk.reject_close(target, unit, now=now, reason=reason,
                                               note=note, person=person)
            if do == "plan_step":
                return await desk.tick_plan(target, step, unit, now=now, note=note,
                                            person=person)
            if do == "audit":
                return await desk.audit(target, unit, verdict, now=now, note=note,
                                        person=person)
            return await desk.act(target, do, unit, now=now, note=note,
                                  reason=reason, departments=tuple(departments),
                                  person=person)
        except Unchanged:  # a repeat (departments already called: at tier B and A the
            return None    # plan's were as the alert came), as the API answers it: no step
        except (IllegalTransition, NotFound, OutsideSubtree, UnknownUnit, BadAction,
                NotPermitted, NoSuchStep, AlreadyTicked) as exc:
            self._note("refused", f"{label}: refused, {exc}{suffix}", action=do, actor=unit,
                       alert_id=target, matter=matter or "", grid=grid or "")
            return None

    def _pick(self, matter: str | None, grid: str | None) -> str | None:
        fits = [s for s in self.hub.desk.alerts()
                if (matter is None or s.alert.matter == matter)
                and (grid is None or s.place[-1] == grid)]
        if not fits:
            return None
        best = max(fits, key=lambda s: (s.is_open, s.opened_at, s.alert_id))
        return best.alert_id

    def inject(self, sensor: str, *, shape: Shape = "ramp", to: float | str | None = None,
               over: float | None = None, lasts: float = 600.0, at: float | None = None,
               label: str = "") -> Injection:
        """Add a labelled anomaly (``to`` a value or ``"2x"`` the alarm limit) starting
        ``at`` simulated seconds from the start (default: now); the ground truth grows."""
        if sensor not in self._streams:
            raise ValueError(f"sensor {sensor!r} is not simulated here (simulated: "
                             f"{', '.join(sorted(self._streams)) or 'none'})")
        spec = self.config.sensors[sensor]
        if isinstance(to, str):
            limit = spec.limits.alarm_high if spec.limits.alarm_high is not None else (
                spec.limits.alarm_low)
            if limit is None or not to.endswith("x"):
                raise ValueError(f"to={to!r}: give a value, or 'Nx' for a sensor with an "
                                 "alarm limit")
            target = float(to[:-1]) * limit
        else:
            target = float(to) if to is not None else 0.0
        start_ns = self.clock() if at is None else self.scenario.start_ns + round(at * NS)
        start_ns = max(start_ns, self.clock())
        inj = Injection(sensor, start_ns / NS, lasts, shape, target,
                        label or f"{shape} on {sensor}", over)
        stream = self._streams[sensor]
        stream.injections = (*stream.injections, inj)
        self._injections.append(inj)
        self._schedule(start_ns, inj)
        return inj

    async def cut_agent(self, agent: str, seconds: float) -> None:
        """Cut ``agent`` off now for ``seconds`` of simulated time (its last will fires)."""
        if agent not in self.agents:
            raise ValueError(f"agent {agent!r} is not running here (running: "
                             f"{', '.join(self.agents) or 'none'})")
        await self._cut(Outage(self.clock(), agent, seconds, "cut_agent"))

    # ------------------------------------------------------------------ recording

    def _offset(self, at_ns: int) -> float:
        return (at_ns - self.scenario.start_ns) / NS

    def _note(self, kind: Kind, text: str, **fields: str) -> None:
        self._timeline.append(TimelineEntry(self._offset(self.clock()), kind, text, **fields))

    async def _on_change(self, change: Change) -> None:
        t = change.transition
        a = change.alert.alert
        self._transitions.append(t)
        self._timeline.append(TimelineEntry(
            self._offset(t.at), "alert", _step_text(change), alert_id=t.alert_id,
            action=t.action, matter=a.matter, tier=t.tier, unit=t.unit, level=t.unit_level,
            state=t.state, grid=a.grid, sensor=t.sensor or a.sensor, actor=t.actor,
            department=t.department, person=t.person))


# --------------------------------------------------------------------------- helpers


def _step_text(change: Change) -> str:
    t = change.transition
    a = change.alert.alert
    head = f"{t.alert_id} {a.matter}"
    why = f": {t.reason}" if t.reason else ""
    note = f" ({t.note})" if t.note else ""
    match t.action:
        case "open":
            return (f"{head} opened, tier {t.tier} to {t.unit_level} {t.unit} "
                    f"({a.anomaly_kind} {a.severity} on {a.sensor} in {a.grid}){why}")
        case "escalate":
            by = "the hub" if t.actor == "hub" else t.actor
            return f"{head} escalated by {by} to tier {t.tier}, {t.unit_level} {t.unit}{why}"
        case "evidence":
            return f"{head} evidence{note}"
        case "reopen":
            return f"{head} reopened at tier {t.tier}, {t.unit}{why}"
        case "report_in" | "dept_arrive" | "dept_dispose":
            who = f"{t.person} of {t.department}" if t.person else t.department
            what = {"report_in": "reported in", "dept_arrive": "arrived on site",
                    "dept_dispose": "reported its part disposed of"}[t.action]
            return f"{head} {t.department} {what} ({who}){note}"
        case "supervise":
            return f"{head} 督办: {t.department} missed its promised arrival{why}"
        case "dispatch" if t.whistled:
            called = ", ".join(f"{w.department} (on site by {utc_text(w.arrive_by)})"
                               for w in t.whistled)
            return f"{head} dispatch by {t.actor}: called {called}{note}"
        case "plan_step":
            return f"{head} plan step {t.plan_step} done by {t.actor}{note}"
        case _:
            return f"{head} {t.action} by {t.actor} -> {t.state}{note}"


def _shape_text(inj: Injection) -> str:
    if inj.shape in ("stuck", "dropout"):
        return f"{inj.shape} for {hms(inj.duration)[1:]}"
    over = f" over {hms(inj.ramp_s)[1:]}" if inj.ramp_s else ""
    return f"{inj.shape} to {inj.target:g}{over}, lasts {hms(inj.duration)[1:]}"


def _at_ns(item: Injection | ActionAt | Outage | Weather | ExternalAt | ReportAt
           | RateAt) -> int:
    if isinstance(item, Injection):
        return round(item.start * NS)
    return item.at_ns


def _sim_spec(spec: AgentSpec, chosen: set[str], heartbeat_ns: int) -> AgentSpec:
    """The agent with only the simulated sensors, bulk batches, and the sim heartbeat."""
    settings = spec.settings.model_copy(update={
        "batch_max_readings": BULK_READINGS,
        "status_interval": timedelta(seconds=heartbeat_ns / NS),
    })
    return dataclasses.replace(spec, sensors=tuple(s for s in spec.sensors if s.id in chosen),
                               settings=settings)


def _as_scenario(source: Scenario | ConfigSet | Path | str) -> Scenario:
    if isinstance(source, Scenario):
        return source
    if isinstance(source, ConfigSet):
        return _bare(source)
    path = Path(source)
    if not path.exists() and path.parent == Path(".") and (EXAMPLES / path.name).is_dir():
        path = EXAMPLES / path.name  # a packaged sample config set ("huangpu")
    if path.is_dir():
        from gridcall.detectors import REGISTRY
        from gridcall.edge_agent.watch import detector_problem

        return _bare(load_config(path, known_detectors=set(REGISTRY),
                                 check_detector=detector_problem))
    return load_scenario(path)


def _bare(config: ConfigSet) -> Scenario:
    """A config set with an empty timeline: time passes, nothing is injected."""
    start = round(DEFAULT_START.timestamp()) * NS
    return Scenario(name=config.directory.name, description="", config=config, seed=0,
                    start_ns=start, duration_s=86400.0)


def _shifted(scenario: Scenario, start_ns: int) -> Scenario:
    """The scenario moved to start at ``start_ns`` (timeline offsets kept)."""
    d = start_ns - scenario.start_ns
    return dataclasses.replace(
        scenario, start_ns=start_ns,
        injections=tuple(dataclasses.replace(i, start=i.start + d / NS)
                         for i in scenario.injections),
        actions=tuple(dataclasses.replace(a, at_ns=a.at_ns + d) for a in scenario.actions),
        outages=tuple(dataclasses.replace(o, at_ns=o.at_ns + d) for o in scenario.outages),
        weather=tuple(dataclasses.replace(w, at_ns=w.at_ns + d) for w in scenario.weather),
        externals=tuple(dataclasses.replace(e, at_ns=e.at_ns + d)
                        for e in scenario.externals),
        reports=tuple(dataclasses.replace(r, at_ns=r.at_ns + d) for r in scenario.reports),
        ratings=tuple(dataclasses.replace(r, at_ns=r.at_ns + d) for r in scenario.ratings),
        replays=tuple(dataclasses.replace(r, at_ns=r.at_ns + d) for r in scenario.replays))



def replayed(scenario: Scenario, sensor: str) -> tuple[RecordedStream, ...]:
    """The recordings of the scenario's ``replay:`` entries that play on ``sensor``."""
    return tuple(RecordedStream(r.recording.series[sensor], start=r.at_ns / NS,
                                speed=r.speed, recording_start_ns=r.recording.start_ns)
                 for r in scenario.replays if sensor in r.recording.series)


async def run_scenario(scenario: Scenario | Path | str, *, broker_url: str | None = None,
                       speed: float | None = None,
                       progress: Callable[[float, float], None] | None = None,
                       **options: Any) -> ScenarioRun:
    """Play ``scenario`` to its end (as fast as it goes, or ``speed`` times real time)
    and return what happened. ``progress(done_s, total_s)`` is called as sim time passes."""
    async with SimDistrict(scenario, broker_url=broker_url, speed=speed, progress=progress,
                           **options) as district:
        return await district.run()
