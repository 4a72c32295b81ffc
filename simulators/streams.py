"""Realistic sensor streams with labelled anomalies.

A :class:`SensorStream` gives a value for any time ``t`` (POSIX s). The value is the sum of

* the kind's **level** with a small per-site offset (two gas monitors never read alike);
* a **daily cycle** (cosine with a peak hour) and **rush-hour bumps** (08:00 and 18:00:
  traffic noise, dust, a bridge's load);
* **correlated noise** (a smooth random curve with a time scale of minutes) plus white
  **measurement noise**, then quantised to the instrument's **resolution**;
* slow **sensor drift** (a random curve over hours, e.g. a catalytic gas cell ageing);
* **transient events** from a Poisson process whose rate differs by day and night (a
  passing lorry on a noise meter or a bridge gauge, a dog barking at 3 a.m.); night time
  is quieter on average but its events stand out more;
* an equipment **cycle** (a cold room's compressor: a saw-tooth of some minutes);
* rare single **missed readings** (``None``: a lost radio packet);
* the **weather** (:mod:`gridcall.simulators.weather`): a rain gauge reads the rain over its grid,
  a water-level sensor the lagged, integrated run-off of that rain.

On top of it an :class:`Injection` (a ground-truth label: which sensor, when, what shape,
how strong) changes the value while it is active. Everything is a pure function of
``(seed, sensor, t)``: noise comes from a counter-based hash, not from a sequential
generator, so the same value comes out whatever order or how often the stream is asked
(the simulated clock may sample it at any pace).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Literal, Protocol


class Overlay(Protocol):
    """Values that replace a stream's own while they last (a RecordedStream)."""

    def covers(self, t: float) -> bool: ...
    def value(self, t: float) -> float | None: ...


class Weather(Protocol):
    """What the weather adds to a stream's normal value (:class:`RainModel
    <gridcall.simulators.weather.RainModel>`). A protocol here, so that weather.py builds
    on this module and this module never imports it back."""

    def contribution(self, stream: SensorStream, t: float) -> float: ...

Shape = Literal["spike", "step", "ramp", "stuck", "dropout", "drift", "rain"]
"""``rain`` is a label only: the weather model makes the values (see weather.py)."""
SHAPES: tuple[Shape, ...] = ("spike", "step", "ramp", "stuck", "dropout", "drift", "rain")
DAY = 86_400.0
LOCAL_OFFSET_S = 8 * 3600.0
"""Daily cycles follow local hours; the config sets have no time zone and every sample
district is in China Standard Time (UTC+8)."""
_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of an integer. Written out here
    because the noise must be a pure function of (seed, sensor, time), which a sequential
    generator such as random.Random is not."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def uniform(key: int, n: int) -> float:
    """A uniform number in [0, 1) for counter ``n`` of stream ``key``."""
    return (_mix(key ^ _mix(n & _MASK)) >> 11) * (1.0 / (1 << 53))


