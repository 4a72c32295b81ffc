"""Modbus polling through pymodbus (RTU on a serial line, Modbus TCP, RTU over TCP), with
register maps from config.

The pure part turns registers into numbers and back (:func:`decode`, :func:`encode`) and
plans requests (:func:`plan`: registers of one slave, table and interval that lie close
together are read in one request). :class:`ModbusPoller` runs the plan on one connection
(a :class:`~gridcall.config.sources.ModbusLink`: pymodbus's ``AsyncModbusSerialClient``,
or its ``AsyncModbusTcpClient`` with the socket or the RTU framer) and yields each
answer's readings as the caller makes them (``make(sensor, ts, value, fault)``, the
agent's ``Sample``); timeouts, exception responses and lost connections are counted
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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from gridcall.config.sources import BIT_TABLES, ModbusLink, ModbusSettings, Register, ScaleFrom
from gridcall.firmware_bridge.errors import EncodeError
from gridcall.wire.backoff import Backoff, Reconnect
from gridcall.wire.cancelsafe import cancel_safe, raise_if_cancelled
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

MAX_BITS = 2000
"""The most coils or discrete inputs one read request may ask for (functions 1 and 2)."""

SENTINEL = "sentinel"
"""The fault reason of a reading the device gave as one of its register's ``faults``
(the agent's :data:`gridcall.edge_agent.faults.SENTINEL`)."""

T = TypeVar("T")
Make = Callable[[str, int, "float | None", str], T]
"""What an answer's readings are made into: ``make(sensor, ts, value, fault)`` (the
agent passes its ``Sample``), so a reading is built once, not once here and again there."""

_FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}
_UNSIGNED = {1: ">H", 2: ">I"}


def _ordered(raw: bytes, reg: Register) -> bytes:
    """Big-endian bytes of the value from the registers' bytes as they came off the wire."""
    words = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if reg.byte_order == "little":
        words = [w[::-1] for w in words]
    if reg.word_order == "little":
        words.reverse()
    return b"".join(words)


def unsigned(registers: Sequence[int], reg: Register) -> int:
    """The value's bits as one unsigned integer, in the register's byte and word order:
    what a fault sentinel (``faults``) is compared with."""
    raw = _ordered(struct.pack(f">{len(registers)}H", *registers), reg)
    (bits,) = struct.unpack(_UNSIGNED[len(registers)], raw)
    return int(bits)


def decode(registers: Sequence[int], reg: Register, *, power: int = 0) -> float:
    """The reading the registers hold: raw value (by type, order and encoding) × 10**power
    (from a ``scale_from`` register) × scale + offset."""
    raw_bytes = _ordered(struct.pack(f">{len(registers)}H", *registers), reg)
    value: float | int
    if reg.encoding == "plain":
        (value,) = struct.unpack(_FORMATS[reg.type], raw_bytes)
    else:
        (bits,) = struct.unpack(_UNSIGNED[len(registers)], raw_bytes)
        n = reg.offset_n
        if n is not None:
            value = -(bits - n) if bits >= n else bits
        else:  # sign-magnitude
            top = 1 << (16 * len(registers) - 1)
            value = -(bits & (top - 1)) if bits & top else bits
    if power:
        value = value * 10.0 ** power
    return float(value) * reg.scale + reg.offset


def decode_bit(bit: bool, reg: Register) -> float:
    """A coil's or discrete input's reading: 0 or 1, × scale + offset."""
    return float(bit) * reg.scale + reg.offset


def scale_power(raw: int, scale_from: ScaleFrom) -> int | None:
    """The power of ten a ``scale_from`` register's raw value stands for (None: a value no
    device means: more than 9 decimals, or an exponent beyond ±9)."""
    if scale_from.form == "decimals":
        return -raw if 0 <= raw <= 9 else None
    exponent = raw - 0x10000 if raw & 0x8000 else raw  # a signed int16
    return exponent if -9 <= exponent <= 9 else None


