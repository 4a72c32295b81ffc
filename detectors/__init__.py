"""Streaming anomaly detectors: one protocol, an explicit registry, a default.

A pure library: no I/O, no clock, no imports of the rest of gridcall.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gridcall.detectors.base import AnomalyKind, Detector, InputGuard, Limits
from gridcall.detectors.calibrate import Likelihood
from gridcall.detectors.change import Cusum, Seasonal
from gridcall.detectors.default import DefaultDetector
from gridcall.detectors.episodes import Episodes
from gridcall.detectors.learned import LearnedNormal
from gridcall.detectors.multivariate import IsolationForestWindow, Mahalanobis
from gridcall.detectors.novelty import Novelty
from gridcall.detectors.simple import (
    Dropout,
    Flatline,
    LimitsDetector,
    RateOfChange,
    RobustLevel,
)

REGISTRY: Mapping[str, type] = MappingProxyType({
    "default": DefaultDetector,
    "limits": LimitsDetector,
    "robust_level": RobustLevel,
    "rate_of_change": RateOfChange,
    "flatline": Flatline,
    "dropout": Dropout,
    "novelty": Novelty,
    "cusum": Cusum,
    "seasonal": Seasonal,
    "likelihood": Likelihood,
    "mahalanobis": Mahalanobis,
    "isolation_forest": IsolationForestWindow,
    "learned_normal": LearnedNormal,
})
"""Every detector by its config name. Multivariate ones take a mapping per observation."""
MULTIVARIATE = frozenset({"mahalanobis", "isolation_forest", "learned_normal"})


class ReplayInputError(ValueError):
    """A CSV given to the replay that cannot be read: names file, row or column, reason."""


def default_detector(limits: Limits | None = None, *, sensitivity: float = 0.5, seed: int = 0,
                     **params: Any) -> Detector:
    return DefaultDetector(limits, sensitivity=sensitivity, seed=seed, **params)


def build(name: str, /, **params: Any) -> Detector:
    """A detector from the registry; ``likelihood`` takes ``inner`` (a name or detector)."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(REGISTRY)}") from None
    if name == "likelihood":
        inner = params.pop("inner", "robust_level")
        params["inner"] = build(inner) if isinstance(inner, str) else inner
        return Likelihood(params.pop("inner"), **params)
    try:
        detector: Detector = cls(**params)
    except TypeError as exc:
        raise ValueError(f"detector {name!r}: {exc}") from None
    return detector


__all__ = [
    "MULTIVARIATE",
    "REGISTRY",
    "AnomalyKind",
    "Cusum",
    "DefaultDetector",
    "Detector",
    "Dropout",
    "Episodes",
    "Flatline",
    "InputGuard",
    "IsolationForestWindow",
    "LearnedNormal",
    "Likelihood",
    "Limits",
    "LimitsDetector",
    "Mahalanobis",
    "Novelty",
    "RateOfChange",
    "ReplayInputError",
    "RobustLevel",
    "Seasonal",
    "build",
    "default_detector",
]
