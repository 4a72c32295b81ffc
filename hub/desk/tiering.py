"""Which tier an alert deserves: the matter's base tier raised by the rules of
:mod:`gridcall.config.rules` (severity, sensitive sites, spread, persistence). Pure.

:class:`SpreadWindow` remembers recent sightings of each matter per town, so spread can be
counted; the desk feeds it and rebuilds it from the ledger after a restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from gridcall.config.rules import TierRules, tier_up
from gridcall.wire import Severity, Tier

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Sighting:
    """An anomaly of some matter seen on a sensor at ``at`` (desk clock)."""

    at: int
    sensor: str
    path: tuple[str, ...]
    """The sensor's grid path: district, town, community, grid."""


@dataclass(frozen=True, slots=True)
class Verdict:
    tier: Tier
    up: int
    reasons: tuple[str, ...]
    """One per rule that raised the tier, e.g. ``"spread: 3 sensors within 30m +1"``."""

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def _span(ns: int) -> str:
    s = ns // NS
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


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


def judge(rules: TierRules, base: Tier, *, severity: Severity, tags: Iterable[str],
          spread: dict[str, int], persisted_ns: int = 0) -> Verdict:
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
    window = _span(int(rules.spread.window.total_seconds() * NS))
    spread_rule = max(((r.up, r) for r in rules.spread.when if spread.get(r.of, 0) >= r.count),
                      default=None, key=lambda x: x[0])
    if spread_rule is not None:
        r = spread_rule[1]
        up += r.up
        reasons.append(f"spread: {spread[r.of]} {r.of} within {window} +{r.up}")
    lasting = max(((p.up, p) for p in rules.persistence
                   if persisted_ns >= int(p.longer_than.total_seconds() * NS)),
                  default=None, key=lambda x: x[0])
    if lasting is not None:
        p = lasting[1]
        up += p.up
        reasons.append(f"persistence: reported for over "
                       f"{_span(int(p.longer_than.total_seconds() * NS))} +{p.up}")
    return Verdict(tier_up(base, up), up, tuple(reasons))
