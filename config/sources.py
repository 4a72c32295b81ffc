"""Where an agent's readings come from: the ``source`` of an agent in agents.yaml.

One model per kind of source, told apart by ``type`` (a pydantic discriminated union):

- ``simulated``: the simulators' streams (the default; ``source: simulated`` still works);
- ``serial``: microcontroller firmware speaking gridcall's frame protocol
  (docs/firmware-protocol.md); each device id's channels map to sensor ids;
- ``modbus``: Modbus polling, RTU on a serial line, Modbus TCP or RTU through a TCP serial
  server; a register map says which register holds which sensor, its data type, byte and
  word order, scale, offset and poll interval;
- ``mqtt``: sensors on a local MQTT broker, see :mod:`gridcall.config.local_mqtt` (its own checks).

The models check what they can alone (ranges, types, unknown keys); :func:`map_problems`
checks a map's own consistency (a sensor read twice, overlapping registers, a device id
given twice) and :mod:`gridcall.config.resolve` reports its findings with the agent's id, plus
every mapped sensor that does not exist or belongs to another agent (serial and Modbus;
``mqtt`` maps are checked by :func:`gridcall.config.local_mqtt.source_problems`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, get_args

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from gridcall.config.base import (
    Duration,
    Id,
    Loc,
    Model,
    SourceSettingsModel,
    parse_duration,
)
from gridcall.config.local_mqtt import LocalMqttSettings


class SimulatedSettings(SourceSettingsModel):
    """Samples from the simulators (the sample district and the demo)."""

    type: Literal["simulated"] = "simulated"


# --------------------------------------------------------------------------- both ports

def _never_or_duration(value: Any) -> Any:
    """``never``, null, or a positive duration; one error naming both forms otherwise
    (the union would report one error per member)."""
    if value is None or value == "never":
        return value
    try:
        parsed = parse_duration(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, int | float) and not isinstance(parsed, bool):
        parsed = timedelta(seconds=parsed)
    if not isinstance(parsed, timedelta) or parsed <= timedelta(0):
        raise ValueError(f"{value!r} is neither a duration longer than zero (like '90s', "
                         "'10m', '1h') nor 'never'")
    return parsed


SilenceReopen: TypeAlias = Annotated[Literal["never"] | Duration | None,
                                     BeforeValidator(_never_or_duration)]
SILENCE_INTERVALS = 10
"""Default silence before a reopen, in the slowest sensor's intervals: past the five after
which the agent's status already reports the sensors ``missing``, so the hub hears first."""
MIN_SILENCE_S = 60.0


def silence_reopen_s(setting: SilenceReopen, intervals_s: Iterable[float]) -> float | None:
    """Seconds of silence before an open port is reopened (None: never): as configured,
    or by default from the intervals of what the port carries."""
    if setting == "never":
        return None
    if setting is not None:
        return setting.total_seconds()
    return max(MIN_SILENCE_S, SILENCE_INTERVALS * max(intervals_s, default=0.0))


# --------------------------------------------------------------------------- serial frames

DeviceId = Annotated[int, Field(ge=0, le=0xFFFF_FFFF)]
Channel = Annotated[int, Field(ge=0, le=255)]


class SerialDevice(Model):
    """One microcontroller on the line: its device id (as in its frames) and which of its
    channels is which sensor. A channel not listed here is counted, not read."""

    id: DeviceId
    name: str = ""
    channels: dict[Channel, Id] = Field(min_length=1)


class SerialSettings(SourceSettingsModel):
    """Frames from firmware on a serial port (USB CDC, UART, RS-485 converter)."""

    map_item: ClassVar[str | None] = "channel"

    type: Literal["serial"]
    port: Annotated[str, StringConstraints(min_length=1)]
    """Device path, e.g. ``/dev/ttyUSB0`` or a stable ``/dev/serial/by-id/...`` link."""
    baudrate: int = Field(default=115_200, gt=0)
    devices: tuple[SerialDevice, ...] = Field(min_length=1)
    reconnect_min: Duration = timedelta(seconds=0.1)
    reconnect_max: Duration = timedelta(seconds=5)
    """Backoff between attempts to reopen a port that went away (doubling, with jitter)."""
    silence_reopen: SilenceReopen = None
    """Close and reopen a port that stays open but gives no byte for this long (a hung
    converter or microcontroller). Default (null): ten times the slowest interval of the
    agent's sensors, at least 60 s; ``never`` turns it off. Too short would reopen a quiet
    line for nothing, and reset a board whose DTR line resets it on each open."""

    def mapped_sensors(self) -> Iterator[tuple[Loc, str]]:
        for d, device in enumerate(self.devices):
            for channel, sensor in device.channels.items():
                yield ("devices", d, "channels", str(channel)), sensor

    def map_problems(self) -> Iterator[tuple[Loc, str]]:
        """A sensor read twice, or a device id given twice."""
        yield from super().map_problems()
        ids: dict[int, int] = {}
        for d, device in enumerate(self.devices):
            if device.id in ids:
                yield ("devices", d, "id"), (f"device id {device.id} is already given at "
                                             f"source.devices[{ids[device.id]}]")
            ids.setdefault(device.id, d)


