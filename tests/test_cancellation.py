"""Every edge source, and the hub's desk connection, ends when it is cancelled, whatever it
is doing: opening its port or broker, waiting for an answer, or reading. A source that
eats a cancel keeps its task alive for ever, and with it whatever waits for that task:
the agent's shutdown, a test's teardown, the event loop's close.

Each test cancels a source at many points (after 0, 1, 2... loop turns, then after short
real-time waits) and waits for its task to end with a generous bound (30 s): not a timing
assertion, a hang detector that fails with the point at which the cancel was lost."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridcall.config import ConfigSet
from gridcall.config.local_mqtt import LocalMqttSettings
from gridcall.config.sources import ModbusSettings, SerialSettings
from gridcall.edge_agent.local_mqtt import LocalMqttSource
from gridcall.edge_agent.modbus_source import ModbusSource
from gridcall.edge_agent.serial_source import SerialFrameSource
from gridcall.edge_agent.sources import Source
from gridcall.firmware_bridge.frames import Frame, encode
from gridcall.firmware_bridge.pty import NullModem, PtyPort
from gridcall.simulators.town import SimulatedTown
from gridcall.wire.cancelsafe import cancel_safe, raise_if_cancelled, stop_tasks

BOUND = 30.0
"""Seconds a cancelled source may take to end before the test calls it a hang."""
TURNS = range(12)
"""Cancel after this many event-loop turns: covers every step of an open or connect."""
WAITS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
"""...and after these real-time waits: mid-read, mid-request, mid-backoff."""


async def ends_when_cancelled(source: Source, *, turns: int = 0, wait: float = 0.0) -> None:
    """Read ``source`` in a task, cancel it after ``turns`` loop turns and ``wait`` seconds;
    fail if the task has not ended ``BOUND`` seconds later, or ended without the cancel."""
    async def consume() -> None:
        async for _ in source.samples():
            pass

    await cancel_and_expect_end(asyncio.create_task(consume()), type(source).__name__,
                                turns=turns, wait=wait)


async def cancel_and_expect_end(task: asyncio.Task[None], what: str, *, turns: int,
                                wait: float) -> None:
    """Cancel ``task`` after ``turns`` loop turns and ``wait`` seconds; fail if it has not
    ended ``BOUND`` seconds later (a hang), or ended without the cancel."""
    for _ in range(turns):
        await asyncio.sleep(0)
    if wait:
        await asyncio.sleep(wait)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=BOUND)
    where = f"cancelled after {turns} loop turns and {wait}s"
    assert done, f"{what} {where} was still running {BOUND:.0f}s later: a hang"
    assert task.cancelled(), f"{what} {where} ended without the cancel: {task.exception()!r}"


async def each_point(make: object) -> None:
    for turns in TURNS:
        await ends_when_cancelled(make(), turns=turns)  # type: ignore[operator]
    for wait in WAITS:
        await ends_when_cancelled(make(), wait=wait)  # type: ignore[operator]


# --------------------------------------------------------------------------- Modbus

def modbus_source(port: Path, slave: int = 1) -> ModbusSource:
    settings = ModbusSettings.model_validate({
        "type": "modbus", "port": str(port), "timeout": "0.05s", "reconnect_max": "0.05s",
        "registers": [{"sensor": "level", "slave": slave, "address": 0, "type": "float32",
                       "interval": "0.01s"}]})
    return ModbusSource(settings, agent_id="edge-cancel", silence=0.2)


async def test_a_modbus_source_ends_when_cancelled_opening_a_port_nobody_answers_on(
        tmp_path: Path) -> None:
    """Connect, request, time out, reopen for silence: pymodbus's connect on Python 3.11
    ate a cancel that came as the port opened (the suite's one hang)."""
    with PtyPort(tmp_path / "ttyMB0") as port:
        await each_point(lambda: modbus_source(port.link))


async def test_a_modbus_source_ends_when_cancelled_mid_request(tmp_path: Path) -> None:
    agent_end, device_end = tmp_path / "ttyMB0", tmp_path / "ttyMB1"
    with NullModem(agent_end, device_end):
        device = SimDevice(id=1, simdata=[SimData(0, values=[0x41A4, 0], datatype=DataType.
                                                  REGISTERS)])
        server = ModbusSerialServer([device], framer=FramerType.RTU, port=str(device_end),
                                    baudrate=9600)
        serving = asyncio.create_task(server.serve_forever())
        try:
            await each_point(lambda: modbus_source(agent_end))
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]
            serving.cancel()
            await asyncio.wait([serving], timeout=BOUND)


