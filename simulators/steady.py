"""A fast synthetic source on a simulated clock, for the edge agent's tests and benchmarks.

It yields ``total`` samples at ``rate`` per simulated second, round-robin over the
agent's sensors, as fast as the event loop lets it: ten simulated minutes at 100
readings/s (60,000 readings) take seconds. It advances the :class:`SimClock` it shares
with the agent, so the agent's batch stamps and the outbox's ages are simulated time.
Values sit mid-range with a little noise; every ``breach_every`` rounds the first
sensor with an upper alarm limit goes beyond it for ``breach_len`` rounds, so the
detectors open (and close) anomaly episodes and the agent has events to send.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence

from gridcall.config import SensorSpec
from gridcall.edge_agent.sources import Sample
from gridcall.simulators.clock import SimClock

__all__ = ["SimClock", "SteadySource", "mid_value"]


def mid_value(sensor: SensorSpec) -> float:
    lim = sensor.limits
    ends = [v for v in (lim.alarm_low, lim.alarm_high) if v is not None] or [
        v for v in (lim.physical_min, lim.physical_max) if v is not None]
    return sum(ends) / len(ends) if ends else 10.0


class SteadySource:
    def __init__(self, sensors: Sequence[SensorSpec], clock: SimClock, *, total: int,
                 rate: float = 100.0, seed: int = 0, breach_every: int = 1000,
                 breach_len: int = 5, start_at: int = 0, then_idle: bool = True,
                 yield_every: int = 100) -> None:
        if not sensors:
            raise ValueError("SteadySource needs at least one sensor")
        self.sensors = list(sensors)
        self.clock = clock
        self.total = total
        self.step_ns = int(1e9 / rate)
        self.rng = random.Random(seed)
        self.breach_every = breach_every
        self.breach_len = breach_len
        self.start_at = start_at
        self.then_idle = then_idle
        self.yield_every = yield_every
        self.breacher = next((s.id for s in self.sensors if s.limits.alarm_high is not None),
                             None)
        self.mids = {s.id: mid_value(s) for s in self.sensors}
        self.highs = {s.id: s.limits.alarm_high for s in self.sensors}
        self.produced: list[Sample] = []
        """Every sample yielded, in order (what the agent was given)."""
        self.done = asyncio.Event()

    def value(self, i: int, sensor: str) -> float:
        mid = self.mids[sensor]
        rnd = (i // len(self.sensors)) % self.breach_every
        high = self.highs[sensor]
        if sensor == self.breacher and high is not None and rnd < self.breach_len and i:
            return round(high * 2.0 + abs(high) + 1.0, 3)
        return round(mid + self.rng.uniform(-0.5, 0.5) * (abs(mid) * 0.02 + 0.1), 4)

    async def samples(self) -> AsyncIterator[Sample]:
        n = len(self.sensors)
        for i in range(self.start_at, self.start_at + self.total):
            self.clock.now += self.step_ns
            sensor = self.sensors[i % n].id
            sample = Sample(sensor, self.clock.now, self.value(i, sensor))
            self.produced.append(sample)
            yield sample
            if i % self.yield_every == 0:
                await asyncio.sleep(0)
        self.done.set()
        if self.then_idle:
            await asyncio.Event().wait()  # a field source never ends; the agent's stop does
