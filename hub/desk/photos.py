"""Photos that come with reports and notes: checked by their content, kept on the hub's disk.

:func:`check` reads what the bytes are, never what the caller says they are: a JPEG
(SOI marker, then segments up to a start-of-frame header with the image's size and
components) or a PNG (the 8-byte signature, then an ``IHDR`` chunk with a valid size,
bit depth and colour type whose CRC matches). Anything else, a truncated header or an
image of 0 pixels is refused with what was wrong (:class:`BadPhoto`). This is a real
decode of the header, not of the pixels: Pillow is not a dependency of the hub, and a
photo is stored and served as the bytes it came as, never re-encoded, so the header is
what must be true.

:class:`PhotoStore` keeps each photo once, named by its content (the first 40 hex digits
of its SHA-256 and its type: ``<id>.jpg``), in folders made 0700 with files 0600 (photos
of people's doorsteps are personal data); who may read one is the API's concern (units
that may see an alert it belongs to).
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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


class PhotoStore:
    """Photos on disk under ``root``: ``root/<first two hex digits>/<id>``, folders 0700,
    files 0600, each written once (a second copy of the same bytes is the same file)."""

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


__all__ = ["MEDIA_TYPES", "PHOTO_ID", "BadPhoto", "Photo", "PhotoStore", "PhotoTooLarge",
           "PhotoType", "check"]
