"""The rules of the desk's rooms that hold alerts back or join them, declared in
``matters.yaml`` beside the tier rules (docs/desk.md explains each with examples)::

    silences:                  # maintenance windows (hub/desk/silence.py)
      max_duration:            # the longest silence a unit of each level may set
        grid: 1d
        community: 7d
        town: 30d
        district: 90d
    inhibit:                   # one state holds back alerts (hub/desk/inhibit.py)
      - source: agent_offline  # while an edge agent is offline (lost or silent) ...
        matters: [SENSOR-FAULT]            # ... these matters of its own sensors
        anomaly_kinds: [stuck, dropout]    # ... and these kinds of anomaly, whatever
                                           #     matter they make, wait until it is back
    incidents:                 # alerts of one matter that are one incident (hub/desk/incidents.py)
      window: 30m              # joined if the other alert saw its matter this recently
      neighbours: [declared, same_community]   # topology.yaml grids[].neighbours; one community
      site_radius_m: 150       # or sensors this close, whatever their grids
      exclude: [SENSOR-FAULT, EDGE-OFFLINE]    # device faults are not incidents
      lead: first_covering     # or lowest_covering (see the module)

A silence longer than its author's ``max_duration`` is refused with the level that may
set it; the limits must not shrink up the ladder (a community may always do what its
grids may).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from gridcall.config.base import Duration, Id, Model
from gridcall.config.models import AnomalyKind
from gridcall.wire.ladder import LEVELS, UnitLevel


class MaxDuration(Model):
    """The longest silence a unit of each level may set."""

    grid: Duration = timedelta(days=1)
    community: Duration = timedelta(days=7)
    town: Duration = timedelta(days=30)
    district: Duration = timedelta(days=90)

    @model_validator(mode="after")
    def _grows_up_the_ladder(self) -> MaxDuration:
        upward = list(reversed(LEVELS))  # grid, community, town, district
        for low, high in itertools.pairwise(upward):
            if self.of(low) > self.of(high):
                raise ValueError(f"{high} ({self.of(high)}) may not be shorter than "
                                 f"{low} ({self.of(low)}): a higher level may always "
                                 "silence what a lower one may")
        return self

    def of(self, level: UnitLevel) -> timedelta:
        value: timedelta = getattr(self, level)
        return value

    def lowest_allowed(self, length: timedelta) -> UnitLevel | None:
        """The lowest level whose units may set a silence this long (None: no one)."""
        for level in reversed(LEVELS):
            if length <= self.of(level):
                return level
        return None


class SilenceRules(Model):
    max_duration: MaxDuration = MaxDuration()


class InhibitRule(Model):
    """While ``source`` holds for an edge agent, its own sensors' anomalies that make one of
    ``matters`` or are of one of ``anomaly_kinds`` open no alert."""

    source: Literal["agent_offline"] = "agent_offline"
    matters: tuple[Id, ...] = ()
    anomaly_kinds: tuple[AnomalyKind, ...] = ()

    @model_validator(mode="after")
    def _holds_something(self) -> InhibitRule:
        if not self.matters and not self.anomaly_kinds:
            raise ValueError("an inhibit rule needs matters or anomaly_kinds to hold back")
        return self


DEFAULT_INHIBIT: tuple[InhibitRule, ...] = (
    InhibitRule(matters=("SENSOR-FAULT",), anomaly_kinds=("stuck", "dropout")),)
"""An offline agent holds back its sensors' faults: they are the outage, seen again."""


Adjacency = Literal["declared", "same_community"]


class IncidentRules(Model):
    """Which alerts are one incident (首接负责), and who leads it."""

    window: Duration = timedelta(minutes=30)
    neighbours: tuple[Adjacency, ...] = ("declared", "same_community")
    """How grids count as neighbours: ``declared`` in topology.yaml (``grids[].neighbours``),
    ``same_community``: any two grids of one community. Empty: grids never join."""
    site_radius_m: float = Field(default=150.0, ge=0)
    """Sensors this close (metres) are one site whatever their grids; 0: off."""
    matters: tuple[Id, ...] = ()
    """Only these matters make incidents (empty: every matter but ``exclude``)."""
    exclude: tuple[Id, ...] = ("SENSOR-FAULT", "EDGE-OFFLINE")
    lead: Literal["first_covering", "lowest_covering"] = "first_covering"
    """``first_covering``: the unit that first received the incident leads it if its
    subtree covers all the incident's grids, else the lowest unit that covers them;
    ``lowest_covering``: always the lowest unit covering them."""

    def makes_incidents(self, matter: str) -> bool:
        if self.matters and matter not in self.matters:
            return False
        return matter not in self.exclude
