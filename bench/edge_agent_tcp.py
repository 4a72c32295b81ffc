"""The whole edge agent over Modbus TCP: CPU per value of `gridcall edge run`'s agent
(source → detector → journal → batch → outbox on disk → publish → PUBACK), in one process.

    PYTHONPATH=$PWD python bench/edge_agent_tcp.py [--devices 50] [--registers 10]
        [--poll 0.1] [--warmup 5] [--seconds 20] [--profile FILE]

The devices are pymodbus TCP servers (bench/modbus_tcp.py's, in a child process); the
broker is a private mosquitto (tests/private_servers.py). The config set is the one
bench/gridcall_edge_agent.sh writes for ../shared/bench/edge_peer_bench.py (kind
``counter``, detector ``limits``, ``outbox_sync: full``, batches of 500 / 1 s, a state
folder: the outbox, the journal and the sequence state on disk), and the agent is built
as ``gridcall edge run`` builds it. After ``--warmup`` seconds, this process's CPU time
over ``--seconds`` is divided by the samples the agent took in that time. ``--profile``
writes cProfile stats of the measured window (``time.process_time`` as its clock, so
waits are not counted) to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.modbus_tcp import start_devices
from gridcall.cli.common import load_config_set
from gridcall.cli.edge import open_source
from gridcall.edge_agent.agent import EdgeAgent
from tests.private_servers import PrivateMosquitto

WRAPPER = Path(__file__).with_name("gridcall_edge_agent.sh")


def write_config(folder: Path, ports: list[int], registers: int, poll: float,
                 broker: str) -> Path:
    """The config set bench/gridcall_edge_agent.sh writes for these devices."""
    devices = [{"name": f"dev{i:03d}", "transport": "tcp", "host": "127.0.0.1",
                "port": port, "unit": 1, "function": 3, "poll_ms": poll * 1000,
                "registers": [{"key": f"r{r:03d}", "address": r, "type": "uint16"}
                              for r in range(registers)]}
               for i, port in enumerate(ports)]
    (folder / "devices.json").write_text(json.dumps(devices))
    conf = folder / "config"
    env = {**os.environ, "BENCH_DEVICES_JSON": str(folder / "devices.json"),
           "BENCH_STATE_DIR": str(folder / "state"), "MQTT_URL": broker,
           "MODBUS_TRANSPORT": "tcp", "POLL_MS": str(poll * 1000),
           "GRIDCALL_CONFIG_DIR": str(conf), "GRIDCALL": "true"}  # write it, run nothing
    subprocess.run(["bash", str(WRAPPER)], env=env, check=True, stdout=subprocess.DEVNULL)
    return conf


async def measure(agent: EdgeAgent, warmup: float, seconds: float,
                  profile: cProfile.Profile | None) -> dict[str, float]:
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    await asyncio.sleep(warmup)
    c = agent.counters
    s0, j0, b0, cpu0, wall0 = (c.samples, c.journal_writes, c.batches_sent,
                               time.process_time(), time.monotonic())
    if profile is not None:
        profile.enable()
    await asyncio.sleep(seconds)
    if profile is not None:
        profile.disable()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    taken = c.samples - s0
    journal, batches = c.journal_writes - j0, c.batches_sent - b0
    stop.set()
    await running
    return {"values_per_s": round(taken / wall, 1), "cpu_pct": round(100 * cpu / wall, 2),
            "us_cpu_per_value": round(cpu / taken * 1e6, 2) if taken else float("nan"),
            "values_per_cpu_s": round(taken / cpu) if cpu else 0,
            "journal_writes_per_s": round(journal / wall, 1),
            "batches_per_s": round(batches / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--registers", type=int, default=10)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between polls")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--profile", type=Path, help="write cProfile stats here")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="gridcall-agent-tcp-") as tmp:
        folder = Path(tmp)
        servers, ports = start_devices(args.devices, args.registers)
        broker = PrivateMosquitto(folder / "mosquitto")
        try:
            broker.start()
            cfg = load_config_set(write_config(folder, ports, args.registers, args.poll,
                                               broker.url))
            spec = cfg.agents["bench-edge"]
            agent = EdgeAgent(spec, open_source(cfg, spec),
                              state_dir=Path(spec.settings.state_dir))
            profile = cProfile.Profile(time.process_time) if args.profile else None
            figures = asyncio.run(measure(agent, args.warmup, args.seconds, profile))
            if profile is not None and args.profile is not None:
                profile.dump_stats(args.profile)
        finally:
            servers.terminate()
            servers.wait()
            broker.stop()
    print(json.dumps({
        "load": f"{args.devices}x{args.registers} @ {args.poll * 1000:g} ms",
        "asked_per_s": args.devices * args.registers / args.poll, **figures,
        "loadavg_at_start": round(load, 2)}))


if __name__ == "__main__":
    main()
