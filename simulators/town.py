"""A simulated town: every sensor of a config set as a live stream, with a plan of
labelled anomalies, served to edge agents as their sources.

``SimulatedTown.source(agent_id)`` gives an object with the edge agent's ``samples()``
shape; it paces samples to each sensor's interval on the given clock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence

from gridcall.config import ConfigSet, SensorSpec
from gridcall.edge_agent.sources import Sample
from gridcall.simulators.streams import Injection, SensorStream, Shape
from gridcall.simulators.weather import RainModel
from gridcall.wire.clock import Clock, wall_clock

# (sensor kind, grid tag preferred, shape, target as a multiple of the alarm limit, label)
DEMO_PLAN: tuple[tuple[str, str | None, Shape, float, str], ...] = (
    ("gas", "restaurant", "ramp", 2.2, "gas leak in a restaurant kitchen"),
    ("smoke", "elderly_home", "step", 4.0, "smoke in a home for the elderly"),
    ("water_level", "flood_point", "ramp", 2.0, "flooding at a low point"),
    ("manhole_tilt", None, "step", 2.5, "manhole cover opened"),
    ("water_leak", None, "step", 1.6, "burst water main"),
    ("noise", "construction_site", "step", 1.25, "night-time construction noise"),
    ("pm25", "construction_site", "ramp", 2.0, "dust from a construction site"),
    ("temperature", "market", "ramp", 2.0, "cold-chain failure at a market"),
)


def demo_injections(config: ConfigSet, *, start: float, duration: float,
                    seed: int = 7) -> tuple[Injection, ...]:
    """One labelled anomaly per plan entry, spread over the middle of the run."""
    rng = random.Random(seed)
    out = []
    for i, (kind, tag, shape, factor, label) in enumerate(DEMO_PLAN):
        candidates = [s for s in config.sensors.values() if s.kind == kind]
        tagged = [s for s in candidates if tag in s.tags] if tag else []
        pool = tagged or candidates
        if not pool:
            continue
        sensor = rng.choice(sorted(pool, key=lambda s: s.id))
        limit = sensor.limits.alarm_high or 1.0
        at = start + duration * (0.2 + 0.45 * i / max(1, len(DEMO_PLAN) - 1))
        # last long enough that even a sensor read every few seconds shows it
        length = max(duration * 0.2, 15.0)
        out.append(Injection(sensor.id, at, length, shape, limit * factor, label))
    return tuple(out)


class SimulatedSource:
    """Samples every sensor at its interval (times ``interval_scale``) on ``clock``."""

    def __init__(self, sensors: Sequence[SensorSpec], injections: tuple[Injection, ...],
                 *, seed: int, clock: Clock, interval_scale: float = 1.0,
                 weather: RainModel | None = None) -> None:
        self.sensors = tuple(sensors)
        self.clock = clock
        self.interval_scale = interval_scale
        self.streams = {s.id: SensorStream(s.id, s.kind, seed=seed, injections=injections,
                                           place=s.path, tags=s.tags, weather=weather)
                        for s in self.sensors}
        self._rng = random.Random(seed)

    async def samples(self) -> AsyncIterator[Sample]:
        now = self.clock() / 1e9
        interval = {s.id: s.interval_s * self.interval_scale for s in self.sensors}
        due = {s.id: now + self._rng.uniform(0, interval[s.id]) for s in self.sensors}
        while True:
            now = self.clock() / 1e9
            for sensor, at in due.items():
                if at <= now:
                    ts = self.clock()
                    yield Sample(sensor, ts, self.streams[sensor].value(ts / 1e9))
                    due[sensor] = max(at + interval[sensor], now)
            await asyncio.sleep(max(0.0, min(due.values()) - self.clock() / 1e9))


class SimulatedTown:
    def __init__(self, config: ConfigSet, injections: tuple[Injection, ...] = (), *,
                 seed: int = 0, clock: Clock = wall_clock, interval_scale: float = 1.0,
                 weather: RainModel | None = None) -> None:
        self.config = config
        self.weather = weather
        self.interval_scale = interval_scale
        self.injections = injections
        self.seed = seed
        self.clock = clock

    def source(self, agent: str) -> SimulatedSource:
        spec = self.config.agents[agent]
        return SimulatedSource(spec.sensors, self.injections, seed=self.seed, clock=self.clock,
                               interval_scale=self.interval_scale, weather=self.weather)
