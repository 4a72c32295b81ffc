"""gridcall's serial frame protocol, version 1: the pure core (no I/O).

Layout (all integers little-endian; docs/firmware-protocol.md has an example in hex)::

    offset size  field
    0      2     start marker A5 5A
    2      1     version (1)
    3      1     N: length of the body in bytes
    4      N     body (version 1):
                   0  4  device id (uint32)
                   4  4  sequence number (uint32, +1 per frame, wraps)
                   8  1  C: channel count (0..32; 0 is a heartbeat)
                   9  5C C × (channel uint8, value float32; NaN: no value)
    4+N    4     CRC-32 (IEEE 802.3, as zlib/binascii.crc32) over bytes 2 .. 3+N

Bytes 0-3 and the trailing CRC keep their meaning in every future version, so a reader
can step over a valid frame of a version it does not know (and count it).

:func:`encode` is the reference encoder (simulators and tests use it; firmware ports it);
:func:`decode` checks one complete frame; :class:`FrameReader` finds frames in a byte
stream with garbage and cut-off frames in it, and counts every bad frame by reason.
Nothing here raises anything but :mod:`gridcall.firmware_bridge.errors` types.

Why a start marker and a length rather than COBS: the firmware side stays a memcpy plus a
CRC (no byte stuffing to get wrong in C), the frame has a fixed worst-case size, and
resynchronisation after garbage is handled here by re-scanning from the byte after a
failed start marker, so a valid frame behind garbage is never skipped.
"""

from __future__ import annotations

import binascii
import math
import struct
from collections import Counter
from dataclasses import dataclass

from gridcall.firmware_bridge.errors import EncodeError, FrameError

MAGIC = b"\xa5\x5a"
"""Start marker. The first byte is not ASCII, so debug text on the same UART never forms it."""
VERSION = 1
HEADER_SIZE = 4
CRC_SIZE = 4
BODY_FIXED = 9
CHANNEL_SIZE = 5
MAX_CHANNELS = 32
MAX_BODY = BODY_FIXED + CHANNEL_SIZE * MAX_CHANNELS  # 169
MAX_FRAME = HEADER_SIZE + MAX_BODY + CRC_SIZE  # 177 bytes: fits a 256-byte UART buffer

REASONS = ("bad_crc", "bad_length", "unknown_version", "malformed", "truncated")
"""Why a frame was refused (the counters of :class:`FrameReader`):

- ``bad_crc``: a start marker and a plausible length, but the CRC does not match;
- ``bad_length``: a version-1 header whose length no version-1 frame can have;
- ``unknown_version``: a frame with a good CRC and a version this reader does not know;
- ``malformed``: a good CRC but a body that contradicts itself (channel count vs length,
  a channel given twice): a firmware bug, not line noise;
- ``truncated``: a frame cut off by the start of the next one (device reset, unplug
  mid-frame) or by the end of the input.
"""

_HEADER = struct.Struct("<2sBB")
_BODY = struct.Struct("<IIB")
_CHANNEL = struct.Struct("<Bf")
_CRC = struct.Struct("<I")
_U32 = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: a device's channel values at one moment. ``value`` None: no value."""

    device: int
    seq: int
    values: tuple[tuple[int, float | None], ...]


def encode(frame: Frame) -> bytes:
    """The bytes of a version-1 frame; EncodeError if the protocol cannot carry it."""
    if not 0 <= frame.device <= _U32:
        raise EncodeError(f"device id {frame.device} is not a uint32")
    if not 0 <= frame.seq <= _U32:
        raise EncodeError(f"sequence number {frame.seq} is not a uint32")
    if len(frame.values) > MAX_CHANNELS:
        raise EncodeError(f"{len(frame.values)} channels; a frame carries at most "
                          f"{MAX_CHANNELS}")
    parts = [_BODY.pack(frame.device, frame.seq, len(frame.values))]
    seen: set[int] = set()
    for channel, value in frame.values:
        if not 0 <= channel <= 255:
            raise EncodeError(f"channel {channel} is not a uint8")
        if channel in seen:
            raise EncodeError(f"channel {channel} given twice")
        seen.add(channel)
        try:
            parts.append(_CHANNEL.pack(channel, math.nan if value is None else value))
        except (OverflowError, struct.error) as exc:
            raise EncodeError(f"channel {channel}: {value!r} does not fit a float32") from exc
    body = b"".join(parts)
    head = bytes((VERSION, len(body)))
    return MAGIC + head + body + _CRC.pack(binascii.crc32(head + body))


