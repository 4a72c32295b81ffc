"""Modbus polling through pymodbus (RTU on a serial line, Modbus TCP, RTU over TCP), with
register maps from config.

The pure part turns registers into numbers and back (:func:`decode`, :func:`encode`) and
plans requests (:func:`plan`: registers of one slave, table and interval that lie close
together are read in one request). :class:`ModbusPoller` runs the plan on one connection
(a :class:`~gridcall.config.sources.ModbusLink`: pymodbus's ``AsyncModbusSerialClient``,
or its ``AsyncModbusTcpClient`` with the socket or the RTU framer) and yields
``(register, value, ts)``; timeouts, exception responses and lost connections are counted
by reason (``counts``) and never end the polling.

Why :func:`decode` is ours rather than ``client.convert_from_registers``: pymodbus converts
with a word order but no byte order inside a register, and field devices need both
("BADC" floats); struct does the work, we only put the bytes in order.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from gridcall.config.sources import ModbusLink, ModbusSettings, Register
from gridcall.firmware_bridge.errors import EncodeError
from gridcall.wire.backoff import Backoff, Reconnect
from gridcall.wire.cancelsafe import cancel_safe
from gridcall.wire.clock import Clock, wall_clock

log = logging.getLogger(__name__)

REOPEN_MIN_S = 0.1
"""First wait before reopening a port that could not be opened (doubling to
``reconnect_max``)."""
MAX_REGISTERS = 125
"""The most registers one read request may ask for (Modbus spec, functions 3 and 4)."""
MAX_GAP = 8
"""Read up to this many unused registers to save a request (a request costs ~10 ms at
9600 baud; 8 unused registers cost 16 bytes, ~17 ms, so about break-even)."""

_FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}


def _ordered(raw: bytes, reg: Register) -> bytes:
    """Big-endian bytes of the value from the registers' bytes as they came off the wire."""
    words = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if reg.byte_order == "little":
        words = [w[::-1] for w in words]
    if reg.word_order == "little":
        words.reverse()
    return b"".join(words)


def decode(registers: Sequence[int], reg: Register) -> float:
    """The reading the registers hold: raw value (by type and order) × scale + offset."""
    raw = struct.pack(f">{len(registers)}H", *registers)
    (value,) = struct.unpack(_FORMATS[reg.type], _ordered(raw, reg))
    return float(value) * reg.scale + reg.offset


