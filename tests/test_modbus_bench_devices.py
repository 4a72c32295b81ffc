"""The Modbus TCP devices the benchmarks poll (bench/modbus_tcp.py): a child process that
either serves them and says on which ports, or says why it cannot and ends. It once took
ports picked beforehand and waited for ever when one was taken in between, and
bench/edge_agent_tcp.py hung with it, with no word."""

from __future__ import annotations

import socket
import subprocess
import sys

from pymodbus.client import AsyncModbusTcpClient

from bench.modbus_tcp import SERVERS, start_devices


def test_a_port_the_devices_cannot_listen_on_ends_their_process_with_the_reason() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        child = subprocess.Popen([sys.executable, "-c", SERVERS, "2", "0", str(port)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True)
        try:
            out, _ = child.communicate(timeout=120)  # a bound, not a timing assertion
        finally:
            child.kill()
            child.wait()
    assert child.returncode == 1
    assert out.startswith("failed:")
    assert str(port) in out


async def test_the_devices_listen_on_ports_of_their_own_and_serve_their_registers() -> None:
    child, ports = start_devices(3, 4)
    try:
        assert len(set(ports)) == 3
        for port in ports:
            client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5)
            assert await client.connect()
            try:
                answer = await client.read_holding_registers(0, count=4, device_id=1)
            finally:
                client.close()
            assert answer.registers == [0, 1, 2, 3]
    finally:
        child.terminate()
        child.wait()
