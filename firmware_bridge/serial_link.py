"""Bytes from a serial port that may disappear and come back (USB unplug), for asyncio.

:class:`SerialLink` opens the port by path with pyserial and reads it from the event loop
(``loop.add_reader`` on the port's file descriptor: no thread, POSIX only, which is what
the Raspberry Pi runs). When the port fails or vanishes it closes it, says so once in the
log, and tries to open the same path again with doubling backoff and jitter, forever;
``counts`` has opens, open failures, disconnects and reconnects.

A port can also stay open and go silent: a USB-serial converter that locked up (CH340 and
CP210x do after a surge in a cabinet), or a microcontroller that hung. The kernel reports
no error for either, so with ``silence`` set the link closes and reopens a port that gave
no byte for that long (counted as ``silent_reopens``, logged once until bytes flow again).
A reopen re-enumerates a wedged converter's state and, on boards whose DTR line is wired
to reset (Arduino-style), restarts the microcontroller; nothing is lost, since nothing came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncGenerator

import serial

from gridcall.wire.backoff import Backoff, Reconnect

log = logging.getLogger(__name__)

END = b""
"""Yielded by :meth:`SerialLink.chunks` when the port went away: what is pending is lost."""


class SerialLink:
    def __init__(self, port: str, *, baudrate: int = 115_200, reconnect_min: float = 0.1,
                 reconnect_max: float = 5.0, silence: float | None = None,
                 name: str = "") -> None:
        self.port = port
        self.silence = silence
        """Reopen an open port that gave no byte for this many seconds (None: never)."""
        self.baudrate = baudrate
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.name = name or port
        self.counts: Counter[str] = Counter()
        self.connected = asyncio.Event()
        """Set while the port is open: tests and ``gridcall edge check`` wait on it."""
        self.last_error = ""

    def _open(self) -> serial.Serial:
        # exclusive: a second reader of the same port (a forgotten minicom, a second agent)
        # would take bytes from the middle of frames; it is refused (flock) instead
        return serial.Serial(self.port, self.baudrate, timeout=0, exclusive=True)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """Chunks as they arrive; ``END`` (empty) each time the port is lost."""
        loop = asyncio.get_running_loop()
        retry = Reconnect(Backoff(self.reconnect_min, self.reconnect_max))
        ever_open = False
        said = False  # one log line per outage; the counters carry the rest
        said_silent = False
        while True:
            try:
                port = self._open()
            except (serial.SerialException, OSError, ValueError) as exc:
                self.counts["open_failures"] += 1
                if not said:
                    said = True
                    log.warning("%s: cannot open %s (%s); retrying with backoff up to %.0fs",
                                self.name, self.port, exc, self.reconnect_max)
                self.last_error = str(exc)
                await retry.pause(retry.failed(exc))
                continue
            self.counts["opens"] += 1
            if ever_open and self.last_error != _SILENT:  # after a reopen for silence: not
                self.counts["reconnects"] += 1            # back, it never went away
                log.warning("%s: %s is back", self.name, self.port)
            ever_open, said = True, False
            retry.connected()
            self.connected.set()
            # aclosing: when our caller closes us, the reader must leave the event loop
            # *before* the port's fd is closed below. Left to the garbage collector, it was
            # removed a loop turn later, from an fd number that by then could be a new
            # socket's (edge check's broker probe lost its connection to exactly that).
            try:
                async with contextlib.aclosing(self._read(loop, port)) as chunks:
                    async for chunk in chunks:
                        said_silent = False
                        yield chunk
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    port.close()
            if self.last_error == _SILENT:
                self.counts["silent_reopens"] += 1
                if not said_silent:
                    said_silent = True
                    log.warning("%s: nothing from %s for %.0fs although it is open (a hung "
                                "device or converter?); reopening it, and again after each "
                                "%.0fs of silence", self.name, self.port, self.silence,
                                self.silence)
            else:
                self.counts["disconnects"] += 1
                log.warning("%s: lost %s (%s); reopening", self.name, self.port,
                            self.last_error)
            yield END

    async def _read(self, loop: asyncio.AbstractEventLoop, port: serial.Serial
                    ) -> AsyncGenerator[bytes, None]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        fd = port.fileno()

        def readable() -> None:
            try:
                data = port.read(port.in_waiting or 1)
            except (serial.SerialException, OSError) as exc:
                self.last_error = str(exc)
                loop.remove_reader(fd)
                queue.put_nowait(None)
                return
            if data:
                queue.put_nowait(data)

        loop.add_reader(fd, readable)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.silence):  # None: wait for ever
                        data = await queue.get()
                except TimeoutError:
                    self.last_error = _SILENT
                    return
                if data is None:
                    return
                self.counts["bytes"] += len(data)
                yield data
        finally:
            loop.remove_reader(fd)


_SILENT = "silent"
"""``last_error`` after the link closed a port for silence."""