async def test_a_modbus_source_ends_when_cancelled_retrying_a_missing_port(
        tmp_path: Path) -> None:
    await each_point(lambda: modbus_source(tmp_path / "absent"))


async def test_a_modbus_tcp_source_of_several_devices_ends_when_cancelled() -> None:
    """One poller per device behind one queue: a cancel of the reader ends them all (one
    device answers, one port has nobody listening)."""
    from pymodbus.server import ModbusTcpServer

    from tests.servers import unused_tcp_port

    live, dead = unused_tcp_port(), unused_tcp_port()
    device = SimDevice(id=1, simdata=[SimData(0, values=[0x41A4, 0],
                                              datatype=DataType.REGISTERS)])
    server = ModbusTcpServer([device], address=("127.0.0.1", live))
    serving = asyncio.create_task(server.serve_forever())

    def source() -> ModbusSource:
        settings = ModbusSettings.model_validate({
            "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "timeout": "0.05s",
            "reconnect_max": "0.05s", "registers": [
                {"sensor": "a", "tcp_port": live, "address": 0, "type": "float32",
                 "interval": "0.01s"},
                {"sensor": "b", "tcp_port": dead, "address": 0, "interval": "0.01s"}]})
        return ModbusSource(settings, agent_id="edge-cancel", silence=0.2)

    try:
        await each_point(source)
        left = [t.get_name() for t in asyncio.all_tasks()
                if t.get_name().startswith("agent edge-cancel modbus") and not t.done()]
        assert left == []  # each device's poller ended with the reader
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        serving.cancel()
        await asyncio.wait([serving], timeout=BOUND)


# --------------------------------------------------------------------------- serial

def serial_source(port: Path) -> SerialFrameSource:
    settings = SerialSettings.model_validate({
        "type": "serial", "port": str(port), "reconnect_min": "0.01s",
        "reconnect_max": "0.05s", "devices": [{"id": 5, "channels": {0: "flow"}}]})
    return SerialFrameSource(settings, agent_id="edge-cancel", silence=0.2)


async def test_a_serial_source_ends_when_cancelled_reading_a_chatty_port(
        tmp_path: Path) -> None:
    with PtyPort(tmp_path / "ttyGC0") as port:
        frame = encode(Frame(5, 0, ((0, 1.5),)))
        stop = asyncio.Event()

        async def chatter() -> None:
            while not stop.is_set():
                port.write(frame)
                await asyncio.sleep(0.001)

        talking = asyncio.create_task(chatter())
        try:
            await each_point(lambda: serial_source(port.link))
        finally:
            stop.set()
            await asyncio.wait([talking], timeout=BOUND)


async def test_a_serial_source_ends_when_cancelled_on_a_silent_or_missing_port(
        tmp_path: Path) -> None:
    with PtyPort(tmp_path / "ttyGC0") as port:
        await each_point(lambda: serial_source(port.link))
    await each_point(lambda: serial_source(tmp_path / "absent"))


# --------------------------------------------------------------------------- local MQTT

