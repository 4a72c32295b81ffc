"""A multivariate detector that learns normal in a baseline period and keeps it.

API (stable; ``gridcall detect`` and the benches call only this)::

    det = LearnedNormal(baseline=400)            # or baseline_s=3600.0: a commissioning window
    score = det.score_one(ts, {"flow": 41.2, "current": 17.9, ...})   # None while learning
    det.learning                                 # True until the baseline model is fitted
    det.contributions()                          # {sensor: share} for the last scored row
    det.kind                                     # "multivariate", or "stuck" (a frozen sensor)

Registry name ``learned_normal`` (in :data:`detectors.MULTIVARIATE`). Rows are mappings
of named values; the columns are fixed by the first complete row, and rows with a missing
or bad value are skipped and counted exactly as for :class:`detectors.Mahalanobis`.

How it works. The first ``baseline`` rows (or the rows of the first ``baseline_s``
seconds) are the commissioning window and score ``None``. At its end a PCA model of
normal is fitted on the standardised rows (no sensor's spread taken as narrower than
``accuracy``, 3 % of its reading by default, about a field instrument's accuracy: a
thermometer that held within 0.05 °C in a quiet baseline does not make a 0.5 °C
after-effect a fault), after dropping the rows a first classical fit finds far out (a
one-step reweighted, robust estimate): Hotelling's T² within the principal subspace
(``variance`` of it kept) and the squared prediction error (SPE, Q) off it, each as a
ratio to its own 99th percentile in the baseline. A row's statistic is the larger ratio,
the median of it and the two rows before, smoothed over about ``smooth`` rows (faults
last minutes; noise lasts a row). The alert level is calibrated out of sample: the
baseline is cut into twelve blocks, models fitted without every fourth block score the
blocks left out, and the level is a margin (set by ``sensitivity``) times the 99th
percentile of those smoothed statistics, so drift and autocorrelation in the baseline
raise the level rather than the false alarms. The score is ``1 - 0.1 ** (statistic /
level)``: 0.9 exactly at the level.

Keeping normal. After the baseline the mean follows normal rows slowly (weight
``adapt`` a row) and never learns a sensor that moved: on an anomalous row only the
sensors whose reconstruction-based contribution is small are learned. Sensors that
drifted steadily in the baseline (a motor warming up) are expected to go on drifting:
their mean follows faster and carries a learned pace (Holt's damped trend, capped at
three times the baseline's pace), also through a fault, so the fault stays abnormal
while their normal drift neither raises an alarm nor holds one after the fault ends. The
covariance stays the baseline's unless ``adapt_cov`` is set. A sensor whose value
repeats for far longer than it ever did in the baseline scores as ``stuck``.

:meth:`LearnedNormal.contributions` gives each sensor's share of the last row's
abnormality (reconstruction-based contributions, shares summing to 1), so an event can
say which sensor moved. The defaults were chosen by cross-validation over fault kinds on
the pumping-station simulator (bench/pump.py, docs/benchmarks.md).

>>> import random
>>> rng = random.Random(3)
>>> det = LearnedNormal(baseline=300)
>>> def row(shift=0.0):
...     s = rng.gauss(0, 1)
...     return {"flow": 40 + 4 * s + rng.gauss(0, .3), "current": 18 + 2 * s + rng.gauss(0, .2),
...             "temp": 50 + rng.gauss(0, .5) + shift}
>>> [det.score_one(t, row()) for t in range(300)][-1] is None, det.learning
(True, False)
>>> normal = [det.score_one(t, row()) for t in range(300, 600)]
>>> sum(s >= det.threshold for s in normal)
0
>>> fault = [det.score_one(t, row(shift=4.0)) for t in range(600, 1200)]
>>> sum(s >= det.threshold for s in fault[10:])        # held anomalous for all of it
590
>>> max(det.contributions(), key=det.contributions().get)
'temp'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from gridcall.detectors.base import AnomalyKind, Streaming
from gridcall.detectors.multivariate import RowVectors

MAX_BASELINE_ROWS = 50_000
"""A time-based baseline ends here at the latest, so its memory stays bounded."""
MIN_BASELINE_ROWS = 12
DRIFT_GAIN = 2.0
"""A sensor drifting ``d`` noise deviations a row in the baseline has its mean follow at
``DRIFT_GAIN * d`` a row on top of ``adapt``: it lags a drift at that pace by half a
noise deviation."""
MAX_RATE = 0.02
CHANCE_SLOPES = 4.0
"""How many white-noise slope deviations a drift must pass (coloured noise, as from
turbulence, has slopes two to three times steeper than white noise)."""
STILL = 0.5
"""On an anomalous row a sensor whose contribution is under this share of the alert
level did not move."""
CYCLE_TURNS = 5
"""A sensor whose slope changes sign between this many of the baseline's eight stretches
(of seven) cycles rather than drifts."""
TREND_RATE = 0.02
"""How fast a drifting sensor's learned pace follows its normal rows."""
TREND_CAP = 3.0
"""A drifting sensor's learned pace stays within this many times its baseline pace."""
TREND_DAMP = 0.999
"""A learned pace fades over some thousand rows unless normal rows renew it."""
STUCK_MIN = 30
"""A sensor is stuck after repeating one value for three times its longest run in the
baseline plus ten rows, and never before this many (a coarse instrument on a steady
process may repeat for a while)."""
SPIKE = 20.0
"""A single row this many times the alert level is scored at once (a spike), not taken
for noise by the median of three."""
MARGIN = 1.7
"""The alert level over the baseline's held-out 99th percentile at sensitivity 0.5; each
0.5 of sensitivity halves or doubles it."""
FOLDS = 4
BLOCKS_PER_FOLD = 3
"""The alert level is calibrated by cross-validation within the baseline: its rows in
``FOLDS * BLOCKS_PER_FOLD`` contiguous blocks, every ``FOLDS``-th block held out."""


