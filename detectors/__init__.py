"""Streaming anomaly detectors: one protocol, an explicit registry, a default.

A pure library: no I/O, no clock, no imports of the rest of gridcall.

The multivariate detectors (numpy, and scikit-learn for the isolation forest) are loaded
on first use: an edge agent watches one sensor at a time and never needs them, and the
edge install (``pip install gridcall``) has no numpy. Their names are always registered;
using one without numpy says what to install (:class:`MissingDependency`).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gridcall.detectors.base import AnomalyKind, Detector, InputGuard, Limits
from gridcall.detectors.calibrate import Likelihood
from gridcall.detectors.change import Cusum, Seasonal
from gridcall.detectors.default import DefaultDetector
from gridcall.detectors.episodes import Episodes
from gridcall.detectors.novelty import Novelty
from gridcall.detectors.simple import (
    Dropout,
    Flatline,
    LimitsDetector,
    RateOfChange,
    RobustLevel,
)

if TYPE_CHECKING:  # at run time through __getattr__ below, on first use
    from gridcall.detectors.learned import LearnedNormal
    from gridcall.detectors.multivariate import IsolationForestWindow, Mahalanobis

HUB_EXTRA_HINT = "pip install 'gridcall[hub]'"


class MissingDependency(ImportError):
    """A detector whose library is not installed (the edge install has no numpy)."""


_LAZY: Mapping[str, tuple[str, str]] = MappingProxyType({
    # name: (module, class), imported on first use
    "mahalanobis": ("gridcall.detectors.multivariate", "Mahalanobis"),
    "isolation_forest": ("gridcall.detectors.multivariate", "IsolationForestWindow"),
    "learned_normal": ("gridcall.detectors.learned", "LearnedNormal"),
})


def _load(module: str, name: str) -> type:
    try:
        cls: type = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        raise MissingDependency(
            f"the detector class {name} needs {exc.name}, which this install lacks: "
            f"{HUB_EXTRA_HINT}") from exc
    return cls


class _Registry(Mapping[str, type]):
    """The registry: the univariate detectors as classes, the multivariate ones imported
    when first looked up (a lookup without numpy raises :class:`MissingDependency`)."""

    def __init__(self, eager: Mapping[str, type], lazy: Mapping[str, tuple[str, str]]) -> None:
        self._eager = dict(eager)
        self._lazy = lazy

    def __getitem__(self, name: str) -> type:
        cls = self._eager.get(name)
        if cls is not None:
            return cls
        module, attr = self._lazy[name]  # KeyError for an unknown name, as a dict
        return _load(module, attr)

    def __iter__(self) -> Iterator[str]:
        yield from self._eager
        yield from self._lazy

    def __len__(self) -> int:
        return len(self._eager) + len(self._lazy)


REGISTRY: Mapping[str, type] = _Registry({
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
}, _LAZY)
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


def __getattr__(name: str) -> type:
    """``from gridcall.detectors import LearnedNormal`` and the other multivariate
    classes, imported on first use."""
    for module, attr in _LAZY.values():
        if attr == name:
            return _load(module, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONTRACT",
    "HUB_EXTRA_HINT",
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
    "MissingDependency",
    "Novelty",
    "RateOfChange",
    "ReplayInputError",
    "RobustLevel",
    "Seasonal",
    "build",
    "create",
    "default_detector",
]
