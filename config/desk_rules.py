"""The rules of the desk's rooms that hold alerts back or join them, declared in
``matters.yaml`` beside the tier rules (docs/desk.md explains each with examples)::

    silences:                  # maintenance windows (hub/desk/silence.py)
      max_duration:            # the longest silence a unit of each level may set
        grid: 1d
        community: 7d
        town: 30d
        district: 90d

A silence longer than its author's ``max_duration`` is refused with the level that may
set it; the limits must not shrink up the ladder (a community may always do what its
grids may).
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from pydantic import model_validator

from gridcall.config.base import Duration, Model
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
