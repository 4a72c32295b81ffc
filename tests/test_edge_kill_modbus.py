"""kill -9 of a real `gridcall edge run` polling a real Modbus device loses no value the
device served, bar the one answer that may still be on the wire (issue 19, item 2).

tests/test_edge_kill.py kills a stand-in poll agent; this one runs the agent as a field
technician does, through the bench's own wrapper (bench/gridcall_edge_agent.sh writes the
config set and execs `gridcall edge run`), against a pymodbus TCP server in this process
whose every read serves fresh numbers (read n gives register i the value 10·n + i), and a
private mosquitto at its defaults. The agent is killed with SIGKILL while polling and
started again on the same state folder; every value is then counted at the broker. No
timing is asserted: the kill lands wherever it lands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiomqtt
import msgspec
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridcall.wire import ReadingBatch
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto
from tests.servers import ROOT

REGISTERS = 10
AGENT = "kill-edge"


class CountingDevice:
    """Slave 1 with ten holding registers; read n (from 1) answers 10·n + i at register i,
    so each value names the read that served it."""

    def __init__(self) -> None:
        self.reads = 0
        self.device = SimDevice(id=1, action=self.serve, simdata=[SimData(
            0, values=[0] * REGISTERS, datatype=DataType.REGISTERS)])

    async def serve(self, function_code: int, start: int, address: int, count: int,
                    current: list[int], set_values: object) -> ExcCodes | None:
        self.reads += 1
        current[:REGISTERS] = [(10 * self.reads + i) % 65536 for i in range(REGISTERS)]
        return None


def start_agent(folder: Path, port: int, broker: str) -> subprocess.Popen[bytes]:
    """The wrapper (its exec makes the agent this very process) on one Modbus TCP device
    polled every 100 ms, with its state kept in ``folder/state`` across lives."""
    devices = folder / "devices.json"
    devices.write_text(json.dumps([{
        "name": "dev000", "transport": "tcp", "host": "127.0.0.1", "port": port, "unit": 1,
        "function": 3, "poll_ms": 100,
        "registers": [{"address": i, "key": f"r{i:03d}", "type": "uint16"}
                      for i in range(REGISTERS)]}]))
    gridcall = folder / "gridcall"
    gridcall.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gridcall "$@"\n')
    gridcall.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_DEVICES_JSON": str(devices),
           "BENCH_STATE_DIR": str(folder / "state"), "MQTT_URL": broker,
           "MODBUS_TRANSPORT": "tcp", "POLL_MS": "100", "GRIDCALL": str(gridcall),
           "GRIDCALL_AGENT": AGENT, "BENCH_PYTHON": sys.executable}
    return subprocess.Popen(["bash", str(ROOT / "bench" / "gridcall_edge_agent.sh")],
                            cwd=folder, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def test_kill_9_of_a_modbus_agent_loses_no_value_the_device_served(
        tmp_path: Path) -> None:
    device = CountingDevice()
    server = ModbusTcpServer([device.device], address=("127.0.0.1", 0))
    serving = asyncio.create_task(server.serve_forever())
    batches: dict[int, list[float]] = {}  # by sequence number: a batch redelivered
    # after the kill (published, its PUBACK not yet taken) is at-least-once, not a duplicate
    with PrivateMosquitto(tmp_path / "broker") as broker:
        try:
            assert await wait_until(lambda: server.transport is not None)
            port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            async with aiomqtt.Client("127.0.0.1", int(broker.url.rsplit(":", 1)[1]),
                                      identifier="kill-test-counter", clean_session=False
                                      ) as counter:
                await counter.subscribe(f"gridcall/v1/readings/{AGENT}", qos=1)

                async def count() -> None:
                    async for message in counter.messages:
                        batch = msgspec.json.decode(bytes(message.payload),
                                                    type=ReadingBatch)
                        batches[batch.seq] = [r.value for r in batch.readings]
                counting = asyncio.create_task(count())

                first = start_agent(tmp_path, port, broker.url)
                try:
                    # mid-poll: it has read for a while and goes on reading
                    assert await wait_until(lambda: device.reads >= 40, polls=1200)
                    first.send_signal(signal.SIGKILL)
                    assert first.wait(timeout=60) == -signal.SIGKILL
                finally:
                    first.kill()
                served = device.reads
                expected = {float((10 * n + i) % 65536) for n in range(1, served)
                            for i in range(REGISTERS)}  # read `served` may be on the wire

                second = start_agent(tmp_path, port, broker.url)
                try:
                    delivered = await wait_until(
                        lambda: expected <= {v for b in batches.values() for v in b},
                        polls=1200)
                    second.send_signal(signal.SIGTERM)
                    assert second.wait(timeout=60) == 0
                finally:
                    second.kill()
                counting.cancel()
                await asyncio.gather(counting, return_exceptions=True)
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
    arrived = Counter(v for b in batches.values() for v in b)
    missing = expected - set(arrived)
    assert delivered, f"{len(missing)} of {len(expected)} values served before the kill " \
        f"never arrived: {sorted(missing)[:10]}"
    twice = [v for v, k in arrived.items() if k > 1]
    assert not twice, f"{len(twice)} values sealed twice: {sorted(twice)[:10]}"