# --------------------------------------------------------------------------- Modbus

DataType = Literal["int16", "uint16", "int32", "uint32", "float32"]
WIDTH: dict[str, int] = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}
"""How many 16-bit registers a value of each data type takes."""
Order = Literal["big", "little"]
Transport = Literal["rtu", "tcp", "rtu_over_tcp"]
"""``rtu``: RTU frames on a serial line (``port``); ``tcp``: Modbus TCP (MBAP header);
``rtu_over_tcp``: RTU frames, CRC and all, through a TCP socket (a serial server, an
RS-485-to-Ethernet converter in transparent mode)."""
TCP_TRANSPORTS: tuple[Transport, ...] = ("tcp", "rtu_over_tcp")
SERIAL_KEYS = ("baudrate", "parity", "bytesize", "stopbits")
"""Settings of a serial line, which a TCP transport has none of."""
Host = Annotated[str, StringConstraints(min_length=1, pattern=r"^[^\s/:]+$|^\[[0-9A-Fa-f:.]+\]$")]
"""A host name or IP address (an IPv6 address in brackets), without a port."""
TcpPort = Annotated[int, Field(ge=1, le=65_535)]


@dataclass(frozen=True, slots=True)
class ModbusLink:
    """One connection the agent keeps: a serial line, or one TCP endpoint. Registers of
    one link are polled in turn on it; links are polled side by side."""

    transport: Transport
    port: str = ""
    """The serial device (``rtu``)."""
    host: str = ""
    tcp_port: int = 0

    def __str__(self) -> str:
        if self.transport == "rtu":
            return self.port
        scheme = "tcp" if self.transport == "tcp" else "rtu+tcp"
        return f"{scheme}://{self.host}:{self.tcp_port}"


Table = Literal["holding", "input", "coil", "discrete"]
BIT_TABLES: tuple[Table, ...] = ("coil", "discrete")
"""Tables of single bits (functions 1 and 2): a reading is 0 or 1 (× scale + offset)."""
HIGHEST_SLAVE = 247
"""The highest unicast slave id the Modbus serial line spec assigns; 248-255 are reserved
there, yet several real devices (and serial servers' unit ids) use them: allowed, warned."""
_ENCODING = re.compile(r"^(plain|sign-magnitude|offset-([1-9][0-9]*))$")


def _int_or_hex(value: Any) -> Any:
    """``0xFFFF`` written as a string (YAML 1.2 reads 0xFFFF as an int already)."""
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer like 65535 or 0xFFFF") from None
    return value


RawValue = Annotated[int, BeforeValidator(_int_or_hex), Field(ge=0, le=0xFFFF_FFFF)]


class ScaleFrom(Model):
    """A register of the same slave whose value scales this one: ``decimals`` (the number of
    decimal places, value = raw / 10**d, a transmitter's "decimal point" register) or
    ``exponent`` (a signed power of ten, value = raw × 10**e, as SunSpec's ``_SF``)."""

    address: int = Field(ge=0, le=65_535)
    table: Literal["holding", "input"] | None = None
    """Default: the table of the register it scales."""
    form: Literal["decimals", "exponent"] = "decimals"


