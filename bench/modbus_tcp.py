"""The Modbus TCP source alone: CPU per value when one agent polls many devices, each its
own connection (edge_agent/modbus_source.py).

    PYTHONPATH=$PWD python bench/modbus_tcp.py [--devices 50] [--registers 10]
                                               [--poll 0.1] [--seconds 15]

The devices are pymodbus TCP servers (unit id 1, uint16 registers) in a child process on
loopback ports, so the CPU measured is the source's only: pymodbus's client, our plan,
decoding and the queue the connections share, up to the samples the agent would take
(detectors, batching, outbox and publishing are bench/edge_path.py's). Printed: values/s
against the load asked for, this process's CPU % of one core, µs of CPU per value,
values per CPU-second, timeouts and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time

from gridcall.config.sources import ModbusSettings
from gridcall.edge_agent.modbus_source import ModbusSource

SERVERS = """
import asyncio, sys
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
registers, ports = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
async def main():
    servers = [ModbusTcpServer([SimDevice(id=1, simdata=[SimData(
        0, values=list(range(registers)), datatype=DataType.REGISTERS)])],
        address=("127.0.0.1", port)) for port in ports]
    tasks = [asyncio.create_task(s.serve_forever()) for s in servers]
    while any(s.transport is None for s in servers):
        failed = [(p, t) for p, t in zip(ports, tasks) if t.done()]
        if failed:  # a port it could not listen on: say why and end, never wait on
            print("failed: port", failed[0][0], failed[0][1].exception(), flush=True)
            sys.exit(1)
        await asyncio.sleep(0.01)
    print("up", *(s.transport.sockets[0].getsockname()[1] for s in servers), flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""
"""pymodbus TCP servers, slave 1 with ``registers`` holding registers 0, 1, ...: argv is
``registers port...``, a port 0 taking any free one; prints ``up`` and the ports served,
or ``failed:`` and why, and then ends."""


def start_devices(count: int, registers: int) -> tuple[subprocess.Popen[str], list[int]]:
    """``count`` devices (:data:`SERVERS`) in a child process and the ports they serve.
    Each listens on a port of its own choosing (port 0): ports picked here and handed over
    could be taken in between by any connection the machine makes (its local port comes
    from the same range), and a server that cannot listen left the child waiting for ever
    (bench/edge_agent_tcp.py hung so once)."""
    child = subprocess.Popen([sys.executable, "-c", SERVERS, str(registers),
                              *["0"] * count], stdout=subprocess.PIPE, text=True)
    said = child.stdout.readline().split() if child.stdout is not None else []
    if said[:1] != ["up"] or len(said) != count + 1:
        child.terminate()
        child.wait()
        sys.exit(f"the pymodbus servers did not start: {' '.join(said) or 'no word'}")
    return child, [int(p) for p in said[1:]]


async def measure(source: ModbusSource, devices: int, seconds: float) -> dict[str, float]:
    samples = source.samples()
    taken = 0
    async for _ in samples:  # until every connection is open and has answered
        taken += 1
        if source.counts["opens"] == devices and taken > source.counts["requests"]:
            break
    taken, cpu0, wall0 = 0, time.process_time(), time.monotonic()
    async for _ in samples:
        taken += 1
        if time.monotonic() - wall0 >= seconds:
            break
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    await samples.aclose()  # type: ignore[attr-defined]
    return {"values_per_s": round(taken / wall, 1), "cpu_pct": round(100 * cpu / wall, 1),
            "us_cpu_per_value": round(cpu / taken * 1e6, 2),
            "values_per_cpu_s": round(taken / cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--registers", type=int, default=10)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between polls")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    servers, ports = start_devices(args.devices, args.registers)
    try:
        settings = ModbusSettings.model_validate({
            "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "timeout": "1s",
            "registers": [{"sensor": f"d{d}.r{r}", "tcp_port": port, "address": r,
                           "interval": f"{args.poll}s"}
                          for d, port in enumerate(ports) for r in range(args.registers)]})
        source = ModbusSource(settings, agent_id="bench")
        figures = asyncio.run(measure(source, args.devices, args.seconds))
    finally:
        servers.terminate()
        servers.wait()
    print(json.dumps({
        "load": f"{args.devices}x{args.registers} @ {args.poll * 1000:g} ms",
        "asked_per_s": args.devices * args.registers / args.poll, **figures,
        "timeouts": source.counts["timeout"],
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
