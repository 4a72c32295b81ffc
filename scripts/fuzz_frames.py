"""Coverage-guided fuzzing of the frame parser with atheris (libFuzzer for Python).

    PYTHONPATH=. python scripts/fuzz_frames.py -runs=200000
    PYTHONPATH=. python scripts/fuzz_frames.py -max_total_time=600   # a longer session

Any exception but firmware_bridge's own FrameError from ``decode``, any exception at all
from ``FrameReader``, or a byte the reader cannot account for, is a crash that libFuzzer
reports with the input that caused it. tests/test_frames.py runs a short session.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from gridcall.firmware_bridge.errors import FrameError
    from gridcall.firmware_bridge.frames import MAGIC, FrameReader, decode


def one_input(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode(data)
    # the same bytes as a stream, split where the input says, with a start marker thrown in
    # so that the fuzzer reaches the resynchronisation paths quickly
    reader = FrameReader()
    cut = data[0] % (len(data) + 1) if data else 0
    for chunk in (data[:cut], MAGIC, data[cut:]):
        reader.feed(chunk)
    c = reader.counts
    if c["bytes"] != reader.frame_bytes + c["garbage_bytes"] + reader.pending:
        raise RuntimeError(f"bytes unaccounted for: {dict(c)}, pending {reader.pending}")
    reader.flush()
    if reader.pending:
        raise RuntimeError("bytes left after flush")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
