"""Small streaming detectors: static limits, a robust EWMA level, rate of change, a
flatline and a dropout check (the default detector is in :mod:`gridcall.detectors.default`).

Each is a tiny class of plain floats, so its state pickles in a few hundred bytes and a
Raspberry Pi scores hundreds of sensors with little CPU.
"""

from __future__ import annotations

import math

from gridcall.detectors.base import Limits, Streaming, ewma_step, gaussian_score


class LimitsDetector(Streaming):
    """Static alarm limits with hysteresis; no warm-up. Values outside the physical range
    are faults, skipped and counted, not alarms.

    >>> d = LimitsDetector(Limits(alarm_high=20.0, hysteresis=2.0))
    >>> [d.score_one(t, v) for t, v in enumerate([5.0, 21.0, 19.0, 17.5])]
    [0.0, 1.0, 1.0, 0.0]
    >>> d.kind is None
    True
    """

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self.limits = limits or Limits()
        self.in_alarm = False

    def update(self, ts: float, v: float) -> float:
        lim = self.limits
        h = lim.hysteresis if self.in_alarm else 0.0
        high = lim.alarm_high is not None and v > lim.alarm_high - h
        low = lim.alarm_low is not None and v < lim.alarm_low + h
        self.in_alarm = high or low
        self._kind = "out_of_limits" if self.in_alarm else None
        return 1.0 if self.in_alarm else 0.0


class RobustLevel(Streaming):
    """EWMA mean and variance with outlier-clipped updates; score from the z-score.

    ``sensitivity`` in [0, 1] sets the z at which the score reaches the threshold
    (z = 3 + 4·(1 − sensitivity): 5 at the default 0.5). Warm-up: ``warmup`` samples.

    >>> d = RobustLevel(warmup=5)
    >>> scores = [d.score_one(t, 10.0 + (t % 3) * 0.1) for t in range(30)]
    >>> scores[0] is None, scores[-1] < 0.5
    (True, True)
    >>> d.score_one(30, 50.0) >= d.threshold, d.kind
    (True, 'spike')
    """

    def __init__(self, *, sensitivity: float = 0.5, alpha: float = 0.05, warmup: int = 20,
                 min_std: float = 1e-3) -> None:
        super().__init__()
        self.sensitivity = sensitivity
        self.alpha = alpha
        self.warmup = warmup
        self.min_std = min_std
        self.z_alert = 3.0 + 4.0 * (1.0 - sensitivity)
        self.n = 0
        self.mean = 0.0
        self.var = 0.0
        self.last_z = 0.0
        self.high_run = 0

    def update(self, ts: float, v: float) -> float | None:
        self.n += 1
        if self.n == 1:
            self.mean = v
            return None
        std = max(math.sqrt(self.var), self.min_std, abs(self.mean) * 1e-4)
        z = (v - self.mean) / std
        # Clip what the estimate learns from an outlier, so an anomaly does not become normal
        # at once; a sustained shift is still learned, slowly.
        clipped = self.mean + max(-self.z_alert, min(self.z_alert, z)) * std
        self.mean, self.var = ewma_step(self.mean, self.var, self.alpha, clipped - self.mean)
        if self.n <= self.warmup:
            return None
        self.last_z = z
        self.high_run = self.high_run + 1 if abs(z) >= self.z_alert else 0
        if abs(z) < self.z_alert:
            self._kind = None
        else:
            self._kind = "level_shift" if self.high_run >= 5 else "spike"
        return gaussian_score(z, self.z_alert)


