"""The edge path end to end against a real mosquitto: CPU per reading, catch-up rate
after a 10-minute outage, resident memory with 200 sensors.

    PYTHONPATH=$PWD python bench/edge_path.py [--sync full|normal] [--readings 60000]
                                              [--poll 10]

It starts a private mosquitto (tests/private_servers.py) on a free port, so nothing
reaches anyone else's hub. The source is the fast synthetic one on a simulated clock
(simulators/steady.py), so "100 readings/s for 10 minutes" is 60,000 readings produced
as fast as the agent takes them. ``--poll N``: the source hands the agent N readings, then
waits (yields to the event loop) as a Modbus or serial poll waits for its next answer; the
agent appends each poll's readings to its journal then (edge_agent/journal.py), so N sets
how many journal writes the path makes (10: a device of ten registers; 100 was this
bench's only setting before the journal).

- **CPU per reading**: process CPU time (this process only; mosquitto is another) from
  the first reading until the broker acknowledged the last batch, over the readings:
  source → detector → batch → outbox (on disk, the chosen fsync policy) → publish.
  Also the detector-and-batching share alone (in-memory outbox, nothing published).
- **Catch-up**: the agent runs with the broker stopped for 60,000 readings (10 simulated
  minutes at 100/s), then the broker starts; readings/s acknowledged from the moment it
  reconnects until the outbox is empty.
- **Journal**: CPU per append of one poll's readings to the unsealed readings' journal
  (one ``write``, not fsynced), with the reset a sealed batch makes counted in.
- **RSS, 200 sensors**: an agent with 200 sensors (the sample's kinds, repeated) after
  every sensor is past its warm-up (300 readings each), from /proc/self/status.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gridcall.config import SAMPLE_DISTRICT, AgentSpec, load_config
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.simulators.steady import SimClock, SteadySource
from tests.private_servers import PrivateMosquitto

NOW = 1_790_000_000 * 10**9


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spec_with(spec: AgentSpec, sync: str, sensors: int | None = None) -> AgentSpec:
    spec = dataclasses.replace(spec, settings=spec.settings.model_copy(
        update={"outbox_sync": sync}))
    if sensors is None:
        return spec
    many = tuple(dataclasses.replace(spec.sensors[i % len(spec.sensors)], id=f"bench-s{i:03d}")
                 for i in range(sensors))
    return dataclasses.replace(spec, sensors=many)


async def until(predicate: Callable[[], bool], what: str, limit_s: float = 600.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


async def edge_path(spec: AgentSpec, broker: str, state: Path, n: int, poll: int
                    ) -> tuple[float, int]:
    clock = SimClock(NOW)
    source = SteadySource(spec.sensors, clock, total=n, yield_every=poll)
    agent = EdgeAgent(spec, source, broker_url=broker, clock=clock, state_dir=state)
    stop = asyncio.Event()
    cpu0 = time.process_time()
    running = asyncio.create_task(agent.run(stop))
    c = agent.counters  # a reading out of its kind's physical range is a fault, not sent
    await until(lambda: source.done.is_set() and c.readings_sent
                >= n - sum(c.skipped.values()) - sum(c.faults.values()), "edge path")
    cpu = time.process_time() - cpu0
    stop.set()
    await running
    return cpu / n, getattr(agent.counters, "journal_writes", 0)


def journal_cost(state: Path, poll: int, batch: int, n: int = 20_000) -> float:
    """CPU seconds per append of ``poll`` readings, a reset every ``batch`` readings."""
    from gridcall.edge_agent.journal import Journal
    from gridcall.wire import Reading

    journal = Journal(state / "bench.journal")
    journal.recover(0)
    readings = [Reading(f"bench-s{i:03d}", NOW + i, 0.25 * i) for i in range(poll)]
    every = max(1, batch // poll)
    cpu0 = time.process_time()
    for i in range(n):
        journal.append(readings)
        if i % every == every - 1:
            journal.sealed()
    took = time.process_time() - cpu0
    journal.close()
    return took / n


def detect_only(spec: AgentSpec, n: int) -> float:
    clock = SimClock(NOW)
    source = SteadySource(spec.sensors, clock, total=n, then_idle=False)
    agent = EdgeAgent(spec, source, clock=clock)

    async def feed() -> None:
        async for s in source.samples():
            agent.ingest(s.sensor, s.ts, s.value)
    cpu0 = time.process_time()
    asyncio.run(feed())
    return (time.process_time() - cpu0) / n


async def catch_up(spec: AgentSpec, broker: PrivateMosquitto, state: Path, n: int
                   ) -> tuple[float, int]:
    clock = SimClock(NOW)
    source = SteadySource(spec.sensors, clock, total=n)
    agent = EdgeAgent(spec, source, broker_url=broker.url, clock=clock, state_dir=state)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    await until(lambda: source.done.is_set() and not agent._pending, "outage fill")
    held = agent.outbox.readings
    broker.start()
    await until(agent.connected.is_set, "reconnect")
    t0 = time.perf_counter()
    await until(lambda: agent.outbox.messages == 0, "catch-up")
    rate = held / (time.perf_counter() - t0)
    stop.set()
    await running
    return rate, held


async def memory(spec: AgentSpec, broker: str, state: Path, per_sensor: int
                 ) -> tuple[float, int, float]:
    clock = SimClock(NOW)
    n = per_sensor * len(spec.sensors)
    source = SteadySource(spec.sensors, clock, total=n)
    agent = EdgeAgent(spec, source, broker_url=broker, clock=clock, state_dir=state)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    await until(lambda: source.done.is_set() and agent.outbox.messages == 0, "memory run")
    rss = rss_mib()
    t0 = time.perf_counter()
    size = agent.save_checkpoint()
    took = time.perf_counter() - t0
    stop.set()
    await running
    return rss, size, took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sync", choices=["full", "normal"], default="full")
    ap.add_argument("--readings", type=int, default=60_000)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    ap.add_argument("--poll", type=int, default=10, help="readings per poll (see above)")
    args = ap.parse_args()
    cfg = load_config(SAMPLE_DISTRICT)
    base = next(a for a in cfg.agents.values() if a.source.type == "simulated")
    spec = spec_with(base, args.sync)
    print(f"agent {spec.id}: {len(spec.sensors)} sensors, outbox_sync={args.sync}, "
          f"batch_max_readings={spec.settings.batch_max_readings}, "
          f"{args.readings} readings, {args.poll} per poll")
    rss_start = rss_mib()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        with PrivateMosquitto(root / "broker") as broker:
            per, writes = asyncio.run(edge_path(spec, broker.url, root / "a", args.readings,
                                                args.poll))
        print(f"CPU per reading, whole edge path:          {per * 1e6:7.1f} µs "
              f"({1 / per:8.0f} readings/s per core; {writes} journal writes)")
        per = detect_only(spec, args.readings)
        print(f"CPU per reading, detector + batching only: {per * 1e6:7.1f} µs")
        per = journal_cost(root, args.poll, spec.settings.batch_max_readings)
        print(f"journal: {per * 1e6:.2f} µs per append of a poll's {args.poll} readings "
              f"({per / args.poll * 1e6:.2f} µs per reading)")
        broker = PrivateMosquitto(root / "broker2")  # not started: the outage
        try:
            rate, held = asyncio.run(catch_up(spec, broker, root / "b", args.readings))
        finally:
            broker.stop()
        print(f"catch-up after the outage: {held} readings held, {rate:8.0f} readings/s "
              f"acknowledged by mosquitto")
        big = spec_with(base, args.sync, sensors=200)
        with PrivateMosquitto(root / "broker3") as broker:
            rss, size, took = asyncio.run(memory(big, broker.url, root / "c", per_sensor=300))
        print(f"RSS with 200 sensors past warm-up: {rss:.1f} MiB (process at start "
              f"{rss_start:.1f} MiB with imports; peak "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB)")
        print(f"checkpoint of 200 sensors: {size / 1024:.0f} KiB, written (fsync'd) in "
              f"{took * 1000:.0f} ms")


if __name__ == "__main__":
    main()
