"""The ingest runner against a real InfluxDB: partial writes are counted exactly, and a
sink that is down keeps the data until it comes back."""

from __future__ import annotations

import asyncio

import httpx

from hub.ingest import Ingest
from hub.sinks import InfluxV1Sink, LineEncoder
from tests.servers import influxql, unused_tcp_port
from wire import Reading, ReadingBatch

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
