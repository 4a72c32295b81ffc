"""A flood-control pumping station: one centrifugal pump on a variable-speed drive.

Pure, seeded and vectorised (numpy): :func:`simulate` returns one run of eight sensors
sampled once a second with a per-row fault label, like a pump testbed's recordings.

Physics. The pump's curve ``H = a n² - b Q²`` meets the system's ``H = K Q²`` (``K`` grows
as the discharge valve closes), so at a fixed valve flow ∝ speed, head ∝ speed² and shaft
power ∝ speed³ (the affinity laws; :func:`operating_point`). Power falls as the valve
throttles the flow. The motor current follows the power (plus the magnetising current),
vibration grows with speed² and off the best-efficiency flow, bearing and motor
temperatures follow speed and current with thermal lags of 20 and 30 minutes, inlet pressure
follows the sump level, outlet pressure adds the head. The drive's speed set-point
changes over the day, ramping over ``RAMP_S`` seconds; commissioning (the baseline)
exercises each duty point once.

Faults (:data:`FAULTS`), each lasting minutes and labelled row by row:
``valve_closing`` (flow down, outlet pressure up, current down), ``cavitation`` (inlet
pressure and flow down, broadband vibration and pressure pulsation up),
``bearing_wear`` (vibration and bearing temperature drift up), ``rotor_imbalance``
(vibration up, mostly radial x, with speed²), ``sensor_drift`` (one sensor's reading
drifts off) and ``sensor_stuck`` (one sensor holds its value).

>>> run = simulate(3, faults=[Fault("cavitation", start=600, rows=240)])
>>> run.values.shape, run.columns[:3], int(run.label.sum())
((1200, 8), ('flow', 'outlet_pressure', 'inlet_pressure'), 240)
>>> bool(run.column("flow")[650:800].mean() < run.column("flow")[400:560].mean())
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

SENSORS = ("flow", "outlet_pressure", "inlet_pressure", "current", "vibration_x",
           "vibration_y", "bearing_temp", "motor_temp")
"""Column order of :attr:`PumpRun.values`; units in :data:`UNITS`."""
UNITS = {"flow": "m3/h", "outlet_pressure": "bar", "inlet_pressure": "bar", "current": "A",
         "vibration_x": "mm/s", "vibration_y": "mm/s", "bearing_temp": "degC",
         "motor_temp": "degC"}
FaultKind = Literal["valve_closing", "cavitation", "bearing_wear", "rotor_imbalance",
                    "sensor_drift", "sensor_stuck"]
FAULTS: tuple[FaultKind, ...] = ("valve_closing", "cavitation", "bearing_wear",
                                 "rotor_imbalance", "sensor_drift", "sensor_stuck")
DUTY = (0.7, 0.8, 0.9, 1.0)
"""Speed set-points of the drive (fraction of rated speed)."""
RAMP_S = 20.0
RHO_G = 1000.0 * 9.81


@dataclass(frozen=True, slots=True)
class PumpSpec:
    """A 1,800 m³/h, 10 m flood-control pump at rated speed, valve open."""

    rated_flow: float = 1800.0
    """m³/h at rated speed, valve open."""
    rated_head: float = 10.0
    shutoff_head: float = 16.0
    rated_power: float = 61.0
    """kW of shaft power at the rated point."""
    magnetising_current: float = 20.0
    amps_per_kw: float = 1.0 / 0.5477
    """400 V three-phase, power factor 0.85, motor efficiency 0.93."""
    vibration: float = 1.8
    """mm/s RMS at rated speed (ISO 10816 'good')."""
    ambient: float = 18.0
    sump_level: float = 2.5
    """m of water above the pump inlet."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    start: int
    """Row at which the fault begins."""
    rows: int
    severity: float = 1.0
    """1 is a clear fault; 0.5 a mild one."""
    sensor: str | None = None
    """For sensor_drift and sensor_stuck: the sensor (default: chosen by the seed)."""

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"fault kind {self.kind!r}: not one of {', '.join(FAULTS)}")
        if self.start < 0 or self.rows < 1 or self.severity <= 0:
            raise ValueError(f"fault {self.kind}: start {self.start} must be >= 0, rows "
                             f"{self.rows} >= 1 and severity {self.severity} > 0")
        if self.sensor is not None and self.sensor not in SENSORS:
            raise ValueError(f"fault {self.kind}: unknown sensor {self.sensor!r}; "
                             f"known: {', '.join(SENSORS)}")


@dataclass(frozen=True, slots=True)
class PumpRun:
    ts: Any
    """POSIX seconds, one row a second."""
    values: Any
    """rows × 8 float array, columns in :data:`SENSORS` order."""
    label: Any
    """True where a fault is active."""
    speed: Any
    """The drive's actual speed (fraction of rated), not a sensor."""
    faults: tuple[Fault, ...]
    baseline: int
    columns: tuple[str, ...] = field(default=SENSORS)

    def column(self, name: str) -> Any:
        return self.values[:, self.columns.index(name)]

    def rows(self) -> list[tuple[float, dict[str, float]]]:
        """``(ts, {sensor: value})`` per row, as a multivariate detector takes them."""
        return [(float(t), dict(zip(self.columns, map(float, v), strict=True)))
                for t, v in zip(self.ts, self.values, strict=True)]