class Register(Model):
    """One sensor in a Modbus device: where its value is and how to turn it into a reading
    (``value = raw * scale + offset``)."""

    sensor: Id
    slave: int = Field(default=1, ge=1, le=255)
    """1-247 (the spec's); 248-255 are accepted for the devices that use them, with a
    warning from ``gridcall edge check`` and at start."""
    table: Table = "holding"
    """``holding``: function 3 (read holding registers); ``input``: function 4; ``coil``:
    function 1 (read coils); ``discrete``: function 2 (read discrete inputs)."""
    address: int = Field(ge=0, le=65_535)
    """Zero-based register address as sent on the wire (register 40001 is address 0)."""
    type: DataType = "uint16"
    byte_order: Order = "big"
    """Order of the two bytes in each register; Modbus itself is big-endian."""
    word_order: Order = "big"
    """For 32-bit types: ``big`` when the first register holds the high word."""
    encoding: Annotated[str, StringConstraints(pattern=_ENCODING.pattern)] = "plain"
    """How an integer type holds a negative number: ``plain`` (as ``type`` says: two's
    complement for int16/int32); ``sign-magnitude`` (the top bit is the sign, the rest the
    magnitude); ``offset-N`` (raw values from N up are negative, −(raw − N): a device that
    writes −25.0 as 10250 with scale 0.1 uses ``offset-10000``)."""
    scale: float = 1.0
    offset: float = 0.0
    scale_from: ScaleFrom | None = None
    """A register whose value scales this one (read with it, at its interval)."""
    faults: tuple[RawValue, ...] = ()
    """Raw values (before encoding and scale) by which the device reports a fault, e.g.
    ``[0xFFFF, 0x8000]``: never published as a reading; the sensor's health is ``fault``."""
    interval: Duration = timedelta(seconds=5)
    host: Host | None = None
    """TCP transports: this register's device, if not the source's ``host``."""
    tcp_port: TcpPort | None = None
    """TCP transports: this register's device's port, if not the source's ``tcp_port``."""

    @model_validator(mode="after")
    def _consistent(self) -> Register:
        if self.table in BIT_TABLES:
            wrong = [k for k in ("type", "byte_order", "word_order", "encoding", "scale_from",
                                 "faults") if k in self.model_fields_set]
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: not for a {self.table} (a single bit, "
                                 "0 or 1); scale and offset still apply")
            return self
        if self.encoding != "plain" and self.type == "float32":
            raise ValueError(f"encoding {self.encoding!r} is for integer types, not float32")
        top = 1 << (16 * self.width)
        n = self.offset_n
        if n is not None and n >= top:
            raise ValueError(f"encoding {self.encoding!r}: {n} does not fit a {self.type}")
        too_big = [hex(f) for f in self.faults if f >= top]
        if too_big:
            raise ValueError(f"faults {', '.join(too_big)} do not fit a {self.type} "
                             f"({16 * self.width} bits)")
        return self

    @property
    def width(self) -> int:
        """Registers the value takes (a bit table's value: one bit)."""
        return 1 if self.table in BIT_TABLES else WIDTH[self.type]

    @property
    def last_address(self) -> int:
        return self.address + self.width - 1

    @property
    def offset_n(self) -> int | None:
        """N of an ``offset-N`` encoding (None for the others)."""
        match = _ENCODING.match(self.encoding)
        return int(match[2]) if match and match[2] else None


