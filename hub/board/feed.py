"""What the risk boards draw, as InfluxDB line protocol: pure, no I/O, no clock.

The hub writes these measurements into the same database (bucket) as its readings, so a
Grafana board is drawn from InfluxDB alone (contract: ``/work/contracts.md`` §1;
schema and example queries: ``docs/boards.md``, "Board data").

**Snapshots** (:meth:`BoardFeed.snapshot`, every ``boards.interval`` of the hub's clock,
all points of one snapshot at the same time):

- ``open_alert``: one point per open alert (not resolved, not a false alarm); with
  ``hub.boards.full_every`` > 1 only those that changed, and a closing point (``open=0``)
  for one that closed (hub/board/diff.py);
- ``grid_risk``: one point per grid of the topology (risk = highest open tier there);
- ``sensor_risk``: one point per sensor (risk = highest open alert it is evidence of, and
  its health as its agent reports it);
- ``agent_state``: one point per configured agent (the roster, :mod:`gridcall.hub.desk.roster`).

**Events**, at their own time: ``anomaly`` (:meth:`BoardFeed.anomaly`, each anomaly event
the hub takes) and ``alert_change`` (:meth:`BoardFeed.alert_change`, each ledger step).

Risk levels are integers so a board can colour by thresholds and take ``max()``:
0 none, 1 tier D, 2 C, 3 B, 4 A. Tag values are ids (plus ``grid_name``, which the
contract names as a tag); names and human-readable text go in string fields. Strings and
tags are escaped by :mod:`gridcall.hub.ingest.sinks.lineproto`'s rules; a float that is not finite
is left
out (line protocol has no NaN).

Everything the snapshot needs per grid and per sensor (tags, centroids) is built once
per config: a snapshot of the sample district (81 sensors, 27 grids) is a few hundred
microseconds, 10,000 open alerts tens of milliseconds (``bench/board_feed.py``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

from gridcall.config import ConfigSet
from gridcall.hub.desk.lifecycle import AlertState, Transition
from gridcall.hub.desk.roster import AgentView
from gridcall.hub.ingest.sinks.lineproto import escape_field_string, escape_measurement, escape_tag
from gridcall.wire import AnomalyEvent
from gridcall.wire.clock import NS
from gridcall.wire.ladder import RISK

MEASUREMENTS = ("open_alert", "grid_risk", "sensor_risk", "agent_state", "anomaly",
                "alert_change")


_tag = functools.lru_cache(maxsize=1 << 16)(escape_tag)
"""escape_tag, remembered: a snapshot repeats the same ids (matter, tier, unit, town...)
thousands of times, and ``str.translate`` was a third of its cost."""
_SPECIAL = frozenset('\\"\n\r\t')


def _string(text: str) -> str:
    """A string field: most need no escape at all."""
    return escape_field_string(text) if _SPECIAL.intersection(text) else f'"{text}"'


def _tags(tags: Mapping[str, str]) -> str:
    """``,k=v`` for each tag, sorted by key (InfluxDB's own order), empty ones left out."""
    out = []
    for k, v in sorted(tags.items()):
        ev = _tag(v)
        if ev:
            out.append(f",{_tag(k)}={ev}")
    return "".join(out)


def _fields(fields: Mapping[str, object]) -> str:
    """``k=v,...``: bool/int as integers, float (finite only), str quoted; None skipped."""
    out = []
    for k, v in fields.items():
        if v is None:
            continue
        if isinstance(v, bool):
            text = f"{int(v)}i"
        elif isinstance(v, int):
            text = f"{v}i"
        elif isinstance(v, float):
            if not math.isfinite(v):
                continue
            text = repr(v)
        else:
            text = _string(str(v))
        out.append(f"{_tag(k)}={text}")
    return ",".join(out)


def _line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, object],
          at: int) -> str:
    return f"{measurement}{_tags(tags)} {_fields(fields)} {at}\n"


@dataclass(frozen=True, slots=True)
class _GridInfo:
    town: str
    community: str
    grid: str
    name: str
    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class _SensorInfo:
    head: str
    """``sensor_risk,<tags> `` (escaped once)."""
    agent: str
    lon: float
    lat: float


