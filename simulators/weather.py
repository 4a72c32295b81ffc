"""Rain, and the water it leaves at flood points.

A :class:`RainEpisode` rains over an area (unit ids: grids, communities or towns; empty
is everywhere) with a smooth rise to its peak intensity, a plateau and a fall. While it
rains, rain gauges in the area read the intensity (with gusts, and each gauge a little
more or less than its neighbours), and water-level sensors in the area see the run-off:

    dh/dt = gain · rain(t − lag) / 3600  −  h / τ          (h in cm, rain in mm/h)

a linear reservoir: rain arriving after a lag (the run-off has to reach the low point),
accumulating, draining with time constant τ. A low point (sensor tag ``flood_point``)
gathers more (gain 1.2–1.8 cm per mm of rain) than an ordinary gully (0.4–0.8); lag
(5–15 min) and τ (20–40 min) differ per sensor, seeded. So a 30-minute downpour of
80 mm/h floods a low point above 30 cm some ten minutes after the rain peaks, and the
water is gone again an hour or two later.

:meth:`RainModel.labels` turns the rain into ground truth: for every gauge and water-level
sensor in the area, each interval in which the noise-free value is beyond its alarm limit
becomes an :class:`~gridcall.simulators.streams.Injection` of shape ``rain`` (a label only: the
values come from this model).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from gridcall.config import SensorSpec
from gridcall.simulators.streams import (
    BASELINES,
    GENERIC,
    Injection,
    key_of,
    site_level,
    smooth,
    uniform,
)

STEP_S = 10.0
"""The reservoir's integration step (s); τ is at least 1200 s, so exact per step."""


@dataclass(frozen=True, slots=True)
class RainEpisode:
    """Rain from ``start`` (POSIX s) for ``duration`` s, peaking at ``peak_mm_h`` over
    ``area`` (unit ids; empty: everywhere). It takes ``ramp_s`` to build up and to ease
    off (0: a quarter of the duration, at most 15 minutes)."""

    start: float
    duration: float
    peak_mm_h: float
    area: frozenset[str] = frozenset()
    label: str = ""
    ramp_s: float = 0.0

    def covers(self, place: tuple[str, ...]) -> bool:
        return not self.area or any(unit in self.area for unit in place)

    def intensity(self, t: float) -> float:
        """Rain (mm/h) at ``t`` without gusts: a trapezoid with smoothed corners."""
        if not self.start <= t < self.start + self.duration:
            return 0.0
        ramp = self.ramp_s or min(900.0, self.duration / 4)
        x = min(t - self.start, self.start + self.duration - t)
        if x >= ramp:
            return self.peak_mm_h
        f = x / ramp
        return self.peak_mm_h * f * f * (3.0 - 2.0 * f)


@dataclass(frozen=True, slots=True)
class Runoff:
    gain: float
    """cm of water per mm of rain."""
    lag_s: float
    tau_s: float


class _Reservoir:
    """h(t) on a STEP_S grid from ``t0``, extended lazily (values are cached)."""

    __slots__ = ("episodes", "h", "runoff", "t0")

    def __init__(self, episodes: tuple[RainEpisode, ...], runoff: Runoff) -> None:
        self.episodes = episodes
        self.runoff = runoff
        self.t0 = min(e.start for e in episodes) if episodes else math.inf
        self.h = [0.0]

    def at(self, t: float) -> float:
        if t <= self.t0:
            return 0.0
        x = (t - self.t0) / STEP_S
        k = int(x)
        r = self.runoff
        decay = math.exp(-STEP_S / r.tau_s)
        while len(self.h) <= k + 1:
            i = len(self.h) - 1
            mid = self.t0 + (i + 0.5) * STEP_S - r.lag_s
            rain = sum(e.intensity(mid) for e in self.episodes)
            steady = r.gain * rain / 3600.0 * r.tau_s  # the level this rain would hold
            self.h.append(self.h[i] * decay + steady * (1.0 - decay))
        f = x - k
        return self.h[k] * (1.0 - f) + self.h[k + 1] * f


