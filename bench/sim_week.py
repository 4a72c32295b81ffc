"""How fast the simulated district runs: a week on simulated time, and readings/s.

    PYTHONPATH=$PWD python bench/sim_week.py [--broker mqtt://127.0.0.1:1883]

Three workloads, each a real SimDistrict (embedded amqtt broker unless --broker, real
EdgeAgents with their detectors, real Hub and desk) run to its end:

- quiet-week: the packaged scenario, 2 sensors for 7 days (423,360 readings), a smoke
  alarm answered on day 3;
- community-day: every sensor of one edge agent (edge-dongyuan, 15 sensors) for 1 day;
- gas-leak-spreads: the issue's example, 3 sensors for 2 hours.

And, as the floor the district's own work sits on, the same week of readings through
the stream model and the detectors alone (no agent, no broker, no hub). Readings/s is
simulated readings taken by the agents per wall-clock second, warm-up excluded (the
detectors' day of learning before the start is reported apart).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time

from gridcall.simulators.scenario import load_scenario
from gridcall.simulators.sim import SimDistrict
from gridcall.simulators.streams import SensorStream

NS = 10**9


async def timed(name: str, scenario_name: str, broker: str | None,
                sensors: list[str] | None = None, duration_s: float | None = None) -> None:
    scenario = load_scenario(scenario_name)
    if duration_s is not None:
        scenario = dataclasses.replace(scenario, duration_s=duration_s)
    t0 = time.perf_counter()
    async with SimDistrict(scenario, broker_url=broker, sensors=sensors) as district:
        started = time.perf_counter()
        run = await district.run()
        ran = time.perf_counter() - started
    total = time.perf_counter() - t0
    print(f"{name:17s} {len(district.agents):2d} agents {len(district._streams):3d} sensors "
          f"{scenario.duration_s / 86400:5.2f} d  {run.samples:9,d} readings  "
          f"{run.events:4d} events  {len(run.alerts):3d} alerts  run {ran:6.2f} s  "
          f"start+warm-up+stop {total - ran:5.2f} s  {run.samples / ran:9,.0f} readings/s  "
          f"{scenario.duration_s / ran:9,.0f}x real time")


def detectors_alone() -> None:
    """The week of quiet-week's two sensors through streams and detectors only."""
    from gridcall.config import SAMPLE_DISTRICT, load_config
    from gridcall.edge_agent.watch import SensorWatch, detector_for

    cfg = load_config(SAMPLE_DISTRICT)
    start = 1_767_542_400 * NS
    n = 0
    t0 = time.perf_counter()
    for sid in ("dongyuan-g1-smoke-1", "dongyuan-g1-waterleak-1"):
        spec = cfg.sensors[sid]
        watch = SensorWatch(spec, detector_for(spec, seed=11))
        stream = SensorStream(sid, spec.kind, seed=11)
        step = round(spec.interval_s * NS)
        for t in range(start, start + 7 * 86400 * NS, step):
            watch.observe(t, stream.value(t / NS))
            n += 1
    took = time.perf_counter() - t0
    print(f"{'streams+detectors':17s} (no agent, broker or hub)  {n:9,d} readings  "
          f"run {took:6.2f} s  {n / took:9,.0f} readings/s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default=None, help="a real broker URL (default embedded)")
    args = parser.parse_args()
    await timed("quiet-week", "quiet-week", args.broker)
    community = [s for s in load_scenario("quiet-week").config.sensors
                 if s.startswith("dongyuan-")]
    await timed("community-day", "quiet-week", args.broker, sensors=community,
                duration_s=86400)
    await timed("gas-leak-spreads", "gas-leak-spreads", args.broker)
    detectors_alone()


if __name__ == "__main__":
    asyncio.run(main())
