"""Modbus against pymodbus's own servers: RTU on a pty null modem, Modbus TCP and RTU frames
over TCP (a serial server) on loopback. The register map's types, orders, scale and offset
give the right readings; exception responses, silent slaves and a vanished port are
counted by reason and polling goes on."""

from __future__ import annotations

import asyncio
import math
import re
import struct
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.config.sources import ModbusSettings, Register, ScaleFrom, silence_reopen_s
from gridcall.edge_agent.modbus_source import ModbusSource
from gridcall.edge_agent.sources import Sample
from gridcall.firmware_bridge.modbus import (
    ModbusPoller,
    decode,
    encode,
    next_tick,
    plan,
    scale_power,
    unsigned,
)
from gridcall.firmware_bridge.pty import NullModem
from tests.polling import draining, wait_until
from tests.servers import unused_tcp_port


def reg(**kw: object) -> Register:
    return Register.model_validate({"sensor": "s", "address": 0, **kw})


# --------------------------------------------------------------------------- pure part


@pytest.mark.parametrize(("registers", "spec", "value"), [
    ([0x41A4, 0x0000], {"type": "float32"}, 20.5),                          # ABCD
    ([0x0000, 0x41A4], {"type": "float32", "word_order": "little"}, 20.5),  # CDAB
    ([0xA441, 0x0000], {"type": "float32", "byte_order": "little"}, 20.5),  # BADC
    ([0xFF38], {"type": "int16", "scale": 0.1}, -20.0),
    ([0xFF38], {"type": "uint16", "scale": 0.5, "offset": -10}, 32658.0),
    ([0x0001, 0x0000], {"type": "uint32"}, 65536.0),
    ([0xFFFF, 0xFFFE], {"type": "int32"}, -2.0),
])
def test_registers_decode_by_type_order_scale_and_offset(
        registers: list[int], spec: dict[str, object], value: float) -> None:
    assert decode(registers, reg(**spec)) == pytest.approx(value)


@given(st.sampled_from(["int16", "uint16", "int32", "uint32", "float32"]),
       st.sampled_from(["big", "little"]), st.sampled_from(["big", "little"]),
       st.integers(-30000, 30000))
def test_encode_is_what_decode_reads(kind: str, byte_order: str, word_order: str,
                                     raw: int) -> None:
    r = reg(type=kind, byte_order=byte_order, word_order=word_order, scale=0.1, offset=5)
    if kind.startswith("uint"):
        raw = abs(raw)
    value = raw * 0.1 + 5
    assert decode(encode(value, r), r) == pytest.approx(value, abs=1e-3)


@given(st.lists(st.tuples(st.sampled_from(["int16", "uint16", "int32", "uint32", "float32"]),
                          st.sampled_from(["big", "little"]),
                          st.sampled_from([1.0, 0.1, -2.5]), st.sampled_from([0.0, -40.0])),
                min_size=1, max_size=6),
       st.lists(st.integers(0, 0xFFFF), min_size=12, max_size=12))
def test_an_answer_decodes_as_decode_reads_each_of_its_registers(
        specs: list[tuple[str, str, float, float]], words: list[int]) -> None:
    """The poller's per-block decoding (a fast path for plain 16-bit registers) gives
    exactly what decode() gives register by register, in the map's order."""
    registers, address = [], 0
    for i, (kind, byte_order, scale, offset) in enumerate(specs):
        registers.append({"sensor": f"s{i}", "address": address, "type": kind,
                          "byte_order": byte_order, "scale": scale, "offset": offset})
        address += 2
    settings = ModbusSettings.model_validate({"type": "modbus", "port": "/dev/null",
                                              "registers": registers})
    poller = ModbusPoller(settings)
    (block,) = poller.blocks
    answer = poller.decode_answer(block, words[:block.count], 7, Sample)
    expected = []
    for r in block.registers:
        value = decode(words[r.address:r.address + r.width], r)
        expected.append(Sample(r.sensor, 7, value) if math.isfinite(value)
                        else Sample(r.sensor, 7, None, "sentinel"))  # NaN: a fault
    assert answer == expected


