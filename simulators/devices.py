"""Simulated field devices on pseudo-terminals, for tests, the bench and commissioning.

    python -m gridcall.simulators.devices                      # the sample's serial agent
    python -m gridcall.simulators.devices --link /tmp/gridcall-tty0 --agent edge-dongyuan \\
        --interval 1 --garbage 0.2
    python -m gridcall.simulators.devices --modbus             # the sample's Modbus agent
    python -m gridcall.simulators.devices --mqtt mqtt://127.0.0.1:18831   # its MQTT agent

Serial mode: a pty at ``--link`` (a symlink, like ``/dev/serial/by-id/...``) on which every
device of the agent's serial map sends one frame per ``--interval`` with its channels'
values from the simulators' streams; ``--garbage P`` puts line noise or a cut-off frame
before a frame with probability P. Modbus mode: pymodbus's own serial server on one end of
a null modem, the other end at ``--link``, with every slave of the agent's register map
(for a TCP map, a pymodbus TCP server at each device's host and port, with the RTU framer
for ``rtu_over_tcp``); a register read returns the stream's value at that moment, encoded
as the map says.
MQTT mode: every ``--interval`` the agent's local devices (Tasmota, Zigbee2MQTT, ESPHome,
Shelly, plain topics) publish their values to the broker ``--mqtt`` names, each on its
topic and in its payload form (JSON at the mapped path, or a plain number), so the map in
``agents.yaml`` reads them back.

It stays up until SIGINT/SIGTERM and then removes its link. :class:`FirmwareSim` (frames for
a serial map) is the reusable part; the values come from :mod:`gridcall.simulators.streams`.
It lives among the simulators (it was ``firmware_bridge/simdevice.py``) because it needs
their streams and speaks through firmware_bridge's frames and ptys: firmware_bridge sits
below the simulators and never imports them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gridcall.config.local_mqtt import LocalMqttSettings, parse_path
from gridcall.config.sources import (
    BIT_TABLES,
    ModbusSettings,
    Register,
    SerialDevice,
    SerialSettings,
)
from gridcall.firmware_bridge.frames import MAX_CHANNELS, Frame, encode
from gridcall.firmware_bridge.pty import NullModem, PtyPort
from gridcall.wire.cancelsafe import stop_tasks

if TYPE_CHECKING:
    from pymodbus.simulator import SimDevice

ValueAt = Callable[[str, float], float | None]
"""The value of a sensor at a POSIX time (None: the sensor has none)."""
_TABLES = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
"""Modbus read functions by the table they read."""
STOP_S = 10.0
"""Seconds a stopping simulated device waits for its server task to end."""


class FirmwareSim:
    """The frames the devices of a serial map send: one per device per call of
    :meth:`burst` (more if a device has over 32 channels), sequence numbers counting up."""

    def __init__(self, devices: Sequence[SerialDevice], value_at: ValueAt, *,
                 garbage: float = 0.0, seed: int = 0) -> None:
        self.devices = tuple(devices)
        self.value_at = value_at
        self.garbage = garbage
        self.rng = random.Random(seed)
        self.seq = {d.id: 0 for d in self.devices}
        self.noise_bursts = 0

    def frames(self, t: float) -> list[Frame]:
        out = []
        for device in self.devices:
            items = sorted(device.channels.items())
            for i in range(0, len(items), MAX_CHANNELS):
                values = tuple((ch, self.value_at(sensor, t))
                               for ch, sensor in items[i:i + MAX_CHANNELS])
                out.append(Frame(device.id, self.seq[device.id], values))
                self.seq[device.id] = (self.seq[device.id] + 1) % 2**32
        return out

    def burst(self, t: float) -> bytes:
        parts = []
        for frame in self.frames(t):
            if self.garbage and self.rng.random() < self.garbage:
                self.noise_bursts += 1
                if self.rng.random() < 0.5:
                    parts.append(self.rng.randbytes(self.rng.randint(1, 24)))
                else:  # a frame cut short, as by a brown-out mid-transmission
                    data = encode(Frame(frame.device, 0, frame.values))
                    parts.append(data[:self.rng.randint(1, len(data) - 1)])
            parts.append(encode(frame))
        return b"".join(parts)


class LocalMqttSim:
    """The messages an MQTT agent's local devices publish: one per topic per call of
    :meth:`messages`, each field at its JSON path (or the whole payload), the stream's
    value with the mapping's scale and offset undone. Template mappings (``{1}``) and
    wildcard topics name no one device, so they are left out."""

    def __init__(self, settings: LocalMqttSettings, value_at: ValueAt) -> None:
        self.mappings = [m for m in settings.mappings()
                         if not m.is_template and not {"+", "#"} & set(m.topic.split("/"))]
        self.value_at = value_at

    def messages(self, t: float) -> list[tuple[str, bytes]]:
        docs: dict[str, Any] = {}
        for m in self.mappings:
            value = self.value_at(m.sensor, t)
            raw = None if value is None else (value - m.offset) / m.scale
            if m.value is None:  # a plain payload: ESPHome, Shelly Gen1
                docs[m.topic] = "nan" if raw is None else f"{raw:g}"
                continue
            doc = docs.setdefault(m.topic, {})
            path = parse_path(m.value)
            for part, after in itertools.pairwise(path):  # all but the last
                doc = _child(doc, part, [] if isinstance(after, int) else {})
            _put(doc, path[-1], raw)
        return [(topic, doc.encode() if isinstance(doc, str) else json.dumps(doc).encode())
                for topic, doc in docs.items()]


def _put(doc: Any, key: str | int, value: Any) -> None:
    if isinstance(key, int):
        doc.extend([None] * (key + 1 - len(doc)))
    doc[key] = value


def _child(doc: Any, key: str | int, empty: Any) -> Any:
    """``doc[key]``, made ``empty`` first if it is not there yet."""
    if isinstance(key, int):
        if key >= len(doc) or doc[key] is None:
            _put(doc, key, empty)
    elif key not in doc:
        doc[key] = empty
    return doc[key]


def modbus_devices(registers: Sequence[Register], value_at: ValueAt) -> list[SimDevice]:
    """pymodbus SimDevices serving a register map (one connection's registers); each read
    fills the registers asked for from the streams at that moment."""
    from pymodbus.simulator import DataType, SimData, SimDevice

    from gridcall.firmware_bridge.modbus import encode as encode_registers

    by_slave: dict[int, list[Register]] = {}
    for reg in registers:
        by_slave.setdefault(reg.slave, []).append(reg)
    devices: list[SimDevice] = []
    for slave, regs in sorted(by_slave.items()):
        words = [r for r in regs if r.table not in BIT_TABLES]
        bits = [r for r in regs if r.table in BIT_TABLES]
        size = max((r.last_address for r in words), default=0) + 1
        # pymodbus's simulator keeps coils and discrete inputs 16 to a word, the lowest
        # address in the lowest bit, and hands the action those words
        bit_words = max((r.address // 16 for r in bits), default=0) + 1

        async def fill(function_code: int, start: int, address: int, count: int,
                       current: list[int], set_values: object,
                       regs: list[Register] = regs) -> None:
            table = _TABLES.get(function_code)
            now = time.time()
            for reg in regs:
                if reg.table != table:
                    continue
                value = value_at(reg.sensor, now)
                if table in BIT_TABLES:
                    word, bit = reg.address // 16 - start, 1 << (reg.address % 16)
                    if 0 <= word < len(current):
                        on = value is not None and round((value - reg.offset) / reg.scale)
                        current[word] = current[word] | bit if on else current[word] & ~bit
                    continue
                if not address <= reg.address < address + count:
                    continue
                encoded = encode_registers(0.0 if value is None else value, reg)
                current[reg.address - start:reg.address - start + len(encoded)] = encoded

        blocks = ([SimData(0, count=bit_words, datatype=DataType.BITS)],
                  [SimData(0, count=bit_words, datatype=DataType.BITS)],
                  [SimData(0, count=size, datatype=DataType.REGISTERS)],
                  [SimData(0, count=size, datatype=DataType.REGISTERS)])
        devices.append(SimDevice(id=slave, simdata=blocks, action=fill))
    return devices


def _streams(config_dir: Path, agent: str | None, kind: str, seed: int
             ) -> tuple[str, SerialSettings | ModbusSettings | LocalMqttSettings, ValueAt]:
    from gridcall.config import load_config
    from gridcall.simulators.streams import SensorStream

    cfg = load_config(config_dir)
    wanted = {"serial": SerialSettings, "modbus": ModbusSettings,
              "mqtt": LocalMqttSettings}[kind]
    spec = cfg.agents[agent] if agent else next(
        (a for a in cfg.agents.values() if isinstance(a.source, wanted)), None)
    if spec is None or not isinstance(spec.source, wanted):
        sys.exit(f"simdevice: no {kind} agent {agent or ''} in {config_dir}")
    streams = {s.id: SensorStream(s.id, s.kind, seed=seed) for s in spec.sensors}

    def value_at(sensor: str, t: float) -> float | None:
        return streams[sensor].value(t)

    return spec.id, spec.source, value_at


async def _run_serial(link: Path, settings: SerialSettings, value_at: ValueAt,
                      interval: float, garbage: float, seed: int,
                      stop: asyncio.Event) -> None:
    sim = FirmwareSim(settings.devices, value_at, garbage=garbage, seed=seed)
    with PtyPort(link) as port:
        print(f"simdevice: serial, {len(settings.devices)} devices at {link}", flush=True)
        while not stop.is_set():
            port.write(sim.burst(time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


async def _run_mqtt(url: str, settings: LocalMqttSettings, value_at: ValueAt,
                    interval: float, stop: asyncio.Event) -> None:
    import aiomqtt

    from gridcall.wire.broker import BrokerAddress

    sim = LocalMqttSim(settings, value_at)
    address = BrokerAddress.parse(url)
    login = urlsplit(url)  # mqtt://user:password@host for a broker that wants a login
    async with aiomqtt.Client(address.host, address.port, tls_context=address.tls_context(),
                              username=login.username, password=login.password,
                              identifier=f"gridcall-simdevice-{os.getpid()}") as client:
        topics = len({m.topic for m in sim.mappings})
        print(f"simdevice: mqtt, {topics} topics to {address}", flush=True)
        while not stop.is_set():
            for topic, payload in sim.messages(time.time()):
                await client.publish(topic, payload, qos=1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


async def _run_modbus(link: Path, settings: ModbusSettings, value_at: ValueAt,
                      stop: asyncio.Event) -> None:
    """Every connection of the map: the serial line through a null modem whose agent end
    is ``link``, or a pymodbus TCP server at each TCP device's host and port (with the RTU
    framer for ``rtu_over_tcp``, as a serial server passes RTU frames through)."""
    from pymodbus import FramerType
    from pymodbus.server import ModbusSerialServer, ModbusTcpServer

    tasks: list[asyncio.Task[None]] = []
    servers: list[ModbusSerialServer | ModbusTcpServer] = []
    with contextlib.ExitStack() as stack:
        for where, registers in settings.links().items():
            devices = modbus_devices(registers, value_at)
            server: ModbusSerialServer | ModbusTcpServer
            if where.transport == "rtu":
                device_end = link.with_name(f".{link.name}.device")
                stack.enter_context(NullModem(link, device_end))
                server = ModbusSerialServer(devices, framer=FramerType.RTU,
                                            port=str(device_end), baudrate=settings.baudrate,
                                            ignore_missing_devices=True)
                shown = str(link)
            else:
                framer = FramerType.SOCKET if where.transport == "tcp" else FramerType.RTU
                server = ModbusTcpServer(devices, framer=framer,
                                         address=(where.host, where.tcp_port),
                                         ignore_missing_devices=True)
                shown = str(where)
            servers.append(server)
            tasks.append(asyncio.create_task(server.serve_forever()))
            for _ in range(500):  # say where it is once it listens (a TCP server: bound)
                if server.transport is not None or tasks[-1].done():
                    break
                await asyncio.sleep(0.01)
            slaves = sorted({r.slave for r in registers})
            print(f"simdevice: modbus, slaves {slaves} at {shown}", flush=True)
        await stop.wait()
        for server in servers:
            await server.shutdown()  # type: ignore[no-untyped-call]
        await stop_tasks(tasks, STOP_S, what="simdevice modbus server", raise_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    from gridcall.config import SAMPLE_DISTRICT

    parser = argparse.ArgumentParser(prog="python -m gridcall.simulators.devices",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--link", type=Path, help="where the device appears (default: the "
                        "port the agent's config names)")
    parser.add_argument("--config", type=Path, default=SAMPLE_DISTRICT)
    parser.add_argument("--agent", help="agent id (default: the first of the mode's kind)")
    parser.add_argument("--modbus", action="store_true", help="the Modbus agent's devices "
                        "instead: its RTU line at --link, or a TCP server at each of its TCP "
                        "devices' host and port")
    parser.add_argument("--mqtt", metavar="URL", help="local MQTT devices publishing to this "
                        "broker instead (the MQTT agent's own broker URL is usually "
                        "mosquitto on the box itself)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between frames")
    parser.add_argument("--garbage", type=float, default=0.0,
                        help="probability of noise before a frame (0..1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    kind = "mqtt" if args.mqtt else "modbus" if args.modbus else "serial"
    agent, settings, value_at = _streams(args.config, args.agent, kind, args.seed)
    link = args.link or Path(getattr(settings, "port", None) or ".")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if isinstance(settings, SerialSettings):
            await _run_serial(link, settings, value_at, args.interval, args.garbage,
                              args.seed, stop)
        elif isinstance(settings, LocalMqttSettings):
            await _run_mqtt(args.mqtt, settings, value_at, args.interval, stop)
        else:
            await _run_modbus(link, settings, value_at, stop)

    print(f"simdevice: agent {agent}", flush=True)
    asyncio.run(run())


if __name__ == "__main__":
    main()