def operating_point(speed: Any, valve: Any = 1.0, spec: PumpSpec = PumpSpec()
                    ) -> tuple[Any, Any, Any]:
    """Flow (m³/h), head (m) and shaft power (kW) at a speed (fraction of rated) and a
    valve resistance (1 = open, larger = more closed). Vectorised.

    >>> [round(float(v), 2) for v in operating_point(0.5)]
    [900.0, 2.5, 7.62]
    """
    n = np.asarray(speed, dtype=float)
    qr = spec.rated_flow
    k_sys = spec.rated_head / qr**2 * np.asarray(valve, dtype=float)
    b = (spec.shutoff_head - spec.rated_head) / qr**2
    q = n * np.sqrt(spec.shutoff_head / (b + k_sys))
    head = k_sys * q * q
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(n > 0, q / (np.where(n > 0, n, 1.0) * qr), 0.0)  # flow vs homologous
    power = spec.rated_power * n**3 * (0.45 + 0.55 * x)
    return q, head, power


def duty_schedule(rng: np.random.Generator, rows: int, baseline: int,
                  duty: Sequence[float] = DUTY) -> Any:
    """The speed set-point per row: commissioning visits every duty point, then the
    set-point changes every half hour or so."""
    sp = np.empty(rows)
    points = rng.permutation(np.asarray(duty, dtype=float))
    edges = np.linspace(0, baseline, len(points) + 1).astype(int)
    for p, a, b in zip(points, edges[:-1], edges[1:], strict=True):
        sp[a:b] = p
    i, current = baseline, points[-1]
    while i < rows:
        hold = int(rng.exponential(1800.0)) + 300
        sp[i:i + hold] = current
        i += hold
        current = rng.choice(np.asarray(duty, dtype=float))
    return sp


def _lag(x: Any, tau: float, start: float) -> Any:
    """First-order lag (time constant ``tau`` rows) of a series, from ``start``."""
    a = 1.0 / (1.0 + tau)
    out = np.empty_like(x)
    y = start
    for i, v in enumerate(x):  # a scalar loop: 1-pole filters do not vectorise in numpy
        y += a * (v - y)
        out[i] = y
    return out


def _ar1(rng: np.random.Generator, rows: int, phi: float, sd: float) -> Any:
    """Coloured noise with lag-1 correlation ``phi`` and standard deviation ``sd``."""
    e = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), rows)
    out = np.empty(rows)
    y = rng.normal(0.0, sd)
    for i in range(rows):
        y = phi * y + e[i]
        out[i] = y
    return out


def random_faults(rng: np.random.Generator, rows: int, baseline: int,
                  kinds: Sequence[FaultKind] = FAULTS) -> list[Fault]:
    """One or two faults after the baseline covering 25-55 % of the scored rows."""
    scored = rows - baseline
    count = 1 if scored < 500 or rng.random() < 0.5 else 2
    share = rng.uniform(0.25, 0.55)
    lengths = [int(share * scored / count)] * count
    gaps = rng.dirichlet(np.ones(count + 1)) * (scored - sum(lengths))
    out, at = [], baseline
    for length, gap in zip(lengths, gaps, strict=False):
        at += int(gap)
        out.append(Fault(rng.choice(np.asarray(kinds)).item(), start=at, rows=length,
                         severity=float(rng.uniform(0.3, 1.3)),
                         sensor=str(rng.choice(np.asarray(SENSORS)))))
        at += length
    return out


