"""The ladder: tiers, unit levels and the risk scale, in one place.

Tier ``A`` is the highest, ``D`` the lowest; a tier belongs to a level of the unit
ladder (D grid, C community, B town, A district). Everyone who speaks of tiers (the wire
contract, config, the desk's policy, the boards) imports them from here; this module
imports nothing of gridcall's, so the leaves (``wire``, ``config``) can import it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

Tier = Literal["A", "B", "C", "D"]
TIERS: tuple[Tier, ...] = ("A", "B", "C", "D")
"""Highest first."""

UnitLevel = Literal["district", "town", "community", "grid"]
LEVELS: tuple[UnitLevel, ...] = ("district", "town", "community", "grid")
"""Highest first: a unit's path from the district down has one id per level."""

RESPONSIBLE_LEVEL: Mapping[Tier, UnitLevel] = MappingProxyType(
    {"D": "grid", "C": "community", "B": "town", "A": "district"})
"""The level of the unit an alert of each tier is handed to."""

RISK: Mapping[Tier, int] = MappingProxyType({"D": 1, "C": 2, "B": 3, "A": 4})
"""The boards' risk scale: an open alert's tier as a number, 0 meaning none open."""


def tier_up(tier: Tier, levels: int) -> Tier:
    """``levels`` tiers above ``tier`` (D → C → B → A), stopping at A."""
    return TIERS[max(0, TIERS.index(tier) - levels)]


def above(tier: Tier, other: Tier) -> bool:
    """Whether ``tier`` is strictly higher than ``other`` (A above B above C above D)."""
    return TIERS.index(tier) < TIERS.index(other)


__all__ = ["LEVELS", "RESPONSIBLE_LEVEL", "RISK", "TIERS", "Tier", "UnitLevel", "above",
           "tier_up"]