def mqtt_source(url: str, topic: str = "cancel/none") -> LocalMqttSource:
    settings = LocalMqttSettings.model_validate({
        "type": "mqtt", "broker": {"url": url}, "map": [{"topic": topic, "sensor": "s"}]})
    return LocalMqttSource(settings, agent_id=f"edge-cancel-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def mute_broker() -> Iterator[str]:
    """A TCP port that accepts connections and never says a word (a wedged broker)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"mqtt://127.0.0.1:{listener.getsockname()[1]}"


async def test_a_local_mqtt_source_ends_when_cancelled_connecting_to_a_mute_broker(
        mute_broker: str) -> None:
    await each_point(lambda: mqtt_source(mute_broker))


async def test_a_local_mqtt_source_ends_when_cancelled_reading(mqtt_url: str) -> None:
    address = mqtt_url.removeprefix("mqtt://").split(":")
    topic = f"cancel/{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()

    async def chatter() -> None:
        async with aiomqtt.Client(address[0], int(address[1])) as client:
            while not stop.is_set():
                await client.publish(topic, b"1.0")
                await asyncio.sleep(0.002)

    talking = asyncio.create_task(chatter())
    try:
        await each_point(lambda: mqtt_source(mqtt_url, topic))
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(talking, BOUND)


# --------------------------------------------------------------------------- simulated

async def test_a_simulated_source_ends_when_cancelled(cfg: ConfigSet) -> None:
    town = SimulatedTown(cfg, interval_scale=0.001)  # every sensor, many times a second
    agent = next(a.id for a in cfg.agents.values() if a.source.type == "simulated")
    await each_point(lambda: town.source(agent))


# --------------------------------------------------------------------------- the helpers

async def stubborn(started: asyncio.Event, release: asyncio.Event) -> None:
    """Ignores every cancel until ``release`` is set (the bug the helpers guard against)."""
    started.set()
    while not release.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await release.wait()


async def test_stop_tasks_leaves_a_task_that_ignores_its_cancel_behind_and_returns_it(
        caplog: pytest.LogCaptureFixture) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    bad = asyncio.create_task(stubborn(started, release), name="stubborn")
    good = asyncio.create_task(asyncio.sleep(3600), name="sleeper")
    await started.wait()
    left = await asyncio.wait_for(stop_tasks([bad, good], 0.2, what="test"), BOUND)
    assert left == {bad}
    assert good.cancelled()
    assert "test: stubborn did not end within" in caplog.text
    release.set()
    await asyncio.wait_for(bad, BOUND)


async def test_cancel_safe_raises_the_callers_cancel_even_if_the_call_swallows_it() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def caller() -> None:
        await cancel_safe(stubborn(started, release), settle=0.2)

    task = asyncio.create_task(caller())
    await started.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=BOUND)
    assert done, "cancel_safe did not pass on the caller's cancel: a hang"
    assert task.cancelled()
    release.set()  # the call left behind ends too


async def test_raise_if_cancelled_raises_a_cancel_the_awaited_call_swallowed() -> None:
    """As Python 3.11's wait_for does when its result and the cancel land in one loop
    turn: the call returns its result instead of raising; the caller still ends."""
    started = asyncio.Event()
    after: list[str] = []

    async def swallowing() -> str:
        started.set()
        try:
            await asyncio.sleep(BOUND)
        except asyncio.CancelledError:
            return "answer"
        return "no cancel"

    async def caller() -> None:
        assert await swallowing() == "answer"
        raise_if_cancelled()
        after.append("went on")

    task = asyncio.create_task(caller())
    await started.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=BOUND)
    assert done
    assert task.cancelled()
    assert after == []


async def test_raise_if_cancelled_lets_an_uncancelled_task_go_on() -> None:
    async def caller() -> str:
        await asyncio.sleep(0)
        raise_if_cancelled()
        return "went on"

    assert await asyncio.create_task(caller()) == "went on"


# --------------------------------------------------------------------------- the hub

async def test_the_hubs_desk_connection_ends_when_cancelled_connecting_or_subscribing(
        cfg: ConfigSet) -> None:
    """The desk runtime's reconnect loop (aiomqtt, like the agent's uplink): cancelled
    while it connects, subscribes, republishes the open alerts or reads, it ends, even when
    the broker's answer and the cancel land in one loop turn."""
    from gridcall.hub.desk.runtime import DeskRuntime
    from gridcall.hub.store import Store
    from gridcall.simulators.embedded import EmbeddedBroker
    from gridcall.wire import AnomalyEvent
    from gridcall.wire.broker import BrokerAddress

    now = 1_700_000_000 * 10**9
    async with EmbeddedBroker() as broker, Store(":memory:") as store:
        address = BrokerAddress.parse(broker.url)
        # open alerts in the ledger: every run republishes them as it connects
        opener = DeskRuntime(cfg, store, address=address, client_id="desk-cancel",
                             clock=lambda: now)
        await opener.start()
        for seq, sensor in enumerate(list(cfg.sensors)[:20], start=1):
            spec = cfg.sensors[sensor]
            await opener.desk.on_event(AnomalyEvent(
                agent=spec.agent, seq=seq, sensor=sensor, kind="out_of_limits",
                severity="major", score=0.9, value=80.0, ts=now), now)
        for turns, wait in [*((t, 0.0) for t in range(80)), *((0, w) for w in WAITS)]:
            runtime = DeskRuntime(cfg, store, address=address, client_id="desk-cancel",
                                  clock=lambda: now)
            await cancel_and_expect_end(asyncio.create_task(runtime.run(asyncio.Event())),
                                        "the desk runtime", turns=turns, wait=wait)