def encode(value: float, reg: Register) -> list[int]:
    """The registers a device would hold for this reading (the simulator's side)."""
    raw_value: float | int = (value - reg.offset) / reg.scale
    if reg.type != "float32":
        raw_value = round(raw_value)
    try:
        big = struct.pack(_FORMATS[reg.type], raw_value)
    except (struct.error, OverflowError) as exc:
        raise EncodeError(f"{value} does not fit {reg.type} for {reg.sensor}") from exc
    wire = _ordered(big, reg)  # the reordering is its own inverse
    return list(struct.unpack(f">{len(wire) // 2}H", wire))


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: consecutive registers of one slave and table, and which of the
    configured registers they hold."""

    slave: int
    table: str
    address: int
    count: int
    interval: float
    registers: tuple[Register, ...]


def plan(registers: Sequence[Register], *, max_gap: int = MAX_GAP) -> list[Block]:
    """Requests that read every register: neighbours of one slave, table and interval are
    merged while the gap between them is at most ``max_gap`` and the request stays within
    :data:`MAX_REGISTERS`."""
    groups: dict[tuple[int, str, float], list[Register]] = {}
    for reg in registers:
        key = (reg.slave, reg.table, reg.interval.total_seconds())
        groups.setdefault(key, []).append(reg)
    blocks: list[Block] = []
    for (slave, table, interval), regs in sorted(groups.items()):
        current: list[Register] = []
        for reg in sorted(regs, key=lambda r: r.address):
            if current:
                start, end = current[0].address, max(r.last_address for r in current)
                if (reg.address - end - 1 > max_gap
                        or reg.last_address - start + 1 > MAX_REGISTERS):
                    blocks.append(_block(slave, table, interval, current))
                    current = []
            current.append(reg)
        if current:
            blocks.append(_block(slave, table, interval, current))
    return blocks


def _block(slave: int, table: str, interval: float, regs: list[Register]) -> Block:
    start = regs[0].address
    end = max(r.last_address for r in regs)
    return Block(slave, table, start, end - start + 1, interval, tuple(regs))


Client = AsyncModbusSerialClient | AsyncModbusTcpClient


class ModbusPoller:
    """Poll the registers of one connection forever; ``readings()`` yields
    (register, value, ts)."""

    def __init__(self, settings: ModbusSettings, link: ModbusLink | None = None,
                 registers: Sequence[Register] | None = None, *, clock: Clock = wall_clock,
                 silence: float | None = None, name: str = "",
                 counts: Counter[str] | None = None) -> None:
        """``link``: the connection (default: the settings' only one); ``registers``: those
        read on it (default: all of the settings'); ``counts``: counters shared with the
        pollers of the source's other connections (default: its own)."""
        self.settings = settings
        links = settings.links()
        if link is None:
            if len(links) != 1:
                raise ValueError(f"{len(links)} Modbus connections: name the poller's link")
            (link,) = links
        self.link = link
        self.where = str(link)
        self.silence = silence
        """Reopen the connection when no slave answered anything for this many seconds
        (None: never): a wedged converter reports no error, it just never answers."""
        self.clock = clock
        self.name = name or self.where
        self.blocks = plan(links[link] if registers is None else registers)
        self.counts: Counter[str] = Counter() if counts is None else counts
        self.connected = asyncio.Event()

    def _client(self) -> Client:
        s, link = self.settings, self.link
        # retries=0, reconnect_delay=0: we retry and reconnect ourselves, with our own
        # backoff and counters
        if link.transport == "rtu":
            return AsyncModbusSerialClient(
                link.port, baudrate=s.baudrate, bytesize=s.bytesize, parity=s.parity,
                stopbits=s.stopbits, timeout=s.timeout.total_seconds(), retries=0,
                reconnect_delay=0, name=f"gridcall-{self.name}")
        return AsyncModbusTcpClient(
            link.host, port=link.tcp_port,
            framer=FramerType.SOCKET if link.transport == "tcp" else FramerType.RTU,
            timeout=s.timeout.total_seconds(), retries=0, reconnect_delay=0,
            name=f"gridcall-{self.name}")

    async def readings(self) -> AsyncIterator[tuple[Register, float, int]]:
        cap = self.settings.reconnect_max.total_seconds()
        retry = Reconnect(Backoff(REOPEN_MIN_S, cap))
        ever = False
        said = False  # one log line per outage; the counters carry the rest
        said_silent = False  # logged this silence already
        silent_end = False  # the last connection was closed by us, for silence
        while True:
            client = self._client()
            try:
                # cancel_safe: pymodbus's connect (asyncio.wait_for on 3.11) may swallow a
                # cancel that arrives as the port opens, and this loop would never end
                ok = await cancel_safe(client.connect(), what=f"{self.name}: connect")
            except (ModbusException, OSError) as exc:
                log.debug("%s: connect failed: %s", self.name, exc)
                ok = False
            if not ok:
                client.close()
                self.counts["open_failures"] += 1
                if not said:
                    said = True
                    log.warning("%s: cannot open %s; retrying with backoff up to %.0fs",
                                self.name, self.where, cap)
                await retry.pause(retry.failed(
                    ConnectionException(f"cannot open {self.where}")))
                continue
            self.counts["opens"] += 1
            if ever and not silent_end:  # after a reopen for silence: it never went away
                self.counts["reconnects"] += 1
                log.warning("%s: %s is back", self.name, self.where)
            ever, said, silent_end = True, False, False
            retry.connected()
            self.connected.set()
            try:
                async for item in self._poll(client):
                    said_silent = False
                    yield item
            except _Silent:
                silent_end = True
                self.counts["silent_reopens"] += 1
                if not said_silent:
                    said_silent = True
                    log.warning("%s: no slave on %s answered for %.0fs (a wedged converter?); "
                                "reopening it, and again after each %.0fs without an answer",
                                self.name, self.where, self.silence, self.silence)
            except (ConnectionException, OSError) as exc:
                self.counts["disconnects"] += 1
                log.warning("%s: lost %s (%s); reopening", self.name, self.where, exc)
            except Exception as exc:  # a pymodbus surprise must not stop a cabinet's reader
                self.counts["unexpected_errors"] += 1
                failure = retry.failed(exc)
                log.exception("%s: unexpected error polling %s; reopening after %.1fs",
                              self.name, self.where, failure.delay)
                await retry.pause(failure)
            finally:
                self.connected.clear()
                client.close()

    async def _poll(self, client: Client) -> AsyncIterator[tuple[Register, float, int]]:
        loop = asyncio.get_running_loop()
        due = [loop.time()] * len(self.blocks)
        answered = loop.time()  # the last answer of any kind, from any slave
        while True:
            i = min(range(len(due)), key=due.__getitem__)
            wait = due[i] - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            block = self.blocks[i]
            due[i] = max(due[i] + block.interval, loop.time())
            if not client.connected:
                raise ConnectionException("the port closed")
            if self.silence is not None and loop.time() - answered > self.silence:
                raise _Silent
            read = (client.read_holding_registers if block.table == "holding"
                    else client.read_input_registers)
            self.counts["requests"] += 1
            try:
                response = await cancel_safe(
                    read(block.address, count=block.count, device_id=block.slave),
                    what=f"{self.name}: request")
            except ConnectionException:
                raise
            except ModbusException as exc:
                # pymodbus raises ModbusIOException when no (valid) answer came in time
                reason = "timeout" if isinstance(exc, ModbusIOException) else (
                    type(exc).__name__)
                self.counts[reason] += 1
                self._log_once(reason, block, str(exc))
                continue
            answered = loop.time()  # an exception response is an answer too: it is alive
            if response.isError():
                code = int(getattr(response, "exception_code", 0))
                reason = f"exception_{_EXCEPTIONS.get(code, code)}"
                self.counts[reason] += 1
                self._log_once(reason, block, str(response))
                if code == ILLEGAL_ADDRESS and len(block.registers) > 1:
                    # a merged request spans an address the device does not have: read
                    # its registers one by one from now on, so the others still arrive
                    self.counts["split_requests"] += 1
                    singles = [_block(block.slave, block.table, block.interval, [r])
                               for r in block.registers]
                    self.blocks[i:i + 1] = singles
                    due[i:i + 1] = [loop.time()] * len(singles)
                continue
            registers = list(getattr(response, "registers", []))
            if len(registers) != block.count:
                self.counts["short_answer"] += 1
                continue
            ts = self.clock()
            self.counts["responses"] += 1
            for reg in block.registers:
                offset = reg.address - block.address
                value = decode(registers[offset:offset + reg.width], reg)
                if not math.isfinite(value):
                    self.counts["non_finite"] += 1
                    continue
                yield reg, value, ts

    def _log_once(self, reason: str, block: Block, detail: str) -> None:
        if self.counts[reason] == 1:
            log.warning("%s: slave %d %s %d+%d: %s (%s); counted as %r from now on",
                        self.name, block.slave, block.table, block.address, block.count,
                        reason, detail, reason)


class _Silent(Exception):
    """No slave answered for the poller's ``silence``: close and reopen the port."""


ILLEGAL_ADDRESS = 2
_EXCEPTIONS = {1: "illegal_function", 2: "illegal_address", 3: "illegal_value",
               4: "device_failure", 5: "acknowledge", 6: "device_busy",
               10: "gateway_path_unavailable", 11: "gateway_no_response"}
"""Modbus exception codes by name (Modbus Application Protocol v1.1b3, section 7)."""
