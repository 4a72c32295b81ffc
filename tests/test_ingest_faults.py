"""The ingest runner against faults InfluxDB really produces: a request over its
``max-body-size`` (a real 413: the runner writes it in halves, every reading exactly once)."""

from __future__ import annotations

from pathlib import Path

from hub.ingest import Ingest
from hub.sinks import InfluxV1Sink, LineEncoder
from tests.private_servers import PrivateInflux
from tests.servers import influxql_async
from wire import Reading, ReadingBatch

T0 = 1_795_000_000_000_000_000


def batches(agents: int, per_agent: int, per_batch: int = 50) -> list[ReadingBatch]:
    return [ReadingBatch(agent=f"big-{a}", seq=seq, sent_at=T0, readings=[
        Reading(f"s{k}", T0 + seq * 1_000_003_007 + a * 10_007 + k, seq * 100 + k)
        for k in range(per_batch)]) for seq in range(per_agent) for a in range(agents)]


async def test_a_batch_over_influxdb_s_max_body_size_is_split_and_stored_exactly_once(
    tmp_path: Path
) -> None:
    sent = batches(agents=8, per_agent=5)  # 40 batches, 2,000 readings: one request
    encoder = LineEncoder()
    body = len(encoder.encode(sent))
    largest = max(len(encoder.encode([b])) for b in sent)
    max_body_size = 20_000
    assert largest < max_body_size < body // 4  # so it takes more than one split
    settled: list[object] = []
    with PrivateInflux(tmp_path / "influx", max_body_size=max_body_size) as influx:
        await influxql_async(influx.url, "CREATE DATABASE big")
        # No limit on this side: the 413 must come from InfluxDB itself.
        async with InfluxV1Sink(influx.url, database="big", encoder=encoder,
                                max_body_bytes=None) as sink:
            ingest = Ingest(sink, max_points=10_000, on_settled=settled.extend)
            for i, batch in enumerate(sent):
                await ingest.put(batch, token=i)
            await ingest.flush()
        rows = await influxql_async(influx.url, "SELECT count(value), sum(value) "
                                    "FROM reading", database="big")
    c = ingest.counters
    readings = [r for b in sent for r in b.readings]
    assert c.splits >= 3
    assert (c.readings_stored, c.rejected_readings, c.write_retries) == (len(readings), 0, 0)
    assert sorted(settled) == list(range(len(sent)))  # each message acknowledged once
    assert rows[0]["count"] == len(readings)
    assert rows[0]["sum"] == sum(r.value for r in readings)

