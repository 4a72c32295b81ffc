"""The ingest runner against two faults InfluxDB really produces: a request over its
``max-body-size`` (a real 413: the runner writes it in halves, every reading exactly once)
and a 500 that never clears (the runner keeps the data in its spool and says so with a
rate-limited ERROR and counters, not only a warning per retry, until it clears)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gridcall.hub.ingest.runner import Ingest
from gridcall.hub.ingest.sinks import InfluxV1Sink, LineEncoder
from gridcall.hub.ingest.spool import Spool
from gridcall.wire import Reading, ReadingBatch
from tests.polling import wait_until
from tests.private_servers import PrivateInflux
from tests.servers import influxql_async

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


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_500_that_never_clears_raises_a_rate_limited_error_naming_the_sink(
    influx_v1_url: str, influx_database: str, tmp_path: Path,
    caplog: pytest.LogCaptureFixture
) -> None:
    # A retention policy that does not exist: InfluxDB answers 500 to every write.
    clock = Clock()
    sent = batches(agents=2, per_agent=3, per_batch=10)
    async with InfluxV1Sink(influx_v1_url, database=influx_database, encoder=LineEncoder(),
                            retention_policy="no_such_rp") as sink:
        ingest = Ingest(sink, spool=Spool(tmp_path / "spool"), alarm_after=60,
                        alarm_every=300, clock=clock)
        for batch in sent:
            await ingest.put(batch)
        await ingest.flush()
        c = ingest.counters
        assert (c.spooled_readings, c.write_retries) == (60, 1)
        caplog.set_level(logging.WARNING, logger="gridcall.hub.ingest.runner")

        def errors() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]

        spooler = asyncio.create_task(ingest.run_spool(max_backoff=0.05))
        try:
            assert await wait_until(lambda: c.spool_write_failures >= 3)
            assert (c.sink_alarms, errors()) == (0, [])  # failing, but not for long yet
            clock.now += 61
            assert await wait_until(lambda: c.sink_alarms == 1)
            attempts = c.spool_write_failures
            assert await wait_until(lambda: c.spool_write_failures >= attempts + 3)
            assert c.sink_alarms == 1  # once, not at every retry
            clock.now += 300
            assert await wait_until(lambda: c.sink_alarms == 2)
            failing_for = ingest.failing_for
            spooled_before = ingest.spooled_pending
            # The operator creates the retention policy: the spool is written back.
            await influxql_async(influx_v1_url, f'CREATE RETENTION POLICY "no_such_rp" ON '
                                 f'"{influx_database}" DURATION INF REPLICATION 1')
            assert await wait_until(lambda: ingest.spooled_pending == 0)
        finally:
            spooler.cancel()
            await asyncio.gather(spooler, return_exceptions=True)
    first = errors()[0]
    assert "InfluxV1Sink(" in first
    assert influx_database in first
    assert "has been failing for 61s" in first
    assert "HTTP 500: retention policy not found: no_such_rp" in first
    assert f"60 readings wait in Spool({str(tmp_path / 'spool')!r})" in first
    assert len(errors()) == 2
    assert "has been failing for 361s" in errors()[1]
    assert (failing_for, spooled_before) == (361, 60)
    assert (c.readings_stored, c.sink_alarms, ingest.failing_for) == (60, 2, None)
    assert any("writes again after failing for 361s" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
    rows = await influxql_async(influx_v1_url, 'SELECT count(value) FROM "no_such_rp".reading',
                                database=influx_database)
    assert rows[0]["count"] == 60
