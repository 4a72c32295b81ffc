"""Photos that come with reports and notes: checked by their content, kept in the desk store.

:func:`check` reads what the bytes are, never what the caller says they are: a JPEG
(SOI marker, then segments up to a start-of-frame header with the image's size and
components) or a PNG (the 8-byte signature, then an ``IHDR`` chunk with a valid size,
bit depth and colour type whose CRC matches). Anything else, a truncated header or an
image of 0 pixels is refused with what was wrong (:class:`BadPhoto`). This is a real
decode of the header, not of the pixels: Pillow is not a dependency of the hub, and a
photo is stored and served as the bytes it came as, never re-encoded, so the header is
what must be true.

:class:`PhotoStore` keeps each photo once, named by its content (the first 40 hex digits
of its SHA-256 and its type: ``<id>.jpg``), in the desk store beside the ledger: a table
``photos`` (SQLite BLOB; PostgreSQL BYTEA, migration 7), a row written once and never
changed (append-only, as the ledgers: a photo is evidence of a report or a disposal).
So both hubs of an active/standby pair serve the same photos (a standby reads the shared
store and cannot reach the active hub's disk), a backup of the store holds them with the
steps naming them, and the API writes a photo before the step that names it, so no step
ever names a photo the store lacks. Who may read one is the API's concern (units that may
see an alert it belongs to).

**Photos of earlier versions** were files under ``hub.reports.photo_dir``
(:class:`PhotoFolder`: folders 0700, files 0600). The active hub imports them into the
store at start (:meth:`PhotoStore.import_folder`: each file checked again by its
content, written once; the files are left for the operator to remove), and until then
a photo the table lacks is read from the folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gridcall.hub.desk.appendlog import BodyLog, Table
from gridcall.hub.store import DeskStore

PhotoType = Literal["jpg", "png"]
PHOTO_ID = re.compile(r"^[0-9a-f]{40}\.(jpg|png)$")
"""A photo's id: its content's SHA-256 (40 hex digits) and its type."""
MEDIA_TYPES: dict[PhotoType, str] = {"jpg": "image/jpeg", "png": "image/png"}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
"""PNG colour type -> the bit depths it allows (the PNG specification, table 11.1)."""
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                  0xCF})
"""JPEG start-of-frame markers (baseline, extended, progressive, lossless...)."""
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
"""JPEG markers without a length (TEM, RSTn)."""
MAX_SIDE = 65_535


class BadPhoto(ValueError):
    """Bytes that are not a JPEG or PNG image, or one whose header is broken."""


class PhotoTooLarge(ValueError):
    """A photo larger than ``hub.reports.photo_max_bytes``."""


@dataclass(frozen=True, slots=True)
class Photo:
    """What :func:`check` found."""

    id: str
    type: PhotoType
    width: int
    height: int
    size: int

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.type]


def _png(data: bytes) -> tuple[int, int]:
    if len(data) < 33:
        raise BadPhoto("a PNG too short for its IHDR header")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise BadPhoto("a PNG whose first chunk is not a 13-byte IHDR")
    body = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    if zlib.crc32(data[12:29]) != crc:
        raise BadPhoto("a PNG whose IHDR fails its CRC")
    width, height, depth, colour, compression, filter_, interlace = struct.unpack(
        ">IIBBBBB", body)
    if depth not in _PNG_DEPTHS.get(colour, set()):
        raise BadPhoto(f"a PNG with colour type {colour} and bit depth {depth}, which PNG "
                       "does not have")
    if compression != 0 or filter_ != 0 or interlace not in (0, 1):
        raise BadPhoto("a PNG with an unknown compression, filter or interlace method")
    return width, height


def _jpeg(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise BadPhoto(f"a JPEG whose segment at byte {i} does not start with a marker")
        marker = data[i + 1]
        if marker == 0xFF:  # fill bytes before a marker
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):
            raise BadPhoto("a JPEG without a frame header before its scan")
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if length < 2:
            raise BadPhoto(f"a JPEG segment at byte {i} with length {length}")
        if marker in _SOF:
            if i + 2 + length > len(data) or length < 8:
                raise BadPhoto("a JPEG whose frame header is truncated")
            precision, height, width, components = struct.unpack(">BHHB", data[i + 4:i + 10])
            if precision not in (8, 12, 16) or components not in (1, 2, 3, 4):
                raise BadPhoto(f"a JPEG frame with precision {precision} and {components} "
                               "components")
            if length != 8 + 3 * components:
                raise BadPhoto("a JPEG frame header whose length does not fit its components")
            return width, height
        i += 2 + length
    raise BadPhoto("a JPEG without a frame header")


def check(data: bytes, *, max_bytes: int) -> Photo:
    """What ``data`` is, by its content; :class:`PhotoTooLarge` over ``max_bytes``,
    :class:`BadPhoto` if it is not a JPEG or PNG with a sound header and a size."""
    if len(data) > max_bytes:
        raise PhotoTooLarge(f"a photo of {len(data)} bytes; at most {max_bytes} are taken "
                            "(hub.reports.photo_max_bytes)")
    kind: PhotoType
    if data.startswith(_PNG_SIGNATURE):
        kind, (width, height) = "png", _png(data)
    elif data.startswith(b"\xff\xd8\xff"):
        kind, (width, height) = "jpg", _jpeg(data)
    else:
        raise BadPhoto("not a JPEG or PNG image (by its first bytes)")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise BadPhoto(f"an image of {width}x{height} pixels")
    digest = hashlib.sha256(data).hexdigest()[:40]
    return Photo(id=f"{digest}.{kind}", type=kind, width=width, height=height,
                 size=len(data))


class PhotoFolder:
    """Photos on disk under ``root``, as earlier versions kept them: ``root/<first two
    hex digits>/<id>``, folders 0700, files 0600, each written once (a second copy of
    the same bytes is the same file)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _folder(self, photo_id: str) -> Path:
        return self.root / photo_id[:2]

    def path(self, photo_id: str) -> Path:
        if not PHOTO_ID.match(photo_id):
            raise BadPhoto(f"{photo_id!r} is not a photo id")
        return self._folder(photo_id) / photo_id

    def put(self, photo: Photo, data: bytes) -> Path:
        """Write the photo (if it is not there yet) atomically; its path. Blocking."""
        target = self.path(photo.id)
        if target.exists():
            return target
        for folder in (self.root, target.parent):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target

    def get(self, photo_id: str) -> bytes | None:
        """The photo's bytes, None if the store does not hold it. Blocking."""
        try:
            return self.path(photo_id).read_bytes()
        except FileNotFoundError:
            return None


    def ids(self) -> list[str]:
        """The ids of every photo in the folder, sorted (none if there is no folder).
        Blocking."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.glob("??/*") if PHOTO_ID.match(p.name))


TABLE = Table(
    name="photos", what="the photo store", columns=("photo_id", "type", "size"),
    schema="""