class BoardFeed:
    """Line protocol for the board measurements of one config set (see the module doc).

    ``measurements`` renames them (e.g. for a test's own prefix); the defaults are the
    contract's names.
    """

    def __init__(self, config: ConfigSet, *, measurements: Mapping[str, str] | None = None
                 ) -> None:
        self.config = config
        names = {m: m for m in MEASUREMENTS} | dict(measurements or {})
        unknown = set(names) - set(MEASUREMENTS)
        if unknown:
            raise ValueError(f"unknown board measurement(s) {sorted(unknown)}; known: "
                             f"{list(MEASUREMENTS)}")
        self.names = {m: escape_measurement(n) for m, n in names.items()}
        if not all(self.names.values()):
            raise ValueError(f"a board measurement name is empty once escaped: {names}")
        self._grids: dict[str, _GridInfo] = {}
        for unit in config.units_at("grid"):
            lon, lat = unit.location.centre()
            self._grids[unit.id] = _GridInfo(unit.path[1], unit.path[2], unit.id, unit.name,
                                             lon, lat)
        self._grid_heads = {
            g.grid: f"{self.names['grid_risk']}" + _tags(
                {"town": g.town, "community": g.community, "grid": g.grid,
                 "grid_name": g.name}) + " "
            for g in self._grids.values()}
        self._sensors: dict[str, _SensorInfo] = {}
        for s in config.sensors.values():
            head = self.names["sensor_risk"] + _tags(
                {"town": s.path[1], "community": s.path[2], "grid": s.grid, "sensor": s.id,
                 "kind": s.kind, "agent": s.agent}) + " "
            self._sensors[s.id] = _SensorInfo(head, s.agent, s.coordinates[0],
                                              s.coordinates[1])
        self._titles: dict[tuple[str, str], str] = {}
        """(matter, grid) -> the ``title`` field, quoted (a handful per config)."""

    # ------------------------------------------------------------------ snapshot

    def snapshot(self, alerts: Iterable[AlertState], now: int, *,
                 evidence: Mapping[str, Iterable[str]] | None = None,
                 agents: Iterable[AgentView] = (), only: Container[str] | None = None,
                 closed: Iterable[AlertState] = ()) -> bytes:
        """Every snapshot point at ``now``: ``open_alert`` for the open ones of ``alerts``,
        ``grid_risk``, ``sensor_risk`` and ``agent_state`` (for ``agents``).
        ``evidence`` maps an alert id to the sensors that added evidence to it (besides
        the alert's own sensor). ``only``: ``open_alert`` for these alerts alone (the
        risks still from all); ``closed``: a closing point (``open=0``) for each
        (hub/board/diff.py)."""
        evidence = evidence or {}
        lines: list[str] = []
        grid_risk: dict[str, int] = {}
        grid_open: dict[str, int] = {}
        sensor_risk: dict[str, int] = {}
        for state in alerts:
            if not state.is_open:
                continue
            if only is None or state.alert_id in only:
                lines.append(self._open_alert(state, now))
            risk = RISK[state.tier]
            for grid in state.alert.grids or (state.place[-1],):  # an outage: each grid
                grid_open[grid] = grid_open.get(grid, 0) + 1
                if risk > grid_risk.get(grid, 0):
                    grid_risk[grid] = risk
            for sensor in (state.alert.sensor, *evidence.get(state.alert_id, ())):
                if risk > sensor_risk.get(sensor, 0):
                    sensor_risk[sensor] = risk
        lines.extend(self._open_alert(state, now, open_=False) for state in closed)
        for g in self._grids.values():
            lines.append(f"{self._grid_heads[g.grid]}risk={grid_risk.get(g.grid, 0)}i,"
                         f"open={grid_open.get(g.grid, 0)}i,lat={g.lat!r},lon={g.lon!r} "
                         f"{now}\n")
        health: dict[str, str] = {}
        for view in agents:
            lines.append(self._agent_state(view, now))
            health.update(view.sensors)
        for sid, info in self._sensors.items():
            h = health.get(sid, "unknown")
            lines.append(f"{info.head}risk={sensor_risk.get(sid, 0)}i,lat={info.lat!r},"
                         f"lon={info.lon!r},health=\"{h}\",healthy={int(h == 'ok')}i {now}\n")
        return "".join(lines).encode()

    def _open_alert(self, state: AlertState, now: int, *, open_: bool = True) -> str:
        # Written out rather than through _line: with 10,000 open alerts this is the
        # snapshot's hot loop (tag keys in sorted order, as _tags would put them).
        alert = state.alert
        last = state.last
        place = state.place
        grid_id = place[-1]
        grid = self._grids.get(grid_id)
        town = place[1] if len(place) > 1 else ""
        community = place[2] if len(place) > 2 else ""
        department = last.departments[0] if last.departments else alert.departments.lead
        tags = "".join(f",{k}={v}" for k, v in (
            ("alert_id", _tag(alert.alert_id)), ("community", _tag(community)),
            ("department", _tag(department)), ("grid", _tag(grid_id)),
            ("level", last.unit_level), ("matter", _tag(alert.matter)),
            ("state", last.state), ("tier", last.tier), ("town", _tag(town)),
            ("unit", _tag(last.unit))) if v)
        title = self._titles.get((alert.matter, grid_id))
        if title is None:
            title = self._titles[(alert.matter, grid_id)] = _string(
                f"{alert.matter_name} {grid.name if grid else grid_id}")
        fields = (f"open={int(open_)}i,sensor={_string(alert.sensor)},title={title},"
                  f"escalations={state.escalations}i,age_s={(now - state.opened_at) / NS!r},"
                  f"steps={last.n}i,opened_ms={state.opened_at // 1_000_000}i,"
                  f"agent={_string(alert.agent)}")
        if alert.reason:
            fields += f",reason={_string(alert.reason)}"
        due = state.due()
        if due is not None:
            fields += (f",deadline_ms={due[1] // 1_000_000}i,"
                       f"deadline_left_s={(due[1] - now) / NS!r},deadline_kind=\"{due[0]}\"")
        return f"{self.names['open_alert']}{tags} {fields} {now}\n"

    def _agent_state(self, view: AgentView, now: int) -> str:
        status = view.status
        fields: dict[str, object] = {
            "online": view.online, "state": view.state, "outbox_depth": view.outbox_depth,
            "outbox_age_s": view.outbox_age_s, "dropped": view.dropped,
            "last_seen_s": view.last_seen_s, "heartbeat_s": view.heartbeat_s,
            "unhealthy_sensors": view.unhealthy,
            "readings_sent": status.readings_sent if status else None,
            "uptime_s": status.uptime_s if status else None}
        return _line(self.names["agent_state"], {"agent": view.agent, "town": view.town},
                     fields, now)

    # ------------------------------------------------------------------ events

    def anomaly(self, event: AnomalyEvent) -> bytes:
        """One ``anomaly`` point at the event's own time (b"" for a sensor the config does
        not know: the hub rejects those before)."""
        sensor = self.config.sensors.get(event.sensor)
        if sensor is None:
            return b""
        value = "" if event.value is None else f" value {event.value:g} {sensor.unit_of_measure}"
        text = (f"{sensor.name or sensor.id}: {event.kind} {event.severity}"
                f"{' ends' if event.phase == 'end' else ''}{value} "
                f"(score {event.score:.2f}, {event.detector})")
        tags = {"sensor": sensor.id, "agent": event.agent, "kind": sensor.kind,
                "anomaly": event.kind, "severity": event.severity, "phase": event.phase,
                "town": sensor.path[1], "community": sensor.path[2], "grid": sensor.grid}
        fields: dict[str, object] = {"value": event.value, "score": float(event.score),
                                     "text": text, "seq": event.seq}
        return _line(self.names["anomaly"], tags, fields, event.ts).encode()

    def alert_change(self, state: AlertState, t: Transition) -> bytes:
        """One ``alert_change`` point for the ledger step ``t`` (``state``: the alert
        after it), at the step's own time."""
        alert = state.alert
        place = state.place
        grid = self._grids.get(place[-1])
        where = grid.name if grid else place[-1]
        text = f"{t.actor}: {t.action} {t.alert_id} ({alert.matter_name}, {where})"
        if t.action == "escalate":
            text += f" to tier {t.tier}, now {t.unit_level} {t.unit}"
        elif t.action not in ("evidence",):
            text += f" → {t.state}"
        for extra in (t.reason, t.note):
            if extra:
                text += f"; {extra}"
        tags = {"alert_id": t.alert_id, "matter": alert.matter, "tier": t.tier,
                "action": t.action, "unit": t.unit, "level": t.unit_level,
                "town": place[1] if len(place) > 1 else "",
                "community": place[2] if len(place) > 2 else "", "grid": place[-1]}
        fields: dict[str, object] = {
            "escalated": t.action == "escalate", "sensor": t.sensor or alert.sensor,
            "text": text, "actor": t.actor, "state": t.state, "n": t.n,
            "reason": t.reason or None}
        return _line(self.names["alert_change"], tags, fields, t.at).encode()
