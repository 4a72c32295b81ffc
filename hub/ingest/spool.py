"""The ingest spool: reading batches kept on disk while the sink cannot take them.

Why files and not SQLite: a spooled chunk is written once, read once and deleted whole,
never queried or updated; one file per chunk (msgpack of the batches, written to a
temporary name, fsync'd, renamed, directory fsync'd) is the simplest thing that is
durable and needs no locking between the writer and the drainer. A crash leaves either
the whole file or only a ``.tmp`` that is ignored and removed on the next start.

Files are named by a growing number, so draining goes oldest first. A chunk written to
the sink and then deleted might, after a crash between the two, be written again: that
is harmless, since InfluxDB (and the embedded store) keep one point per series and
timestamp.

Each ingest worker needs its own spool folder (nothing is shared between processes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from gridcall.wire import ReadingBatch
from gridcall.wire.private import private_folder

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[ReadingBatch])
SUFFIX = ".spool"


@dataclass(frozen=True, slots=True)
class SpoolFile:
    path: Path
    readings: int


class Spool:
    """A folder of spooled chunks; methods block on disk (call them in a thread)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        private_folder(self.folder)
        for tmp in self.folder.glob("*.tmp"):  # a write cut short by a crash
            tmp.unlink(missing_ok=True)
        existing = self.files()
        self._next = int(existing[-1].stem) + 1 if existing else 0

    def __repr__(self) -> str:
        return f"Spool({str(self.folder)!r})"

    def files(self) -> list[Path]:
        """Spooled chunks, oldest first."""
        return sorted(self.folder.glob(f"*{SUFFIX}"), key=lambda p: int(p.stem))

    def put(self, batches: Sequence[ReadingBatch]) -> SpoolFile:
        """Write ``batches`` durably; when this returns they survive a power cut."""
        n = self._next
        self._next += 1
        final = self.folder / f"{n:012d}{SUFFIX}"
        tmp = final.with_suffix(".tmp")
        data = _encoder.encode(list(batches))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return SpoolFile(final, sum(len(b.readings) for b in batches))

    def read(self, path: Path) -> list[ReadingBatch]:
        """The batches of one spooled chunk; ValueError naming the file if it is damaged."""
        try:
            return _decoder.decode(path.read_bytes())
        except msgspec.DecodeError as exc:
            raise ValueError(f"spool file {path} is damaged: {exc}") from exc

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def quarantine(self, path: Path) -> Path:
        """Move a damaged file aside (kept for a person to look at, never deleted)."""
        bad = path.with_suffix(".damaged")
        os.replace(path, bad)
        return bad

    def pending_readings(self) -> int:
        return sum(len(b.readings) for p in self.files() for b in self.read(p))
