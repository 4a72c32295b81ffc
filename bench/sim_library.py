"""The scenario library's figures: ground truth against alerts, per scenario.

    PYTHONPATH=$PWD python bench/sim_library.py [--broker mqtt://127.0.0.1:1883]

Every packaged scenario (simulators/scenarios/*.yaml) is played to its end on the
simulated district (real edge agents and hub; embedded amqtt broker unless --broker),
as ``gridcall sim run`` does, and compared with its ground truth (simulators/truth.py).
Every scenario runs at the sample's defaults, the product's one detector setting
(config.models.DetectorSettings); none sets its own.
Prints, per scenario: simulated time, sensors, injected, detected, missed, false alerts,
median delay from anomaly start to alert, and wall time; then the library's totals.
Wall time includes the detectors' day of warm-up and depends on the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from gridcall.cli.sim import library
from gridcall.simulators.scenario import load_scenario
from gridcall.simulators.sim import run_scenario
from gridcall.simulators.truth import compare


async def main(broker: str | None) -> None:
    print(f"{'scenario':<24}{'sim':>6}{'sensors':>8}{'inj':>5}{'det':>5}{'miss':>5}"
          f"{'false':>6}{'median delay s':>16}{'wall s':>8}")
    inj = det = false = 0
    delays: list[float] = []
    worst_false = 0
    wall0 = time.monotonic()
    for path in library():
        scenario = load_scenario(path)
        t0 = time.monotonic()
        run = await run_scenario(scenario, broker_url=broker)
        wall = time.monotonic() - t0
        shared = broker is not None  # embedded: nothing else publishes, nothing foreign
        r = compare(run.injections, run, outages=scenario.outages,
                    sensors=set(scenario.sensor_ids) if shared else None,
                    agents=set(scenario.agent_ids) if shared else None)
        inj += r.injected
        det += r.detected
        false += r.false_alerts
        worst_false = max(worst_false, r.false_alerts)
        delays += [d.delay_s for d in r.detections if d.delay_s is not None]
        med = "-" if r.median_delay_s is None else f"{r.median_delay_s:g}"
        print(f"{scenario.name:<24}{scenario.duration_s / 3600:>5g}h"
              f"{len(scenario.sensor_ids):>8}{r.injected:>5}{r.detected:>5}{r.missed:>5}"
              f"{r.false_alerts:>6}{med:>16}{wall:>8.1f}", flush=True)
    median = statistics.median(delays) if delays else float("nan")
    print(f"library: {det}/{inj} detected ({det / inj:.1%}), {false} false alert(s) in "
          f"{len(library())} scenarios (at most {worst_false} in one), median delay "
          f"{median:g} s, wall {time.monotonic() - wall0:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default=None)
    asyncio.run(main(parser.parse_args().broker))
