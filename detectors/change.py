"""Change-point and seasonal detectors.

:class:`Cusum` accumulates standardised deviations from a slow baseline in both directions
(Page's CUSUM), so a shift too small for a z-score alone still adds up; a fast rise is a
``level_shift``, a slow accumulation a ``drift``. :class:`Seasonal` keeps a daily (or any
period's) profile in bins and scores a value against its bin, so a busy hour is not an
anomaly but the same value at 3 a.m. is.
"""

from __future__ import annotations

import math

from gridcall.detectors.base import Streaming, ewma_step, gaussian_score


class Cusum(Streaming):
    """Two-sided CUSUM on residuals from an EWMA baseline.

    ``drift_allowance`` (k) is the slack in standard deviations per sample; the score
    reaches the threshold when a cumulative sum reaches ``h`` (set by ``sensitivity``:
    h = 4 + 12·(1 − sensitivity)). After an alarm the sums restart.

    >>> d = Cusum(warmup=20)
    >>> for t in range(200):
    ...     _ = d.score_one(t, 10.0 + 0.5 * ((t * 7919) % 11 - 5) / 5)
    >>> kinds = []
    >>> for t in range(30):
    ...     if (d.score_one(200 + t, 12.0) or 0) >= d.threshold:
    ...         kinds.append(d.kind)
    >>> kinds[0]
    'level_shift'
    """

    def __init__(self, *, sensitivity: float = 0.5, alpha: float = 0.01,
                 drift_allowance: float = 0.5, warmup: int = 30) -> None:
        super().__init__()
        self.sensitivity = sensitivity
        self.alpha = alpha
        self.k = drift_allowance
        self.h = 4.0 + 12.0 * (1.0 - sensitivity)
        self.warmup = warmup
        self.n = 0
        self.mean = 0.0
        self.var = 0.0
        self.pos = 0.0
        self.neg = 0.0

    def update(self, ts: float, v: float) -> float | None:
        self.n += 1
        if self.n == 1:
            self.mean = v
            return None
        std = max(math.sqrt(self.var), 1e-9, abs(self.mean) * 1e-6)
        z = (v - self.mean) / std
        self.mean, self.var = ewma_step(self.mean, self.var, self.alpha, v - self.mean)
        if self.n <= self.warmup:
            return None
        z = max(-8.0, min(8.0, z))
        self.pos = max(0.0, self.pos + z - self.k)
        self.neg = max(0.0, self.neg - z - self.k)
        top = max(self.pos, self.neg)
        score = 1.0 - math.exp(-(top / self.h) ** 2 * 2.302585092994046)
        if score >= self.threshold:
            # a big step now is a shift; small deviations that added up are a drift
            self._kind = "level_shift" if abs(z) >= 3.0 else "drift"
            # restart at the new level, so a lasting shift raises one alarm, not a series
            self.pos = self.neg = 0.0
            self.mean = v
        else:
            self._kind = None
        return score


class Seasonal(Streaming):
    """Score against a per-bin baseline of a repeating period (default: one day, 24 bins).

    Each bin keeps an EWMA mean and variance; a bin scores only after it has seen
    ``warmup`` values, so the first period is warm-up.

    >>> d = Seasonal(period=24.0, bins=24, warmup=3)
    >>> for t in range(24 * 10):
    ...     _ = d.score_one(float(t), 10.0 * (t % 24 >= 12) + 0.1 * (t % 5))
    >>> d.score_one(240.0, 0.2) < 0.5      # 0:00, normally low
    True
    >>> d.score_one(241.0, 10.2) >= 0.9    # 1:00, normally low: a high value is odd
    True
    """

    def __init__(self, *, period: float = 86_400.0, bins: int = 24, alpha: float = 0.1,
                 sensitivity: float = 0.5, warmup: int = 3) -> None:
        super().__init__()
        self.period = period
        self.bins = bins
        self.alpha = alpha
        self.warmup = warmup
        self.z_alert = 3.0 + 4.0 * (1.0 - sensitivity)
        self.count = [0] * bins
        self.mean = [0.0] * bins
        self.var = [0.0] * bins
        self.spread = 0.0  # EWMA of |residual|, a floor for quiet bins

    def update(self, ts: float, v: float) -> float | None:
        b = int((ts % self.period) / self.period * self.bins) % self.bins
        n = self.count[b]
        self.count[b] = n + 1
        if n == 0:
            self.mean[b] = v
            return None
        mean = self.mean[b]
        std = max(math.sqrt(self.var[b]), self.spread, 1e-9)
        z = (v - mean) / std
        d = v - mean
        self.mean[b], self.var[b] = ewma_step(mean, self.var[b], self.alpha, d)
        self.spread = 0.99 * self.spread + 0.01 * abs(d)
        if n < self.warmup:
            return None
        score = gaussian_score(z, self.z_alert)
        self._kind = "level_shift" if score >= self.threshold else None
        return score
