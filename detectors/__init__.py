"""Streaming anomaly detectors: one protocol, an explicit registry, a default.

A pure library: no I/O, no clock, no imports of the rest of gridcall.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from detectors.base import AnomalyKind, Detector, InputGuard, Limits
from detectors.simple import DefaultDetector, Dropout, Flatline, LimitsDetector, RobustLevel

REGISTRY: Mapping[str, type] = MappingProxyType({
    "default": DefaultDetector,
    "limits": LimitsDetector,
    "robust_level": RobustLevel,
    "flatline": Flatline,
    "dropout": Dropout,
})


class ReplayInputError(ValueError):
    """A CSV given to the replay that cannot be read: names file, row or column, reason."""


def default_detector(limits: Limits | None = None, *, sensitivity: float = 0.5, seed: int = 0,
                     **params: Any) -> Detector:
    return DefaultDetector(limits, sensitivity=sensitivity, seed=seed, **params)


def build(name: str, /, **params: Any) -> Detector:
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(REGISTRY)}") from None
    detector: Detector = cls(**params)
    return detector


__all__ = [
    "REGISTRY",
    "AnomalyKind",
    "DefaultDetector",
    "Detector",
    "Dropout",
    "Flatline",
    "InputGuard",
    "Limits",
    "LimitsDetector",
    "ReplayInputError",
    "RobustLevel",
    "build",
    "default_detector",
]