def _chi2_quantile(dof: int, z: float) -> float:
    """Wilson-Hilferty approximation of a chi-squared quantile (z: the normal quantile)."""
    h = 2.0 / (9.0 * dof)
    return dof * (1.0 - h + z * math.sqrt(h)) ** 3


def _score(ratio: float) -> float:
    """0.9 exactly at ratio 1, towards 1 beyond it, 0 at 0."""
    return 1.0 - math.pow(0.1, min(max(ratio, 0.0), 50.0))


class _Model:
    """A PCA model of normal on standardised rows; immutable once fitted except by
    :meth:`adapt`, which moves the mean and covariance and refreshes the projection."""

    __slots__ = (
        "accuracy",
        "cap",
        "cov",
        "diag",
        "drifting",
        "inv_lam",
        "inv_scale",
        "mean",
        "metric",
        "p",
        "pt",
        "trend",
        "ucl_q",
        "ucl_t",
        "variance",
    )

    def __init__(self, data: Any, variance: float, accuracy: float = 0.0) -> None:
        self.variance = variance
        self.accuracy = accuracy
        mean, cov = data.mean(axis=0), np.atleast_2d(np.cov(data, rowvar=False))
        # one-step reweighting: rows far out under the classical fit do not shape normal
        k = data.shape[1]
        inv = np.linalg.pinv(cov + np.eye(k) * 1e-12 * (float(np.trace(cov)) + 1e-30))
        d = data - mean
        d2 = np.einsum("ij,jk,ik->i", d, inv, d)
        keep = d2 <= _chi2_quantile(k, 3.09)  # 99.9 %
        if keep.sum() >= max(MIN_BASELINE_ROWS, k + 2) and not keep.all():
            mean, cov = data[keep].mean(axis=0), np.atleast_2d(np.cov(data[keep], rowvar=False))
        self.mean = mean
        self.cov = cov
        self.inv_scale: Any = None
        self.inv_lam: Any = None
        self.p: Any = None
        self.pt: Any = None
        self.metric: Any = None
        self.diag: Any = None
        self.trend: Any = np.zeros(k)
        self.drifting: Any = np.zeros(k, dtype=bool)
        self.cap: Any = np.zeros(k)
        self.ucl_t = self.ucl_q = 1.0
        self.project()
        t2, q = self.stats(data)
        self.ucl_t = max(float(np.quantile(t2, 0.99)), 1e-6)
        self.ucl_q = max(float(np.quantile(q, 0.99)), 1e-6)
        self.project()

    def project(self) -> None:
        sd = np.sqrt(np.maximum(np.diag(self.cov), 0.0))
        floor = np.maximum(self.accuracy * np.abs(self.mean), 1e-9)
        sd = np.maximum(sd, floor)
        self.inv_scale = 1.0 / sd
        corr = self.cov * np.outer(self.inv_scale, self.inv_scale)
        lam, vec = np.linalg.eigh(corr)
        order = np.argsort(lam)[::-1]
        lam, vec = np.maximum(lam[order], 1e-6), vec[:, order]
        k = len(lam)
        share = np.cumsum(lam) / float(lam.sum())
        keep = int(np.searchsorted(share, self.variance) + 1)
        keep = max(1, min(keep, k - 1)) if k > 1 else 1
        self.p = np.ascontiguousarray(vec[:, :keep])
        self.pt = np.ascontiguousarray(self.p.T)
        self.inv_lam = 1.0 / lam[:keep]
        residual = np.eye(k) - self.p @ self.pt
        self.metric = (self.p * self.inv_lam) @ self.pt / self.ucl_t + residual / self.ucl_q
        self.diag = np.maximum(np.diag(self.metric), 1e-12)

    def stats(self, data: Any) -> tuple[Any, Any]:
        """T² and Q of each row of a 2-D array."""
        z = (data - self.mean) * self.inv_scale
        t = z @ self.p
        e = z - t @ self.pt
        return (t * t * self.inv_lam).sum(axis=1), (e * e).sum(axis=1)

    def ratio(self, x: Any) -> tuple[float, Any, Any]:
        """One row's statistic (the larger of T² and Q over their limits), z and t."""
        z = (x - self.mean) * self.inv_scale
        t = self.pt @ z
        e = z - self.p @ t
        t2 = float(t @ (t * self.inv_lam))
        q = float(e @ e)
        return max(t2 / self.ucl_t, q / self.ucl_q), z, t

    def contributions(self, z: Any, t: Any) -> Any:
        """Each sensor's reconstruction-based contribution (Alcala and Qin, 2009): how
        much the combined index (T² and SPE over their limits) falls if that sensor's
        value is replaced by the one the others imply. Unlike splitting T² term by
        term, a sensor that did not move gets little, however far the others moved."""
        mz = self.metric @ z
        return mz * mz / self.diag

    def start_trend(self, data: Any, drifting: Any, cap: Any, blocks: int = 8,
                    last: int = 3) -> None:
        """Drifting sensors carry on from where the baseline ended, at its last pace:
        the median slope over the ``last`` of ``blocks`` stretches of the baseline, and
        the median level those stretches project to its end (a step in one stretch, as a
        duty change, moves neither). A learned pace never exceeds ``cap``."""
        self.cap = cap
        n = len(data)
        size = n // blocks
        if size < 8 or not drifting.any():
            self.drifting = np.zeros(len(drifting), dtype=bool)
            return
        t = np.arange(size, dtype=float) - (size - 1) / 2.0
        slopes, centres, means = [], [], []
        for i in range(blocks - last, blocks):
            block = data[i * size:(i + 1) * size]
            centred = block - block.mean(axis=0)
            slopes.append((t @ centred) / float(t @ t))
            centres.append(i * size + (size - 1) / 2.0)
            means.append(block.mean(axis=0))
        slope = np.median(np.asarray(slopes), axis=0)
        ends = [m + slope * (n - 1 - c) for m, c in zip(means, centres, strict=True)]
        self.trend = np.where(drifting, np.clip(slope, -cap, cap), 0.0)
        self.mean = np.where(drifting, np.median(np.asarray(ends), axis=0), self.mean)
        self.drifting = drifting

    def adapt(self, x: Any, rate: Any, rate_cov: float) -> None:
        """Learn from a normal row: the mean (with its trend, for drifting sensors,
        as in Holt's damped-trend smoothing) and, if ``rate_cov``, the covariance."""
        expected = self.mean + self.trend
        d = x - expected
        mean = expected + rate * d
        trend = TREND_DAMP * self.trend + TREND_RATE * (mean - self.mean - self.trend)
        self.trend = np.where(self.drifting, np.clip(trend, -self.cap, self.cap), 0.0)
        self.mean = mean
        if rate_cov > 0.0:
            self.cov = (1.0 - rate_cov) * (self.cov + rate_cov * np.outer(d, d))

    def follow(self, x: Any, rate: Any, z: Any, t: Any, level: float) -> None:
        """On an anomalous row, learn only the sensors that did not move (whose
        contribution is under ``STILL`` of the alert level); the others are not learned:
        a drifting one carries on at its learned pace (a motor warming up keeps warming
        while a valve is shut), the rest stay where normal was."""
        still = self.contributions(z, t) < STILL * level
        expected = self.mean + self.trend
        mean = np.where(still, expected + rate * (x - expected), expected)
        learnt = np.clip(TREND_DAMP * self.trend + TREND_RATE * (mean - self.mean - self.trend),
                         -self.cap, self.cap)
        self.trend = np.where(self.drifting & still, learnt, TREND_DAMP * self.trend)
        self.mean = mean


