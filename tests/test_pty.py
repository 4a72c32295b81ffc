"""The pty null modem relays both ways, goes on relaying across an unplug of one end, and
its relay thread ends when the modem is closed (a thread blocked in select without a
timeout on a closed fd is how a test's teardown could wait for ever)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from gridcall.firmware_bridge.pty import NullModem

BOUND = 30.0
"""Seconds to wait for bytes to cross before calling it lost (not a timing claim)."""


@contextlib.contextmanager
def opened(link: Path) -> Iterator[int]:
    fd = os.open(link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        yield fd
    finally:
        os.close(fd)


def crosses(src: int, dst: int, data: bytes) -> bool:
    os.write(src, data)
    got = b""
    deadline = time.monotonic() + BOUND
    while len(got) < len(data) and time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            got += os.read(dst, 4096)
        time.sleep(0.01)
    return got == data


def test_the_relay_survives_an_unplug_and_ends_with_the_modem(tmp_path: Path) -> None:
    modem = NullModem(tmp_path / "ttyA", tmp_path / "ttyB")
    with modem:
        with opened(modem.a.link) as a, opened(modem.b.link) as b:
            assert crosses(a, b, b"ping")
            assert crosses(b, a, b"pong")
        modem.a.unplug()  # its fd closes under the relay's select
        # something else takes the old fd number, so the end comes back on another one
        with opened(Path(os.devnull)):
            modem.a.plug()
            with opened(modem.a.link) as a, opened(modem.b.link) as b:
                assert crosses(a, b, b"again")
        assert modem.relaying
    assert not modem.relaying, "the relay thread outlived its null modem"