class ModbusSettings(SourceSettingsModel):
    """Modbus polling: RTU on a serial line (RS-485 converter), Modbus TCP, or RTU frames
    through a TCP serial server. With a TCP transport every register may name its own
    device (``host``, ``tcp_port``), so one agent reads many devices, each on its own
    connection."""

    map_item: ClassVar[str | None] = "register"

    type: Literal["modbus"]
    transport: Transport = "rtu"
    port: Annotated[str, StringConstraints(min_length=1)] | None = None
    """``rtu``: the serial device, e.g. ``/dev/ttyUSB0`` (required)."""
    host: Host | None = None
    """TCP transports: the device (or serial server) of every register that names none."""
    tcp_port: TcpPort = 502
    """TCP transports: its port (502 is Modbus TCP's; serial servers often use 4001...)."""
    baudrate: int = Field(default=9_600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    timeout: Duration = timedelta(seconds=1)
    """How long to wait for a device's answer before counting a timeout."""
    reconnect_max: Duration = timedelta(seconds=5)
    silence_reopen: SilenceReopen = None
    """Close and reopen a connection when no slave on it has answered anything (a value or
    an exception response) for this long: a wedged RS-485 converter answers nothing.
    Default (null): ten times the slowest register interval, at least 60 s; ``never``: off."""
    registers: tuple[Register, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _transport_keys(self) -> ModbusSettings:
        if self.transport == "rtu":
            if self.port is None:
                raise ValueError("a Modbus RTU line needs 'port' (the serial device, e.g. "
                                 "/dev/ttyUSB0); for a device on the network set 'transport: "
                                 "tcp' (or rtu_over_tcp for a serial server) and 'host'")
            tcp: list[str] = [k for k in ("host", "tcp_port") if k in self.model_fields_set]
            tcp += [f"registers[{r}].{k}" for r, reg in enumerate(self.registers)
                    for k in ("host", "tcp_port") if getattr(reg, k) is not None]
            if tcp:
                raise ValueError(f"{', '.join(tcp)}: only with 'transport: tcp' or "
                                 "'rtu_over_tcp'; this source is a serial RTU line ('port')")
            return self
        wrong = (["port"] if self.port is not None else []) + [
            k for k in SERIAL_KEYS if k in self.model_fields_set]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: only for 'transport: rtu' (a serial line); "
                             f"a {self.transport} device is reached by 'host' and 'tcp_port'")
        hostless = [r for r, reg in enumerate(self.registers) if (reg.host or self.host) is None]
        if hostless:
            raise ValueError(f"registers[{hostless[0]}] has no host and the source sets none: "
                             f"a {self.transport} source needs 'host' (or one per register)")
        return self

    def link_of(self, reg: Register) -> ModbusLink:
        """The connection the register is read on."""
        if self.transport == "rtu":
            return ModbusLink("rtu", port=self.port or "")
        return ModbusLink(self.transport, host=reg.host or self.host or "",
                          tcp_port=reg.tcp_port or self.tcp_port)

    def links(self) -> dict[ModbusLink, tuple[Register, ...]]:
        """Each connection and the registers read on it, in config order."""
        out: dict[ModbusLink, list[Register]] = {}
        for reg in self.registers:
            out.setdefault(self.link_of(reg), []).append(reg)
        return {link: tuple(regs) for link, regs in out.items()}

    def mapped_sensors(self) -> Iterator[tuple[Loc, str]]:
        for r, reg in enumerate(self.registers):
            yield ("registers", r, "sensor"), reg.sensor

    def map_problems(self) -> Iterator[tuple[Loc, str]]:
        """A sensor read twice, a register past 65535, registers that overlap, a register
        scaled by itself."""
        yield from super().map_problems()
        for r, reg in enumerate(self.registers):
            if reg.last_address > 65_535:
                yield ("registers", r, "address"), (
                    f"a {reg.type} at {reg.address} would end past register 65535")
            src = reg.scale_from
            if src is not None and (src.table or reg.table) == reg.table and (
                    reg.address <= src.address <= reg.last_address):
                yield ("registers", r, "scale_from", "address"), (
                    f"{src.address} is this register's own value: the scale comes from "
                    "another register")
            for q, other in enumerate(self.registers[:r]):
                if (self.link_of(other), other.slave, other.table) == (
                        self.link_of(reg), reg.slave, reg.table) and (
                        reg.address <= other.last_address and other.address <= reg.last_address):
                    yield ("registers", r, "address"), (
                        f"{_span(reg)} overlaps registers[{q}] ({other.sensor}: {_span(other)})")


# --------------------------------------------------------------------------- the union

AnySourceSettings: TypeAlias = (SimulatedSettings | SerialSettings | ModbusSettings
                                 | LocalMqttSettings)
"""Every kind of source's settings: a new kind joins here (and nowhere else in config)."""

SOURCE_TYPES: tuple[str, ...] = tuple(
    str(get_args(model.model_fields["type"].annotation)[0])
    for model in get_args(AnySourceSettings))
"""The YAML ``type:`` values, in the union's order."""


def _bare_name(value: Any) -> Any:
    """``source: simulated`` is short for ``source: {type: simulated}``; the other types
    need their settings, so a bare name says which ones."""
    if value == "simulated":
        return {"type": "simulated"}
    if isinstance(value, str):
        if value in SOURCE_TYPES:
            raise ValueError(f"source {value!r} needs its settings: a mapping with "
                             f"'type: {value}' (docs/firmware-protocol.md, config/local_mqtt.py)")
        raise ValueError(f"unknown source {value!r} (known: {', '.join(SOURCE_TYPES)})")
    return value


SourceSettings = Annotated[
    AnySourceSettings,
    Field(discriminator="type"),
    BeforeValidator(_bare_name),
]


def mapped_sensors(source: SourceSettingsModel) -> Iterator[tuple[Loc, str]]:
    """Each sensor id the source's map names, with its key path under ``source``."""
    return source.mapped_sensors()


def map_problems(source: SourceSettingsModel) -> Iterator[tuple[Loc, str]]:
    """What is inconsistent in a source's own map, as (key path under ``source``, reason):
    a sensor read twice, a device id given twice, registers that overlap."""
    return source.map_problems()


def _span(reg: Register) -> str:
    where = f"slave {reg.slave} {reg.table} {reg.address}"
    return where if reg.width == 1 else f"{where}-{reg.last_address} ({reg.type})"
