"""The fault matrix with its real durations, and figures (issue 16, item 6).

``nice -n 10 python bench/faults.py [--faults broker_restart,hub_kill9,influx_down,
uplink_down,edge_kill9] [--broker-down 0] [--influx-down 60] [--uplink-down 600]
[--rate 100]``

Each fault runs on its own rig (tests/fault_rig.py: private mosquitto with persistence,
private InfluxDB 1.6.7, ``gridcall hub run`` as a process, an uplink relay; never the
shared servers). The agent streams in real time at ``--rate`` readings/s on the wall
clock (its simulated clock kept at the wall's); after 5 s the fault strikes and is held:
broker restart (SIGTERM, started again at once or after ``--broker-down`` s), hub kill
-9 (started again at once), InfluxDB stopped for ``--influx-down`` s, the uplink relay
cut for ``--uplink-down`` s.
The stream goes on through it and for 5 s after. Edge kill -9 is the exception: the agent
process (tests/edge_crash_agent.py) publishes as fast as it can (not paced), is SIGKILLed
after 60 sealed batches and started again on its state at once.

Printed per fault:
- **lift**: seconds to lift the fault (a server's start; the hub's until subscribed);
- **recover**: seconds from the lift until the store holds every reading sealed before
  it (polled every 0.5 s, so ±0.5 s);
- **replayed**: readings sealed before the lift and not yet stored at it (they waited in
  the agent's outbox, the broker's queue or the hub's spool, and went in after);
- **suppressed**: batches the hub dropped as duplicates by (agent, seq)
  (gridcall_duplicate_batches_total, summed over the hub's lives; a killed hub's last
  scrape before the kill);
- **lost / dup**: readings sealed and not stored / sealed into two batches or stored
  without having been sealed, counted by (sensor, ts) from InfluxDB (the key of a stored
  reading; tests/fault_rig.py) as tests/test_fault_matrix.py counts them, and events
  stored, alerts retained on their unit's topic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fault_rig import (
    AgentProcess,
    Count,
    Key,
    Rig,
    finish,
    now_s,
    recording_agent,
)

FAULTS = ("broker_restart", "hub_kill9", "influx_down", "uplink_down", "edge_kill9")
WARMUP_S = 5.0
TAIL_S = 5.0


@dataclass
class Row:
    fault: str
    held_s: float
    lift_s: float
    recover_s: float
    replayed: int
    result: Count


async def stored_keys(rig: Rig) -> set[Key]:
    try:
        return {(s, t) for s, t, _ in await rig.stored()}
    except Exception:  # InfluxDB still starting: nothing readable yet
        return set()


async def recover(rig: Rig, sealed: dict[int, list[Key]], limit_s: float = 1800) -> float:
    """Seconds until the store holds every reading of ``sealed`` (polled every 0.5 s)."""
    want = {k for keys in sealed.values() for k in keys}
    start = now_s()
    while now_s() - start < limit_s:
        if want <= await stored_keys(rig):
            return now_s() - start
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the store did not catch up within {limit_s:.0f}s:\n{rig.hub_log()}")


async def streamed(folder: Path, fault: str, hold_s: float, rate: float) -> Row:
    async with Rig(folder / "rig") as rig:
        total = int(rate * (WARMUP_S + hold_s + TAIL_S + 10))
        agent, source, _clock = recording_agent(rig.cfg, rig.uplink_url, folder / "state",
                                                total=total, rate=rate,
                                                start_ns=time.time_ns(), paced=True)
        stop = asyncio.Event()
        running = asyncio.create_task(agent.run(stop))
        await asyncio.sleep(WARMUP_S)
        lift_s = await rig.strike(fault, hold_s)
        before = {seq: list(keys) for seq, keys in agent.sealed.items()}
        sealed_before = sum(map(len, before.values()))
        replayed = sealed_before - len(await stored_keys(rig) & {
            k for keys in before.values() for k in keys})
        recover_s = await recover(rig, before)
        if not await finish(agent, stop, running, source, polls=20 * int(total / rate + 600)):
            raise RuntimeError(f"the agent did not drain:\n{rig.hub_log()}")
        await recover(rig, agent.sealed)
        result = await rig.count(agent.sealed, agent.events)
    return Row(fault, hold_s, lift_s, recover_s, replayed, result)


async def edge_kill9(folder: Path) -> Row:
    async with Rig(folder / "rig") as rig:
        state = folder / "state"
        first = AgentProcess(state, rig.uplink_url, start_at=0, total=10_000_000)
        if not await first.read_until(60):
            raise RuntimeError("the first agent ended before 60 batches")
        await first.kill9()
        second = AgentProcess(state, rig.uplink_url, start_at=20_000_000, total=2000)
        reading = asyncio.create_task(second.read_readings(2000))  # its pipe must not fill
        have = await stored_keys(rig)
        replayed = sum(k not in have for keys in first.sealed.values() for k in keys)
        recover_s = await recover(rig, first.sealed)
        if not await reading:
            raise RuntimeError("the second agent ended early")
        sealed = first.sealed | second.sealed
        await recover(rig, sealed)
        await second.stop()
        result = await rig.count(sealed, first.events | second.events)
    return Row("edge_kill9", 0.0, 0.0, recover_s, replayed, result)


def table(rows: list[Row]) -> str:
    out = ["| fault | held s | lift s | recover s | readings sealed | replayed | "
           "duplicates suppressed | lost | duplicated | events stored | alerts on own "
           "topic |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r.result
        out.append(f"| {r.fault} | {r.held_s:g} | {r.lift_s:.1f} | {r.recover_s:.1f} | "
                   f"{c.sealed_readings:,} | {r.replayed:,} | {c.suppressed} | {c.lost} | "
                   f"{c.duplicated + c.misplaced} | {c.events_stored}/{c.events_made} | "
                   f"{c.alerts_on_own_topic}/{c.alerts} |")
    return "\n".join(out)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--broker-down", type=float, default=0.0,
                        help="seconds mosquitto stays stopped (default: started again at "
                        "once)")
    parser.add_argument("--influx-down", type=float, default=60.0)
    parser.add_argument("--uplink-down", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=100.0)
    args = parser.parse_args()
    hold = {"broker_restart": args.broker_down, "hub_kill9": 0.0, "influx_down": args.influx_down,
            "uplink_down": args.uplink_down}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gridcall-faults-") as tmp:
        for fault in args.faults.split(","):
            folder = Path(tmp) / fault
            row = (await edge_kill9(folder) if fault == "edge_kill9"
                   else await streamed(folder, fault, hold[fault], args.rate))
            rows.append(row)
            print(f"{fault}: {row.result}", file=sys.stderr, flush=True)
    print(f"load {os.getloadavg()[0]:.1f} at the end; rate {args.rate:g} readings/s")
    print(table(rows))
    if not all(r.result.clean for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
