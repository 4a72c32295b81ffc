"""Novelty: has this sensor ever done *this* before?

Three cheap questions, asked of every sample once the detector has warmed up:

1. **A new extreme**: the value is above the highest or below the lowest seen so far,
   and at least ``extreme_z`` deviations from the level (so a noisy series creeping to
   a new maximum is not news).
2. **A far outlier**: the value is more than ``z_alert`` standard deviations from a
   long-memory EWMA level (outlier-clipped, so anomalies do not teach it).
3. **A new pattern**: the value's bin (of ``bins`` across the seen range) following the
   previous one is a transition never seen before, ``novel_needed`` times within the
   last ``novel_window`` samples (the contextual idea of CAD OSE, in a bitset).

Any "yes" scores 1.0. The state is a handful of floats and one integer bitset, so it
pickles in a few hundred bytes. Tuned once on the public NAB files (docs/benchmarks.md);
the same configuration serves every sensor.
"""

from __future__ import annotations

import math

from gridcall.detectors.base import AnomalyKind, Streaming, ewma_step, gaussian_score


class Novelty(Streaming):
    """
    >>> import math, random
    >>> rng = random.Random(4)
    >>> d = Novelty(warmup=50)
    >>> for t in range(600):
    ...     _ = d.score_one(t, math.sin(t / 10) + rng.gauss(0, 0.05))
    >>> d.score_one(600, math.sin(60.0)) < d.threshold     # the usual pattern
    True
    >>> d.score_one(601, 3.0), d.kind                       # never that high before
    (1.0, 'spike')
    """

    def __init__(self, *, warmup: int = 200, z_alert: float = 12.0, alpha: float = 0.001,
                 bins: int = 16, novel_window: int = 20, novel_needed: int = 5,
                 extreme_z: float = 2.0) -> None:
        super().__init__()
        self.warmup = warmup
        self.extreme_z = extreme_z
        self.z_alert = z_alert
        self.alpha = alpha
        self.bins = bins
        self.novel_window = novel_window
        self.novel_needed = novel_needed
        self.n = 0
        self.lo = 0.0
        self.hi = 0.0
        self.mean = 0.0
        self.var = 0.0
        self.prev_bin = -2
        self.seen = 0  # bitset of (previous bin, bin) transitions
        self.recent = 0  # bitset of the last novel_window samples: 1 = novel transition

    def update(self, ts: float, v: float) -> float | None:
        self.n += 1
        if self.n == 1:
            self.lo = self.hi = self.mean = v
            return None
        ready = self.n > self.warmup
        lo, hi = self.lo, self.hi
        span = hi - lo
        std = math.sqrt(self.var)
        z = (v - self.mean) / std if std > 0 else 0.0

        kind: AnomalyKind | None = None
        outside = span > 0 and (v > hi or v < lo) and abs(z) >= self.extreme_z
        far = std > 0 and abs(z) > self.z_alert
        if ready and (outside or far):
            kind = "spike"

        # transition novelty, with bins over the range seen so far (-1 and bins: beyond it)
        b = int((v - lo) / span * self.bins) if span > 0 else 0
        b = -1 if b < -1 else (self.bins if b > self.bins else b)
        width = self.bins + 3
        novel = 0
        if self.prev_bin > -2:
            bit = 1 << ((self.prev_bin + 1) * width + b + 1)
            if not self.seen & bit:
                self.seen |= bit
                novel = 1 if ready else 0
        self.prev_bin = b
        self.recent = ((self.recent << 1) | novel) & ((1 << self.novel_window) - 1)
        novel_count = self.recent.bit_count()
        if kind is None and ready and novel_count >= self.novel_needed:
            kind = "level_shift"

        # learn
        if v > hi:
            self.hi = v
        if v < lo:
            self.lo = v
        d = v - self.mean
        if std > 0:
            limit = self.z_alert * std
            d = -limit if d < -limit else (limit if d > limit else d)
        self.mean, self.var = ewma_step(self.mean, self.var, self.alpha, d)

        if not ready:
            return None
        self._kind = kind
        if kind is not None:
            return 1.0
        return max(gaussian_score(z, self.z_alert) * 0.85,
                   0.85 * novel_count / self.novel_needed)
