"""The alert desk's throughput and restart time, on this machine's disk.

    PYTHONPATH=$PWD python bench/alert_desk.py [--dir /var/tmp] [--alerts 2000]

Seeded workload on the sample district, in rounds a day apart on the desk clock: each
round sends one anomaly event per sensor (1 s apart: a new alert per matter and grid,
evidence for the rest), then every unit marks its alerts false alarms (one action each),
so the next round opens fresh alerts. The last round's alerts stay open: one tick a week
later escalates each of them up to tier A, then the hub restarts (``Desk.start`` folding
the whole ledger). Every step is one committed SQLite transaction in WAL mode, as in the
hub. Prints a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent

T0 = 1_800_000_000_000_000_000
SEC = 10**9
MIN = 60 * SEC
DAY = 24 * 60 * MIN


async def run(folder: Path, n: int) -> dict[str, float]:
    cfg = load_config(SAMPLE_DISTRICT)
    sensors = sorted(cfg.sensors.values(), key=lambda s: s.id)
    rng = random.Random(7)
    path = folder / "bench-desk.sqlite"
    out: dict[str, float] = {}
    async with Store(path) as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        rounds = max(1, n // len(sensors))
        t_events = t_actions = 0.0
        events = actions = 0
        for r in range(rounds):
            base = T0 + r * DAY
            t0 = time.perf_counter()
            for i, s in enumerate(sensors):
                await desk.on_event(AnomalyEvent(
                    agent=s.agent, seq=r * len(sensors) + i, sensor=s.id, kind="out_of_limits",
                    severity=rng.choice(("minor", "major")), score=0.9, value=1.0, ts=base),
                    base + i * SEC)
                events += 1
            t_events += time.perf_counter() - t0
            if r == rounds - 1:
                break
            t0 = time.perf_counter()
            for state in desk.alerts(open_only=True):
                await desk.act(state.alert_id, "false_alarm", state.unit,
                               now=base + len(sensors) * SEC)
                actions += 1
            t_actions += time.perf_counter() - t0
        out["events"] = events
        out["events_per_s"] = events / t_events
        out["alerts_opened"] = desk.counters.opened
        out["evidence_steps"] = desk.counters.evidence
        out["actions_per_s"] = actions / t_actions if actions else 0.0
        now = T0 + (rounds - 1) * DAY + len(sensors) * SEC
        t0 = time.perf_counter()
        fired = await desk.tick(now + 7 * DAY)
        dt = time.perf_counter() - t0
        out["escalations_in_one_tick"] = len(fired)
        out["escalations_per_s"] = len(fired) / dt if fired else 0.0
        t0 = time.perf_counter()
        await desk.tick(now + 7 * DAY + MIN)
        out["idle_tick_ms"] = 1000 * (time.perf_counter() - t0)
        out["ledger_rows"] = await desk.ledger.count()
    async with Store(path) as store:
        t0 = time.perf_counter()
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        out["restart_fold_s"] = time.perf_counter() - t0
        out["alerts_rebuilt"] = len(desk.alerts())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"),
                    help="a folder on the disk to measure (not a tmpfs)")
    ap.add_argument("--alerts", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        result = asyncio.run(run(Path(tmp), args.alerts))
        result["db_bytes"] = sum(p.stat().st_size for p in Path(tmp).glob("bench-desk.*"))
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v
                      for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
