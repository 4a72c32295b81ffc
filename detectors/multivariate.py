"""Multivariate detectors: one observation is a mapping of named values.

:class:`Mahalanobis` keeps an EWMA mean and covariance and scores the Mahalanobis
distance of each row: a few microseconds of numpy per row, so it is the default for
multivariate data. :class:`IsolationForestWindow` fits scikit-learn's IsolationForest on
a rolling window and refits periodically; it finds stranger shapes but costs far more
per row (see docs/benchmarks.md).

Bad rows never crash either; each is skipped and counted: a row that is not a mapping
as ``skipped["not_a_mapping"]``, and a ``None`` row or one with a missing, non-numeric,
non-finite or implausible (beyond ±1e15) feature as ``skipped["missing"]``. Timestamps
pass the same guard as univariate data. The columns are fixed by the first complete row
(a non-empty mapping with string keys).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from gridcall.detectors.base import MAX_MAGNITUDE, InputGuard, Streaming, gaussian_score


class RowVectors:
    """Turns mappings into fixed-order float vectors, skipping incomplete rows."""

    def __init__(self, guard: InputGuard) -> None:
        self.guard = guard
        self.columns: tuple[str, ...] | None = None

    def _skip(self, reason: str) -> None:
        self.guard.skipped[reason] = self.guard.skipped.get(reason, 0) + 1

    def vector(self, ts: float, values: object) -> list[float] | None:
        if values is None:
            self.guard.check(ts, None)  # counts the timestamp's fault or the missing row
            return None
        if self.guard.check(ts, 0.0) is None:
            return None
        if not isinstance(values, Mapping):
            self._skip("not_a_mapping")
            return None
        columns = self.columns
        if columns is None:
            if not values or not all(isinstance(c, str) for c in values):
                self._skip("missing")
                return None
            columns = tuple(sorted(values))
        out = []
        for c in columns:
            v = values.get(c)
            if not isinstance(v, int | float):
                self._skip("missing")
                return None
            try:
                plausible = math.isfinite(v) and abs(v) <= MAX_MAGNITUDE
            except OverflowError:  # an int too large for a float
                plausible = False
            if not plausible:
                self._skip("missing")
                return None
            out.append(float(v))
        self.columns = columns
        return out


class Mahalanobis(Streaming):
    """EWMA mean/covariance; score from the Mahalanobis distance per feature.

    >>> d = Mahalanobis(warmup=50)
    >>> import random
    >>> rng = random.Random(0)
    >>> for t in range(300):
    ...     x = rng.gauss(0, 1)
    ...     _ = d.score_one(t, {"a": x, "b": 2 * x + rng.gauss(0, 0.1)})
    >>> d.score_one(300, {"a": 1.0, "b": 2.0}) < 0.5      # on the usual relation
    True
    >>> d.score_one(301, {"a": 1.0, "b": -2.0}) >= 0.9    # each value normal, pair not
    True
    >>> d.kind
    'multivariate'
    """

    def __init__(self, *, alpha: float = 0.02, sensitivity: float = 0.5,
                 warmup: int = 50, ridge: float = 1e-6) -> None:
        self.alpha = alpha
        self.warmup = warmup
        self.ridge = ridge
        self.z_alert = 3.0 + 4.0 * (1.0 - sensitivity)
        super().__init__()
        self.rows = RowVectors(self.guard)
        self.n = 0
        self.mean: Any = None
        self.cov: Any = None

    def score_one(  # type: ignore[override]
            self, ts: float, values: Mapping[str, float | None] | None) -> float | None:
        row = self.rows.vector(ts, values)
        if row is None:
            return None
        x = np.asarray(row)
        self.n += 1
        if self.mean is None:
            self.mean = x.copy()
            self.cov = np.eye(len(x)) * 1e-6
            return None
        d = x - self.mean
        k = len(x)
        cov = self.cov + np.eye(k) * (self.ridge + 1e-9 * float(np.trace(self.cov)))
        try:
            m2 = float(d @ np.linalg.solve(cov, d))
        except np.linalg.LinAlgError:
            m2 = 0.0
        z = math.sqrt(max(m2, 0.0) / k) if k else 0.0
        # learn, with the deviation clipped so an outlier does not become normal at once
        scale = min(1.0, self.z_alert / z) if z > 0 else 1.0
        dc = d * scale
        self.mean = self.mean + self.alpha * dc
        self.cov = (1 - self.alpha) * (self.cov + self.alpha * np.outer(dc, dc))
        if self.n <= self.warmup:
            return None
        score = gaussian_score(z, self.z_alert)
        self._kind = "multivariate" if score >= self.threshold else None
        return score


class IsolationForestWindow(Streaming):
    """scikit-learn IsolationForest on the last ``window`` rows, refitted every ``refit``
    rows; rows before the first fit are warm-up.

    >>> d = IsolationForestWindow(window=200, refit=100, seed=1)
    >>> import random
    >>> rng = random.Random(1)
    >>> scores = [d.score_one(t, {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)})
    ...           for t in range(300)]
    >>> scores[0] is None, d.score_one(300, {"a": 9.0, "b": -9.0}) >= 0.9
    (True, True)
    """

    def __init__(self, *, window: int = 500, refit: int = 250, n_estimators: int = 50,
                 seed: int = 0) -> None:
        self.window = window
        self.refit = refit
        self.n_estimators = n_estimators
        self.seed = seed
        super().__init__()
        self.rows = RowVectors(self.guard)
        self.buffer: deque[list[float]] = deque(maxlen=window)
        self.since_fit = 0
        self.model: Any = None
        self.offset = 0.0
        self.spread = 1.0

    def _fit(self) -> None:
        from sklearn.ensemble import IsolationForest

        data = np.asarray(self.buffer)
        model = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed)
        model.fit(data)
        raw = -model.score_samples(data)
        self.offset = float(np.median(raw))
        self.spread = float(np.median(np.abs(raw - self.offset))) or 1e-3
        self.model = model
        self.since_fit = 0

    def score_one(  # type: ignore[override]
            self, ts: float, values: Mapping[str, float | None] | None) -> float | None:
        row = self.rows.vector(ts, values)
        if row is None:
            return None
        score: float | None = None
        if self.model is not None:
            raw = float(-self.model.score_samples(np.asarray([row]))[0])
            score = gaussian_score((raw - self.offset) / (1.4826 * self.spread), 6.0)
            self._kind = "multivariate" if score >= self.threshold else None
        self.buffer.append(row)
        self.since_fit += 1
        if len(self.buffer) >= min(self.window, self.refit) and (
            self.model is None or self.since_fit >= self.refit
        ):
            self._fit()
        return score
