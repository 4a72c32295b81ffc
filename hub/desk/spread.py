"""The desk's memory of where a matter was seen lately, so the policy can count spread.

:class:`SpreadWindow` remembers recent sightings of each matter per town; the desk feeds
it and rebuilds it from the ledger after a restart. The rules that read the counts are
the policy's (:func:`gridcall.hub.desk.policy.judge`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sighting:
    """An anomaly of some matter seen on a sensor at ``at`` (desk clock)."""

    at: int
    sensor: str
    path: tuple[str, ...]
    """The sensor's grid path: district, town, community, grid."""


class SpreadWindow:
    """Sightings per (matter, town) within the rules' spread window."""

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._seen: dict[tuple[str, str], deque[Sighting]] = {}

    def add(self, matter: str, sighting: Sighting) -> None:
        self._seen.setdefault((matter, sighting.path[1]), deque()).append(sighting)

    def counts(self, matter: str, town: str, now: int) -> dict[str, int]:
        """Distinct sensors, grids and communities of ``matter`` in ``town`` seen within
        the window ending at ``now``."""
        seen = self._seen.get((matter, town), deque())
        while seen and seen[0].at < now - self.window_ns:
            seen.popleft()
        recent = [s for s in seen if s.at <= now]
        return {
            "sensors": len({s.sensor for s in recent}),
            "grids": len({s.path[3] for s in recent}),
            "communities": len({s.path[2] for s in recent}),
        }

    def since(self, at: int) -> list[tuple[str, str, list[Sighting]]]:
        """The sightings at ``at`` or later, per (matter, town) (for a snapshot: counts at
        any later instant are the same from them alone)."""
        kept = [(matter, town, [s for s in seen if s.at >= at])
                for (matter, town), seen in sorted(self._seen.items())]
        return [k for k in kept if k[2]]

    def restore(self, sightings: list[tuple[str, str, list[Sighting]]]) -> None:
        """Remember ``sightings`` (from :meth:`since`) in place of what is remembered."""
        self._seen = {(matter, town): deque(seen) for matter, town, seen in sightings}