def test_neighbouring_registers_are_read_in_one_request() -> None:
    regs = [reg(sensor="a", address=0, type="float32"), reg(sensor="b", address=2),
            reg(sensor="c", address=20),                      # too far: its own request
            reg(sensor="d", address=3, table="input"),        # another table
            reg(sensor="e", address=4, slave=2)]              # another slave
    blocks = [(b.slave, b.table, b.address, b.count, [r.sensor for r in b.registers])
              for b in plan(regs)]
    assert blocks == [(1, "holding", 0, 3, ["a", "b"]), (1, "holding", 20, 1, ["c"]),
                      (1, "input", 3, 1, ["d"]), (2, "holding", 4, 1, ["e"])]


@given(st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["holding", "input"]),
                          st.integers(0, 400), st.sampled_from(["uint16", "float32"]),
                          st.sampled_from([1, 5])), max_size=40))
def test_the_plan_reads_every_register_once_within_the_request_limit(
        specs: list[tuple[int, str, int, str, int]]) -> None:
    regs = [reg(sensor=f"s{i}", slave=slave, table=table, address=address, type=kind,
                interval=interval)
            for i, (slave, table, address, kind, interval) in enumerate(specs)]
    blocks = plan(regs)
    assert sorted(r.sensor for b in blocks for r in b.registers) == sorted(r.sensor for r in regs)
    for b in blocks:
        assert 1 <= b.count <= 125
        for r in b.registers:
            assert (r.slave, r.table, r.interval.total_seconds()) == (b.slave, b.table,
                                                                       b.interval)
            assert b.address <= r.address
            assert r.last_address < b.address + b.count


# --------------------------------------------------------------------------- on the wire

HOLDING = [0x41A4, 0x0000, 0xFF38, 0, 0, 0, 0, 0, 0, 0]
INPUT = [0, 0, 0, 0, 0, 0, 0x0000, 0x41A4, 0, 0]


async def refuse_address_9(function_code: int, start: int, address: int, count: int,
                           current: list[int], set_values: object) -> ExcCodes | None:
    return ExcCodes.ILLEGAL_ADDRESS if address <= 9 < address + count else None


async def never_answer(function_code: int, start: int, address: int, count: int,
                       current: list[int], set_values: object) -> ExcCodes | None:
    # A slave that stays silent (powered off, wrong address switch). pymodbus 3.16's
    # SimDevice list answers an unknown slave id with DEVICE_FAILURE (a KeyError inside
    # simcore) instead of honouring ignore_missing_devices; raising the exception that
    # flag is meant for makes the server say nothing, as a real absent slave would.
    raise NoSuchIdException(7)


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[Path]:
    """A pymodbus serial server with slave 1 on one end of a null modem; the agent's end."""
    agent_end, device_end = tmp_path / "ttyMB0", tmp_path / "ttyMB1"
    with NullModem(agent_end, device_end):
        device = SimDevice(id=1, action=refuse_address_9, simdata=(
            [SimData(0, datatype=DataType.BITS)], [SimData(0, datatype=DataType.BITS)],
            [SimData(0, values=HOLDING, datatype=DataType.REGISTERS)],
            [SimData(0, values=INPUT, datatype=DataType.REGISTERS)]))
        silent = SimDevice(id=7, action=never_answer,
                           simdata=[SimData(0, count=4, datatype=DataType.REGISTERS)])
        server = ModbusSerialServer([device, silent], framer=FramerType.RTU,
                                    port=str(device_end), baudrate=9600,
                                    ignore_missing_devices=True)
        task = asyncio.create_task(server.serve_forever())
        try:
            yield agent_end
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def source_for(port: Path, registers: list[dict[str, object]]) -> ModbusSource:
    settings = ModbusSettings.model_validate({
        "type": "modbus", "port": str(port), "timeout": "0.2s", "reconnect_max": "0.3s",
        "registers": registers})
    return ModbusSource(settings, agent_id="edge-test", clock=lambda: 7)


async def collect(source: ModbusSource, until: object) -> list[Sample]:
    async with draining(source) as got:
        assert await wait_until(lambda: until(got, source.stats()))  # type: ignore[operator]
    return got


async def test_a_register_map_reads_pymodbus_server_values(line: Path) -> None:
    source = source_for(line, [
        {"sensor": "level", "address": 0, "type": "float32", "interval": "0.1s"},
        {"sensor": "temp", "address": 2, "type": "int16", "scale": 0.1, "interval": "0.1s"},
        {"sensor": "flow", "address": 6, "table": "input", "type": "float32",
         "word_order": "little", "offset": 1, "interval": "0.1s"},
    ])
    got = await collect(source, lambda got, c: len(got) >= 6)
    assert {s.sensor: s.value for s in got} == {"level": 20.5, "temp": pytest.approx(-20.0),
                                                 "flow": 21.5}
    assert source.stats()["requests"] >= 4  # holding 0-2 in one request, input 6-7
    assert source.stats()["timeout"] == 0


