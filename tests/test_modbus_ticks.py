"""A Modbus source of several connections hands a tick's answers over when every
connection waits for its next poll, or at the latest at the next tick (firmware_bridge's
``Ticks``): a connection that never gets there (a device that is slow, silent, gone or
never reachable) must not hold the others' readings back. Counted by readings, never by
time."""

from __future__ import annotations

import asyncio
from collections import Counter

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridcall.config.sources import ModbusSettings
from gridcall.edge_agent.modbus_source import ModbusSource
from gridcall.firmware_bridge.modbus import Ticks
from tests.polling import wait_until
from tests.servers import unused_tcp_port

TICK = "0.05s"


async def answer_late(function_code: int, start: int, address: int, count: int,
                      current: list[int], set_values: object) -> ExcCodes | None:
    await asyncio.sleep(0.15)  # three ticks, within the request timeout
    return None


async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A device that takes the connection and every request and never answers (a
    wedged gateway): each request times out."""
    while await reader.read(256):
        pass
    writer.close()


class Devices:
    """pymodbus TCP servers on loopback, each slave 1 holding its own value at 0."""

    def __init__(self) -> None:
        self.servers: dict[str, ModbusTcpServer] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.ports: dict[str, int] = {}

    def start(self, name: str, value: int, action: object = None) -> None:
        port = unused_tcp_port()
        device = SimDevice(id=1, action=action, simdata=[  # type: ignore[arg-type]
            SimData(0, values=[value], datatype=DataType.REGISTERS)])
        server = ModbusTcpServer([device], address=("127.0.0.1", port))
        self.servers[name], self.ports[name] = server, port
        self.tasks[name] = asyncio.create_task(server.serve_forever())

    async def stop(self, name: str) -> None:
        await self.servers.pop(name).shutdown()  # type: ignore[no-untyped-call]
        task = self.tasks.pop(name)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def stop_all(self) -> None:
        for name in list(self.servers):
            await self.stop(name)


def source_of(ports: dict[str, int]) -> ModbusSource:
    settings = ModbusSettings.model_validate({
        "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "timeout": "0.3s",
        "reconnect_max": "0.2s", "registers": [
            {"sensor": name, "tcp_port": port, "address": 0, "type": "uint16",
             "interval": TICK} for name, port in ports.items()]})
    return ModbusSource(settings, agent_id="edge-test", clock=lambda: 7)


async def test_the_devices_that_answer_are_handed_over_whatever_the_others_do() -> None:
    """Six connections: two healthy, one slow (an answer takes three ticks), one silent
    (every request times out), one that refuses the connection (nothing listens), and
    one healthy device that goes away mid-run. The healthy ones' readings keep coming,
    with their own values, before and after the one that goes away is gone."""
    devices = Devices()
    silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        for value, name in enumerate(("ok1", "ok2", "gone"), start=101):
            devices.start(name, value)
        devices.start("slow", 104, answer_late)
        ports = {**devices.ports, "silent": silent.sockets[0].getsockname()[1],
                 "refused": unused_tcp_port()}
        source = source_of(ports)
        got: Counter[str] = Counter()
        values: set[tuple[str, float | None]] = set()

        async def consume() -> None:
            async for burst in source.bursts():
                got.update(s.sensor for s in burst)
                values.update((s.sensor, s.value) for s in burst)

        task = asyncio.create_task(consume())
        try:
            stats = source.stats
            assert await wait_until(lambda: min(got["ok1"], got["ok2"], got["gone"]) >= 5
                                    and got["slow"] >= 2 and stats()["timeout"] >= 2
                                    and stats()["open_failures"] >= 2)
            (gone,) = [p for p in source.pollers if p.link.tcp_port == ports["gone"]]
            await devices.stop("gone")
            assert await wait_until(lambda: stats()["disconnects"] + stats()["timeout"]
                                    + stats()["open_failures"] >= 6
                                    and not gone.connected.is_set())
            before = got.copy()
            assert await wait_until(lambda: got["ok1"] >= before["ok1"] + 10
                                    and got["ok2"] >= before["ok2"] + 10
                                    and got["slow"] >= before["slow"] + 2)
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert values == {("ok1", 101.0), ("ok2", 102.0), ("gone", 103.0), ("slow", 104.0)}
    finally:
        await devices.stop_all()
        silent.close()


async def test_a_tick_is_handed_over_when_only_some_of_its_members_wait() -> None:
    """The flush is bounded by the tick, not by every member arriving: with three members
    of which only one ever waits (the others connecting, backing off, stuck in a request
    or cancelled), each tick still flushes once, before its waiter goes on."""
    flushes: list[int] = []
    ticks = Ticks(lambda: flushes.append(len(flushes)), members=3)
    loop = asyncio.get_running_loop()
    cancelled = asyncio.create_task(ticks.until(loop.time() + 60))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert ticks.idle == 0
    for k in range(1, 4):
        await ticks.until(loop.time() + 0.01)
        assert len(flushes) == k
    await ticks.until(loop.time() - 1)  # a tick already missed is taken at once
    assert len(flushes) == 4
