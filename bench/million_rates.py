"""The message rates of a district of N sensors, from the sample's kinds: a sizing sheet.

    python bench/million_rates.py [--sensors 1000000] [--per-agent 10] [--batch 1]
                                  [--worker 410000] [--episodes 2]

Not a measurement: arithmetic over the config's own figures, so the path to a million
sensors in docs/architecture.md can be checked and redone with other assumptions.
Readings per second are each kind's share of the sample's sensors over its ``interval``;
an edge agent of ``--per-agent`` sensors publishes one batch message per
``--batch`` seconds (``batch_interval``, default 1 s); anomaly events are ``--episodes``
anomaly episodes per sensor per day (a start and an end each); the desk's steps are the
events that start an episode plus as many again for people's actions and escalations;
ingest workers are the readings over ``--worker`` readings/s per worker (one worker on
mosquitto's defaults in the shared harness, quiet: 410,607, the lead's run of 2026-12-06
15:14 UTC, docs/benchmarks.md "Ingest at line rate"), kept at half load for headroom.
Prints a JSON object per size (the size asked, and 10x below it down to 10,000).
These are averages; bench/district_day.py simulates a day for the peaks (a diurnal curve,
an outage's catch-up, an alarm storm).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

import yaml

SAMPLE = Path(__file__).resolve().parent.parent / "config" / "examples" / "huangpu"


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * units[suffix]
    return float(text)


def rates(sensors: int, per_agent: int, batch_s: float, worker: float,
          episodes: float) -> dict[str, float]:
    doc = yaml.safe_load((SAMPLE / "sensors.yaml").read_text(encoding="utf-8"))
    mix = Counter(s["kind"] for s in doc["sensors"])
    total = sum(mix.values())
    per_sensor = sum(n / total / _seconds(str(doc["kinds"][k]["interval"]))
                     for k, n in mix.items())
    readings = sensors * per_sensor
    agents = math.ceil(sensors / per_agent)
    messages = agents / batch_s
    events = sensors * episodes * 2 / 86_400
    return {
        "sensors": sensors,
        "agents": agents,
        "readings_per_s": round(readings),
        "batch_messages_per_s": round(messages),
        "readings_per_message": round(readings / messages, 1),
        "status_messages_per_s": round(agents / 30, 1),
        "anomaly_events_per_s": round(events, 2),
        "desk_steps_per_s": round(events, 2),
        "ingest_workers_at_half_load": math.ceil(readings / (worker / 2)),
        "influx_points_per_day_billion": round(readings * 86_400 / 1e9, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sensors", type=int, default=1_000_000)
    ap.add_argument("--per-agent", type=int, default=10)
    ap.add_argument("--batch", type=float, default=1.0, help="batch_interval, seconds")
    ap.add_argument("--worker", type=float, default=410_000,
                    help="readings/s one ingest worker takes")
    ap.add_argument("--episodes", type=float, default=2.0,
                    help="anomaly episodes per sensor per day")
    a = ap.parse_args()
    n = a.sensors
    sizes = []
    while n >= 10_000:
        sizes.append(n)
        n //= 10
    for size in reversed(sizes):
        print(json.dumps(rates(size, a.per_agent, a.batch, a.worker, a.episodes)))


if __name__ == "__main__":
    main()
