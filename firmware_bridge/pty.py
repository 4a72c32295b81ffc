"""Pseudo-terminals that stand in for serial devices in tests and on a bench (POSIX only).

- :class:`PtyPort`: a pty whose far end is reachable at a stable path (a symlink, like
  ``/dev/serial/by-id/...``); whatever the owner writes, a reader of the path receives.
  ``unplug()`` removes it the way a USB unplug does (the reader gets EIO, the path is
  gone); ``plug()`` brings a new one back at the same path.
- :class:`NullModem`: two such ports wired to each other by a relay thread, like a
  null-modem cable (or ``socat pty,link=A pty,link=B``, which is not installed on the Pi
  image we target): pymodbus's own server opens one end, the agent the other.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import threading
import tty
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


class PtyPort:
    """A pty with its device end linked at ``link``. The owner holds the master end."""

    def __init__(self, link: Path | str) -> None:
        self.link = Path(link)
        self.master = -1
        self._slave = -1
        self.dropped = 0
        """Bytes not written because nobody read them and the pty buffer was full."""

    @property
    def plugged(self) -> bool:
        return self.master >= 0

    def plug(self) -> None:
        if self.plugged:
            return
        master, slave = os.openpty()
        tty.setraw(slave)  # no line discipline: bytes pass unchanged (also before a reader
        # opens the device and sets raw mode itself)
        os.set_blocking(master, False)
        self.master, self._slave = master, slave
        tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)  # atomic: a reader never sees a half-made link

    def unplug(self) -> None:
        """Like pulling the USB cable: the path disappears and open readers get EIO."""
        if not self.plugged:
            return
        with contextlib.suppress(FileNotFoundError):
            if self.link.is_symlink():
                self.link.unlink()
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.master = self._slave = -1

    def write(self, data: bytes) -> int:
        """Write what fits; count the rest in ``dropped`` (a device's full TX buffer)."""
        if not self.plugged:
            self.dropped += len(data)
            return 0
        try:
            n = os.write(self.master, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            n = 0
        self.dropped += len(data) - n
        return n

    def read(self, size: int = 4096) -> bytes:
        """What a reader of the path wrote to the device (b"" if nothing yet)."""
        try:
            return os.read(self.master, size)
        except (BlockingIOError, OSError):
            return b""

    def __enter__(self) -> PtyPort:
        self.plug()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.unplug()


RELAY_POLL_S = 0.5
"""The relay thread looks at its stop flag at least this often, even if its wake-up
byte were lost, and picks up an end that was unplugged and plugged again."""
RELAY_JOIN_S = 5.0
"""Seconds ``NullModem.__exit__`` waits for the relay thread to end."""


class NullModem:
    """Two linked ptys whose bytes cross over, relayed by a thread."""

    def __init__(self, link_a: Path | str, link_b: Path | str) -> None:
        self.a = PtyPort(link_a)
        self.b = PtyPort(link_b)
        self._stop_r, self._stop_w = -1, -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def relaying(self) -> bool:
        """True while the relay thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> NullModem:
        self.a.plug()
        self.b.plug()
        self._stop.clear()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._relay, name="null-modem", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        os.write(self._stop_w, b"x")  # wakes the select at once
        if self._thread is not None:
            self._thread.join(timeout=RELAY_JOIN_S)
            if self._thread.is_alive():
                log.error("null modem %s <-> %s: the relay thread did not end within %.0fs "
                          "of its stop; left behind (a daemon thread)", self.a.link,
                          self.b.link, RELAY_JOIN_S)
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        self.a.unplug()
        self.b.unplug()

    def _relay(self) -> None:
        # a timeout and a stop flag: the thread ends within RELAY_POLL_S of its stop
        # whatever happens to the wake-up pipe; the ends are looked up each turn, so an
        # end unplugged meanwhile (its fd closed) is skipped rather than selected on
        while not self._stop.is_set():
            pairs = {p.master: other for p, other in ((self.a, self.b), (self.b, self.a))
                     if p.plugged}
            try:
                ready, _, _ = select.select([*pairs, self._stop_r], [], [], RELAY_POLL_S)
            except (OSError, ValueError):  # an end closed under us: look again
                self._stop.wait(0.01)
                continue
            if self._stop_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except (BlockingIOError, OSError):
                    continue  # EIO: nobody has that end open yet
                if data:
                    pairs[fd].write(data)
