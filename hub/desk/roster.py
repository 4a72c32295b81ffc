"""The agent roster: which edge agents the hub hears from, and how their sensors are.

Pure: no I/O, no clock. The hub feeds it every :class:`~wire.AgentStatus` it receives
(``observe``) and asks it who fell silent (``check``). Every ``now`` it is given is on
the **agents' time base** (the clock the edge agents run on: the hub's ``agent_clock``),
not necessarily the desk's: a desk whose clock runs 600 times faster (a fast demo) would
otherwise find every live agent silent after a few real seconds. What it knows
goes to the boards (``agent_state``, ``sensor_risk`` health, :mod:`gridcall.hub.board.feed`) and
to the API (``GET /v1/agents``).

An agent is, for the hub:

- ``online``: its latest status says so and the hub heard it less than ``silent_after``
  heartbeats ago (the heartbeat is the status's own ``heartbeat_s``, else the agent's
  configured ``status_interval``);
- ``silent``: its latest status says online but the hub heard nothing from it for
  longer than that (the agent, or the link to it, hangs without the broker noticing yet).
  Measured on the agents' time base from when the status arrived, not from the
  status's own ``ts``: a gateway's clock may be wrong (no RTC battery, NTP blocked), the
  hub's is not. A retained status (below) is judged by its ``ts``: when it
  arrived says nothing about when it was sent;
- ``lost``: the broker published its last will (``state="offline"``, ``ts=0``): the
  connection dropped without a goodbye (crash, power, network);
- ``stopped``: it said goodbye itself (``state="offline"`` with its own time): a clean
  stop, for maintenance or an update;
- ``unknown``: no status from it yet (never started, or the broker lost the retained one).

Only ``online`` counts as online on the boards. **Lost** and **silent** are outages: the
roster reports them as :class:`RosterEvent` ``kind="down"`` (once per outage) and the hub
raises an ``EDGE-OFFLINE`` alert for them. A hub that starts fresh (a new store, a new
session) learns of an agent already dead from the broker's *retained* copy of its status
topic, and reports it as it would have live (``RosterEvent.retained``): a retained last
will is an outage at once; a retained "online" status is judged like a live one, except
that silence counts from when the hub received the copy (the copy's ``ts`` says when it
was sent, by a clock that may be wrong), so an agent that is alive has a full silence
window to speak before it is called silent. The hub raises nothing for a retained outage
of an agent whose outage alert is still open (a restart finds the same will again). A
clean stop is shown but raises nothing (a planned stop is not a call for help, and every
test or demo that stops its agents would otherwise end with a flood of alerts). A status
saying online after an outage is a ``kind="up"`` event (the hub notes it on the open
alert; it does not close it: people do).

Per-sensor health comes from the agent's ``sensor_health`` (``ok``, ``stuck``,
``missing``, ``fault``, ``offline``: :data:`gridcall.wire.HEALTH_STATES`); a sensor whose
agent is not online, or that its agent does not report, is ``unknown``. A sensor reported
``missing`` for ``maintenance.sensor_missing_after`` of its intervals is given once per
stretch by :meth:`Roster.missing` (the hub raises it as a SENSOR-FAULT).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gridcall.config import ConfigSet
from gridcall.wire import AgentStatus, HealthState
from gridcall.wire.clock import NS
from gridcall.wire.errors import InvariantError
from gridcall.wire.stats import Scalar, flatten

Liveness = Literal["online", "silent", "lost", "stopped", "unknown"]
Health = Literal[HealthState, "unknown"]
"""What the agent reports (:data:`gridcall.wire.HealthState`), or ``unknown``."""
DOWN: frozenset[Liveness] = frozenset({"silent", "lost"})
"""The states that are outages (raise EDGE-OFFLINE)."""


class UnknownAgent(LookupError):
    def __init__(self, agent: str) -> None:
        super().__init__(f"status from agent {agent!r}, which is not in the config "
                         "(agents.yaml); ignored")
        self.agent = agent


@dataclass(frozen=True, slots=True)
class RosterEvent:
    """An outage began (``down``) or ended (``up``)."""

    agent: str
    kind: Literal["down", "up"]
    at: int
    """When the hub noticed (ns, the agents' time base: see the module docstring)."""
    state: Liveness
    """The state the agent went into (``lost``/``silent`` for down, ``online`` for up)."""
    reason: str
    """For people: "lost its connection (last will)", "silent for 95 s (3 heartbeats of
    30 s)", "back online"."""
    retained: bool = False
    """Found from the broker's retained copy (a hub that started fresh), not witnessed."""


@dataclass(frozen=True, slots=True)
class MissingSensor:
    """A sensor its agent reports ``missing`` for at least the configured number of its
    intervals (``maintenance.sensor_missing_after``): reported once per stretch."""

    agent: str
    sensor: str
    intervals: float
    """How many of its reading intervals it has gone without a usable value."""
    last_ts: int | None
    """Its last usable value (the agent's clock), None if it never gave one."""


@dataclass(frozen=True, slots=True)
class AgentView:
    """One agent as the roster sees it at ``now``."""

    agent: str
    town: str
    state: Liveness
    status: AgentStatus | None
    """The latest status (for a last will: the last status before it, if any)."""
    heard_at: int | None
    """When the hub received the latest message on its status topic (ns, agents' time
    base)."""
    heartbeat_s: float
    last_seen_s: float | None
    """Seconds since the agent's latest own status: since it arrived (agents' time base), or
    for a retained copy since its ``ts``; None if the hub never had one."""
    sensors: Mapping[str, Health]

    @property
    def online(self) -> bool:
        return self.state == "online"

    @property
    def outbox_depth(self) -> int:
        return self.status.outbox_messages if self.status else 0

    @property
    def outbox_age_s(self) -> float:
        age = self.status.outbox_oldest_age_s if self.status else None
        return age if age is not None and math.isfinite(age) else 0.0

    @property
    def dropped(self) -> int:
        return sum(self.status.dropped.values()) if self.status else 0

    @property
    def unhealthy(self) -> int:
        return sum(1 for h in self.sensors.values() if h != "ok")


@dataclass
class _Entry:
    status: AgentStatus | None = None
    """The latest status with the agent's own time (not a last will)."""
    status_at: int | None = None
    """When that status arrived (agents' time base), or its ``ts`` if it was a retained copy."""
    heard_at: int | None = None
    lost: bool = False
    stopped: bool = False
    live: bool = False
    """The latest status arrived live (not the broker's retained copy)."""
    down: bool = False
    """An outage was reported and has not ended."""


@dataclass
class RosterCounters:
    statuses: int = 0
    wills: int = 0
    unknown_agents: int = 0
    outages: int = 0
    recoveries: int = 0


@dataclass
class Roster:
    """``observe`` each status, ``check`` the clock; both return the outages they saw begin
    or end. One per hub; not thread-safe."""

    config: ConfigSet
    silent_after: float = 3.0
    """Heartbeats without a status before an online agent counts as silent."""
    counters: RosterCounters = field(default_factory=RosterCounters)
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _missing_since: dict[str, int] = field(default_factory=dict)
    """Sensor -> the ``ts`` of the first status that reported it missing without a last
    value (the agent's clock)."""
    _missing_told: set[str] = field(default_factory=set)
    """Sensors whose current stretch of missing was reported."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.silent_after) and self.silent_after > 0):
            raise ValueError(f"roster silent_after must be a number of heartbeats > 0, "
                             f"got {self.silent_after}")
        self._entries = {a: _Entry() for a in self.config.agents}

    def stats(self) -> dict[str, Scalar]:
        """The roster's counters, flat (:mod:`gridcall.wire.stats`)."""
        return flatten(self.counters)

    # ------------------------------------------------------------------ input

    def observe(self, status: AgentStatus, now: int, *, retained: bool = False
                ) -> list[RosterEvent]:
        """Take a status received at ``now`` (``retained``: the broker's retained copy; a
        retained last will reports the outage, a retained status is watched from ``now``,
        see the module docstring). UnknownAgent (nothing kept) for an agent the config
        does not know."""
        entry = self._entries.get(status.agent)
        if entry is None:
            self.counters.unknown_agents += 1
            raise UnknownAgent(status.agent)
        self.counters.statuses += 1
        entry.heard_at = now
        entry.live = not retained
        if status.state == "offline" and status.ts == 0:  # the broker's last will
            self.counters.wills += 1
            entry.lost, entry.stopped = True, False
        else:
            # The latest to arrive wins, whatever its ts: MQTT keeps one publisher's order
            # on a topic, and a gateway that restarts with its clock behind (no RTC) is
            # not sending old news.
            entry.status = status
            entry.status_at = status.ts if retained else now
            entry.lost = False
            entry.stopped = status.state == "offline"
        if retained:
            if entry.lost:  # the broker kept its will: dead now, whenever it dropped
                return self._transition(status.agent, entry, now, retained=True)
            if entry.stopped:
                entry.down = False
            return []  # watched from now on (check)
        return self._transition(status.agent, entry, now)

    def check(self, now: int) -> list[RosterEvent]:
        """The agents that fell silent by ``now`` (each outage reported once). An agent
        known only from a retained status is judged once the hub itself has waited
        ``silent_after`` heartbeats since it received it."""
        events: list[RosterEvent] = []
        for agent, entry in self._entries.items():
            if entry.down or entry.status is None or entry.lost:
                continue
            if entry.live:
                events += self._transition(agent, entry, now)
            elif entry.heard_at is not None and (
                    now - entry.heard_at > self.silent_after * self.heartbeat_s(agent) * NS):
                events += self._transition(agent, entry, now, retained=True)
        return events

    def _transition(self, agent: str, entry: _Entry, now: int, *, retained: bool = False
                    ) -> list[RosterEvent]:
        state = self._state(agent, entry, now)
        if state in DOWN and not entry.down:
            entry.down = True
            self.counters.outages += 1
            why = self._why(agent, entry, state, now)
            if retained:
                why += ("; found from the broker's retained copy when the hub started"
                        if state == "lost" else
                        "; nothing from it since the hub started, only the broker's "
                        "retained copy")
            return [RosterEvent(agent, "down", now, state, why, retained)]
        if state == "online" and entry.down:
            entry.down = False
            self.counters.recoveries += 1
            return [RosterEvent(agent, "up", now, state, "back online")]
        if state == "stopped":  # a goodbye ends an outage without being a recovery
            entry.down = False
        return []

    # ------------------------------------------------------------------ reading

    def heartbeat_s(self, agent: str) -> float:
        entry = self._entries[agent]
        if entry.status is not None and entry.status.heartbeat_s > 0:
            return entry.status.heartbeat_s
        return self.config.agents[agent].settings.status_interval.total_seconds()

    def _state(self, agent: str, entry: _Entry, now: int) -> Liveness:
        if entry.lost:
            return "lost"
        if entry.status is None:
            return "unknown"
        if entry.stopped:
            return "stopped"
        since = entry.status_at if entry.status_at is not None else entry.status.ts
        if now - since > self.silent_after * self.heartbeat_s(agent) * NS:
            return "silent"
        return "online"

    def _why(self, agent: str, entry: _Entry, state: Liveness, now: int) -> str:
        if state == "lost":
            return "lost its connection to the broker (last will)"
        if entry.status_at is None:
            raise InvariantError(f"roster: agent {agent!r} is {state} without a status time")
        beat = self.heartbeat_s(agent)
        return (f"silent for {(now - entry.status_at) / NS:.0f} s (no status for "
                f"{self.silent_after:g} heartbeats of {beat:g} s)")

    def view(self, agent: str, now: int) -> AgentView:
        """KeyError for an agent not in the config."""
        entry = self._entries[agent]
        spec = self.config.agents[agent]
        state = self._state(agent, entry, now)
        status = entry.status
        reported = status.sensor_health if status is not None else {}
        sensors: dict[str, Health] = {}
        for s in spec.sensors:
            h = reported.get(s.id)
            sensors[s.id] = h.state if h is not None and state == "online" else "unknown"
        return AgentView(
            agent=agent, town=self.config.units[spec.grid].path[1], state=state,
            status=status, heard_at=entry.heard_at, heartbeat_s=self.heartbeat_s(agent),
            last_seen_s=None if entry.status_at is None
            else max(0.0, (now - entry.status_at) / NS),
            sensors=sensors)

    def views(self, now: int) -> list[AgentView]:
        """Every configured agent, in config order."""
        return [self.view(a, now) for a in self._entries]

    def missing(self, agent: str) -> list[MissingSensor]:
        """The sensors of ``agent`` its latest status reports ``missing`` for at least
        ``maintenance.sensor_missing_after`` of their intervals, each once per stretch (a
        sensor that reports again starts a new one). Counted on the agent's own clock: the
        status's ``ts`` against the sensor's ``last_ts`` (or, if it never gave a value,
        the first status that said so). Empty without the ``maintenance`` section."""
        upkeep = self.config.matters.maintenance
        entry = self._entries.get(agent)
        if upkeep is None or upkeep.sensor_missing_after <= 0 or entry is None:
            return []
        status = entry.status
        if status is None or entry.lost or entry.stopped:
            return []
        out: list[MissingSensor] = []
        for spec in self.config.agents[agent].sensors:
            health = status.sensor_health.get(spec.id)
            if health is None or health.state != "missing":
                self._missing_since.pop(spec.id, None)
                self._missing_told.discard(spec.id)
                continue
            since = health.last_ts if health.last_ts is not None else (
                self._missing_since.setdefault(spec.id, status.ts))
            gone = (status.ts - since) / NS / spec.interval_s
            if gone >= upkeep.sensor_missing_after and spec.id not in self._missing_told:
                self._missing_told.add(spec.id)
                out.append(MissingSensor(agent, spec.id, gone, health.last_ts))
        return out

    def is_down(self, agent: str) -> bool:
        """Whether ``agent`` is in an outage (``lost`` or ``silent``, not yet back online):
        what holds back its sensors' faults. No clock needed: it
        changes only with :meth:`observe` and :meth:`check`. False for an unknown agent."""
        entry = self._entries.get(agent)
        return entry is not None and entry.down

    def down(self) -> frozenset[str]:
        """Every agent in an outage now (:meth:`is_down`)."""
        return frozenset(a for a, e in self._entries.items() if e.down)

    def agent_of(self, sensor: str) -> str | None:
        """The agent that reads ``sensor`` (None if no configured agent does)."""
        spec = self.config.sensors.get(sensor)
        return spec.agent if spec is not None else None

    def grids_of(self, agent: str) -> dict[str, str]:
        """The grids the agent's sensors sit in (config order), each with the first of its
        sensors there: where an outage of the agent leaves no eyes."""
        out: dict[str, str] = {}
        for s in self.config.agents[agent].sensors:
            out.setdefault(s.grid, s.id)
        return out