class RainEntry(Protocol):
    """A scenario's ``weather:`` entry (simulators.scenario.Weather)."""

    @property
    def at_ns(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def rain_mm_h(self) -> float: ...
    @property
    def area(self) -> tuple[str, ...]: ...
    @property
    def label(self) -> str: ...


def rain_model(entries: Iterable[RainEntry], *, seed: int) -> RainModel:
    """The rain of a scenario's weather entries."""
    return RainModel((RainEpisode(w.at_ns / 1e9, w.duration_s, w.rain_mm_h,
                                  frozenset(w.area), w.label) for w in entries), seed=seed)


class RainModel:
    """The rain episodes of a run, seeded; SensorStream asks it for its share."""

    def __init__(self, episodes: Iterable[RainEpisode] = (), *, seed: int = 0) -> None:
        self.episodes = tuple(sorted(episodes, key=lambda e: e.start))
        self.seed = seed
        self._reservoirs: dict[tuple[str, tuple[str, ...]], _Reservoir] = {}

    def __bool__(self) -> bool:
        return bool(self.episodes)

    def covering(self, place: tuple[str, ...]) -> tuple[RainEpisode, ...]:
        return tuple(e for e in self.episodes if e.covers(place))

    def rain(self, t: float, place: tuple[str, ...]) -> float:
        """The area's rain (mm/h) at ``t`` without gusts."""
        return sum(e.intensity(t) for e in self.episodes if e.covers(place))

    def gauge_factor(self, sensor: str) -> float:
        """A gauge catches ±10 % of its neighbours' rain (siting, wind)."""
        return 0.9 + 0.2 * uniform(key_of(self.seed, sensor, "gauge"), 0)

    def runoff(self, sensor: str, tags: tuple[str, ...]) -> Runoff:
        key = key_of(self.seed, sensor, "runoff")
        low = "flood_point" in tags
        gain = (1.2 + 0.6 * uniform(key, 0)) if low else (0.4 + 0.4 * uniform(key, 0))
        return Runoff(gain=gain, lag_s=300.0 + 600.0 * uniform(key, 1),
                      tau_s=1200.0 + 1200.0 * uniform(key, 2))

    def water(self, sensor: str, tags: tuple[str, ...], place: tuple[str, ...],
              t: float) -> float:
        """The run-off (cm) standing at a water-level sensor at ``t``."""
        res = self._reservoirs.get((sensor, place))
        if res is None:
            res = self._reservoirs[(sensor, place)] = _Reservoir(
                self.covering(place), self.runoff(sensor, tags))
        return res.at(t)

    def contribution(self, stream: _Stream, t: float) -> float:
        """What the weather adds to a stream's normal value at ``t``."""
        if stream.kind == "rain":
            rain = self.rain(t, stream.place)
            if rain <= 0.0:
                return 0.0
            gust = 1.0 + 0.2 * smooth(key_of(self.seed, "weather", "gust"), t, 90.0)
            return max(0.0, rain * gust * self.gauge_factor(stream.sensor))
        if stream.kind == "water_level":
            return self.water(stream.sensor, stream.tags, stream.place, t)
        return 0.0

    def expected(self, sensor: SensorSpec, t: float) -> float:
        """The sensor's noise-free value at ``t`` (its site level plus the weather)."""
        baseline = BASELINES.get(sensor.kind, GENERIC)
        level = site_level(baseline, sensor.id, self.seed)
        if sensor.kind == "rain":
            return level + self.rain(t, sensor.path) * self.gauge_factor(sensor.id)
        if sensor.kind == "water_level":
            return level + self.water(sensor.id, sensor.tags, sensor.path, t)
        return level

    def labels(self, sensors: Iterable[SensorSpec]) -> tuple[Injection, ...]:
        """Ground truth: each interval a rain gauge or water level is beyond its alarm
        limit because of the rain, as a ``rain``-shaped Injection."""
        out: list[Injection] = []
        for s in sensors:
            high = s.limits.alarm_high
            eps = self.covering(s.path)
            if s.kind not in ("rain", "water_level") or high is None or not eps:
                continue
            t0 = eps[0].start
            t1 = max(e.start + e.duration for e in eps) + 6 * 3600.0
            above_since: float | None = None
            peak = 0.0
            t = t0
            while t <= t1:
                v = self.expected(s, t)
                if v > high:
                    if above_since is None:
                        above_since, peak = t, v
                    peak = max(peak, v)
                elif above_since is not None:
                    out.append(self._label(s, above_since, t, peak))
                    above_since = None
                t += STEP_S
            if above_since is not None:
                out.append(self._label(s, above_since, t1, peak))
        return tuple(sorted(out, key=lambda i: (i.start, i.sensor)))

    @staticmethod
    def _label(s: SensorSpec, start: float, end: float, peak: float) -> Injection:
        what = "heavy rain" if s.kind == "rain" else "flooding"
        where = "a low point" if "flood_point" in s.tags else "a gully"
        text = (f"{what} at {s.path[-1]}: {peak:.0f} {s.unit_of_measure}"
                if s.kind == "rain" else f"{what} at {where} in {s.path[-1]}: "
                f"{peak:.0f} {s.unit_of_measure} of water")
        return Injection(s.id, start, end - start, "rain", round(peak, 1), text)


class _Stream(Protocol):
    @property
    def sensor(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def place(self) -> tuple[str, ...]: ...