def decode(data: bytes) -> Frame:
    """Exactly one complete version-1 frame; FrameError (with ``reason``) otherwise."""
    if len(data) < HEADER_SIZE:
        raise FrameError("truncated", f"{len(data)} bytes, a header alone is {HEADER_SIZE}")
    if data[:2] != MAGIC:
        raise FrameError("bad_marker", f"starts with {data[:2].hex()}, not {MAGIC.hex()}")
    size = HEADER_SIZE + data[3] + CRC_SIZE
    if len(data) < size:
        raise FrameError("truncated", f"{len(data)} of {size} bytes")
    if len(data) > size:
        raise FrameError("bad_length", f"{len(data)} bytes, the header says {size}")
    result = _check(bytes(data), 0)
    if isinstance(result, Frame):
        return result
    raise FrameError(result[0], result[1])


def _plausible_v1_length(n: int) -> bool:
    return BODY_FIXED <= n <= MAX_BODY and (n - BODY_FIXED) % CHANNEL_SIZE == 0


def _check(buf: bytes | bytearray, pos: int) -> Frame | tuple[str, str]:
    """The frame at ``pos`` (whose header and full length are in ``buf``), or (reason,
    detail). The CRC is checked before the version, so only a real frame of another
    version counts as unknown_version; line noise stays bad_crc."""
    version, n = buf[pos + 2], buf[pos + 3]
    end = pos + HEADER_SIZE + n
    (crc,) = _CRC.unpack_from(buf, end)
    if binascii.crc32(buf[pos + 2:end]) != crc:
        return "bad_crc", f"CRC-32 {crc:08x} does not match the frame"
    if version != VERSION:
        return "unknown_version", f"version {version}; this reader knows {VERSION}"
    if not _plausible_v1_length(n):
        return "bad_length", f"body of {n} bytes"
    device, seq, count = _BODY.unpack_from(buf, pos + HEADER_SIZE)
    if n != BODY_FIXED + CHANNEL_SIZE * count:
        return "malformed", f"{count} channels in a body of {n} bytes"
    values = tuple(
        (ch, None if math.isnan(v) else v)
        for ch, v in _CHANNEL.iter_unpack(buf[pos + HEADER_SIZE + BODY_FIXED:end]))
    if len({ch for ch, _ in values}) != count:
        return "malformed", "a channel given twice"
    return Frame(device, seq, values)


# what _try makes of the bytes at a start marker
_OK, _SKIP, _BAD, _MORE = range(4)


