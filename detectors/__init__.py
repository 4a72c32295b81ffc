"""Streaming anomaly detectors: one protocol, an explicit registry, a default.

A pure library: no I/O, no clock, no imports of the rest of gridcall.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class DetectorArgs:
    """The one constructor contract: every detector is built from these, whatever its name.

    ``limits`` (physical and alarm limits), ``sensitivity`` (0..1) and ``seed`` reach every
    detector whose constructor takes them; ``params`` are its own keyword arguments and win
    over the three (a config's ``params: {sensitivity: 0.7}`` is what it says).
    """

    limits: Limits | None = None
    sensitivity: float = 0.5
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)


CONTRACT = ("limits", "sensitivity", "seed")


def create(name: str, args: DetectorArgs | None = None, /) -> Detector:
    """Any registered detector, from the one contract (see :class:`DetectorArgs`)."""
    args = args or DetectorArgs()
    cls = REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(REGISTRY)}")
    accepted = inspect.signature(cls).parameters
    given = {"limits": args.limits, "sensitivity": args.sensitivity, "seed": args.seed}
    return build(name, **{**{k: v for k, v in given.items() if k in accepted}, **args.params})


def build(name: str, /, **params: Any) -> Detector:
    """A detector from the registry, given exactly ``params`` (no contract defaults);
    ``likelihood`` takes ``inner`` (a name or detector)."""
    params = dict(params)
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
    "CONTRACT",
    "MULTIVARIATE",
    "REGISTRY",
    "AnomalyKind",
    "Cusum",
    "DefaultDetector",
    "Detector",
    "DetectorArgs",
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
    "create",
    "default_detector",
]
