"""The detector protocol, limits, anomaly kinds and the bad-input policy.

A detector consumes one observation at a time as ``(ts, value)`` (POSIX seconds) and
returns a score in [0, 1], or ``None`` while it warms up or when it skipped the sample.
``kind`` says what the most recent anomalous score was about; ``threshold`` is where a
score means "alert". Scoring looks only at the past and the present.

Bad input never raises. Each detector counts what it skipped in ``skipped`` (a dict of
reason → count): ``missing`` (None), ``non_finite`` (NaN, ±inf), ``out_of_order`` and
``duplicate`` timestamps, ``bad_timestamp`` (not a number, non-finite, or an int too
large for a float), ``implausible`` (beyond ±1e15, however large an int) and
``out_of_physical_range`` (a value the sensor's limits say it cannot produce).
Multivariate detectors also count ``not_a_mapping`` rows (see detectors.multivariate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

AnomalyKind = Literal[
    "out_of_limits", "spike", "level_shift", "stuck", "dropout", "drift", "multivariate"
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Physical range and alarm limits of a sensor kind, in its unit (from config)."""

    physical_min: float | None = None
    physical_max: float | None = None
    alarm_low: float | None = None
    alarm_high: float | None = None
    hysteresis: float = 0.0
    """An alarm clears only once the value is back inside by this margin."""


class Detector(Protocol):
    threshold: float

    def score_one(self, ts: float, value: float | None) -> float | None: ...

    @property
    def kind(self) -> AnomalyKind | None: ...


_NUMBER = (int, float)
"""What ``isinstance`` accepts as a number (a tuple: ``int | float`` would build a union
object on every reading)."""

MAX_MAGNITUDE = 1e15
"""Beyond this no sensor reading is plausible, and squares of it would overflow state."""


class InputGuard:
    """Shared bad-input policy: returns the value to use, or None after counting a skip.

    With ``limits``, values outside the physical range are skipped as faults too.

    >>> guard = InputGuard(Limits(physical_min=0.0))
    >>> [guard.check(t, v) for t, v in [(1.0, 2.0), (1.0, 3.0), (0.5, 3.0), (2.0, None),
    ...                                 (3.0, float("nan")), (4.0, -5.0), (5.0, 4)]]
    [2.0, None, None, None, None, None, 4.0]
    >>> guard.skipped
    {'duplicate': 1, 'out_of_order': 1, 'missing': 1, 'non_finite': 1, 'out_of_physical_range': 1}
    >>> guard.check(10**400, 5.0), guard.check(None, 5.0), guard.check(6.0, 10**400)
    (None, None, None)
    >>> guard.skipped["bad_timestamp"], guard.skipped["implausible"]
    (2, 1)
    """

    __slots__ = ("last_ts", "physical_max", "physical_min", "skipped")

    def __init__(self, limits: Limits | None = None) -> None:
        self.skipped: dict[str, int] = {}
        self.last_ts: float | None = None
        self.physical_min = limits.physical_min if limits else None
        self.physical_max = limits.physical_max if limits else None

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def check(self, ts: float, value: float | None) -> float | None:
        try:
            # an int too large for a float makes isfinite raise OverflowError
            good_ts = isinstance(ts, _NUMBER) and math.isfinite(ts)
        except OverflowError:
            good_ts = False
        if not good_ts:
            self._skip("bad_timestamp")
            return None
        if self.last_ts is not None:
            if ts < self.last_ts:
                self._skip("out_of_order")
                return None
            if ts == self.last_ts:
                self._skip("duplicate")
                return None
        self.last_ts = ts
        if value is None:
            self._skip("missing")
            return None
        if not isinstance(value, _NUMBER):
            self._skip("non_finite")
            return None
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float: finite, but implausible
            finite = True
        if not finite:
            self._skip("non_finite")
            return None
        if abs(value) > MAX_MAGNITUDE:
            self._skip("implausible")
            return None
        if (self.physical_min is not None and value < self.physical_min) or (
            self.physical_max is not None and value > self.physical_max
        ):
            self._skip("out_of_physical_range")
            return None
        return float(value)

    def check_plausible(self, ts: float, value: float) -> float | None:
        """:meth:`check` for a caller that has already checked what a whole poll shares:
        ``ts`` is a finite float and ``value`` a finite number inside this guard's physical
        range (the edge agent's :class:`~gridcall.edge_agent.faults.FaultWatch` holds the
        same range and let it through). What is left per reading is checked here and
        counted as :meth:`check` counts it: the order of the timestamps and the magnitude.

        >>> guard = InputGuard(Limits(physical_min=0.0))
        >>> [guard.check_plausible(t, v) for t, v in [(1.0, 2.0), (1.0, 3.0), (0.5, 3.0),
        ...                                           (2.0, 4), (3.0, 2e15)]]
        [2.0, None, None, 4.0, None]
        >>> guard.skipped
        {'duplicate': 1, 'out_of_order': 1, 'implausible': 1}
        """
        last = self.last_ts
        if last is not None and ts <= last:
            self._skip("out_of_order" if ts < last else "duplicate")
            return None
        self.last_ts = ts
        if -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
            return float(value)
        self._skip("implausible")
        return None


THRESHOLD = 0.9
"""A score at or above this means "alert", for every detector here."""


class Streaming:
    """Base of the univariate detectors: the input guard, ``skipped``, ``kind`` and
    ``score_one``. A subclass implements :meth:`update` on values that passed the guard
    and sets ``self._kind`` when it scores an anomaly."""

    threshold = THRESHOLD

    def __init__(self, limits: Limits | None = None) -> None:
        self.guard = InputGuard(limits)
        self._kind: AnomalyKind | None = None

    @property
    def skipped(self) -> dict[str, int]:
        return self.guard.skipped

    @property
    def kind(self) -> AnomalyKind | None:
        return self._kind

    def score_one(self, ts: float, value: float | None) -> float | None:
        v = self.guard.check(ts, value)
        return None if v is None else self.update(ts, v)

    def score_plausible(self, ts: float, value: float) -> float | None:
        """:meth:`score_one` for a finite ``ts`` and a finite ``value`` inside the physical
        range (:meth:`InputGuard.check_plausible`): the same score, fewer checks."""
        v = self.guard.check_plausible(ts, value)
        return None if v is None else self.update(ts, v)

    def update(self, ts: float, v: float) -> float | None:
        raise NotImplementedError


def ewma_step(mean: float, var: float, alpha: float, d: float) -> tuple[float, float]:
    """One step of an exponentially weighted mean and variance, for a deviation ``d``."""
    return mean + alpha * d, (1 - alpha) * (var + alpha * d * d)


def gaussian_score(z: float, z_alert: float) -> float:
    """Map |z| to [0, 1): 0.9 exactly at ``z_alert``, rising fast beyond it."""
    x = abs(z) / z_alert
    return 1.0 - math.exp(-x * x * 2.302585092994046)  # ln 10