class FrameReader:
    """Frames from a byte stream, in order, whatever the stream holds in between.

    ``feed(chunk)`` returns the frames completed by the chunk and never raises. Bytes
    that are not part of a delivered frame are counted in ``counts["garbage_bytes"]``;
    refused frames by reason (:data:`REASONS`); ``bytes`` and ``frames`` count input and
    output, so ``bytes == frame_bytes + garbage_bytes + pending`` always holds.

    Resynchronisation: when the bytes at a start marker are not a valid frame, the reader
    moves on by one byte and looks for the next marker, so a valid frame that begins inside
    a broken one (or inside garbage that happens to contain a marker) is still found. While
    a frame is incomplete the reader waits for its bytes, unless a complete valid frame
    already starts inside it: then the incomplete one was cut off (``truncated``).
    ``flush()`` ends the input (a port that closed): what is still pending is counted.
    """

    __slots__ = ("_buf", "_known", "counts", "frame_bytes")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._known: dict[int, tuple[int, Frame | str | None, int]] = {}
        """What _try found at complete candidates during one scan: noise full of start
        markers makes every candidate the inner one of dozens of others; each is checked
        (CRC) once."""
        self.counts: Counter[str] = Counter()
        self.frame_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held back: the start of a frame still waiting for its end."""
        return len(self._buf)

    def bad(self) -> dict[str, int]:
        """Refused frames by reason (reasons never seen are 0)."""
        return {r: self.counts[r] for r in REASONS}

    def feed(self, data: bytes) -> list[Frame]:
        self.counts["bytes"] += len(data)
        self._buf += data
        return self._scan(final=False)

    def flush(self) -> list[Frame]:
        """The input ended: deliver what is complete, count the rest, start afresh."""
        return self._scan(final=True)

    def _try(self, pos: int) -> tuple[int, Frame | str | None, int]:
        known = self._known.get(pos)
        if known is not None:
            return known
        buf = self._buf
        if len(buf) - pos < HEADER_SIZE:
            return _MORE, None, 0
        version, n = buf[pos + 2], buf[pos + 3]
        if version == VERSION and not _plausible_v1_length(n):
            return _BAD, "bad_length", 0
        size = HEADER_SIZE + n + CRC_SIZE
        if len(buf) - pos < size:
            return _MORE, None, size
        result = _check(buf, pos)
        if isinstance(result, Frame):
            found: tuple[int, Frame | str | None, int] = (_OK, result, size)
        else:
            found = (_BAD if result[0] == "bad_crc" else _SKIP), result[0], size
        self._known[pos] = found
        return found

    def _inside(self, start: int, end: int, *, any_viable: bool = False) -> tuple[int, int]:
        """The first start marker in buf[start:end] that begins a complete frame (valid or
        of another version: state _OK/_SKIP) or one still waiting for bytes (_MORE);
        ``any_viable``: the first that is either."""
        waiting = -1
        q = self._buf.find(MAGIC, start, end + 1)
        while q != -1 and q < end:
            state, _, _ = self._try(q)
            if state in (_OK, _SKIP) or (state == _MORE and any_viable):
                return state, q
            if state == _MORE and waiting < 0:
                waiting = q
            q = self._buf.find(MAGIC, q + 1, end + 1)
        return (_MORE, waiting) if waiting >= 0 else (_BAD, -1)

    def _scan(self, *, final: bool) -> list[Frame]:
        buf, counts = self._buf, self.counts
        out: list[Frame] = []
        pos = 0
        while pos < len(buf):
            i = buf.find(MAGIC, pos)
            if i < 0:
                # keep a last byte that may be the first half of a marker
                keep = 1 if buf[-1] == MAGIC[0] and not final else 0
                counts["garbage_bytes"] += len(buf) - keep - pos
                pos = len(buf) - keep
                break
            counts["garbage_bytes"] += i - pos
            pos = i
            state, result, size = self._try(pos)
            if state == _OK and isinstance(result, Frame):
                out.append(result)
                counts["frames"] += 1
                self.frame_bytes += size
                pos += size
            elif state == _SKIP:
                counts[str(result)] += 1
                counts["garbage_bytes"] += size
                pos += size
            elif state == _BAD:
                # a broken frame; was it cut off by the next one?
                inner, _ = (self._inside(pos + 1, pos + size, any_viable=True) if size
                            else (_BAD, -1))
                counts["truncated" if inner != _BAD else str(result)] += 1
                counts["garbage_bytes"] += 1
                pos += 1
            else:  # _MORE: wait for the rest, unless a complete frame starts inside it
                inner, q = self._inside(pos + 1, len(buf))
                if inner in (_OK, _SKIP):
                    counts["truncated"] += 1
                    counts["garbage_bytes"] += q - pos
                    pos = q
                elif final:
                    counts["truncated"] += 1
                    counts["garbage_bytes"] += 1
                    pos += 1
                else:
                    break
        del buf[:pos]
        self._known.clear()
        return out