def drift_rates(data: Any, blocks: int = 8) -> tuple[Any, Any]:
    """Each sensor's steady drift in the baseline, in noise deviations per row, and its
    typical absolute slope in its own unit per row.

    The baseline is cut into ``blocks`` stretches; in each, a least-squares line gives
    the slope and the scatter around it the noise (coloured noise included). The median
    absolute slope over the noise, less what noise alone would give, is the drift: a
    warming motor drifts in every stretch; flow that steps with the duty, or wanders
    with turbulence, does not."""
    n, k = data.shape
    size = n // blocks
    if size < 8:
        return np.zeros(k), np.zeros(k)
    t = np.arange(size, dtype=float) - (size - 1) / 2.0
    tt = float(t @ t)
    slopes, signed, noise = [], [], []
    for i in range(blocks):
        block = data[i * size:(i + 1) * size]
        centred = block - block.mean(axis=0)
        slope = (t @ centred) / tt
        slopes.append(np.abs(slope))
        signed.append(slope)
        noise.append(np.std(centred - np.outer(t, slope), axis=0))
    scale = np.maximum(np.median(np.asarray(noise), axis=0),
                       1e-9 + 1e-9 * np.abs(data.mean(axis=0)))
    chance = CHANCE_SLOPES * math.sqrt(12.0 / size**3)  # a white-noise slope's deviation
    typical = np.median(np.asarray(slopes), axis=0)
    # a cycle the baseline saw whole (a compressor, a tide) is not a drift: its slope
    # turns from stretch to stretch, where a warming motor's keeps its sign
    turns = (np.diff(np.sign(np.asarray(signed)), axis=0) != 0).sum(axis=0)
    drift = np.where(turns >= CYCLE_TURNS, 0.0, np.maximum(typical / scale - chance, 0.0))
    return drift, typical


