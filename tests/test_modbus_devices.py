"""Register maps of devices people own, from their public manuals, against pymodbus's own
TCP server holding the manuals' worked values: an Eastron SDM energy meter (IEEE 754
floats in two input registers, high word first), an SHT30 RS-485 transmitter (offset-10000
for below zero), a CO transmitter with its fault in a register of its own. The maps are
the block in docs/install-edge.md, so the doc's example is what is tested.
"""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridcall.config.sources import ModbusSettings, Register
from gridcall.edge_agent.modbus_source import ModbusSource
from gridcall.edge_agent.sources import Sample
from gridcall.firmware_bridge.modbus import decode
from tests.polling import draining, wait_until
from tests.servers import unused_tcp_port

DOC = Path(__file__).parent.parent / "docs" / "install-edge.md"


def doc_source() -> dict[str, Any]:
    """The ``source`` block after ``<!-- device-maps -->`` in docs/install-edge.md."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- device-maps -->\n```yaml\n(.*?)```", text, re.S)
    assert block is not None, "docs/install-edge.md lost its device-maps block"
    source: dict[str, Any] = yaml.safe_load(block.group(1))["source"]
    return source


def reg(**kw: object) -> Register:
    return Register.model_validate({"sensor": "s", "address": 0, **kw})


def words(value: float) -> list[int]:
    """A float32 as two registers, high word first (ABCD)."""
    return list(struct.unpack(">2H", struct.pack(">f", value)))


# ---------------------------------------------------------- the manuals' worked values

@pytest.mark.parametrize(("registers", "spec", "value"), [
    # Eastron SDM: "Raw Hex Output: 43 66 80 00 ... (Expected: ~230.5 V)", input 30001
    # (https://valtoris.com/?p=40793); in the wrong word order, nonsense
    ([0x4366, 0x8000], {"table": "input", "type": "float32"}, 230.5),
    ([0x4366, 0x8000], {"table": "input", "type": "float32", "word_order": "little"},
     -2.4178e-41),
    # XY-MD02: "Temperature value=0x131 ... 305 / 10 = 30.5", "0xFF33 ... -20.5",
    # "Humidity value = 0x222 ... 54.6" (https://elektrobot.hu/termek.php?filename=5158.html)
    ([0x0131], {"table": "input", "type": "int16", "scale": 0.1}, 30.5),
    ([0xFF33], {"table": "input", "type": "int16", "scale": 0.1}, -20.5),
    ([0x0222], {"table": "input", "scale": 0.1}, 54.6),
    # KinCony SHT30 transmitter: "register value=250, actual temperature: 250*0.1=25",
    # "register value=10250, actual temperature: -1*(10250-10000)*0.1" (the page prints
    # the result as 25℃, dropping the sign it just applied), "value=500 ... 50(%RH)"
    ([250], {"table": "input", "encoding": "offset-10000", "scale": 0.1}, 25.0),
    ([10250], {"table": "input", "encoding": "offset-10000", "scale": 0.1}, -25.0),
    ([500], {"table": "input", "scale": 0.1}, 50.0),
    # Greystone CMD5B4: 40003 "Temperature value x 10 ... For example: 214 = 21.4 °C"
    ([214], {"scale": 0.1}, 21.4),
])
def test_the_manuals_worked_examples_decode_as_they_say(
        registers: list[int], spec: dict[str, object], value: float) -> None:
    assert decode(registers, reg(**spec)) == pytest.approx(value, rel=1e-4)


# --------------------------------------------------------------------------- on pymodbus's server

METER = 1  # the doc's slave ids
SHT30 = 2
CO = 3
METER_INPUT = [0] * 80
for address, reading in ((0, 230.5), (6, 1.25), (12, 287.5), (70, 50.0), (72, 1234.5)):
    METER_INPUT[address:address + 2] = words(reading)
if METER_INPUT[0:2] != [0x4366, 0x8000]:  # the worked example's bytes, as the manual has them
    raise AssertionError(METER_INPUT[0:2])
SHT30_INPUT = [10250, 500, *words(-25.0), *words(50.0)]
CO_HOLDING = [0, 35, 214, 0, 0, 0, 0, 0]
MAX_PER_REQUEST = 60
"""The SDM72D-M's limit: "Each request for data must be restricted to 30 parameters or
less" (two registers each), else "a Modbus Protocol exception code"."""


async def meter_limit(function_code: int, start: int, address: int, count: int,
                      current: list[int], set_values: object) -> ExcCodes | None:
    return ExcCodes.ILLEGAL_VALUE if count > MAX_PER_REQUEST else None


def device(slave: int, *, holding: list[int] | None = None, inputs: list[int] | None = None,
           action: Any = None) -> SimDevice:
    return SimDevice(id=slave, action=action, simdata=(
        [SimData(0, datatype=DataType.BITS)], [SimData(0, datatype=DataType.BITS)],
        [SimData(0, values=holding or [0] * 8, datatype=DataType.REGISTERS)],
        [SimData(0, values=inputs or [0] * 8, datatype=DataType.REGISTERS)]))