def gauss(key: int, n: int) -> float:
    """A standard normal number for counter ``n`` of stream ``key`` (Box-Muller)."""
    u1 = uniform(key, 2 * n) or 1e-300
    u2 = uniform(key, 2 * n + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def smooth(key: int, t: float, scale_s: float) -> float:
    """A smooth random curve of unit variance-ish with time scale ``scale_s``: standard
    normal values at knots ``scale_s`` apart, joined by a smoothstep."""
    x = t / scale_s
    k = math.floor(x)
    f = x - k
    f = f * f * (3.0 - 2.0 * f)
    a, b = gauss(key, k), gauss(key, k + 1)
    # the smoothstep blend lowers the variance between knots; rescale to about 1
    return (a * (1.0 - f) + b * f) / math.sqrt((1.0 - f) ** 2 + f * f)


def key_of(seed: int, sensor: str, salt: str) -> int:
    return _mix((seed & _MASK) ^ (zlib.crc32(f"{sensor}/{salt}".encode()) << 20))


@dataclass(frozen=True, slots=True)
class Baseline:
    """How one kind of sensor behaves when nothing is wrong (in the kind's unit)."""

    level: float
    daily_amplitude: float
    noise: float
    """White measurement noise (standard deviation)."""
    lo: float
    hi: float
    peak_hour: float = 14.0
    resolution: float = 0.0
    """The instrument's step: values are rounded to it (0: not rounded)."""
    smooth: float = 0.0
    """Amplitude of the correlated noise (weather, occupancy...)."""
    smooth_s: float = 300.0
    drift: float = 0.0
    """Amplitude of the slow sensor drift (time scale ``drift_s``)."""
    drift_s: float = 6 * 3600.0
    rush: float = 0.0
    """Height of the two rush-hour bumps (08:00 and 18:00, about an hour wide)."""
    site_spread: float = 0.05
    """Per-site level offset, as a fraction of the level (uniform ±)."""
    events_day: float = 0.0
    """Transient events per hour, 07:00–23:00."""
    events_night: float = 0.0
    """Transient events per hour at night."""
    event_amp: tuple[float, float] = (0.0, 0.0)
    event_s: tuple[float, float] = (2.0, 8.0)
    night_event_gain: float = 1.0
    """Night events are this much stronger (nobody else drowns them out)."""
    cycle_s: float = 0.0
    """An equipment cycle (saw-tooth) with this period and ``cycle_amp`` (0: none)."""
    cycle_amp: float = 0.0
    missing: float = 0.0005
    """Probability that a reading is lost (None)."""


BASELINES: dict[str, Baseline] = {
    # obscuration: clean air, a little cooking smoke at meal times
    "smoke": Baseline(0.02, 0.0, 0.003, 0.0, 10.0, resolution=0.001, smooth=0.004,
                      smooth_s=600.0, events_day=0.5, event_amp=(0.01, 0.04),
                      event_s=(60.0, 300.0)),
    # catalytic %LEL: a little background in a kitchen street, kitchen hours, slow cell
    # drift (kept off zero: a clipped 0.0 repeated for minutes looks stuck)
    "gas": Baseline(1.5, 0.3, 0.15, 0.0, 100.0, peak_hour=12.0, resolution=0.1,
                    smooth=0.15, smooth_s=300.0, drift=0.2, events_day=1.0,
                    event_amp=(0.5, 2.0), event_s=(20.0, 120.0)),
    # flood point: a little water in the gully; the weather adds run-off
    "water_level": Baseline(6.0, 0.0, 0.3, 0.0, 300.0, resolution=0.1, smooth=0.3,
                            smooth_s=900.0, drift=0.2),
    # optical gauge: a noise floor when dry; the weather adds the rain
    "rain": Baseline(0.3, 0.0, 0.08, 0.0, 300.0, resolution=0.01, smooth=0.05,
                     smooth_s=120.0, site_spread=0.3),
    # cover tilt: traffic rattles it, more in rush hours
    "manhole_tilt": Baseline(0.6, 0.05, 0.1, 0.0, 90.0, resolution=0.01, smooth=0.05,
                             rush=0.05, events_day=20.0, events_night=3.0,
                             event_amp=(0.2, 0.8), event_s=(2.0, 6.0)),
    # cold room: compressor cycling, door openings in market hours
    "temperature": Baseline(3.5, 0.3, 0.08, -40.0, 125.0, peak_hour=10.0, resolution=0.1,
                            smooth=0.1, cycle_s=1200.0, cycle_amp=0.8, events_day=2.0,
                            event_amp=(0.3, 1.2), event_s=(60.0, 240.0)),
    # short-term Leq: loud afternoons, quiet nights with passing cars and barking dogs
    "noise": Baseline(52.0, 6.0, 1.2, 20.0, 140.0, peak_hour=15.0, resolution=0.1,
                      smooth=1.5, rush=3.0, events_day=30.0, events_night=6.0,
                      event_amp=(2.0, 5.0), event_s=(2.0, 10.0), night_event_gain=1.5),
    # dust: morning inversion and traffic, weather-driven swings
    "pm25": Baseline(38.0, 10.0, 2.0, 0.0, 1000.0, peak_hour=8.0, resolution=1.0,
                     smooth=5.0, smooth_s=1800.0, rush=6.0),
    # strain: thermal daily cycle, vehicles crossing
    "bridge_strain": Baseline(120.0, 40.0, 4.0, -2000.0, 2000.0, peak_hour=16.0,
                              resolution=1.0, smooth=5.0, smooth_s=900.0, drift=3.0,
                              rush=15.0, events_day=40.0, events_night=6.0,
                              event_amp=(10.0, 60.0), event_s=(2.0, 8.0)),
    # district metered flow: morning and evening use, the minimum night flow
    "water_leak": Baseline(2.0, 1.0, 0.3, 0.0, 500.0, peak_hour=7.0, resolution=0.1,
                           smooth=0.3, rush=0.8),
    # a flood-control pump (simulators/pump.py has the coupled model): flow and pressure
    # with the drive's duty over the day, turbulence, bearing-housing vibration, PT100s
    "pump_flow": Baseline(1500.0, 150.0, 12.0, 0.0, 4000.0, peak_hour=16.0, resolution=1.0,
                          smooth=25.0, smooth_s=900.0, site_spread=0.02),
    "pump_outlet_pressure": Baseline(1.15, 0.05, 0.006, -1.0, 10.0, peak_hour=16.0,
                                     resolution=0.001, smooth=0.01, smooth_s=900.0,
                                     site_spread=0.02),
    "pump_inlet_pressure": Baseline(0.2, 0.02, 0.004, -1.0, 10.0, peak_hour=16.0,
                                    resolution=0.001, smooth=0.006, smooth_s=1800.0,
                                    site_spread=0.05),
    "pump_current": Baseline(115.0, 10.0, 0.6, 0.0, 400.0, peak_hour=16.0, resolution=0.1,
                             smooth=1.2, smooth_s=900.0, site_spread=0.02),
    "pump_vibration": Baseline(1.6, 0.1, 0.06, 0.0, 50.0, peak_hour=16.0, resolution=0.01,
                               smooth=0.1, smooth_s=900.0, site_spread=0.1),
    "pump_temperature": Baseline(38.0, 3.0, 0.1, -20.0, 200.0, peak_hour=17.0,
                                 resolution=0.1, smooth=0.2, smooth_s=3600.0,
                                 site_spread=0.05),
}
GENERIC = Baseline(10.0, 1.0, 0.5, -1e9, 1e9, smooth=0.3)


def _is_night(hour: float) -> bool:
    return hour >= 23.0 or hour < 7.0


@dataclass(frozen=True, slots=True)
class Injection:
    """A labelled anomaly (a ground-truth label): from ``start`` (POSIX s) for
    ``duration`` s, ``shape`` reaching ``target`` (an absolute value in the sensor's unit;
    ignored by stuck and dropout).

    ``ramp_s`` is how long a ramp or drift takes to reach ``target`` (None: a ramp takes a
    third of the duration, a drift all of it; scenario files set it with ``over:``), so
    "ramps to 2x its limit over 5 minutes" is ``shape="ramp", target=2 * limit,
    ramp_s=300``. ``decay_s`` lets the excess fade
    after the end (smoke clearing, gas dispersing) instead of vanishing at once.
    """

    sensor: str
    start: float
    duration: float
    shape: Shape
    target: float = 0.0
    label: str = ""
    ramp_s: float | None = None
    decay_s: float = 0.0

    @property
    def end(self) -> float:
        return self.start + self.duration

    def active(self, t: float) -> bool:
        return self.start <= t < self.end

    def reach(self, t: float) -> float:
        """How far (0..1) a ramp or drift has come at ``t``."""
        default = self.duration / 3 if self.shape == "ramp" else self.duration
        span = self.ramp_s or default
        return 1.0 if span <= 0 else min(1.0, max(0.0, (t - self.start) / span))


class SensorStream:
    """Values of one sensor over time. ``value(t)`` is None while the sensor drops out."""

    __slots__ = ("_keys", "_level", "baseline", "injections", "kind", "overlays", "place",
                 "seed", "sensor", "tags", "utc_offset_s", "weather")

    def __init__(self, sensor: str, kind: str, *, seed: int = 0,
                 injections: tuple[Injection, ...] = (), place: tuple[str, ...] = (),
                 tags: tuple[str, ...] = (), weather: Weather | None = None,
                 overlays: tuple[Overlay, ...] = (),
                 utc_offset_s: float = LOCAL_OFFSET_S) -> None:
        self.sensor = sensor
        self.kind = kind
        self.seed = seed
        self.place = place
        """The sensor's unit path (district, town, community, grid): where rain falls on it."""
        self.tags = tags
        self.weather = weather
        self.overlays = overlays
        self.utc_offset_s = utc_offset_s
        """Recordings replayed on this sensor: while one covers ``t`` its value is read."""
        self.baseline = BASELINES.get(kind, GENERIC)
        self.injections = tuple(i for i in injections if i.sensor == sensor)
        self._keys = {salt: key_of(seed, sensor, salt)
                      for salt in ("noise", "smooth", "drift", "events", "missing", "site",
                                   "cycle")}
        self._level = site_level(self.baseline, sensor, seed)

    # ---------------------------------------------------------------- the normal value

    def normal(self, t: float) -> float:
        """The value with nothing wrong (the weather included), quantised and clipped."""
        b = self.baseline
        hour = ((t + self.utc_offset_s) % DAY) / 3600.0
        v = self._level + b.daily_amplitude * math.cos(2 * math.pi * (hour - b.peak_hour) / 24)
        if b.rush:
            v += b.rush * (math.exp(-0.5 * ((hour - 8.0) / 0.7) ** 2)
                           + math.exp(-0.5 * ((hour - 18.0) / 0.8) ** 2))
        if b.smooth:
            v += b.smooth * smooth(self._keys["smooth"], t, b.smooth_s)
        if b.drift:
            v += b.drift * smooth(self._keys["drift"], t, b.drift_s)
        if b.cycle_s:
            phase = ((t + uniform(self._keys["cycle"], 0) * b.cycle_s) % b.cycle_s) / b.cycle_s
            v += b.cycle_amp * (phase - 0.5)  # warms slowly, the compressor pulls it down
        if b.events_day or b.events_night:
            v += self._events(t)
        if self.weather is not None:
            v += self.weather.contribution(self, t)
        v += b.noise * gauss(self._keys["noise"], round(t * 1000))
        return self._finish(v)

    def _finish(self, v: float) -> float:
        b = self.baseline
        if b.resolution:
            v = round(round(v / b.resolution) * b.resolution, 6)
        return min(max(v, b.lo), b.hi)

    def _events(self, t: float) -> float:
        """Transient events: each slot of 60 s holds one with a chance set by the hour's
        rate; an event starts somewhere in its slot and may reach into later ones."""
        b = self.baseline
        slot_s = 60.0
        reach = int(b.event_s[1] // slot_s) + 1
        key = self._keys["events"]
        k0 = math.floor(t / slot_s)
        total = 0.0
        for k in range(k0 - reach, k0 + 1):
            hour = ((k * slot_s + self.utc_offset_s) % DAY) / 3600.0
            night = _is_night(hour)
            rate = b.events_night if night else b.events_day
            if uniform(key, 4 * k) >= rate * slot_s / 3600.0:
                continue
            start = (k + uniform(key, 4 * k + 1)) * slot_s
            length = b.event_s[0] + (b.event_s[1] - b.event_s[0]) * uniform(key, 4 * k + 2)
            if not start <= t < start + length:
                continue
            amp = b.event_amp[0] + (b.event_amp[1] - b.event_amp[0]) * uniform(key, 4 * k + 3)
            if night:
                amp *= b.night_event_gain
            x = (t - start) / length  # a smooth bump: rises, peaks at a third, fades
            total += amp * math.sin(math.pi * x ** 0.7)
        return total

    def missing(self, t: float) -> bool:
        """A lost reading (radio packet, a checksum error at the gateway)."""
        return uniform(self._keys["missing"], round(t * 1000)) < self.baseline.missing

    # ---------------------------------------------------------------- with injections

    def value(self, t: float) -> float | None:
        for overlay in self.overlays:
            if overlay.covers(t):
                return overlay.value(t)
        inj = self._injection_at(t)
        if inj is None:
            if self.missing(t):
                return None
            return self.normal(t)
        shape = inj.shape
        if shape == "dropout":
            return None
        if shape == "stuck":
            return self.normal(inj.start)  # the last value it read before it froze
        normal = self.normal(t)
        if shape == "rain":
            return normal
        if not inj.active(t):  # fading after the end
            excess = self._excess(inj, inj.end, self.normal(inj.end))
            return self._finish(normal + excess * math.exp(-(t - inj.end) / inj.decay_s))
        return self._finish(normal + self._excess(inj, t, normal))

    def _excess(self, inj: Injection, t: float, normal: float) -> float:
        """What the injection adds to the normal value at ``t`` (within its window)."""
        wiggle = normal - self._level  # keeps some of the sensor's own noise
        if inj.shape in ("spike", "step"):
            return inj.target + 0.2 * wiggle - normal
        if inj.shape == "ramp":
            held = inj.target + 0.2 * wiggle
            return (held - normal) * inj.reach(t)
        if inj.shape == "drift":
            return (inj.target - self._level) * inj.reach(t)
        return 0.0

    def _injection_at(self, t: float) -> Injection | None:
        for inj in self.injections:
            if inj.active(t):
                return inj
        for inj in self.injections:
            if inj.decay_s > 0 and inj.end <= t < inj.end + 6 * inj.decay_s:
                return inj
        return None


def site_level(baseline: Baseline, sensor: str, seed: int) -> float:
    """The kind's level with this site's offset (deterministic per seed and sensor)."""
    u = uniform(key_of(seed, sensor, "site"), 0)
    return baseline.level * (1.0 + baseline.site_spread * (2.0 * u - 1.0))
