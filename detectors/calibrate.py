"""Calibration: turn any detector's raw scores into a likelihood with one sensitivity knob.

Like NAB's anomaly likelihood: the raw scores' long-run mean and spread are tracked
(EWMA), and the short-run mean of recent scores is compared with them. A detector that
is always a little noisy then stops alarming, and a run of unusually high raw scores
stands out. ``sensitivity`` in [0, 1] sets the tail probability that reaches the
threshold: 10^-(2 + 3·(1 − sensitivity)), so 10^-3.5 at the default 0.5.
"""

from __future__ import annotations

import math
from typing import Any

from gridcall.detectors.base import THRESHOLD, AnomalyKind, Detector


class Likelihood:
    """Wraps a detector; ``kind`` is the inner detector's.

    >>> import random
    >>> from detectors.simple import RobustLevel
    >>> rng = random.Random(3)
    >>> d = Likelihood(RobustLevel(warmup=10), warmup=50)
    >>> for t in range(1000):
    ...     _ = d.score_one(t, 10.0 + rng.gauss(0, 0.2))
    >>> d.score_one(1000, 10.1) < 0.5
    True
    >>> max(d.score_one(1001 + t, 30.0) or 0 for t in range(5)) >= d.threshold
    True
    """

    threshold = THRESHOLD

    def __init__(self, inner: Detector, *, sensitivity: float = 0.5, long: int = 1000,
                 short: int = 5, warmup: int = 100) -> None:
        self.inner = inner
        self.sensitivity = sensitivity
        self.a_long = 1.0 / long
        self.a_short = 1.0 / short
        self.warmup = warmup
        self.alert_exponent = 2.0 + 3.0 * (1.0 - sensitivity)
        self.n = 0
        self.mean = 0.0
        self.var = 0.0
        self.recent = 0.0

    @property
    def skipped(self) -> Any:
        return getattr(self.inner, "skipped", {})

    @property
    def kind(self) -> AnomalyKind | None:
        return self.inner.kind

    def score_one(self, ts: float, value: Any) -> float | None:
        raw = self.inner.score_one(ts, value)
        if raw is None:
            return None
        self.n += 1
        if self.n == 1:
            self.mean = self.recent = raw
            return None
        self.recent += self.a_short * (raw - self.recent)
        std = max(math.sqrt(self.var), 1e-3)
        z = (self.recent - self.mean) / std
        d = raw - self.mean
        a = max(self.a_long, 1.0 / self.n)  # a plain running mean until the window fills
        self.mean += a * d
        self.var = (1 - a) * (self.var + a * d * d)
        if self.n <= self.warmup:
            return None
        tail = 0.5 * math.erfc(z / math.sqrt(2.0))
        return min(1.0, 0.9 * -math.log10(max(tail, 1e-300)) / self.alert_exponent)