class RateOfChange(Streaming):
    """Too fast a change: the step from the previous reading, per second, against an EWMA
    of typical steps. Catches a sudden jump even while the level is still in range.

    >>> d = RateOfChange(warmup=10)
    >>> for t in range(100):
    ...     _ = d.score_one(float(t), 20.0 + 0.1 * (t % 4))
    >>> d.score_one(100.0, 20.1) < 0.5
    True
    >>> d.score_one(101.0, 26.0) >= d.threshold, d.kind
    (True, 'spike')
    """

    def __init__(self, *, sensitivity: float = 0.5, alpha: float = 0.05,
                 warmup: int = 20) -> None:
        super().__init__()
        self.alpha = alpha
        self.warmup = warmup
        self.z_alert = 3.0 + 4.0 * (1.0 - sensitivity)
        self.n = 0
        self.last: tuple[float, float] | None = None
        self.mean_rate = 0.0
        self.var_rate = 0.0

    def update(self, ts: float, v: float) -> float | None:
        last, self.last = self.last, (ts, v)
        if last is None:
            return None
        rate = (v - last[1]) / max(ts - last[0], 1e-9)
        self.n += 1
        std = math.sqrt(self.var_rate)
        z = (rate - self.mean_rate) / std if std > 0 else 0.0
        d = rate - self.mean_rate
        if std > 0:
            d = max(-self.z_alert * std, min(self.z_alert * std, d))
        self.mean_rate, self.var_rate = ewma_step(self.mean_rate, self.var_rate, self.alpha, d)
        if self.n <= self.warmup:
            return None
        score = gaussian_score(z, self.z_alert)
        self._kind = "spike" if score >= self.threshold else None
        return score


class Flatline(Streaming):
    """A stuck sensor: the same value for far longer than this sensor has ever repeated
    itself (``factor`` × its longest earlier run, and at least ``run`` samples).

    Series that often repeat a value (coarse resolution, counts of zero at night) thus
    need a much longer flat run before they count as stuck.

    >>> d = Flatline(run=5, warmup=4)
    >>> [d.score_one(t, v) for t, v in enumerate([1.0, 1.2, 0.9, 1.1] + [1.0] * 6)][-1]
    1.0
    >>> d.kind
    'stuck'
    """

    def __init__(self, *, run: int = 30, factor: float = 3.0, warmup: int = 200,
                 tolerance: float = 1e-9) -> None:
        super().__init__()
        self.run = run
        self.factor = factor
        self.warmup = warmup
        self.tolerance = tolerance
        self.n = 0
        self.last: float | None = None
        self.same = 0
        self.longest = 0

    @property
    def needed(self) -> float:
        return max(self.run, self.factor * self.longest)

    def update(self, ts: float, v: float) -> float | None:
        self.n += 1
        if self.last is not None and abs(v - self.last) <= self.tolerance:
            self.same += 1
        else:
            if self.n <= self.warmup or self.same < self.needed:
                self.longest = max(self.longest, self.same)
            self.same = 0
        self.last = v
        if self.n <= self.warmup:
            return None
        needed = self.needed
        stuck = self.same >= needed
        self._kind = "stuck" if stuck else None
        return 1.0 if stuck else 0.5 * self.same / needed


class Dropout(Streaming):
    """A gap since the last reading longer than ``factor`` typical intervals, reported
    when the next reading arrives (the gap is known only then).

    >>> d = Dropout(factor=5)
    >>> scores = [d.score_one(t, 1.0) for t in range(10)]
    >>> d.score_one(40, 1.0), d.kind
    (1.0, 'dropout')
    """

    def __init__(self, *, factor: float = 10.0, warmup: int = 5) -> None:
        super().__init__()
        self.factor = factor
        self.warmup = warmup
        self.last_ts: float | None = None
        self.interval = 0.0
        self.n = 0

    def update(self, ts: float, v: float) -> float | None:
        last, self.last_ts = self.last_ts, ts
        if last is None:
            return None
        dt = ts - last
        self.n += 1
        if self.n <= self.warmup:
            self.interval = dt if self.n == 1 else 0.8 * self.interval + 0.2 * dt
            return None
        gap = dt > self.factor * self.interval
        if not gap:
            self.interval = 0.95 * self.interval + 0.05 * dt
        self._kind = "dropout" if gap else None
        return 1.0 if gap else 0.0
