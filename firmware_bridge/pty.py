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
import os
import select
import threading
import tty
from pathlib import Path
from types import TracebackType


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


class NullModem:
    """Two linked ptys whose bytes cross over, relayed by a thread."""

    def __init__(self, link_a: Path | str, link_b: Path | str) -> None:
        self.a = PtyPort(link_a)
        self.b = PtyPort(link_b)
        self._stop_r, self._stop_w = -1, -1
        self._thread: threading.Thread | None = None

    def __enter__(self) -> NullModem:
        self.a.plug()
        self.b.plug()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._relay, name="null-modem", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        self.a.unplug()
        self.b.unplug()

    def _relay(self) -> None:
        pairs = {self.a.master: self.b, self.b.master: self.a}
        while True:
            ready, _, _ = select.select([*pairs, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except (BlockingIOError, OSError):
                    continue  # EIO: nobody has that end open yet
                if data:
                    pairs[fd].write(data)
