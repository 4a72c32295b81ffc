"""The frame protocol: the reference encoder and the decoder agree, the streaming reader
finds every valid frame whatever surrounds it, and counts what it refuses by reason."""

from __future__ import annotations

import binascii
import importlib.util
import itertools
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridcall.firmware_bridge.errors import BridgeError, EncodeError, FrameError
from gridcall.firmware_bridge.frames import (
    MAGIC,
    MAX_CHANNELS,
    MAX_FRAME,
    REASONS,
    Frame,
    FrameReader,
    decode,
    encode,
)

REPO = Path(__file__).resolve().parent.parent

values = st.one_of(st.none(), st.floats(width=32, allow_nan=False))
frames = st.builds(
    Frame,
    device=st.integers(0, 2**31 - 1),
    seq=st.integers(0, 2**32 - 1),
    values=st.dictionaries(st.integers(0, 255), values, max_size=MAX_CHANNELS).map(
        lambda d: tuple(d.items())),
)
# Frames whose bytes end up in garbage: another device range, so a test can tell them apart.
foreign = st.builds(Frame, device=st.integers(2**31, 2**32 - 1), seq=st.integers(0, 9),
                    values=st.just(((0, 1.0),)))


@st.composite
def garbage(draw: st.DrawFn) -> bytes:
    """Line noise that looks like frames: random bytes, lone start markers, headers with
    any version and length, and frames cut short."""
    pieces = draw(st.lists(st.one_of(
        st.binary(max_size=40),
        st.just(MAGIC),
        st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=20)).map(
            lambda t: MAGIC + bytes(t[:2]) + t[2]),
        # A frame cut short, then two zero bytes. Without them the cut frame could be
        # completed by the next frame's first bytes when those equal the missing CRC bytes
        # (1 in 256 for a one-byte cut: the next byte is always A5): then both frames are
        # valid and overlap, and the reader, which cannot know, delivers the first and
        # loses the second (docs/firmware-protocol.md, "What the reader cannot recover").
        st.tuples(foreign, st.integers(1, 17)).map(
            lambda t: encode(t[0])[:-t[1]] + b"\x00\x00"),
    ), max_size=6))
    return b"".join(pieces)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def read_all(chunks: list[bytes]) -> tuple[list[Frame], FrameReader]:
    reader = FrameReader()
    out: list[Frame] = []
    for chunk in chunks:
        out += reader.feed(chunk)
    out += reader.flush()
    return out, reader


# --------------------------------------------------------------------------- encode / decode


def test_the_documented_example_frame() -> None:
    """The frame shown in docs/firmware-protocol.md, byte for byte."""
    frame = Frame(device=101, seq=7, values=((0, 21.5), (1, None), (2, -3.25)))
    data = encode(frame)
    assert data.hex(" ") == ("a5 5a 01 18 65 00 00 00 07 00 00 00 03 00 00 00 ac 41 01 00 00 "
                             "c0 7f 02 00 00 50 c0 39 f9 c6 2c")
    assert data[-4:] == struct.pack("<I", binascii.crc32(data[2:-4]))
    assert decode(data) == frame
    doc = (REPO / "docs" / "firmware-protocol.md").read_text(encoding="utf-8")
    assert data.hex(" ") in doc


@given(frames)
def test_decode_inverts_encode(frame: Frame) -> None:
    data = encode(frame)
    assert len(data) <= MAX_FRAME
    assert decode(data) == frame


@given(st.binary(max_size=300))
def test_decode_raises_only_frame_errors(data: bytes) -> None:
    try:
        decode(data)
    except FrameError as exc:
        assert exc.reason in (*REASONS, "bad_marker")


def test_a_frame_the_protocol_cannot_carry_is_refused_with_the_reason() -> None:
    with pytest.raises(EncodeError, match="33 channels; a frame carries at most 32"):
        encode(Frame(1, 1, tuple((c, 0.0) for c in range(33))))
    with pytest.raises(EncodeError, match="channel 3 given twice"):
        encode(Frame(1, 1, ((3, 0.0), (3, 1.0))))
    with pytest.raises(EncodeError, match="does not fit a float32"):
        encode(Frame(1, 1, ((0, 1e39),)))
    with pytest.raises(EncodeError, match="device id -1 is not a uint32"):
        encode(Frame(-1, 1, ()))