def encode(value: float, reg: Register, *, power: int = 0) -> list[int]:
    """The registers a device would hold for this reading (the simulator's side)."""
    raw_value: float | int = (value - reg.offset) / reg.scale / 10.0 ** power
    if reg.type != "float32":
        raw_value = round(raw_value)
    try:
        if reg.encoding == "plain":
            big = struct.pack(_FORMATS[reg.type], raw_value)
        else:
            big = struct.pack(_UNSIGNED[reg.width], _encoded_bits(int(raw_value), reg))
    except (struct.error, OverflowError) as exc:
        raise EncodeError(f"{value} does not fit {reg.type} for {reg.sensor}") from exc
    wire = _ordered(big, reg)  # the reordering is its own inverse
    return list(struct.unpack(f">{len(wire) // 2}H", wire))


def _encoded_bits(raw: int, reg: Register) -> int:
    n = reg.offset_n
    if n is not None:
        if raw < 0:
            return n - raw
        if raw >= n:
            raise EncodeError(f"{raw} is not below the offset {n} of {reg.sensor}")
        return raw
    top = 1 << (16 * reg.width - 1)
    if abs(raw) >= top:
        raise EncodeError(f"{raw} does not fit {reg.type} sign-magnitude for {reg.sensor}")
    return top | -raw if raw < 0 else raw


@dataclass(frozen=True, slots=True)
class ScaleSource:
    """A register read only for the scale it gives other registers (``scale_from``)."""

    slave: int
    table: str
    address: int
    interval: timedelta

    @property
    def last_address(self) -> int:
        return self.address


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: consecutive registers (or bits) of one slave and table, which of
    the configured registers they hold, and which scale registers."""

    slave: int
    table: str
    address: int
    count: int
    interval: float
    registers: tuple[Register, ...]
    scales: tuple[ScaleSource, ...] = ()
    words: tuple[tuple[Register, int, int], ...] = ()
    """Per register of a register table: (register, its offset in the answer, a fast
    path): :data:`_UINT16` / :data:`_INT16` for one plain big-endian register without
    faults or ``scale_from`` (its value is the word itself, × scale + offset, exactly as
    :func:`decode` computes it), else :data:`_GENERAL` (:func:`decode`)."""
    plain: tuple[tuple[str, int, bool, float, float], ...] | None = None
    """When every register of the block takes a fast path and its scale and offset can
    make no value that is not finite: per register (sensor, offset in the answer,
    signed, scale, offset), the whole answer decoded in one pass without a check per
    value (:meth:`ModbusPoller.decode_answer`)."""


_GENERAL, _UINT16, _INT16 = 0, 1, 2


_FINITE_BOUND = 1e300
"""A scale and offset below this in magnitude keep any 16-bit word's reading finite."""


def _plain(registers: Sequence[Register], start: int
           ) -> tuple[tuple[str, int, bool, float, float], ...] | None:
    paths = [_fast_path(r) for r in registers]
    if not registers or _GENERAL in paths or not all(
            abs(r.scale) < _FINITE_BOUND and abs(r.offset) < _FINITE_BOUND
            for r in registers):
        return None
    return tuple((r.sensor, r.address - start, path == _INT16, r.scale, r.offset)
                 for r, path in zip(registers, paths, strict=True))


def _fast_path(reg: Register) -> int:
    if (reg.table in BIT_TABLES or reg.encoding != "plain" or reg.byte_order != "big"
            or reg.faults or reg.scale_from is not None):
        return _GENERAL
    return {"uint16": _UINT16, "int16": _INT16}.get(reg.type, _GENERAL)


def scale_source(reg: Register) -> ScaleSource | None:
    """The register ``reg`` takes its scale from, as one to read (None: it has none)."""
    if reg.scale_from is None:
        return None
    return ScaleSource(reg.slave, reg.scale_from.table or reg.table, reg.scale_from.address,
                       reg.interval)


