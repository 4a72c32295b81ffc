"""How fast the frame protocol decodes: frames/s and bytes/s for a clean stream, a noisy one,
and through a real pty into the agent's serial source.

    PYTHONPATH=. python bench/firmware_frames.py

Deterministic workloads (seeded), no network. The pty figure includes the kernel, pyserial
and the event loop, so it is the one to compare with a device's frame rate.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path

from gridcall.config.sources import SerialSettings
from gridcall.edge_agent.serial_source import SerialFrameSource
from gridcall.firmware_bridge.frames import Frame, FrameReader, encode
from gridcall.firmware_bridge.pty import PtyPort

CHANNELS = 8
FRAMES = 200_000


def stream(n: int, *, noise: float, seed: int = 1) -> tuple[bytes, int]:
    rng = random.Random(seed)
    parts = []
    for i in range(n):
        if noise and rng.random() < noise:
            parts.append(rng.randbytes(rng.randint(1, 30)))
        values = tuple((ch, rng.uniform(0, 100)) for ch in range(CHANNELS))
        parts.append(encode(Frame(1, i, values)))
    return b"".join(parts), n


def decode_rate(data: bytes, chunk: int) -> tuple[float, float, FrameReader]:
    reader = FrameReader()
    start = time.perf_counter()
    got = 0
    for i in range(0, len(data), chunk):
        got += len(reader.feed(data[i:i + chunk]))
    elapsed = time.perf_counter() - start
    return got / elapsed, len(data) / elapsed, reader


def encode_rate(n: int) -> float:
    values = tuple((ch, float(ch)) for ch in range(CHANNELS))
    start = time.perf_counter()
    for i in range(n):
        encode(Frame(1, i, values))
    return n / (time.perf_counter() - start)


async def pty_rate(n: int) -> tuple[float, float]:
    """Frames through a pty into SerialFrameSource, as fast as they can be written."""
    data, _ = stream(n, noise=0.0)
    with tempfile.TemporaryDirectory() as tmp, PtyPort(Path(tmp) / "tty") as port:
        settings = SerialSettings.model_validate({
            "type": "serial", "port": str(port.link),
            "devices": [{"id": 1, "channels": {ch: f"s{ch}" for ch in range(CHANNELS)}}]})
        source = SerialFrameSource(settings, agent_id="bench")
        samples = 0
        done = asyncio.Event()

        async def consume() -> None:
            nonlocal samples
            async for _ in source.samples():
                samples += 1
                if samples == n * CHANNELS:
                    done.set()

        task = asyncio.create_task(consume())
        await source.link.connected.wait()
        start = time.perf_counter()
        view = memoryview(data)
        while view:
            written = port.write(bytes(view[:4096]))
            view = view[written:]
            if not written:
                await asyncio.sleep(0)  # the pty buffer is full: let the reader run
        await done.wait()
        elapsed = time.perf_counter() - start
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return n / elapsed, len(data) / elapsed


def main() -> None:
    size = len(encode(Frame(1, 0, tuple((ch, 0.0) for ch in range(CHANNELS)))))
    print(f"frames of {CHANNELS} channels, {size} bytes each")
    print(f"encode (reference encoder): {encode_rate(FRAMES // 2):>12,.0f} frames/s")
    clean, n = stream(FRAMES, noise=0.0)
    for chunk in (64, 4096):
        fps, bps, _ = decode_rate(clean, chunk)
        print(f"decode clean, {chunk:>4}-byte reads: {fps:>12,.0f} frames/s "
              f"{bps / 1e6:>7.1f} MB/s")
    noisy, n = stream(FRAMES, noise=0.1)
    fps, bps, reader = decode_rate(noisy, 4096)
    print(f"decode, noise before 10% of frames: {fps:>10,.0f} frames/s {bps / 1e6:>7.1f} MB/s "
          f"(found {reader.counts['frames']:,} of {n:,}; "
          f"{ {k: v for k, v in reader.bad().items() if v} })")
    # the worst noise we know: nothing but start markers with a 255-byte length, so every
    # byte position is a candidate and the inner candidate of dozens of others
    hostile = b"\xa5\x5a\x02\xff" * 25_000
    _, bps, reader = decode_rate(hostile, 4096)
    print(f"decode, nothing but fake headers:  {bps / 1e3:>10,.0f} KB/s "
          f"({reader.counts['bad_crc']:,} bad_crc)")
    fps, bps = asyncio.run(pty_rate(50_000))
    print(f"pty → SerialFrameSource samples:   {fps:>10,.0f} frames/s {bps / 1e6:>7.1f} MB/s "
          f"({fps * CHANNELS:,.0f} samples/s)")


if __name__ == "__main__":
    main()