def simulate(seed: int, *, rows: int = 1200, baseline: int = 400, duty: Sequence[float] = DUTY,
             faults: Sequence[Fault] | None = None, kinds: Sequence[FaultKind] = FAULTS,
             start_ts: float = 1_780_000_000.0, spec: PumpSpec = PumpSpec()) -> PumpRun:
    """One run: ``baseline`` fault-free rows, then the faults (random ones of ``kinds``
    when ``faults`` is None; ``faults=[]`` for a healthy run)."""
    if rows < 2 or not 0 <= baseline <= rows:
        raise ValueError(f"rows {rows} must be >= 2 and baseline {baseline} within it")
    rng = np.random.default_rng(seed)
    plan = tuple(random_faults(rng, rows, baseline, kinds) if faults is None else faults)
    t = np.arange(rows, dtype=float)
    if not duty or any(not 0.0 < d <= 1.2 for d in duty):
        raise ValueError(f"duty {tuple(duty)}: give speed set-points in (0, 1.2]")
    setpoint = duty_schedule(rng, rows, baseline, duty)
    speed = _lag(setpoint, RAMP_S / 3.0, float(setpoint[0]))
    valve = np.ones(rows)
    sump_drop = np.zeros(rows)      # m of suction head lost (cavitation)
    cav = np.zeros(rows)            # 0..1 cavitation intensity
    wear = np.zeros(rows)           # 0..1 bearing wear progress
    imbalance = np.zeros(rows)
    label = np.zeros(rows, dtype=bool)
    for f in plan:
        a, b = f.start, min(rows, f.start + f.rows)
        if a >= rows:
            continue
        label[a:b] = True
        ramp = np.clip((t[a:b] - a) / 30.0, 0.0, 1.0)
        if f.kind == "valve_closing":
            valve[a:b] *= 1.0 + 2.5 * f.severity * ramp
        elif f.kind == "cavitation":
            cav[a:b] = np.maximum(cav[a:b], min(1.0, f.severity) * ramp)
            sump_drop[a:b] += 1.4 * f.severity * ramp
        elif f.kind == "bearing_wear":
            wear[a:b] = np.maximum(wear[a:b], f.severity * (t[a:b] - a) / max(b - a, 1))
        elif f.kind == "rotor_imbalance":
            imbalance[a:b] += 0.9 * f.severity * ramp
    # the station's level rises and falls slowly with the inflow
    level = spec.sump_level + 0.3 * np.sin(2 * np.pi * (t / 7200.0 + rng.random()))
    q, head, power = operating_point(speed, valve, spec)
    homologous = q / (np.maximum(speed, 1e-6) * spec.rated_flow)
    q = q * (1.0 - 0.22 * cav)
    power = power * (1.0 - 0.12 * cav)
    flow = q * (1.0 + _ar1(rng, rows, 0.8, 0.008)) + rng.normal(0, 4.0, rows)
    p_in = RHO_G * (level - sump_drop - 0.4 * (q / spec.rated_flow) ** 2) / 1e5
    pulsation = 1.0 + 6.0 * cav
    inlet = p_in + rng.normal(0, 0.004, rows) * pulsation
    outlet = p_in + RHO_G * head * (1.0 - 0.1 * cav) / 1e5 + rng.normal(0, 0.006, rows) * pulsation
    current = (spec.magnetising_current * speed + spec.amps_per_kw * power
               * (1.0 + 0.03 * imbalance) + rng.normal(0, 0.6, rows) * (1.0 + 2.0 * cav))
    base_vib = spec.vibration * speed**2 * (1.0 + 0.8 * np.abs(homologous - 1.0))
    vib_x = (base_vib * (1.0 + 1.2 * imbalance) + 1.2 * wear + 1.5 * cav
             * np.abs(rng.normal(0, 1, rows)))
    vib_y = (0.8 * base_vib * (1.0 + 0.5 * imbalance) + 1.6 * wear + 1.2 * cav
             * np.abs(rng.normal(0, 1, rows)))
    vib_x = vib_x * (1.0 + rng.normal(0, 0.04, rows))
    vib_y = vib_y * (1.0 + rng.normal(0, 0.04, rows))
    ambient = spec.ambient + rng.uniform(-3, 3) + _ar1(rng, rows, 0.999, 0.3)
    bearing_ss = ambient + 22.0 * speed**2 + 14.0 * wear + 4.0 * imbalance
    rated_amps = spec.magnetising_current + spec.amps_per_kw * spec.rated_power
    motor_ss = ambient + 40.0 * (current / rated_amps) ** 2
    # the station ran before the recording: the machine is warm, at a middle duty
    warm = float(np.mean(duty))
    bearing0 = float(ambient[0]) + 22.0 * warm**2 + rng.normal(0, 1.0)
    rated_amps_warm = (spec.magnetising_current * warm + spec.amps_per_kw
                       * float(operating_point(warm, 1.0, spec)[2]))
    motor0 = float(ambient[0]) + 40.0 * (rated_amps_warm / rated_amps) ** 2 + rng.normal(0, 1.0)
    bearing = _lag(bearing_ss, 1200.0, bearing0) + rng.normal(0, 0.05, rows)
    motor = _lag(motor_ss, 1800.0, motor0) + rng.normal(0, 0.05, rows)
    values = np.column_stack([flow, outlet, inlet, current, vib_x, vib_y, bearing, motor])
    values[:, 6:] = np.round(values[:, 6:], 2)  # thermocouples read to 0.01 °C
    for f in plan:
        a, b = f.start, min(rows, f.start + f.rows)
        if a >= rows or f.kind not in ("sensor_drift", "sensor_stuck"):
            continue
        j = SENSORS.index(f.sensor or SENSORS[seed % len(SENSORS)])
        if f.kind == "sensor_stuck":
            values[a:b, j] = values[a, j]
        else:
            size = 0.1 * float(np.mean(np.abs(values[:, j])))  # 10 % off at full severity
            values[a:b, j] += f.severity * size * (t[a:b] - a) / max(b - a, 1)
    return PumpRun(ts=start_ts + t, values=values, label=label, speed=speed, faults=plan,
                   baseline=baseline)