def plan(registers: Sequence[Register], *, max_gap: int = MAX_GAP) -> list[Block]:
    """Requests that read every register (and every register another one takes its scale
    from): neighbours of one slave, table and interval are merged while the gap between
    them is at most ``max_gap`` and the request stays within :data:`MAX_REGISTERS`
    (:data:`MAX_BITS` for coils and discrete inputs)."""
    items: list[Register | ScaleSource] = list(registers)
    items += list(dict.fromkeys(s for r in registers if (s := scale_source(r)) is not None))
    groups: dict[tuple[int, str, float], list[Register | ScaleSource]] = {}
    for item in items:
        key = (item.slave, item.table, item.interval.total_seconds())
        groups.setdefault(key, []).append(item)
    blocks: list[Block] = []
    for (slave, table, interval), regs in sorted(groups.items()):
        limit = MAX_BITS if table in BIT_TABLES else MAX_REGISTERS
        current: list[Register | ScaleSource] = []
        for reg in sorted(regs, key=lambda r: r.address):
            if current:
                start, end = current[0].address, max(r.last_address for r in current)
                if (reg.address - end - 1 > max_gap
                        or reg.last_address - start + 1 > limit):
                    blocks.append(_block(slave, table, interval, current))
                    current = []
            current.append(reg)
        if current:
            blocks.append(_block(slave, table, interval, current))
    return blocks


def _block(slave: int, table: str, interval: float,
           items: Sequence[Register | ScaleSource]) -> Block:
    start = min(r.address for r in items)
    end = max(r.last_address for r in items)
    registers = tuple(r for r in items if isinstance(r, Register))
    scales = tuple(r for r in items if isinstance(r, ScaleSource))
    return Block(slave, table, start, end - start + 1, interval, registers, scales,
                 tuple((r, r.address - start, _fast_path(r)) for r in registers),
                 None if table in BIT_TABLES else _plain(registers, start))


def next_tick(due: float, interval: float, now: float) -> float:
    """When a request due at ``due`` is due next: at the next multiple of its interval on
    the event loop's clock (never before ``now``). The first request of each goes out at
    once; from then on every connection of the process polls an interval's requests in
    the same tick, so their answers come back together and the agent takes them as one
    burst (one wakeup and one outbox commit, not one per device:
    :meth:`gridcall.edge_agent.modbus_source.ModbusSource.bursts`).

    A ``due`` on the grid is ``k * interval`` as a float, and ``due / interval`` may come
    out a hair below ``k`` (``3 * 0.1 / 0.1`` is 2.9999999999999996): the tolerance keeps
    such a tick from being taken for the one before it, which polled the device twice in
    one tick (13 % of the ticks of a 100 ms grid)."""
    return max((math.floor(due / interval + _ON_GRID) + 1) * interval, now)


_ON_GRID = 1e-6
"""How close to a grid point (in intervals) a time counts as on it (:func:`next_tick`)."""