async def test_exception_responses_and_a_silent_slave_are_counted_and_polling_goes_on(
        line: Path) -> None:
    source = source_for(line, [
        {"sensor": "level", "address": 0, "type": "float32", "interval": "0.05s"},
        {"sensor": "bad", "address": 9, "interval": "0.05s"},
        {"sensor": "ghost", "slave": 7, "address": 0, "interval": "0.05s"},
    ])
    got = await collect(source, lambda got, c: c.get("exception_illegal_address", 0) >= 2
                        and c["timeout"] >= 2 and len(got) >= 2)
    assert {s.sensor for s in got} == {"level"}
    c = source.stats()
    # level (0-1) and bad (9) were planned as one request; the refusal split it
    assert c["split_requests"] == 1
    assert c["responses"] >= 2
    assert c["disconnects"] == 0


async def test_a_port_that_vanishes_and_returns_is_polled_again(tmp_path: Path) -> None:
    agent_end, device_end = tmp_path / "ttyMB0", tmp_path / "ttyMB1"
    source = source_for(agent_end, [{"sensor": "level", "address": 0, "type": "float32",
                                     "interval": "0.05s"}])
    got: list[Sample] = []

    async def consume() -> None:
        async for sample in source.samples():
            got.append(sample)

    task = asyncio.create_task(consume())
    try:
        assert await wait_until(lambda: source.stats()["open_failures"] >= 1)
        for round_ in (1, 2):
            with NullModem(agent_end, device_end):
                device = SimDevice(id=1, simdata=[SimData(0, values=HOLDING,
                                                          datatype=DataType.REGISTERS)])
                server = ModbusSerialServer([device], framer=FramerType.RTU,
                                            port=str(device_end), baudrate=9600)
                serving = asyncio.create_task(server.serve_forever())
                seen = len(got)
                assert await wait_until(lambda seen=seen: len(got) > seen + 2)
                await server.shutdown()  # type: ignore[no-untyped-call]
                serving.cancel()
                await asyncio.gather(serving, return_exceptions=True)
            assert await wait_until(lambda round_=round_: source.stats()["opens"] == round_
                                    and not source.poller.connected.is_set())
        assert source.stats()["reconnects"] == 1
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert {s.value for s in got} == {20.5}
    assert struct.pack(">f", 20.5) == bytes.fromhex("41a40000")


