"""The default detector: limits, then "has this sensor ever done this before?" on records.

Most statistics here are judged against their own **record**: the largest value the
statistic has taken on this sensor so far, slowly forgotten (a half-life of
``record_memory`` days of *time*, so it means the same at any sampling rate). A reading
alerts when it breaks a record by the margin and clears a fixed floor. Records calibrate
themselves per sensor: a noisy, heavy-tailed series sets high records early and stays
quiet, and in a steady series the chance that a reading sets a record falls like 1/n, so
false alarms thin out the longer a sensor runs. No distribution is assumed.

Statistics, each with the anomaly kind it reports:

* **out_of_limits**: beyond the configured alarm limits (with hysteresis). No warm-up.
* **spike**: a *new extreme* (above the highest or below the lowest value seen, and
  ``extreme_z`` deviations from the level), or a *far outlier*: the z-score against a
  long-memory, outlier-clipped EWMA level breaks its record.
* **level_shift**: the short-run mean (EWMA, ``fast``) moves from the long-run level by
  a record number of deviations; or the value breaks the *daily pattern* (a profile of
  ``seasonal_bins`` bins over the day, the short-run residual against it breaks its
  record; this record is forgotten faster, with a half-life of ``seasonal_memory``
  days); or a burst of value transitions never seen before (binned over the seen range,
  ``novel_needed`` of the last ``novel_window`` samples; the contextual idea of CAD OSE,
  kept in an integer bitset).
* **Learning period.** A never-seen transition, and a far outlier against its record,
  count only after ``novel_learn`` days of time (default 1: the sensor's daily cycle);
  before that the transition table and the records are still mostly empty, and an
  outlier alerts only as far out as a new extreme needs (``extreme_z``). A fresh sensor
  at the product setting raised 3.4 false episodes per sensor-hour over its first 3 h
  without it (``bench/sim_false_rate.py``). Limits and the other checks count after
  ``warmup`` readings as before.
* **stuck**: the same value for ``stuck_factor`` times longer than the longest run this
  sensor showed before (and at least ``stuck_run`` samples).
* **dropout**: the gap since the previous reading, in typical intervals, is at least
  ``gap_factor`` and breaks its record (a sensor that always has hourly gaps is not news).

One configuration serves every sensor; ``sensitivity`` (0..1, default 0.5) scales every
margin and floor. ``sensitivity``, ``seasonal_memory`` and ``record_memory`` are the
settings that ``bench/nab_loco.py`` chooses by leave-one-category-out cross-validation on
the public NAB files, reporting the held-out score of that choice (docs/benchmarks.md).
An edge agent runs it at the product's quieter setting, sensitivity 0 with ``extreme_z``
8 (the config's detector defaults, ``config.models.DetectorSettings``), chosen for 2-5 s
sensor streams rather than NAB's 5-minute series.

The long-run level and variance are plain running means until ``1 / n`` falls below
``alpha``, then EWMAs: an EWMA started from zero variance calls early readings many
deviations out, and a record set then would hide every later anomaly.

The score is in [0, 1]: for each statistic its value over what it would need to alert,
mapped so that exactly "needed" is the threshold 0.9; the highest wins and names the kind.
So ``1 / (1 - score)`` is ten times how far past its alert level the statistic is, which
is what :class:`~gridcall.detectors.episodes.Episodes` compares to let a much stronger
anomaly through a cooldown. A stuck run is held just past its alert level however long
it lasts (the same incident, not a worse one). The state is a few dozen floats, an
integer bitset and the day profile (about 2.4 KB pickled).
"""

from __future__ import annotations

import math
from array import array

from gridcall.detectors.base import AnomalyKind, Limits, Streaming

_NAN = math.nan
DAY = 86_400.0
_isnan = math.isnan


def _grade(q: float) -> float:
    """Ratio of a statistic to its alert level → score; 1.0 maps to the threshold 0.9."""
    return 0.9 * q if q < 1.0 else 1.0 - 0.1 / q


