"""Small JPEG and PNG files built byte by byte for the photo checks (Pillow is not a
dependency): headers exactly as the formats define them, with a tiny body."""

from __future__ import annotations

import struct
import zlib


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body))


def png(width: int = 4, height: int = 3, *, depth: int = 8, colour: int = 2,
        pad: int = 0) -> bytes:
    """An RGB PNG of ``width`` x ``height`` black pixels (``pad`` bytes of ancillary text
    make it larger)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x00" * (3 * width) for _ in range(height))
    text = chunk(b"tEXt", b"Comment\x00" + b"x" * pad) if pad else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + text
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg(width: int = 16, height: int = 8, *, components: int = 3, frame: bool = True) -> bytes:
    """A baseline JPEG's markers: SOI, APP0 (JFIF), SOF0 with the size, SOS, EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    comps = b"".join(bytes((i + 1, 0x11, 0)) for i in range(components))
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 8 + 3 * components, 8, height, width,
                                    components) + comps
    sos = b"\xff\xda" + struct.pack(">HB", 6 + 2 * components - 2 + 2, components) + b"".join(
        bytes((i + 1, 0)) for i in range(components)) + b"\x00\x3f\x00"
    return b"\xff\xd8" + app0 + (sof if frame else b"") + sos + b"\x00" * 16 + b"\xff\xd9"