class LearnedNormal(Streaming):
    """PCA (T² and SPE) over a commissioning baseline, adapting only on normal rows."""

    def __init__(self, *, baseline: int = 400, baseline_s: float | None = None,
                 sensitivity: float = 0.5, smooth: int = 5, adapt: float = 0.005,
                 adapt_cov: float = 0.0,
                 variance: float = 0.9, accuracy: float = 0.03, refresh: int = 100) -> None:
        if not isinstance(baseline, int) or baseline < MIN_BASELINE_ROWS:
            raise ValueError(f"baseline: {baseline!r} rows is too few; give at least "
                             f"{MIN_BASELINE_ROWS}")
        if baseline_s is not None and not (isinstance(baseline_s, int | float)
                                           and math.isfinite(baseline_s) and baseline_s > 0):
            raise ValueError(f"baseline_s: {baseline_s!r} is not a positive number of seconds")
        if not 0.0 <= sensitivity <= 1.0:
            raise ValueError(f"sensitivity: {sensitivity!r} is outside [0, 1]")
        if not (0.0 <= adapt < 1.0 and 0.0 <= adapt_cov < 1.0):
            raise ValueError(f"adapt {adapt!r} and adapt_cov {adapt_cov!r} must be in [0, 1)")
        if not 0.0 < variance <= 1.0:
            raise ValueError(f"variance: {variance!r} is outside (0, 1]")
        if not 0.0 <= accuracy < 1.0:
            raise ValueError(f"accuracy: {accuracy!r} is outside [0, 1)")
        if smooth < 1 or refresh < 1:
            raise ValueError(f"smooth {smooth!r} and refresh {refresh!r} must be >= 1")
        super().__init__()
        self.baseline = baseline
        self.baseline_s = baseline_s
        self.sensitivity = sensitivity
        self.margin = MARGIN * 4.0 ** (0.5 - sensitivity)
        self.smooth_alpha = 2.0 / (smooth + 1.0)
        self.adapt_alpha = adapt
        self.adapt_cov = adapt_cov
        self.variance = variance
        self.accuracy = accuracy
        self.refresh = refresh
        self.rows = RowVectors(self.guard)
        self.collected: list[list[float]] = []
        self.first_ts: float | None = None
        self.model: _Model | None = None
        self.level = 1.0
        self.smoothed = 0.0
        self.recent = (0.0, 0.0)
        self.since_refresh = 0
        self.last: list[float] | None = None
        self.run: list[int] = []
        self.stuck_after: list[int] = []
        self.rate: Any = None
        self.drift: Any = None
        self.longest: list[int] = []
        self._last_zt: tuple[Any, Any] | None = None

    @property
    def learning(self) -> bool:
        """True while the baseline (commissioning window) is being collected."""
        return self.model is None

    def score_one(  # type: ignore[override]
            self, ts: float, values: Mapping[str, float | None] | None) -> float | None:
        row = self.rows.vector(ts, values)
        if row is None:
            return None
        stuck = self._repeats(row)
        if self.model is None:
            self._collect(ts, row)
            return None
        x = np.asarray(row)
        r, z, t = self.model.ratio(x)
        self._last_zt = (z, t)
        r = min(r, 1e6)
        before, last = self.recent
        self.recent = (last, r)
        # one odd row is noise, not a fault, unless it is far beyond what noise does
        spike = r >= SPIKE * self.level
        middle = r if spike else sorted((before, last, r))[1]
        self.smoothed += self.smooth_alpha * (middle - self.smoothed)
        score = _score(self.smoothed / self.level)
        kind: AnomalyKind = "spike" if spike else "multivariate"
        if stuck > 1.0 and _score(stuck) > score:
            score, kind = _score(stuck), "stuck"
        anomalous = score >= self.threshold
        self._kind = kind if anomalous else None
        if self.adapt_alpha > 0.0:
            if not anomalous and r < self.level:
                self.model.adapt(x, self.rate, self.adapt_cov)
                self.since_refresh += 1
                if self.since_refresh >= self.refresh:
                    self.model.project()
                    self.since_refresh = 0
            else:
                self.model.follow(x, self.rate, z, t, self.level)
        return score

    def contributions(self) -> dict[str, float]:
        """Each sensor's share of the last scored row's statistic, largest first (sums
        to 1); empty before the first scored row."""
        if self.model is None or self._last_zt is None or self.rows.columns is None:
            return {}
        c = self.model.contributions(*self._last_zt)
        total = float(c.sum())
        shares = c / total if total > 0 else np.full(len(c), 1.0 / len(c))
        pairs = sorted(zip(self.rows.columns, (float(s) for s in shares), strict=True),
                       key=lambda p: -p[1])
        return dict(pairs)

    def _repeats(self, row: list[float]) -> float:
        """Track runs of identical values; the worst run over its baseline allowance."""
        last = self.last
        self.last = row
        if last is None:
            self.run = [1] * len(row)
            return 0.0
        run = self.run
        worst = 0.0
        for j, v in enumerate(row):
            run[j] = run[j] + 1 if v == last[j] else 1
        if self.stuck_after:
            for j, limit in enumerate(self.stuck_after):
                if run[j] > limit:
                    worst = max(worst, run[j] / limit)
        else:  # still learning: remember the longest run of each sensor
            self.longest = [max(a, b) for a, b in zip(self.longest or run, run, strict=True)]
        return worst

    def _collect(self, ts: float, row: list[float]) -> None:
        if self.first_ts is None:
            self.first_ts = ts
        self.collected.append(row)
        n = len(self.collected)
        if self.baseline_s is not None:
            done = ts - self.first_ts >= self.baseline_s and n >= MIN_BASELINE_ROWS
            done = done or n >= MAX_BASELINE_ROWS
        else:
            done = n >= self.baseline
        if done:
            self._fit(np.asarray(self.collected))
            self.collected = []

    def _fit(self, data: Any) -> None:
        n = len(data)
        block = max(MIN_BASELINE_ROWS, n // (FOLDS * BLOCKS_PER_FOLD))
        fold_of = (np.arange(n) // block) % FOLDS
        held: list[float] = []
        for fold in range(FOLDS):
            train, test = data[fold_of != fold], fold_of == fold
            if len(train) < MIN_BASELINE_ROWS or not test.any():
                continue
            trial = _Model(train, self.variance, self.accuracy)
            t2, q = trial.stats(train)
            s0 = float(np.median(np.maximum(t2 / trial.ucl_t, q / trial.ucl_q)))
            t2, q = trial.stats(data[test])
            ratios = np.minimum(np.maximum(t2 / trial.ucl_t, q / trial.ucl_q), 1e6)
            starts = np.flatnonzero(np.diff(np.flatnonzero(test), prepend=-2) > 1)
            s, a, recent = s0, self.smooth_alpha, (s0, s0)
            for i, r in enumerate(ratios):
                if i in starts:
                    s, recent = s0, (s0, s0)  # each held-out block starts afresh
                middle = sorted((*recent, float(r)))[1]
                recent = (recent[1], float(r))
                s += a * (middle - s)
                held.append(s)
        level = max(float(np.quantile(held, 0.99)), 1.0) if held else 1.0
        self.level = self.margin * level
        self.model = _Model(data, self.variance, self.accuracy)
        drift, pace = drift_rates(data)
        self.drift = np.minimum(DRIFT_GAIN * drift, MAX_RATE)
        self.rate = np.minimum(self.adapt_alpha + self.drift, MAX_RATE)
        t2, q = self.model.stats(data)
        self.smoothed = float(np.median(np.maximum(t2 / self.model.ucl_t, q / self.model.ucl_q)))
        self.recent = (self.smoothed, self.smoothed)
        # drifting sensors start from where the baseline ended, after the typical level
        self.model.start_trend(data, self.drift > 0.0, TREND_CAP * pace)
        self.stuck_after = [max(3 * m + 10, STUCK_MIN)
                            for m in (self.longest or [1] * data.shape[1])]