# --------------------------------------------------------------------------- the reader


def frame_with(body: bytes, version: int = 1) -> bytes:
    head = bytes((version, len(body)))
    return MAGIC + head + body + struct.pack("<I", binascii.crc32(head + body))


GOOD = Frame(7, 1, ((0, 1.5), (1, 2.5)))


@pytest.mark.parametrize(("bad", "reason"), [
    (bytearray(encode(Frame(7, 0, ((0, 9.0),)))), "bad_crc"),
    (MAGIC + b"\x01\x07" + bytes(20), "bad_length"),
    (frame_with(b"anything a later version may say", version=2), "unknown_version"),
    (frame_with(struct.pack("<IIB", 7, 0, 2) + struct.pack("<Bf", 0, 1.0)), "malformed"),
    (encode(Frame(7, 0, ((0, 9.0), (1, 8.0))))[:12], "truncated"),
])
def test_a_bad_frame_is_counted_by_reason_and_the_next_good_one_still_arrives(
        bad: bytes, reason: str) -> None:
    if reason == "bad_crc":
        bad[10] ^= 0x40  # one flipped bit on the line
    out, reader = read_all([bytes(bad) + encode(GOOD)])
    assert out == [GOOD]
    assert {r: n for r, n in reader.bad().items() if n} == {reason: 1}


def test_garbage_and_a_frame_cut_short_resynchronise_at_the_next_frame() -> None:
    second = Frame(7, 2, ((0, 3.5),))
    stream = b"boot v1.2 ok\r\n" + encode(GOOD)[:9] + encode(GOOD) + b"\x00\xa5" + encode(second)
    reader = FrameReader()
    assert [f for b in stream for f in reader.feed(bytes([b]))] == [GOOD, second]
    assert reader.counts["truncated"] == 1
    assert reader.counts["garbage_bytes"] == 14 + 9 + 2


def test_a_frame_is_delivered_as_soon_as_its_last_byte_arrives() -> None:
    reader = FrameReader()
    data = encode(GOOD)
    assert reader.feed(data[:-1]) == []
    assert reader.pending == len(data) - 1
    assert reader.feed(data[-1:]) == [GOOD]
    assert reader.pending == 0


def test_a_fake_header_claiming_a_long_frame_does_not_hold_back_the_frame_behind_it() -> None:
    # a start marker in noise whose length byte says 255: the reader would wait for 263
    # bytes, but a complete valid frame already starts inside them
    reader = FrameReader()
    assert reader.feed(MAGIC + b"\x02\xff" + encode(GOOD)) == [GOOD]
    assert reader.counts["truncated"] == 1


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(garbage(), frames), max_size=5), garbage(),
       st.lists(st.integers(0, 10_000), max_size=12))
def test_every_valid_frame_after_any_garbage_is_found_in_order_however_the_bytes_arrive(
        pairs: list[tuple[bytes, Frame]], tail: bytes, cuts: list[int]) -> None:
    stream = b"".join(g + encode(f) for g, f in pairs) + tail
    out, reader = read_all(chunked(stream, cuts))
    assert [f for f in out if f.device < 2**31] == [f for _, f in pairs]
    c = reader.counts
    assert c["bytes"] == len(stream) == reader.frame_bytes + c["garbage_bytes"]
    assert reader.pending == 0


@settings(max_examples=400)
@given(st.lists(st.binary(max_size=64), max_size=12))
def test_the_reader_never_raises_and_accounts_for_every_byte(chunks: list[bytes]) -> None:
    reader = FrameReader()
    try:
        for chunk in chunks:
            reader.feed(chunk)
            c = reader.counts
            assert c["bytes"] == reader.frame_bytes + c["garbage_bytes"] + reader.pending
            assert reader.pending <= 263
        reader.flush()
    except BridgeError:  # pragma: no cover - the reader counts, it does not raise
        pytest.fail("FrameReader.feed raised")
    assert reader.pending == 0


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_atheris_finds_no_exception_but_the_bridges_own() -> None:
    """Coverage-guided fuzzing of decode and FrameReader (scripts/fuzz_frames.py)."""
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "fuzz_frames.py"),
                          "-runs=20000", "-seed=1"], capture_output=True, text=True, check=False,
                         cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done 20000 runs" in run.stderr
