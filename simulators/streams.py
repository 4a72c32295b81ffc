"""Realistic sensor streams with labelled anomalies.

A :class:`SensorStream` produces a value for any time: a per-kind baseline (daily cycle,
noise, occasional traffic or rain), plus whatever :class:`Injection` is active. Every
injection is a ground-truth label: which sensor, when, what shape and how strong.
Everything is seeded, so the same stream comes out every time.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from typing import Literal

Shape = Literal["spike", "step", "ramp", "stuck", "dropout", "drift"]
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Baseline:
    """level + amplitude·cos(daily phase) + gaussian noise, clipped to [lo, hi]."""

    level: float
    daily_amplitude: float
    noise: float
    lo: float
    hi: float
    peak_hour: float = 14.0


BASELINES: dict[str, Baseline] = {
    "smoke": Baseline(0.02, 0.0, 0.005, 0.0, 10.0),
    "gas": Baseline(1.0, 0.3, 0.3, 0.0, 100.0, peak_hour=12.0),
    "water_level": Baseline(6.0, 0.0, 0.4, 0.0, 300.0),
    "rain": Baseline(0.5, 0.0, 0.3, 0.0, 300.0),
    "manhole_tilt": Baseline(0.6, 0.0, 0.15, 0.0, 90.0),
    "temperature": Baseline(3.5, 0.6, 0.15, -40.0, 125.0),
    "noise": Baseline(55.0, 8.0, 2.0, 20.0, 140.0, peak_hour=15.0),
    "pm25": Baseline(38.0, 12.0, 4.0, 0.0, 1000.0, peak_hour=8.0),
    "bridge_strain": Baseline(120.0, 40.0, 15.0, -2000.0, 2000.0, peak_hour=18.0),
    "water_leak": Baseline(2.0, 1.0, 0.5, 0.0, 500.0, peak_hour=7.0),
}
GENERIC = Baseline(10.0, 1.0, 0.5, -1e9, 1e9)


@dataclass(frozen=True, slots=True)
class Injection:
    """A labelled anomaly: from ``start`` (POSIX s) for ``duration`` s, ``shape`` reaching
    ``target`` (an absolute value in the sensor's unit; ignored by stuck and dropout)."""

    sensor: str
    start: float
    duration: float
    shape: Shape
    target: float = 0.0
    label: str = ""
    ramp_s: float | None = None
    """A ramp reaches ``target`` after this many seconds (default: a third of the
    duration); scenario files set it with ``over:``."""

    def active(self, t: float) -> bool:
        return self.start <= t < self.start + self.duration


class SensorStream:
    """Values of one sensor over time. ``value(t)`` is None while the sensor drops out."""

    __slots__ = ("_held", "_rng", "baseline", "injections", "kind", "sensor")

    def __init__(self, sensor: str, kind: str, *, seed: int = 0,
                 injections: tuple[Injection, ...] = ()) -> None:
        self.sensor = sensor
        self.kind = kind
        self.baseline = BASELINES.get(kind, GENERIC)
        self.injections = tuple(i for i in injections if i.sensor == sensor)
        self._rng = random.Random(seed ^ zlib.crc32(sensor.encode()))
        self._held: float | None = None

    def normal(self, t: float) -> float:
        b = self.baseline
        hour = (t % DAY) / 3600.0
        value = b.level + b.daily_amplitude * math.cos(2 * math.pi * (hour - b.peak_hour) / 24)
        value += self._rng.gauss(0.0, b.noise)
        return min(max(value, b.lo), b.hi)

    def value(self, t: float) -> float | None:
        normal = self.normal(t)
        for inj in self.injections:
            if not inj.active(t):
                continue
            frac = (t - inj.start) / inj.duration
            if inj.shape == "dropout":
                return None
            if inj.shape == "stuck":
                if self._held is None:
                    self._held = round(normal, 2)
                return self._held
            if inj.shape in ("spike", "step"):
                return inj.target + (normal - self.baseline.level) * 0.2
            if inj.shape == "ramp":
                rise = ((t - inj.start) / inj.ramp_s if inj.ramp_s else frac * 3)
                return normal + (inj.target - normal) * min(1.0, rise)
            if inj.shape == "drift":
                return normal + (inj.target - self.baseline.level) * frac
        self._held = None
        return normal