class Ticks:
    """One timer per poll tick for all the connections of a source, rather than one
    ``asyncio.sleep`` (a timer handle in the loop's heap) per connection and request:
    the pollers of a source poll on the same grid (:func:`next_tick`), so at 50 devices
    every tick's 50 waits end at one instant. Each waiter has a future of its own, so a
    poller's cancel ends its own wait only.

    With ``flush`` (a source of several connections), every request waits here, even
    one already due, and ``flush`` is called before any wait ends and whenever all
    ``members`` pollers wait: the source hands what its connections answered to the
    agent then, a whole tick's answers at once, and always before any of them polls
    again (:meth:`gridcall.edge_agent.modbus_source.ModbusSource.bursts`)."""

    __slots__ = ("_waiting", "flush", "idle", "members")

    def __init__(self, flush: Callable[[], None] | None = None, members: int = 0) -> None:
        self._waiting: dict[float, list[asyncio.Future[None]]] = {}
        self.flush = flush
        self.members = members
        self.idle = 0
        """Pollers waiting here now."""

    async def until(self, when: float) -> None:
        """Wait until the event loop's clock reads ``when`` (with ``flush``: at least
        until the loop's next turn, however late it is)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        waiting = self._waiting.get(when)
        if waiting is None:
            self._waiting[when] = waiting = []
            loop.call_at(when, self._fire, when)
        waiting.append(waiter)
        self.idle += 1
        try:
            if self.idle == self.members and self.flush is not None:
                self.flush()
            await waiter
        finally:
            self.idle -= 1

    def _fire(self, when: float) -> None:
        if self.flush is not None:
            # first: the agent's task is woken before the pollers' own, so it takes
            # what was answered before any of them sends its next request
            self.flush()
        for waiter in self._waiting.pop(when, ()):
            if not waiter.done():  # cancelled: its poller is stopping
                waiter.set_result(None)


Client = AsyncModbusSerialClient | AsyncModbusTcpClient


class ModbusPoller:
    """Poll the registers of one connection forever; ``answers(make)`` yields each
    answer's readings, made by ``make``."""

    def __init__(self, settings: ModbusSettings, link: ModbusLink | None = None,
                 registers: Sequence[Register] | None = None, *, clock: Clock = wall_clock,
                 silence: float | None = None, name: str = "",
                 counts: Counter[str] | None = None, ticks: Ticks | None = None) -> None:
        """``link``: the connection (default: the settings' only one); ``registers``: those
        read on it (default: all of the settings'); ``counts``: counters shared with the
        pollers of the source's other connections (default: its own); ``ticks``: the
        timers they share (default: its own)."""
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
        self.ticks = Ticks() if ticks is None else ticks
        self.scales: dict[ScaleSource, int] = {}
        """The latest raw value of each register others take their scale from."""
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

    async def answers(self, make: Make[T]) -> AsyncIterator[list[T]]:
        """The readings of each answered request, one list per answer, each made as
        ``make(sensor, ts, value, fault)`` (a block's registers share one answer and one
        timestamp: one hop through the generators per request, not per register); value
        None with fault :data:`SENTINEL`: the device gave one of the register's fault
        sentinels (``faults``), counted as ``fault_sentinel``, or a float NaN/inf (its
        "no value"), counted as ``non_finite``."""
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
                async for answer in self._poll(client, make):
                    said_silent = False
                    yield answer
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

    async def _poll(self, client: Client, make: Make[T]) -> AsyncIterator[list[T]]:
        loop = asyncio.get_running_loop()
        clock = loop.time
        until = self.ticks.until
        flushed = self.ticks.flush is not None  # every request passes the ticks' flush
        reads = {"holding": client.read_holding_registers,
                 "input": client.read_input_registers, "coil": client.read_coils,
                 "discrete": client.read_discrete_inputs}
        due = [clock()] * len(self.blocks)
        answered = clock()  # the last answer of any kind, from any slave
        while True:
            i = 0 if len(due) == 1 else min(range(len(due)), key=due.__getitem__)
            now = clock()
            if due[i] > now or flushed:
                await until(due[i])
                now = clock()
            block = self.blocks[i]
            due[i] = next_tick(due[i], block.interval, now)
            if not client.connected:
                raise ConnectionException("the port closed")
            if self.silence is not None and now - answered > self.silence:
                raise _Silent
            read = reads[block.table]
            self.counts["requests"] += 1
            try:
                # not cancel_safe (a task and an asyncio.wait per request): pymodbus's
                # wait_for may swallow a cancel only by returning the answer, and
                # raise_if_cancelled raises it then
                response = await read(block.address, count=block.count,
                                      device_id=block.slave)
                raise_if_cancelled()
            except ConnectionException:
                raise
            except ModbusException as exc:
                # pymodbus raises ModbusIOException when no (valid) answer came in time
                reason = "timeout" if isinstance(exc, ModbusIOException) else (
                    type(exc).__name__)
                self.counts[reason] += 1
                self._log_once(reason, block, str(exc))
                continue
            answered = clock()  # an exception response is an answer too: it is alive
            if response.isError():
                code = int(getattr(response, "exception_code", 0))
                reason = f"exception_{_EXCEPTIONS.get(code, code)}"
                self.counts[reason] += 1
                self._log_once(reason, block, str(response))
                parts: list[Register | ScaleSource] = [*block.registers, *block.scales]
                if code in SPLIT_ON and len(parts) > 1:
                    # a merged request spans an address the device does not have, or asks
                    # for more registers than it serves at once (an Eastron SDM72D-M: 30
                    # values): read its registers one by one from now on, so they arrive
                    self.counts["split_requests"] += 1
                    singles = [_block(block.slave, block.table, block.interval, [r])
                               for r in parts]
                    self.blocks[i:i + 1] = singles
                    due[i:i + 1] = [loop.time()] * len(singles)
                continue
            ts = self.clock()
            if block.table in BIT_TABLES:
                # bits come padded to whole bytes: at least count of them
                bits = list(getattr(response, "bits", []))
                if len(bits) < block.count:
                    self.counts["short_answer"] += 1
                    continue
                self.counts["responses"] += 1
                yield [make(reg.sensor, ts, decode_bit(bits[reg.address - block.address], reg),
                            "") for reg in block.registers]
                continue
            registers = getattr(response, "registers", None) or []
            if len(registers) != block.count:
                self.counts["short_answer"] += 1
                continue
            self.counts["responses"] += 1
            for src in block.scales:
                self.scales[src] = registers[src.address - block.address]
            yield self.decode_answer(block, registers, ts, make)

    def decode_answer(self, block: Block, registers: Sequence[int], ts: int,
                      make: Make[T]) -> list[T]:
        """The readings of one answered register block, in the block's order."""
        plain = block.plain
        if plain is not None:
            # a 16-bit word × scale + offset, as decode() computes it; finite by the plan
            return [make(sensor, ts, (registers[at] - 0x10000 if signed
                                      and registers[at] >= 0x8000 else registers[at])
                         * scale + offset, "")
                    for sensor, at, signed, scale, offset in plain]
        answer: list[T] = []
        isfinite = math.isfinite
        for reg, at, path in block.words:
            value: float
            if path != _GENERAL:
                raw = registers[at]
                if path == _INT16 and raw >= 0x8000:
                    raw -= 0x10000
                value = float(raw) * reg.scale + reg.offset
            else:
                words = registers[at:at + reg.width]
                if reg.faults and unsigned(words, reg) in reg.faults:
                    self.counts["fault_sentinel"] += 1
                    answer.append(make(reg.sensor, ts, None, SENTINEL))
                    continue
                power = 0
                if reg.scale_from is not None:
                    found = self._power(reg)
                    if found is None:
                        continue
                    power = found
                value = decode(words, reg, power=power)
            if not isfinite(value):
                # a float register's NaN (or inf) is the device's own "no value": Vaisala
                # transmitters send a quiet NaN "for unavailable values (e.g. in case of
                # measurement error)": a fault sample, as a sentinel is, not silence
                self.counts["non_finite"] += 1
                answer.append(make(reg.sensor, ts, None, SENTINEL))
                continue
            answer.append(make(reg.sensor, ts, value, ""))
        return answer

    def _power(self, reg: Register) -> int | None:
        """The power of ten the register's ``scale_from`` gives now (None, counted: not
        read yet, or a value no device means)."""
        src = scale_source(reg)
        raw = None if src is None else self.scales.get(src)
        if raw is None or reg.scale_from is None:
            self.counts["scale_unread"] += 1
            return None
        power = scale_power(raw, reg.scale_from)
        if power is None:
            self.counts["scale_invalid"] += 1
            if self.counts["scale_invalid"] == 1:
                log.warning("%s: slave %d: the %s register %d, which scales %s, holds %d: "
                            "not a %s a device means; counted as 'scale_invalid'", self.name,
                            reg.slave, src.table if src else "", reg.scale_from.address,
                            reg.sensor, raw, reg.scale_from.form)
        return power

    def _log_once(self, reason: str, block: Block, detail: str) -> None:
        if self.counts[reason] == 1:
            log.warning("%s: slave %d %s %d+%d: %s (%s); counted as %r from now on",
                        self.name, block.slave, block.table, block.address, block.count,
                        reason, detail, reason)


class _Silent(Exception):
    """No slave answered for the poller's ``silence``: close and reopen the port."""


ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
SPLIT_ON = frozenset({ILLEGAL_ADDRESS, ILLEGAL_VALUE})
"""Exception codes that refuse a merged request for its span, not its registers: 2 (an
address in the span the device lacks) and 3 (a quantity over the device's own limit, as
the Modbus spec's read functions answer it)."""
_EXCEPTIONS = {1: "illegal_function", 2: "illegal_address", 3: "illegal_value",
               4: "device_failure", 5: "acknowledge", 6: "device_busy",
               10: "gateway_path_unavailable", 11: "gateway_no_response"}
"""Modbus exception codes by name (Modbus Application Protocol v1.1b3, section 7)."""
