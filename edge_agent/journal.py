"""The unsealed readings' journal: what the agent read but has not yet sealed into a batch.

Readings are sealed into the outbox (:mod:`gridcall.edge_agent.outbox`) a batch at a time
(``batch_max_readings`` or ``batch_interval``), so up to one batch of readings lives only
in memory. The journal closes that gap: after each burst of samples from the source (a
poll's answer; the agent writes when its source waits for the next one), the new readings
are appended to a plain file with one ``write``. The operating system has them when the
call returns, so a kill -9 loses nothing that was read; at the next start
:meth:`Journal.recover` gives them back and the agent seals them into a batch.

Why a file and not the outbox's SQLite: a poll's answer every 100 ms would be ten SQLite
commits a second, each writing at least a 4 KiB WAL page (tens of GB a day on an SD card);
an append is one small ``write`` and the kernel writes the page back when it wants. The
journal is not fsynced: it covers a crash or a kill of the process, not a power cut (the
sealed batches cover that, with ``outbox_sync: full``; docs/benchmarks.md has the costs).

**Generations.** The file starts with a header holding a generation number; sealing a
batch stores that generation in the outbox in the batch's own transaction
(:meth:`Outbox.put` ``sealed_generation``), then the agent resets the file under the next
generation (:meth:`sealed`). A crash between the two leaves a journal whose generation
the outbox already sealed: :meth:`recover` drops it, so no reading is sealed twice. The
same holds at a start: :meth:`recover` leaves the file as it found it and gives back its
readings under the file's own generation; the agent seals them (recording that
generation) and only then calls :meth:`sealed`. A crash before that seal's commit finds
the same journal again at the next start (nothing lost); one after it finds it sealed
(nothing doubled). Until :meth:`sealed` (or a :meth:`recover` that found nothing) the
journal takes no appends.

File format: ``GCJ1`` + generation (8 bytes, little-endian), then frames of length
(4 bytes, little-endian) + a msgpack array of readings. A torn last frame (killed in the
middle of a write) is ignored.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import msgspec

from gridcall.wire import Reading
from gridcall.wire.private import private_folder

log = logging.getLogger(__name__)

MAGIC = b"GCJ1"
_HEADER = struct.Struct("<4sQ")
_FRAME = struct.Struct("<I")


class JournalError(RuntimeError):
    """The journal file cannot be written; names the file."""


class Journal:
    """Append-only journal of unsealed readings at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._encode = msgspec.msgpack.Encoder().encode
        self._decoder = msgspec.msgpack.Decoder(list[Reading])
        self.generation = 0
        self._fd: int | None = None

    def recover(self, sealed_generation: int) -> list[Reading]:
        """The readings a previous run journaled and did not seal (empty if its generation
        was sealed, or there is no journal). With nothing to give back, a fresh journal
        starts at once under the next generation; with readings, the file is left as it
        is and :attr:`generation` is its own: the caller seals them recording that
        generation, then calls :meth:`sealed` (a crash in between is covered either way:
        see the module doc). A damaged file is logged and counted as nothing."""
        if self._fd is not None:
            raise JournalError(f"journal {self.path}: recover() while it is open")
        found: list[Reading] = []
        generation = sealed_generation
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise JournalError(f"journal {self.path}: cannot read it ({exc})") from exc
        if data:
            if len(data) < _HEADER.size or data[:4] != MAGIC:
                log.error("journal %s has no journal header; ignoring it (%d bytes)",
                          self.path, len(data))
            else:
                _, generation = _HEADER.unpack_from(data)
                if generation > sealed_generation:
                    found = self._frames(data)
        if found:
            self.generation = generation  # sealed() moves on, once they are sealed
        else:
            self.generation = max(generation, sealed_generation) + 1
            self._reset()
        return found

    def _frames(self, data: bytes) -> list[Reading]:
        out: list[Reading] = []
        at = _HEADER.size
        while at + _FRAME.size <= len(data):
            (size,) = _FRAME.unpack_from(data, at)
            end = at + _FRAME.size + size
            if end > len(data):
                log.warning("journal %s: the last frame is torn (%d of %d bytes), ignored",
                            self.path, len(data) - at - _FRAME.size, size)
                break
            try:
                out.extend(self._decoder.decode(data[at + _FRAME.size:end]))
            except msgspec.DecodeError as exc:
                log.warning("journal %s: an unreadable frame at byte %d (%s); the rest is "
                            "ignored", self.path, at, exc)
                break
            at = end
        return out

    def _reset(self) -> None:
        """Start the journal over, empty, under :attr:`generation`."""
        try:
            if self._fd is None:
                private_folder(self.path.parent)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, _HEADER.pack(MAGIC, self.generation), 0)
            os.lseek(self._fd, _HEADER.size, os.SEEK_SET)
        except OSError as exc:
            raise JournalError(f"journal {self.path}: cannot write it ({exc})") from exc

    def append(self, readings: Sequence[Reading]) -> None:
        """Append readings in one ``write``: the OS has them when this returns."""
        if self._fd is None:
            raise JournalError(f"journal {self.path}: append before recover(), or before "
                               "sealed() after a recover() that gave readings back")
        body = self._encode(readings)
        frame = _FRAME.pack(len(body)) + body
        try:
            written = os.write(self._fd, frame)
        except OSError as exc:
            raise JournalError(f"journal {self.path}: cannot append ({exc})") from exc
        if written != len(frame):  # a full disk; recover() stops at this torn frame
            raise JournalError(f"journal {self.path}: wrote {written} of {len(frame)} bytes")

    def sealed(self) -> None:
        """The readings journaled so far are sealed in the outbox under
        :attr:`generation`: start the next generation with an empty journal."""
        self.generation += 1
        self._reset()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
