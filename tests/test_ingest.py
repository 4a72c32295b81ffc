"""The ingest runner against a real InfluxDB: partial writes are counted exactly, a sink
that is down keeps the data until it comes back, and a drain at shutdown is bounded: what
it could not write is counted and logged, never claimed as stored."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from gridcall.hub.ingest.runner import Ingest, Unwritten
from gridcall.hub.ingest.sinks import InfluxV1Sink, LineEncoder
from gridcall.wire import Reading, ReadingBatch
from tests.polling import wait_until
from tests.servers import influxql, unused_tcp_port

WEEK = 7 * 24 * 3600 * 10**9
T0 = 1_795_000_000_000_000_000


async def test_a_partial_write_counts_only_the_dropped_points(
    influx_v1_url: str, influx_database: str
) -> None:
    # 'value' is a string in the shard of T0's week only: the float points there are
    # refused, those a fortnight later land in another shard and are stored.
    async with httpx.AsyncClient(base_url=influx_v1_url) as http:
        await http.post("/write", params={"db": influx_database},
                        content=f'reading,agent=x,sensor=y value="text" {T0}'.encode())
    batch = ReadingBatch(agent="edge-a", seq=1, sent_at=T0, readings=[
        Reading("s1", T0 + 1, 1.0), Reading("s1", T0 + 2, 2.0),
        Reading("s1", T0 + 2 * WEEK, 3.0)])
    async with InfluxV1Sink(influx_v1_url, database=influx_database,
                            encoder=LineEncoder()) as sink:
        ingest = Ingest(sink)
        await ingest.put(batch)
        await ingest.flush()
    assert (ingest.counters.rejected_readings, ingest.counters.readings_stored) == (2, 1)
    rows = influxql(influx_v1_url, "SELECT value FROM reading WHERE agent='edge-a'",
                    database=influx_database)
    assert [r["value"] for r in rows] == [3.0]


async def test_readings_wait_for_a_sink_that_is_down() -> None:
    class Flaky:
        """A sink whose server is unreachable for its first two writes."""

        def __init__(self, url: str) -> None:
            self.inner = InfluxV1Sink(url, database="x", encoder=LineEncoder())
            self.calls = 0
            self.written: list[ReadingBatch] = []

        async def __aenter__(self) -> Flaky:
            await self.inner.__aenter__()
            return self

        async def __aexit__(self, *exc: object) -> None:
            await self.inner.__aexit__(*exc)

        async def write(self, batches: list[ReadingBatch]) -> None:
            self.calls += 1
            if self.calls <= 2:
                await self.inner.write(batches)  # connection refused: RetryableSinkError
            self.written.extend(batches)

    async with Flaky(f"http://127.0.0.1:{unused_tcp_port()}") as sink:
        ingest = Ingest(sink, flush_interval=0.01)  # type: ignore[arg-type]
        batch = ReadingBatch(agent="edge-a", seq=1, sent_at=T0,
                             readings=[Reading("s1", T0, 1.0)])
        await ingest.put(batch)
        await asyncio.wait_for(ingest.flush(), 30)
    assert sink.written == [batch]
    assert ingest.counters.write_retries == 2
    assert ingest.counters.readings_stored == 1


async def test_a_drain_gives_up_on_a_sink_that_is_down_and_counts_what_it_did_not_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port()}"
    batches = [ReadingBatch(agent="edge-a", seq=seq, sent_at=T0,
                            readings=[Reading("s1", T0 + seq * 10 + i, 1.0) for i in range(n)])
               for seq, n in ((1, 2), (2, 3), (3, 4))]
    async with InfluxV1Sink(url, database="x", encoder=LineEncoder()) as sink:
        ingest = Ingest(sink)
        for b in batches:
            await ingest.put(b)
        with caplog.at_level(logging.ERROR, logger="gridcall.hub.ingest.runner"):
            left = await asyncio.wait_for(ingest.drain(0.5), 60)  # guard against a hang
        again = await asyncio.wait_for(ingest.drain(0.5), 60)
    assert left == Unwritten(batches=3, readings=9)
    c = ingest.counters
    assert (c.unwritten_batches, c.unwritten_readings) == (3, 9)
    assert (c.batches_stored, c.readings_stored, c.rejected_readings) == (0, 0, 0)
    assert c.write_retries >= 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert url in record.getMessage()
    assert "9 readings in 3 batches NOT written" in record.getMessage()
    assert "Cannot connect" in record.getMessage()  # the last error says why
    # given up on once: nothing left, nothing counted twice
    assert not again
    assert ingest.pending_points == 0
    assert (c.unwritten_batches, c.unwritten_readings) == (3, 9)


async def test_a_drain_writes_everything_to_a_sink_that_is_up(
    influx_v1_url: str, influx_database: str
) -> None:
    async with InfluxV1Sink(influx_v1_url, database=influx_database,
                            encoder=LineEncoder()) as sink:
        ingest = Ingest(sink, max_points=3)
        for seq in range(1, 5):
            await ingest.put(ReadingBatch(agent="edge-a", seq=seq, sent_at=T0, readings=[
                Reading("s1", T0 + seq * 10 + i, float(i)) for i in range(2)]))
        left = await ingest.drain(30)
    assert not left
    assert (ingest.counters.readings_stored, ingest.counters.unwritten_readings) == (8, 0)
    rows = influxql(influx_v1_url, "SELECT count(value) FROM reading", database=influx_database)
    assert rows[0]["count"] == 8


async def test_a_write_cut_short_is_put_back_and_written_by_the_drain(
    influx_v1_url: str, influx_database: str
) -> None:
    class StallsOnce:
        """The real sink, except that the first write never returns (a hung request)."""

        def __init__(self, inner: InfluxV1Sink) -> None:
            self.inner = inner
            self.calls = 0

        async def write(self, batches: list[ReadingBatch]) -> None:
            self.calls += 1
            if self.calls == 1:
                await asyncio.Event().wait()
            await self.inner.write(batches)

    async with InfluxV1Sink(influx_v1_url, database=influx_database,
                            encoder=LineEncoder()) as inner:
        sink = StallsOnce(inner)
        ingest = Ingest(sink)  # type: ignore[arg-type]
        for seq in (1, 2):
            await ingest.put(ReadingBatch(agent="edge-a", seq=seq, sent_at=T0, readings=[
                Reading("s1", T0 + seq, 1.0)]))
        flushing = asyncio.create_task(ingest.flush())
        assert await wait_until(lambda: sink.calls == 1)
        flushing.cancel()  # what the hub does to its writer task when it stops
        with pytest.raises(asyncio.CancelledError):
            await flushing
        assert ingest.pending_points == 2
        left = await ingest.drain(30)
    assert not left
    assert ingest.counters.readings_stored == 2
    rows = influxql(influx_v1_url, "SELECT value FROM reading", database=influx_database)
    assert len(rows) == 2
