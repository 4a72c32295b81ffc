"""What the built-in board (``/board``, :mod:`gridcall.hub.api.board`) shows, computed from the
config and the desk's alert states: pure, no I/O, no clock.

- :func:`board_names`: the names the page shows instead of ids; :func:`board_matters` and
  :func:`board_agents`, what its silence form offers beside the map's grids and sensors.
- :func:`board_areas` / :func:`board_sensors`: the map of a unit's subtree, from the GeoJSON
  of the topology (``location.polygon`` of towns, communities and grids, ``[lon, lat]``
  rings) and the sensors' coordinates; drawn by the browser, no map tiles.
- :func:`grid_risk` / :func:`sensor_risk`: the risk of each grid (sensor), the highest tier
  of the open alerts in it (raised by it), as an int: 0 none, 1 tier D, 2 C, 3 B, 4 A,
  the scale of the ``grid_risk`` measurement the hub writes to InfluxDB (contracts §1).
- :func:`board_actions`: the buttons an alert gets now, from the lifecycle's own rules
  (:func:`gridcall.hub.desk.lifecycle.refusal`), so the page never guesses what the API allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gridcall.config import ConfigSet, Unit
from gridcall.hub.desk.lifecycle import Action, AlertState, refusal
from gridcall.wire import Tier, UnitLevel
from gridcall.wire.ladder import RISK

BOARD_ACTIONS: tuple[Action, ...] = ("acknowledge", "arrive", "resolve", "false_alarm",
                                     "escalate")
"""What a unit may do from the board (dispatching departments stays in the API)."""

Ring = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Area:
    """A unit of the subtree on the map: its polygon (GeoJSON rings, ``[lon, lat]``), or
    its point when the config gives a point instead."""

    id: str
    name: str
    level: UnitLevel
    parent: str | None
    polygon: tuple[Ring, ...] | None
    point: tuple[float, float] | None
    centre: tuple[float, float]


@dataclass(frozen=True, slots=True)
class SensorDot:
    id: str
    name: str
    kind: str
    grid: str
    lon: float
    lat: float


def inside(path: tuple[str, ...], root: tuple[str, ...]) -> bool:
    """Whether ``path`` lies in the subtree whose root has the path ``root``."""
    return path[:len(root)] == root


def board_areas(cfg: ConfigSet, root: Unit) -> list[Area]:
    """``root`` and every unit below it, top down (the order the map draws them in)."""
    units = [u for u in cfg.units.values() if inside(u.path, root.path)]
    units.sort(key=lambda u: len(u.path))
    return [Area(id=u.id, name=u.name, level=u.level, parent=u.parent,
                 polygon=u.location.polygon, point=u.location.point,
                 centre=u.location.centre()) for u in units]


def board_names(cfg: ConfigSet, root: Unit) -> dict[str, str]:
    """id → name of everyone the board of ``root`` names in its texts (a step's actor, the
    unit holding an alert, a silence's author, an incident's grids): every unit and
    department, and the persons of the units of ``root``'s subtree and above it (an alert
    of the subtree is held on that path) and of the departments (roster.yaml). The page
    shows these names instead of ids."""
    names = {u.id: u.name for u in cfg.units.values()}
    names.update((d.id, d.name) for d in cfg.departments.values())
    ours = {u.id for u in cfg.units.values()
            if inside(u.path, root.path) or inside(root.path, u.path)} | set(cfg.departments)
    names.update((p.id, p.name) for p in cfg.duty.persons if p.unit in ours)
    return names


def board_matters(cfg: ConfigSet) -> dict[str, str]:
    """code → name of every matter of the catalog (what a matter silence may name)."""
    return {m.code: m.name for m in cfg.matters.matters}


def board_agents(cfg: ConfigSet, root: Unit) -> dict[str, str]:
    """id → name of the edge agents with a sensor in ``root``'s subtree (what an agent
    silence may name)."""
    return {a.id: a.name for a in cfg.agents.values()
            if any(inside(s.path, root.path) for s in a.sensors)}


def board_sensors(cfg: ConfigSet, root: Unit) -> list[SensorDot]:
    return [SensorDot(id=s.id, name=s.name or s.id, kind=s.kind, grid=s.grid,
                      lon=s.coordinates[0], lat=s.coordinates[1])
            for s in cfg.sensors.values() if inside(s.path, root.path)]


def _highest(pairs: Iterable[tuple[str, Tier]]) -> dict[str, tuple[int, int]]:
    """key → (highest risk, how many) over ``(key, tier)`` pairs."""
    out: dict[str, tuple[int, int]] = {}
    for key, tier in pairs:
        risk, count = out.get(key, (0, 0))
        out[key] = (max(risk, RISK[tier]), count + 1)
    return out


def grid_risk(states: Iterable[AlertState]) -> dict[str, tuple[int, int]]:
    """grid id → (risk, open alerts) over the open alerts among ``states``; grids with no
    open alert are absent (risk 0). An alert that lists the grids it concerns (an edge
    agent's outage: ``RiskAlert.grids``) counts in each of them."""
    return _highest((grid, s.tier) for s in states if s.is_open
                    for grid in (s.alert.grids or (s.place[-1],)))


def sensor_risk(states: Iterable[AlertState],
                evidence: Mapping[str, Iterable[str]] | None = None
                ) -> dict[str, tuple[int, int]]:
    """sensor id → (risk, open alerts) over the open alerts it raised or added evidence
    to (``evidence``: alert id → its sensors, as :meth:`gridcall.hub.desk.desk.Desk.sensors_of`
    gives),
    the same rule as the ``sensor_risk`` measurement the Grafana boards read."""
    evidence = evidence or {}
    return _highest((sensor, s.tier) for s in states if s.is_open
                    for sensor in dict.fromkeys((s.alert.sensor, *evidence.get(s.alert_id, ()))))


def board_actions(state: AlertState) -> list[Action]:
    """The board's actions the lifecycle allows on ``state`` now (any unit of the
    subtree may take them; the API still decides)."""
    return [a for a in BOARD_ACTIONS if refusal(state, a) is None]


def by_deadline(states: Iterable[AlertState]) -> list[AlertState]:
    """Open alerts, the next deadline to pass first (then the oldest)."""
    def key(s: AlertState) -> tuple[int, int]:
        due = s.due()
        return (due[1] if due else 2**63, s.alert.opened_at)
    return sorted((s for s in states if s.is_open), key=key)
