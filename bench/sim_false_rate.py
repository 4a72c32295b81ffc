"""How often the default detector raises an anomaly on the simulated streams when
nothing is wrong: anomaly episodes per sensor-hour, per sensor kind.

    PYTHONPATH=$PWD python bench/sim_false_rate.py [--hours 8] [--seeds 6] [--first-seed 0]

For each sensor kind of the sample district, one sensor's stream (simulators/streams.py,
seeded) is fed to the detector its agent would build from the sample config (its
defaults: the product's one setting, config.models.DetectorSettings), first ``--warmup``
hours to learn (as the simulated district warms its detectors), then ``--hours`` of
normal readings in which every episode start is counted as a false anomaly.

A second column counts the same from a fresh start (no learning before counting): the
first ``--fresh`` hours of a newly commissioned sensor, or of an agent that restarts
without a usable checkpoint, including the readings the detector still learns from.

Each seed starts at a different hour of the day, so the night and the rush hours are
both in the sample. ``--first-seed`` picks other seeds (the setting was chosen on seeds
6-17 and is reported on 0-5). Pure CPU (no broker, no hub).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter
from typing import Any

from gridcall.config import SensorSpec, load_config
from gridcall.config.models import DetectorSettings
from gridcall.edge_agent.watch import SensorWatch, detector_for
from gridcall.simulators.streams import SensorStream

START = 1_767_225_600.0  # 2026-01-01 08:00 China time
SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": {},
}
"""Changes to each sensor's detector settings, by name (``defaults``: none)."""


def false_episodes(sensor: SensorSpec, settings: dict[str, Any], *, seed: int,
                   warmup_h: float, hours: float) -> Counter[str]:
    spec = dataclasses.replace(sensor, detector=DetectorSettings(**{
        **sensor.detector.model_dump(), **settings}))
    watch = SensorWatch(spec, detector_for(spec, seed=seed))
    stream = SensorStream(spec.id, spec.kind, seed=seed, place=spec.path, tags=spec.tags)
    t0 = START + seed * 7 * 3600.0
    counted = t0 + warmup_h * 3600.0
    got: Counter[str] = Counter()
    t = t0
    while t < counted + hours * 3600.0:
        verdict = watch.observe(int(t * 1e9), stream.value(t))
        if verdict is not None and verdict.phase == "start" and t >= counted:
            got[verdict.kind] += 1
        t += spec.interval_s
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=24.0, help="hours of learning")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--fresh", type=float, default=3.0,
                        help="hours counted from a fresh start (0: skip that column)")
    args = parser.parse_args()
    cfg = load_config("config/examples/huangpu")
    one: dict[str, SensorSpec] = {}
    for s in sorted(cfg.sensors.values(), key=lambda s: s.id):
        one.setdefault(s.kind, s)
    print(f"false anomaly episodes per sensor-hour after {args.warmup:g} h of learning, "
          f"{args.hours:g} h x {args.seeds} seeds ({args.first_seed}-"
          f"{args.first_seed + args.seeds - 1}) per kind, at the sample config's settings")
    columns = [(f"{name}, after {args.warmup:g} h", settings, args.warmup, args.hours)
               for name, settings in SETTINGS.items()]
    if args.fresh > 0:
        columns.append((f"first {args.fresh:g} h, fresh", {}, 0.0, args.fresh))
    print(f"{'kind':<14}" + "".join(f"  {c[0]:>28}" for c in columns))
    totals = [0] * len(columns)
    for kind, sensor in sorted(one.items()):
        cells = []
        for i, (_, settings, warmup, hours) in enumerate(columns):
            got: Counter[str] = Counter()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                got += false_episodes(sensor, settings, seed=seed, warmup_h=warmup,
                                      hours=hours)
            n = sum(got.values())
            totals[i] += n
            kinds = ",".join(f"{k}:{v}" for k, v in sorted(got.items())) or "-"
            cells.append(f"{n / (hours * args.seeds):.3f} ({kinds})")
        print(f"{kind:<14}" + "".join(f"  {c:>28}" for c in cells))
    print(f"{'all kinds':<14}" + "".join(
        f"  {totals[i] / (c[3] * args.seeds * len(one)):>28.3f}"
        for i, c in enumerate(columns)))


if __name__ == "__main__":
    main()