CREATE TABLE IF NOT EXISTS photos (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    photo_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, size INTEGER NOT NULL,
    body BLOB NOT NULL
);
""")
"""A photo's row: its id, type, size and bytes. PostgreSQL's is migration 7 of
:mod:`gridcall.hub.pgstore`."""


class PhotoStore:
    """Photos in the desk store ``store`` (use inside ``async with store``), each
    written once; ``legacy``: the folder earlier versions kept them in, read when the
    table lacks one (:class:`PhotoFolder`)."""

    def __init__(self, store: DeskStore, legacy: Path | str | None = None) -> None:
        self.log = BodyLog(store, TABLE)
        self.legacy = PhotoFolder(legacy) if legacy is not None else None

    async def put(self, photo: Photo, data: bytes) -> bool:
        """Write the photo unless the store holds it; whether it was written."""
        return await self.log.add((photo.id, photo.type, photo.size, data))

    async def get(self, photo_id: str) -> bytes | None:
        """The photo's bytes, None if neither the store nor the legacy folder holds it."""
        if not PHOTO_ID.match(photo_id):
            raise BadPhoto(f"{photo_id!r} is not a photo id")
        found = await self.log.bodies("photo_id = ?", (photo_id,))
        if found:
            return found[0]
        if self.legacy is None:
            return None
        return await asyncio.to_thread(self.legacy.get, photo_id)

    async def import_folder(self) -> tuple[int, list[str]]:
        """Write every photo of the legacy folder the store lacks, each checked again by
        its content (a file that is not the photo its name says is left out and named);
        how many were written, and what was left out and why."""
        if self.legacy is None:
            return 0, []
        folder = self.legacy
        written = 0
        skipped: list[str] = []
        for photo_id in await asyncio.to_thread(folder.ids):
            data = await asyncio.to_thread(folder.get, photo_id)
            if data is None:
                continue
            try:
                photo = check(data, max_bytes=len(data))  # taken under its day's limit
            except BadPhoto as exc:
                skipped.append(f"{photo_id}: {exc}")
                continue
            if photo.id != photo_id:
                skipped.append(f"{photo_id}: its content is {photo.id}")
                continue
            written += await self.put(photo, data)
        return written, skipped


__all__ = ["MEDIA_TYPES", "PHOTO_ID", "TABLE", "BadPhoto", "Photo", "PhotoFolder",
           "PhotoStore", "PhotoTooLarge", "PhotoType", "check"]