async def test_a_line_where_no_slave_answers_is_reopened_without_counting_an_unplug(
        line: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A wedged RS-485 converter: the port is open, every request times out. After
    ``silence`` seconds without any answer the poller reopens the port (logging it once),
    counted apart from unplugs; an exception response would have counted as an answer."""
    settings = ModbusSettings.model_validate({
        "type": "modbus", "port": str(line), "timeout": "0.1s", "reconnect_max": "0.3s",
        "registers": [{"sensor": "ghost", "slave": 7, "address": 0, "interval": "0.05s"}]})
    source = ModbusSource(settings, agent_id="edge-test", silence=0.4)
    got = await collect(source, lambda got, c: c["silent_reopens"] >= 2)
    assert got == []
    c = source.stats()
    assert c["disconnects"] == c["reconnects"] == 0  # the port never went away
    assert c["opens"] >= c["silent_reopens"]
    said = [r.getMessage() for r in caplog.records if "answered for" in r.getMessage()]
    assert len(said) == 1  # once per silence, not once per reopen


async def test_slaves_that_answer_keep_the_line_open(line: Path) -> None:
    source = source_for(line, [{"sensor": "level", "address": 0, "type": "float32",
                                "interval": "0.05s"}])
    source.poller.silence = 0.4
    got = await collect(source, lambda got, c: len(got) >= 30)  # well past 0.4 s of polling
    assert {s.value for s in got} == {20.5}
    assert source.stats()["silent_reopens"] == 0
    assert source.stats()["opens"] == 1


def test_the_silence_before_a_reopen_defaults_to_ten_of_the_slowest_intervals() -> None:
    from gridcall.edge_agent.source_factory import build_source

    cfg = load_config(SAMPLE_DISTRICT)
    modbus = cfg.agents["edge-huangpu-cun"]
    assert isinstance(modbus.source, ModbusSettings)
    slowest = max(r.interval.total_seconds() for r in modbus.source.registers)
    built = build_source(modbus)
    assert isinstance(built, ModbusSource)
    assert built.poller.silence == max(60.0, 10 * slowest)
    assert silence_reopen_s("never", [5.0]) is None
    assert silence_reopen_s(timedelta(seconds=90), [5.0]) == 90.0
    assert silence_reopen_s(None, [1.0]) == 60.0  # never below a minute


# --------------------------------------------------------------------------- over TCP


@pytest.fixture
async def tcp_devices() -> AsyncIterator[dict[str, tuple[int, int]]]:
    """Two devices on loopback, each its own pymodbus TCP server with slave 1: one speaking
    Modbus TCP, one a serial server passing RTU frames through (rtu_over_tcp); the same
    registers in each, the second with its holding registers' first value changed."""
    servers, tasks, ports = [], [], {}
    for transport, framer, first in (("tcp", FramerType.SOCKET, 0x41A4),
                                     ("rtu_over_tcp", FramerType.RTU, 0x4120)):
        port = unused_tcp_port()
        holding = [first, *HOLDING[1:]]
        device = SimDevice(id=1, simdata=(
            [SimData(0, datatype=DataType.BITS)], [SimData(0, datatype=DataType.BITS)],
            [SimData(0, values=holding, datatype=DataType.REGISTERS)],
            [SimData(0, values=INPUT, datatype=DataType.REGISTERS)]))
        server = ModbusTcpServer([device], framer=framer, address=("127.0.0.1", port))
        servers.append(server)
        tasks.append(asyncio.create_task(server.serve_forever()))
        ports[transport] = port, first
    try:
        yield ports
    finally:
        for server in servers:
            await server.shutdown()  # type: ignore[no-untyped-call]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("transport", ["tcp", "rtu_over_tcp"])
async def test_a_device_on_the_network_is_read_like_one_on_a_line(
        transport: str, tcp_devices: dict[str, tuple[int, int]]) -> None:
    port, first = tcp_devices[transport]
    settings = ModbusSettings.model_validate({
        "type": "modbus", "transport": transport, "host": "127.0.0.1", "tcp_port": port,
        "timeout": "0.5s", "reconnect_max": "0.3s", "registers": [
            {"sensor": "level", "address": 0, "type": "float32", "interval": "0.05s"},
            {"sensor": "temp", "address": 2, "type": "int16", "scale": 0.1,
             "interval": "0.05s"},
            {"sensor": "flow", "address": 6, "table": "input", "type": "float32",
             "word_order": "little", "interval": "0.05s"}]})
    source = ModbusSource(settings, agent_id="edge-test", clock=lambda: 7)
    got = await collect(source, lambda got, c: len(got) >= 6)
    level = struct.unpack(">f", struct.pack(">HH", first, 0))[0]
    assert {s.sensor: s.value for s in got} == {"level": level, "temp": pytest.approx(-20.0),
                                                 "flow": 20.5}
    assert source.stats()["timeout"] == source.stats()["open_failures"] == 0
    assert str(source.poller.link) == f"{transport.replace('_over_', '+')}://127.0.0.1:{port}"


async def test_each_device_of_a_tcp_source_is_its_own_connection(
        tcp_devices: dict[str, tuple[int, int]]) -> None:
    """Registers name their own device; one that cannot be reached (nothing listens on
    its port) is counted and retried, and the others are read meanwhile."""
    (tcp_port, _), dead = tcp_devices["tcp"], unused_tcp_port()
    settings = ModbusSettings.model_validate({
        "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "timeout": "0.5s",
        "reconnect_max": "0.2s", "registers": [
            {"sensor": "a", "tcp_port": tcp_port, "address": 0, "type": "float32",
             "interval": "0.05s"},
            {"sensor": "b", "tcp_port": tcp_port, "address": 2, "type": "int16",
             "interval": "0.05s"},
            {"sensor": "c", "host": "localhost", "tcp_port": dead, "address": 0,
             "interval": "0.05s"}]})
    assert [str(link) for link in settings.links()] == [
        f"tcp://127.0.0.1:{tcp_port}", f"tcp://localhost:{dead}"]
    source = ModbusSource(settings, agent_id="edge-test", clock=lambda: 7)
    got = await collect(source, lambda got, c: len(got) >= 4 and c["open_failures"] >= 2)
    assert {s.sensor for s in got} == {"a", "b"}
    assert {s.sensor: s.value for s in got}["b"] == -200.0
    assert source.stats()["opens"] == 1


@pytest.mark.parametrize(("spec", "says"), [
    ({"transport": "tcp"}, "registers[0] has no host"),
    ({"transport": "tcp", "host": "10.0.0.5", "port": "/dev/ttyUSB0"},
     "port: only for 'transport: rtu'"),
    ({"transport": "rtu_over_tcp", "host": "10.0.0.5", "baudrate": 19200},
     "baudrate: only for 'transport: rtu'"),
    ({}, "needs 'port'"),
    ({"port": "/dev/ttyUSB0", "host": "10.0.0.5"}, "host: only with 'transport: tcp'"),
    ({"transport": "udp", "host": "10.0.0.5"}, "'rtu', 'tcp' or 'rtu_over_tcp'"),
    ({"transport": "tcp", "host": "10.0.0.5:502"}, "should match pattern"),
])
def test_a_transport_takes_its_own_keys_and_says_which_are_wrong(
        spec: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        ModbusSettings.model_validate({"type": "modbus", **spec,
                                       "registers": [{"sensor": "s", "address": 0}]})


# --------------------------------------------------------------------------- the field's devices


@pytest.mark.parametrize(("registers", "spec", "value"), [
    # the temperature sensor: -25.0 degC sent as 10250 with offset-10000 encoding
    ([10250], {"encoding": "offset-10000", "scale": 0.1}, -25.0),
    ([250], {"encoding": "offset-10000", "scale": 0.1}, 25.0),
    ([0x80FA], {"encoding": "sign-magnitude", "scale": 0.1}, -25.0),
    ([0x00FA], {"type": "int16", "encoding": "sign-magnitude", "scale": 0.1}, 25.0),
    ([0x8000, 0x0010], {"type": "int32", "encoding": "sign-magnitude"}, -16.0),
    ([0x0010, 0x8000], {"type": "uint32", "encoding": "sign-magnitude",
                        "word_order": "little"}, -16.0),
    ([0x0001, 0x86A0], {"type": "uint32", "encoding": "offset-100000"}, -0.0),
    ([0x0001, 0x86A1], {"type": "uint32", "encoding": "offset-100000"}, -1.0),
])
def test_signed_encodings_decode_as_the_devices_mean_them(
        registers: list[int], spec: dict[str, object], value: float) -> None:
    assert decode(registers, reg(**spec)) == pytest.approx(value)


@given(st.sampled_from(["int16", "uint16", "int32", "uint32"]),
       st.sampled_from(["sign-magnitude", "offset-10000"]),
       st.sampled_from(["big", "little"]), st.integers(-9999, 9999), st.integers(-3, 2))
def test_encode_is_what_decode_reads_in_every_encoding(
        kind: str, encoding: str, order: str, raw: int, power: int) -> None:
    r = reg(type=kind, encoding=encoding, word_order=order, byte_order=order, scale=0.5)
    value = raw * 0.5 * 10.0 ** power
    assert decode(encode(value, r, power=power), r, power=power) == pytest.approx(value)


def test_a_scale_register_gives_a_power_of_ten() -> None:
    decimals = ScaleFrom(address=3)
    exponent = ScaleFrom(address=3, form="exponent")
    assert [scale_power(raw, decimals) for raw in (0, 2, 9, 10, 0xFFFF)] == [
        0, -2, -9, None, None]
    assert [scale_power(raw, exponent) for raw in (0, 2, 0xFFFE, 0xFFF0)] == [0, 2, -2, None]
    assert decode([12345], reg(), power=-2) == pytest.approx(123.45)


def test_a_sentinel_is_compared_with_the_raw_value_in_its_order() -> None:
    assert unsigned([0xFFFF], reg(faults=[0xFFFF])) == 0xFFFF
    assert unsigned([0x0080], reg(byte_order="little")) == 0x8000
    assert unsigned([0x0000, 0x7FC0], reg(type="float32", word_order="little")) == 0x7FC00000


@pytest.mark.parametrize(("spec", "says"), [
    ({"slave": 256}, "less than or equal to 255"),
    ({"slave": 0}, "greater than or equal to 1"),
    ({"table": "coil", "type": "int16"}, "type: not for a coil"),
    ({"table": "discrete", "faults": [1]}, "faults: not for a discrete"),
    ({"type": "float32", "encoding": "sign-magnitude"}, "is for integer types"),
    ({"encoding": "offset-70000"}, "70000 does not fit a uint16"),
    ({"encoding": "offset"}, "should match pattern"),
    ({"faults": [0x10000]}, "0x10000 do not fit a uint16"),
    ({"faults": ["0xZZ"]}, "'0xZZ' is not an integer"),
])
def test_a_register_says_what_is_wrong_with_it(spec: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        reg(**spec)


def test_slave_ids_up_to_255_and_hex_sentinels_are_accepted() -> None:
    r = reg(slave=250, faults=["0xFFFF", 0x8000], type="int32")
    assert (r.slave, r.faults) == (250, (0xFFFF, 0x8000))


FIELD = 250  # a slave id above 247, as several real devices allow
FIELD_HOLDING = [10250, 0xFFFF, 0x80FA, 2, 12345, 0x8000, 0, 0]
FIELD_INPUT = [0xFFFE, 1500, 0, 0]
FIELD_COILS = [True, False, True, False, False, False, False, False]
FIELD_DISCRETE = [False, True, False, False, False, False, False, False]


@pytest.fixture
async def field_line(tmp_path: Path) -> AsyncIterator[Path]:
    """pymodbus's serial server with one slave (id 250) holding the issue's registers."""
    agent_end, device_end = tmp_path / "ttyMB0", tmp_path / "ttyMB1"
    with NullModem(agent_end, device_end):
        device = SimDevice(id=FIELD, simdata=(
            [SimData(0, values=FIELD_COILS, datatype=DataType.BITS)],
            [SimData(0, values=FIELD_DISCRETE, datatype=DataType.BITS)],
            [SimData(0, values=FIELD_HOLDING, datatype=DataType.REGISTERS)],
            [SimData(0, values=FIELD_INPUT, datatype=DataType.REGISTERS)]))
        server = ModbusSerialServer([device], framer=FramerType.RTU, port=str(device_end),
                                    baudrate=9600)
        task = asyncio.create_task(server.serve_forever())
        try:
            yield agent_end
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_the_field_s_registers_read_as_their_devices_mean_them(field_line: Path) -> None:
    """Coils and discrete inputs, a slave id above 247, signed encodings, a decimal-point
    register and an exponent register, and fault sentinels (no value; counted)."""
    every = {"slave": FIELD, "interval": "0.05s"}
    source = source_for(field_line, [{**every, **r} for r in [
        {"sensor": "cold-room", "address": 0, "encoding": "offset-10000", "scale": 0.1},
        {"sensor": "co", "address": 1, "scale": 0.1, "faults": [0xFFFF, 0x8000]},
        {"sensor": "freezer", "address": 2, "encoding": "sign-magnitude", "scale": 0.1},
        {"sensor": "level", "address": 4, "scale_from": {"address": 3}},
        {"sensor": "gas", "address": 5, "type": "int16", "faults": ["0x8000"]},
        {"sensor": "flow", "table": "input", "address": 1,
         "scale_from": {"address": 0, "form": "exponent"}},
        {"sensor": "door", "table": "coil", "address": 2},
        {"sensor": "pump-off", "table": "coil", "address": 1},
        {"sensor": "float-switch", "table": "discrete", "address": 1},
    ]])
    got = await collect(source, lambda got, c: len({s.sensor for s in got}) == 9)
    last = {s.sensor: (s.value, s.fault) for s in got}
    assert last == {
        "cold-room": (pytest.approx(-25.0), ""), "co": (None, "sentinel"),
        "freezer": (pytest.approx(-25.0), ""), "level": (pytest.approx(123.45), ""),
        "gas": (None, "sentinel"), "flow": (pytest.approx(15.0), ""),
        "door": (1.0, ""), "pump-off": (0.0, ""), "float-switch": (1.0, "")}
    c = source.stats()
    assert c["fault_sentinel"] >= 2
    assert c["timeout"] == c.get("scale_unread", 0) == c.get("split_requests", 0) == 0
    # holding 0-5 (the decimal-point register 3 with them), input 0-1, coils 1-2, discrete 1
    assert len(source.poller.blocks) == 4


async def test_slave_ids_above_247_are_warned_at_start_and_by_edge_check(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import dataclasses

    from gridcall.edge_agent.commissioning import CheckOptions
    from gridcall.edge_agent.source_factory import build_source, source_checks

    spec = load_config(SAMPLE_DISTRICT).agents["edge-huangpu-cun"]
    assert isinstance(spec.source, ModbusSettings)
    moved = [r.model_copy(update={"slave": 248 + r.slave}) if r.slave > 1 else r
             for r in spec.source.registers]
    spec = dataclasses.replace(spec, source=spec.source.model_copy(update={
        "registers": tuple(moved), "port": str(tmp_path / "absent")}))
    build_source(spec)
    (said,) = [r.getMessage() for r in caplog.records if "above 247" in r.getMessage()]
    assert "slave ids 250, 251 are above 247" in said
    checks = await source_checks(spec, CheckOptions(config=SAMPLE_DISTRICT), None)
    assert [(c.name, c.status) for c in checks] == [("modbus slave ids", "WARN"),
                                                   ("modbus port", "FAIL")]
    assert checks[0].detail.startswith("slave ids 250, 251 are above 247")


async def test_the_simulated_devices_serve_coils_discrete_inputs_and_encodings() -> None:
    """simulators/devices.py's pymodbus devices hold what the map reads back: bits (kept
    16 to a word by pymodbus's simulator), and signed encodings."""
    from gridcall.simulators.devices import modbus_devices

    port = unused_tcp_port()
    settings = ModbusSettings.model_validate({
        "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "tcp_port": port,
        "timeout": "0.5s", "registers": [{"interval": "0.05s", **r} for r in [
            {"sensor": "door", "table": "coil", "address": 3},
            {"sensor": "pump", "table": "coil", "address": 20},
            {"sensor": "lamp", "table": "coil", "address": 21},
            {"sensor": "float", "table": "discrete", "address": 1},
            {"sensor": "cold", "address": 0, "encoding": "offset-10000", "scale": 0.1},
            {"sensor": "freezer", "address": 1, "encoding": "sign-magnitude", "scale": 0.1},
        ]]})
    want = {"door": 1.0, "pump": 1.0, "lamp": 0.0, "float": 1.0, "cold": -25.0,
            "freezer": -18.5}
    server = ModbusTcpServer(modbus_devices(settings.registers, lambda s, t: want[s]),
                             address=("127.0.0.1", port))
    serving = asyncio.create_task(server.serve_forever())
    try:
        source = ModbusSource(settings, agent_id="edge-test")
        got = await collect(source, lambda got, c: len({s.sensor for s in got}) == len(want))
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    assert {s.sensor: s.value for s in got} == pytest.approx(want)


def crc16(frame: bytes) -> bytes:
    """Modbus RTU's CRC (polynomial 0xA001, initial 0xFFFF), low byte first: computed here,
    not by pymodbus, so the frames below are checked against the spec, not against it."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


def rtu(hex_pdu: str) -> bytes:
    adu = bytes.fromhex(hex_pdu)
    return adu + crc16(adu)


async def test_the_frames_on_the_line_are_the_spec_s_and_decode_exactly(
        tmp_path: Path) -> None:
    """What crosses the serial line, byte for byte (Modbus over Serial Line v1.02 and the
    Application Protocol v1.1b3): the agent's four requests to slave 250 and the device's
    answers, and the readings those answers decode to."""
    agent_end, device_end = tmp_path / "ttyMB0", tmp_path / "ttyMB1"
    sent: list[bytes] = []  # the device's answers
    heard = bytearray()  # what the device received

    def trace(sending: bool, data: bytes) -> bytes:
        if sending:
            sent.append(bytes(data))
        else:
            heard.extend(data)
        return data

    with NullModem(agent_end, device_end):
        device = SimDevice(id=FIELD, simdata=(
            [SimData(0, values=FIELD_COILS, datatype=DataType.BITS)],
            [SimData(0, values=FIELD_DISCRETE, datatype=DataType.BITS)],
            [SimData(0, values=FIELD_HOLDING, datatype=DataType.REGISTERS)],
            [SimData(0, values=FIELD_INPUT, datatype=DataType.REGISTERS)]))
        server = ModbusSerialServer([device], framer=FramerType.RTU, port=str(device_end),
                                    baudrate=9600, trace_packet=trace)
        serving = asyncio.create_task(server.serve_forever())
        try:
            source = source_for(agent_end, [{"slave": FIELD, "interval": "0.05s", **r} for r in [
                {"sensor": "cold-room", "address": 0, "encoding": "offset-10000",
                 "scale": 0.1},
                {"sensor": "co", "address": 1, "scale": 0.1, "faults": [0xFFFF]},
                {"sensor": "freezer", "address": 2, "encoding": "sign-magnitude",
                 "scale": 0.1},
                {"sensor": "level", "address": 4, "scale_from": {"address": 3}},
                {"sensor": "gas", "address": 5, "type": "int16", "faults": [0x8000]},
                {"sensor": "flow", "table": "input", "address": 1,
                 "scale_from": {"address": 0, "form": "exponent"}},
                {"sensor": "pump-off", "table": "coil", "address": 1},
                {"sensor": "door", "table": "coil", "address": 2},
                {"sensor": "float-switch", "table": "discrete", "address": 1},
            ]])
            got = await collect(source, lambda got, c: len({s.sensor for s in got}) == 9)
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
    exchanges = {
        # slave FA, read holding registers 0-5: 10250, 0xFFFF, 0x80FA, 2, 12345, 0x8000
        rtu("FA03 0000 0006"): rtu("FA03 0C 280A FFFF 80FA 0002 3039 8000"),
        # read input registers 0-1: the exponent 0xFFFE (-2), then 1500
        rtu("FA04 0000 0002"): rtu("FA04 04 FFFE 05DC"),
        # read coils 1-2: coil 1 off, coil 2 on (bit 0 is the first coil asked for)
        rtu("FA01 0001 0002"): rtu("FA01 01 02"),
        # read discrete input 1: on
        rtu("FA02 0001 0001"): rtu("FA02 01 01"),
    }
    for request, answer in exchanges.items():
        assert request in heard, request.hex()
        assert answer in sent, answer.hex()
    assert set(sent) == set(exchanges.values())
    assert {s.sensor: s.value for s in got if not s.fault} == {
        "cold-room": pytest.approx(-25.0), "freezer": pytest.approx(-25.0),
        "level": pytest.approx(123.45), "flow": pytest.approx(15.0), "pump-off": 0.0,
        "door": 1.0, "float-switch": 1.0}
    assert {s.sensor for s in got if s.fault == "sentinel"} == {"co", "gas"}


def test_a_register_scaled_by_itself_is_a_map_problem() -> None:
    from gridcall.config.sources import map_problems

    settings = ModbusSettings.model_validate({
        "type": "modbus", "port": "/dev/ttyUSB0", "registers": [
            {"sensor": "a", "address": 4, "type": "int32", "scale_from": {"address": 5}},
            {"sensor": "b", "address": 6, "scale_from": {"address": 6, "table": "input"}}]})
    assert list(map_problems(settings)) == [(
        ("registers", 0, "scale_from", "address"),
        "5 is this register's own value: the scale comes from another register")]


def test_after_its_first_request_each_connection_polls_on_the_grid_of_its_interval() -> None:
    """Two devices first read 30 ms apart are read in the same tick from then on (their
    answers reach the agent as one burst), a late poll goes out at once, never earlier."""
    first, second = next_tick(12.34, 0.1, 12.35), next_tick(12.37, 0.1, 12.38)
    assert first == second == pytest.approx(12.4)
    assert next_tick(first, 0.1, first + 0.01) == pytest.approx(12.5)
    assert next_tick(12.4, 0.1, 12.73) == 12.73  # behind (a slow device): now
    assert next_tick(30.0, 60.0, 30.5) == pytest.approx(60.0)


@given(st.integers(1, 10**7), st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.3, 1.0, 60.0]))
def test_a_request_on_the_grid_is_due_again_one_interval_later(k: int, interval: float) -> None:
    """A tick is never taken for the one before it: k * interval / interval can come out a
    hair below k in floating point, and the device was then polled twice in one tick."""
    due = k * interval
    assert next_tick(due, interval, due) == pytest.approx(due + interval, rel=1e-12)