class DefaultDetector(Streaming):
    """Used for every sensor unless config says otherwise.

    >>> import math, random
    >>> rng = random.Random(7)
    >>> d = DefaultDetector(Limits(alarm_high=80.0), seed=0)
    >>> d.score_one(0.0, 95.0), d.kind                 # a limit needs no warm-up
    (1.0, 'out_of_limits')
    >>> day = [20 + 5 * math.sin(t * 2 * math.pi / 288) for t in range(288)]  # 5-min
    >>> scores = [d.score_one(300.0 * t, day[t % 288] + rng.gauss(0, 0.3))
    ...           for t in range(1, 288 * 7)]
    >>> scores[10] is None                             # still learning
    True
    >>> d.score_one(300.0 * 288 * 7, 45.0) >= d.threshold, d.kind  # never seen before
    (True, 'spike')
    >>> for t in range(288 * 7 + 1, 288 * 8):          # stuck at one value for a day
    ...     score = d.score_one(300.0 * t, 21.5)
    >>> score >= d.threshold, d.kind
    (True, 'stuck')
    """

    def __init__(self, limits: Limits | None = None, *, sensitivity: float = 0.5,
                 seed: int = 0, warmup: int = 200, alpha: float = 0.001,
                 clip: float = 12.0, extreme_z: float = 2.0, fast: float = 0.1,
                 far_floor: float = 4.0, shift_floor: float = 2.0,
                 seasonal_period: float = 86_400.0, seasonal_bins: int = 144,
                 seasonal_alpha: float = 0.1, seasonal_floor: float = 2.0,
                 seasonal_memory: float = 5.0,
                 seasonal_warmup: int = 100, record_memory: float = 90.0,
                 record_margin: float = 1.05, seasonal_margin: float = 1.0,
                 gap_margin: float = 1.5,
                 bins: int = 16, novel_window: int = 20, novel_needed: int = 5,
                 novel_learn: float = 1.0,
                 stuck_run: int = 60, stuck_factor: float = 3.0,
                 gap_factor: float = 10.0) -> None:
        super().__init__(limits)
        if not 0.0 <= sensitivity <= 1.0:
            raise ValueError(f"sensitivity must be in [0, 1], got {sensitivity!r}")
        if warmup < 2 or seasonal_bins < 1 or bins < 1 or not 0 < novel_needed <= novel_window:
            raise ValueError("need warmup >= 2, seasonal_bins >= 1, bins >= 1 and "
                             "0 < novel_needed <= novel_window")
        if not (seasonal_period > 0 and seasonal_memory > 0 and record_memory > 0):
            raise ValueError("need seasonal_period, seasonal_memory and record_memory > 0")
        if not novel_learn >= 0:
            raise ValueError(f"novel_learn must be >= 0 days, got {novel_learn!r}")
        self.limits = limits or Limits()
        self.sensitivity = sensitivity
        self.seed = seed  # no randomness here; kept so seeded copies compare equal
        self.warmup = warmup
        self.alpha = alpha
        self.clip = clip
        self.fast = fast
        # sensitivity scales every floor: ×1 at 0.5, ×1.25 at 0, ×0.75 at 1; a record must
        # be beaten by record_margin times that, so the same event again is not news
        scale = self.scale = 1.0 + 0.5 * (0.5 - sensitivity)
        self.record_margin = record_margin
        self.gap_margin = gap_margin
        self.seasonal_margin = seasonal_margin
        self.margin = record_margin * scale
        self.extreme_z = extreme_z * scale
        self.far_floor = far_floor * scale
        self.shift_floor = shift_floor * scale
        self.seasonal_floor = seasonal_floor * scale
        self.gap_factor = gap_factor * scale
        self.seasonal_period = seasonal_period
        self.seasonal_bins = seasonal_bins
        self.seasonal_alpha = seasonal_alpha
        self.seasonal_memory = seasonal_memory
        # per second of time: ln 2 over the half-life
        self._seasonal_rate = math.log(2.0) / (seasonal_memory * DAY)
        self.seasonal_warmup = seasonal_warmup
        self.record_memory = record_memory
        self._record_rate = math.log(2.0) / (record_memory * DAY)
        self.bins = bins
        self.novel_window = novel_window
        self.novel_needed = novel_needed
        self.novel_learn = novel_learn
        self._novel_after = _NAN  # the time from which a never-seen transition counts
        self.stuck_run = stuck_run
        self.stuck_factor = stuck_factor
        # state
        self.in_alarm = False
        self.n = 0
        self.last_ts = _NAN
        self.interval = 0.0
        self.lo = self.hi = self.mean = self.var = self.short = 0.0
        self.profile = array("d", [_NAN]) * seasonal_bins
        self.residual = 0.0
        self.residual_var = 0.0
        self.seasonal_n = 0  # residuals against a seen bin so far
        self.rec_far = self.rec_shift = self.rec_seasonal = self.rec_gap = 0.0
        self.prev_bin = -2
        self.seen = 0  # bitset of (previous bin, bin) transitions seen
        self.recent = 0  # bitset of the last novel_window samples: 1 = novel transition
        self.last_value = _NAN
        self.same = 0
        self.longest = 0

    def _limits(self, v: float) -> bool:
        lim = self.limits
        h = lim.hysteresis if self.in_alarm else 0.0
        self.in_alarm = (lim.alarm_high is not None and v > lim.alarm_high - h) or (
            lim.alarm_low is not None and v < lim.alarm_low + h)
        return self.in_alarm

    def update(self, ts: float, v: float) -> float | None:
        if self._limits(v):
            self._kind = "out_of_limits"
            self._learn_quietly(ts, v)
            return 1.0
        self._kind = None
        n = self.n = self.n + 1
        ready = n > self.warmup
        margin = self.margin
        scale = self.scale
        best = spike = 0.0
        kind: AnomalyKind | None = None

        # dropout: the gap in typical intervals, against its record
        last_ts, self.last_ts = self.last_ts, ts
        if n > 1:
            dt = ts - last_ts
            decay = math.exp(-self._record_rate * dt)
            if n <= 6:
                self.interval = dt if n == 2 else 0.8 * self.interval + 0.2 * dt
            else:
                ratio = dt / self.interval if self.interval > 0 else 0.0
                rec = self.rec_gap
                q = ratio / max(self.gap_margin * scale * rec, self.gap_factor)
                if q > best:
                    best, kind = q, "dropout"
                self.rec_gap = max(rec * decay, ratio)
                if ratio <= self.gap_factor:
                    self.interval += 0.05 * (dt - self.interval)
        else:
            self.lo = self.hi = self.mean = self.short = v
            self.last_value = v
            self._novel_after = ts + self.novel_learn * DAY
            return None

        lo, hi, mean = self.lo, self.hi, self.mean
        span = hi - lo
        std = math.sqrt(self.var)
        rec_on = n >= 50
        # a never-seen transition, or a record, means something only once the sensor has
        # shown its range (``novel_learn``, a day: its daily cycle), far longer than the
        # warm-up; a new extreme of extreme_z deviations needs no table and counts sooner
        novel_on = ready and ts >= self._novel_after

        if std > 0.0:
            dev = v - mean
            az = abs(dev) / std
            # a new extreme, far enough from the level to matter
            if (v > hi or v < lo) and az >= self.extreme_z and ready:
                spike = best = 2.0
                kind = "spike"
            # a far outlier: the z-score against its record
            rec = self.rec_far
            # while novelty is still learning, an outlier must be as far out as a new
            # extreme would need: records set in the first hours are too low to trust
            floor = self.far_floor if novel_on else max(self.far_floor, self.extreme_z)
            q = az / max(margin * rec, floor)
            if q > best:
                spike = best = q
                kind = "spike"
            if rec_on:
                self.rec_far = max(rec * decay, az)
            # a level shift: the short-run mean against the long-run level
            short = self.short = self.short + self.fast * (v - self.short)
            s = abs(short - mean) / std
            rec = self.rec_shift
            q = s / max(margin * rec, self.shift_floor)
            if q > best:
                best, kind = q, "level_shift"
            if rec_on:
                self.rec_shift = max(rec * decay, s)
            # learn the level, clipping what an outlier teaches it
            lim = self.clip * std
            d = -lim if dev < -lim else (lim if dev > lim else dev)
        else:
            self.short += self.fast * (v - self.short)
            d = v - mean
        # a plain running mean and variance until 1/n falls below alpha: an EWMA started
        # at zero variance would call early readings many deviations out and set records
        # no later reading can beat
        alpha = max(self.alpha, 1.0 / n)
        self.mean = mean + alpha * d
        self.var = (1.0 - alpha) * (self.var + alpha * d * d)

        # the daily pattern: short-run residual against this time of day's profile
        b = int(ts % self.seasonal_period / self.seasonal_period * self.seasonal_bins)
        if b >= self.seasonal_bins:  # float rounding just below a period's end
            b = self.seasonal_bins - 1
        profile = self.profile
        p = profile[b]
        if not _isnan(p):  # this bin has been seen
            r = v - p
            profile[b] = p + self.seasonal_alpha * r
        else:
            r = 0.0
            profile[b] = v
        res = self.residual = self.residual + self.fast * (r - self.residual)
        rsd = math.sqrt(self.residual_var)
        if not _isnan(p):
            self.seasonal_n += 1
        if rsd > 0.0 and self.seasonal_n > self.seasonal_warmup:
            s = abs(res) / rsd
            rec = self.rec_seasonal
            q = s / max(self.seasonal_margin * scale * rec, self.seasonal_floor)
            if q > best:
                best, kind = q, "level_shift"
            if self.seasonal_n >= 50:
                self.rec_seasonal = max(rec * math.exp(-self._seasonal_rate * dt), s)
        self.residual_var = (1.0 - alpha) * (self.residual_var + alpha * r * r)

        # never-seen transitions between value bins
        nb = self.bins
        if span > 0.0:
            bb = int((v - lo) / span * nb)
            bb = -1 if bb < -1 else (nb if bb > nb else bb)
        else:
            bb = 0
        novel = 0
        if self.prev_bin > -2:
            bit = 1 << ((self.prev_bin + 1) * (nb + 3) + bb + 1)
            if not self.seen & bit:
                self.seen |= bit
                novel = 1 if novel_on else 0
        self.prev_bin = bb
        self.recent = ((self.recent << 1) | novel) & ((1 << self.novel_window) - 1)
        if novel:
            q = self.recent.bit_count() / self.novel_needed
            if q > best:
                best, kind = q, "level_shift"

        # a stuck sensor
        if v == self.last_value:
            self.same += 1
        else:
            if not ready or self.same < self._stuck_needed():
                self.longest = max(self.longest, self.same)
            self.same = 0
            self.last_value = v
        if self.same:
            # held at just past its alert level: a sensor stuck for longer is the same
            # incident, not a worse one that should raise again
            q = min(self.same / self._stuck_needed(), 1.5)
            if q > best:
                best, kind = q, "stuck"

        if v > hi:
            self.hi = v
        elif v < lo:
            self.lo = v
        if spike >= 1.0:
            kind = "spike"  # one wild reading is a spike, whatever else it moved
        score = _grade(best)
        if not ready and not (kind == "dropout" and score >= self.threshold):
            return None  # learning; only a dropout is clear without a baseline
        self._kind = kind if score >= self.threshold else None
        return score

    def _stuck_needed(self) -> float:
        return max(self.stuck_run, self.stuck_factor * self.longest)

    def _learn_quietly(self, ts: float, v: float) -> None:
        """While out of limits: keep time, learn nothing from the value."""
        if self.n:
            self.last_ts = ts
