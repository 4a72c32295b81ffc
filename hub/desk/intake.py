"""Calls that no sensor raised: what the desk needs to know of one, and where it is. Pure:
no I/O, no clock.

A person's report (:mod:`gridcall.hub.desk.reports`) or a department's system's event
(issue 18's external intake) reaches the desk as a :class:`Call`: a matter of the catalog
(or ``UNCLASSIFIED`` for triage) at a grid or a GPS point. The desk
(:meth:`gridcall.hub.desk.desk.Desk.call`) takes it through the same tier, route,
deadline, incident and grouping path as a sensor's anomaly: it opens an alert, joins the
open alert of the same matter at the same place as evidence, or reopens a recent one.

``(source, seq)`` identifies a call as ``(agent, seq)`` identifies an anomaly event: the
ledger's unique ``(ev_agent, ev_seq)`` makes a repeated call a duplicate, not a second
step. A source is an id of its own (``reports``, an external system's id), never an
edge agent's.

"The same place" is the same grid, or (when the call gives a point) an open alert whose
point lies within ``grouping.join_radius_m`` (matters.yaml) of it: a sensor alert's
point is its sensor's, a call's the point it gave.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from gridcall.config import ConfigSet, Unit
from gridcall.config.models import Coordinates, Location
from gridcall.wire import CallKind, Severity, Tier

EARTH_RADIUS_M = 6_371_008.8
"""The mean Earth radius (IUGG), for distances between GPS points."""


class NowhereKnown(ValueError):
    """A call's place is not in the config: an unknown grid, or a point in no grid."""


@dataclass(frozen=True, slots=True)
class Call:
    """A call to the desk from a person or a system, as the desk takes it."""

    source: str
    """Who numbers the calls (an id: ``reports``, an external system's id); with
    ``seq`` it identifies the call in the ledger."""
    seq: int
    """Unique per source, 0 up to 2**63 - 1."""
    kind: CallKind
    matter: str
    """A matter code of the catalog, or ``UNCLASSIFIED`` (triage)."""
    grid: str
    """The grid it is in (:func:`locate` finds it for a point)."""
    note: str
    """What the caller said, for the ledger."""
    at: int
    """When the caller saw it (ns): the alert's ``detected_at``."""
    severity: Severity = "minor"
    """As the tier rules judge it (a person's report: minor, the rules add nothing)."""
    tier: Tier | None = None
    """The least tier the alert opens at (an external system's severity mapped to a
    tier); None: the matter's base tier and the rules decide."""
    point: Coordinates | None = None
    """``(lon, lat)`` if the caller gave one."""
    actor: str = ""
    """The unit that called (its token), "" for the hub's own intake (the public, a
    system): the ``open`` step's actor is then ``hub``."""
    person: str = ""
    """The person who called (a person's token), else ""."""
    photos: tuple[str, ...] = ()
    """Photos that came with it (ids in the hub's photo store), written on its step."""


def distance_m(a: Coordinates, b: Coordinates) -> float:
    """Great-circle distance between two ``(lon, lat)`` points, in metres (haversine)."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _in_ring(point: Coordinates, ring: Iterable[Coordinates]) -> bool:
    """Even-odd rule: whether ``point`` lies inside the closed ring."""
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def contains(location: Location, point: Coordinates) -> bool:
    """Whether a unit's polygon holds ``point`` (its outer ring, less its holes); a unit
    given as a point holds nothing."""
    if location.polygon is None:
        return False
    outer, *holes = location.polygon
    return _in_ring(point, outer) and not any(_in_ring(point, h) for h in holes)


def locate(config: ConfigSet, *, grid: str | None = None,
           point: Coordinates | None = None) -> Unit:
    """The grid a call is in: the grid named (which must be a grid of the config), else
    the grid whose polygon holds ``point``, else the grid whose centre is nearest to it
    (within the district's towns' polygons, or a topology drawn with points); raises
    :class:`NowhereKnown` naming what was wrong."""
    if grid is not None:
        unit = config.units.get(grid)
        if unit is None or unit.level != "grid":
            raise NowhereKnown(f"{grid!r} is not a grid of the config (topology.yaml)")
        if point is not None and unit.location.polygon is not None and not contains(
                unit.location, point):
            raise NowhereKnown(f"the point {list(point)} is not in grid {grid!r}")
        return unit
    if point is None:
        raise NowhereKnown("a call needs a grid or a GPS point")
    grids = config.units_at("grid")
    for unit in grids:
        if contains(unit.location, point):
            return unit
    towns = [t for t in config.units_at("town") if t.location.polygon is not None]
    if towns and not any(contains(t.location, point) for t in towns):
        raise NowhereKnown(f"the point {list(point)} is outside every town of the district")
    return min(grids, key=lambda u: distance_m(u.location.centre(), point))


__all__ = ["EARTH_RADIUS_M", "Call", "NowhereKnown", "contains", "distance_m", "locate"]