@pytest.fixture
async def devices() -> AsyncIterator[int]:
    """A serial server's TCP port with the three devices behind it, as pymodbus serves."""
    port = unused_tcp_port()
    server = ModbusTcpServer([device(METER, inputs=METER_INPUT, action=meter_limit),
                              device(SHT30, inputs=SHT30_INPUT),
                              device(CO, holding=CO_HOLDING)],
                             address=("127.0.0.1", port))
    serving = asyncio.create_task(server.serve_forever())
    try:
        yield port
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


async def read_all(source: ModbusSource, n: int) -> list[Sample]:
    async with draining(source) as got:
        assert await wait_until(lambda: len({s.sensor for s in got}) == n)
    return got


async def test_the_docs_device_maps_read_the_devices_as_their_manuals_say(
        devices: int) -> None:
    source_cfg = doc_source()
    source_cfg.update(host="127.0.0.1", tcp_port=devices, timeout="0.5s",
                      registers=[{**r, "interval": "0.05s"} for r in source_cfg["registers"]])
    settings = ModbusSettings.model_validate(source_cfg)
    source = ModbusSource(settings, agent_id="edge-test")
    got = await read_all(source, len(settings.registers))
    assert {s.sensor: s.value for s in got} == pytest.approx({
        "meter-volts": 230.5, "meter-amps": 1.25, "meter-watts": 287.5, "meter-hz": 50.0,
        "meter-kwh": 1234.5, "cold-room-t": -25.0, "cold-room-rh": 50.0,
        "garage-co": 35.0, "garage-t": 21.4, "garage-co-fault": 0.0})
    stats = source.stats()
    assert stats["timeout"] == stats.get("split_requests", 0) == 0


async def test_a_meter_refusing_a_request_over_its_limit_is_read_register_by_register(
        devices: int) -> None:
    """A whole SDM map (every float from 30001 to 30079, 80 registers in one merged request)
    is refused with ILLEGAL_VALUE by a meter serving 60 at most: the agent splits it and
    the five values the manual's map names still arrive (before, the block was refused
    at every poll and the meter never read)."""
    registers = [{"sensor": f"r{a}", "slave": METER, "table": "input", "address": a,
                  "type": "float32", "interval": "0.05s"} for a in range(0, 80, 2)]
    settings = ModbusSettings.model_validate({
        "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "tcp_port": devices,
        "timeout": "0.5s", "registers": registers})
    source = ModbusSource(settings, agent_id="edge-test")
    assert [b.count for b in source.poller.blocks] == [80]  # one request, over the limit
    got = await read_all(source, len(registers))
    values = {s.sensor: s.value for s in got}
    assert {k: values[k] for k in ("r0", "r6", "r12", "r70", "r72")} == pytest.approx({
        "r0": 230.5, "r6": 1.25, "r12": 287.5, "r70": 50.0, "r72": 1234.5})
    stats = source.stats()
    assert stats["split_requests"] == 1
    assert stats["exception_illegal_value"] >= 1
    assert all(b.count == 2 for b in source.poller.blocks)


async def test_a_vaisala_transmitters_not_available_values_are_faults_not_readings() -> None:
    """Vaisala HMW90: a 16-bit register holds 0x8000 when the "Value is not available
    (quiet NaN)", 0x7FFF / 0x8001 past ±32767; a float register holds a quiet NaN
    (https://manualshive.com/en/manual/vaisala/humicap-hmw90-series/3212305?page=107 ,
    Table 41). With those as the register's `faults`, and a float's NaN by itself, each is
    a fault sample (health fault, counted), never a reading; a valid value next to them
    reads as it is. The manual lists T at 0005…0006 (float) and 0259 (×0.01): the
    addresses here are this test's own."""
    port = unused_tcp_port()
    holding = [0] * 16
    holding[0:2] = [0x7FC0, 0x0000]  # float RH: quiet NaN
    holding[2:4] = words(21.37)      # float T: valid
    holding[8] = 0x8000              # int16 T ×0.01: not available
    holding[9] = 2137                # int16 T ×0.01: 21.37
    server = ModbusTcpServer([device(1, holding=holding)], address=("127.0.0.1", port))
    serving = asyncio.create_task(server.serve_forever())
    every = {"slave": 1, "interval": "0.05s"}
    sentinels = {"type": "int16", "scale": 0.01, "faults": ["0x8000", "0x7FFF", "0x8001"]}
    settings = ModbusSettings.model_validate({
        "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "tcp_port": port,
        "timeout": "0.5s", "registers": [{**every, **r} for r in [
            {"sensor": "rh-float", "address": 0, "type": "float32"},
            {"sensor": "t-float", "address": 2, "type": "float32"},
            {"sensor": "t-na", "address": 8, **sentinels},
            {"sensor": "t-int", "address": 9, **sentinels}]]})
    try:
        source = ModbusSource(settings, agent_id="edge-test")
        got = await read_all(source, 4)
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    last = {s.sensor: (s.value, s.fault) for s in got}
    assert last == {"rh-float": (None, "sentinel"), "t-float": (pytest.approx(21.37), ""),
                    "t-na": (None, "sentinel"), "t-int": (pytest.approx(21.37), "")}
    stats = source.stats()
    assert stats["non_finite"] >= 1
    assert stats["fault_sentinel"] >= 1
