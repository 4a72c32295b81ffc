"""The board writer against a real InfluxDB that goes away: snapshots that fail are
counted and not retried (the next replaces them), event points wait and are written once
InfluxDB is back, up to a bound beyond which the oldest are dropped and counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gridcall.config import ConfigSet
from gridcall.hub.board.feed import BoardFeed
from gridcall.hub.board.writer import BoardWriter
from gridcall.sinks import influx_sink
from gridcall.wire import AnomalyEvent
from tests.private_servers import PrivateInflux
from tests.servers import influxql_async

T0 = 1_800_000_000_000_000_000


def events(cfg: ConfigSet, n: int) -> bytes:
    feed = BoardFeed(cfg)
    sensor = next(iter(cfg.sensors.values()))
    return b"".join(feed.anomaly(AnomalyEvent(
        agent=sensor.agent, seq=i, sensor=sensor.id, kind="spike", severity="minor",
        score=0.7, value=float(i), ts=T0 + i)) for i in range(n))


async def test_event_points_wait_for_influxdb_and_snapshots_do_not(
        cfg: ConfigSet, tmp_path: Path) -> None:
    with PrivateInflux(tmp_path / "influx") as influx:
        async with influx_sink(cfg, url=influx.url, api=1, database="boards") as sink:
            writer = BoardWriter(sink)
            influx.stop()
            writer.add(events(cfg, 10))
            assert await writer.flush() is False
            assert writer.pending == 10
            assert await writer.snapshot(BoardFeed(cfg).snapshot([], T0)) is False
            assert writer.counters.failed_snapshots == 1
            assert writer.counters.failed_event_writes == 1
            influx.start()
            assert await writer.flush() is True
            assert writer.pending == 0
            assert writer.counters.event_points == 10
            rows = await influxql_async(influx.url, 'SELECT "value" FROM "anomaly"',
                                        database="boards")
            assert sorted(r["value"] for r in rows) == [float(i) for i in range(10)]


async def test_beyond_the_bound_the_oldest_event_points_are_dropped_and_counted(
        cfg: ConfigSet, tmp_path: Path) -> None:
    with PrivateInflux(tmp_path / "influx") as influx:
        async with influx_sink(cfg, url=influx.url, api=1, database="boards") as sink:
            writer = BoardWriter(sink, max_pending=4)
            writer.add(events(cfg, 7))
            assert writer.counters.dropped_event_points == 3
            assert await writer.flush()
            rows = await influxql_async(influx.url, 'SELECT "value" FROM "anomaly"',
                                        database="boards")
            assert sorted(r["value"] for r in rows) == [3.0, 4.0, 5.0, 6.0]


async def test_points_influxdb_refuses_are_dropped_and_counted_not_retried(
        cfg: ConfigSet, tmp_path: Path) -> None:
    with PrivateInflux(tmp_path / "influx") as influx:
        async with influx_sink(cfg, url=influx.url, api=1, database="boards") as sink:
            writer = BoardWriter(sink)
            writer.add(events(cfg, 2))
            assert await writer.flush()
            # the same field as a string now: InfluxDB refuses the type conflict (400)
            writer.add(b'anomaly,sensor=x value="high" 1800000000000000099\n')
            assert await writer.flush()
            assert writer.pending == 0
            assert writer.counters.rejected_event_points == 1


def test_bounds_must_be_positive(cfg: ConfigSet) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoardWriter(object(), max_pending=0)  # type: ignore[arg-type]


async def test_concurrent_flushes_write_each_event_point_once(
        cfg: ConfigSet, influx_v1_url: str, influx_database: str) -> None:
    """The hub's board loop flushes every tick while write_boards() (tests, simulations)
    flushes too: two flushes at once must not write a point twice nor lose one."""
    async with influx_sink(cfg, url=influx_v1_url, api=1, database=influx_database) as sink:
        writer = BoardWriter(sink)
        writer.add(events(cfg, 10))
        first, second = await asyncio.gather(writer.flush(), writer.flush())
        writer.add(b"".join(events(cfg, 13).splitlines(keepends=True)[10:]))
        third, fourth = await asyncio.gather(writer.flush(), writer.flush())
    assert (first, second, third, fourth) == (True, True, True, True)
    assert writer.pending == 0
    assert writer.counters.event_points == 13
    rows = await influxql_async(influx_v1_url, 'SELECT "value" FROM "anomaly"',
                                database=influx_database)
    assert sorted(r["value"] for r in rows) == [float(i) for i in range(13)]
