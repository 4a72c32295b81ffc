"""The InfluxDB sinks against real servers: exact values and timestamps back, and every
failure classified so the ingest runner knows whether to keep, split or reject."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcall.embedded import free_port
from hub.sinks import (
    InfluxV1Sink,
    InfluxV2Sink,
    LineEncoder,
    RejectedPointsError,
    RetryableSinkError,
    SinkConfigError,
)
from hub.sinks.influx import classify
from hub.sinks.lineproto import escape_tag
from wire import Reading, ReadingBatch


@pytest.fixture
async def database(influx_v1_url: str) -> AsyncIterator[str]:
    name = f"sink_{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=influx_v1_url) as http:
        (await http.post("/query", data={"q": f'CREATE DATABASE "{name}"'})).raise_for_status()
        yield name
        await http.post("/query", data={"q": f'DROP DATABASE "{name}"'})


def batch(seq: int, values: list[float], agent: str = "edge a,1") -> ReadingBatch:
    base = 1_795_000_000_123_456_789
    return ReadingBatch(agent=agent, seq=seq, sent_at=base,
                        readings=[Reading("s=1", base + i, v) for i, v in enumerate(values)])


@pytest.mark.servers
async def test_v1_stores_exact_values_nanoseconds_and_escaped_tags(
    influx_v1_url: str, database: str
) -> None:
    encoder = LineEncoder({"s=1": {"kind": "gas", "grid": "g 1"}})
    b = batch(42, [0.1, 1e-7, -3.25, 123456.789])
    async with InfluxV1Sink(influx_v1_url, database=database, encoder=encoder) as sink:
        await sink.write([b])
    async with httpx.AsyncClient(base_url=influx_v1_url) as http:
        resp = await http.get("/query", params={
            "db": database, "epoch": "ns",
            "q": "SELECT value, seq, agent, sensor, grid, kind FROM reading"})
    series = resp.json()["results"][0]["series"][0]
    rows = [dict(zip(series["columns"], r, strict=True)) for r in series["values"]]
    assert [(r["time"], r["value"]) for r in rows] == [(x.ts, x.value) for x in b.readings]
    assert {(r["agent"], r["sensor"], r["grid"], r["kind"], r["seq"]) for r in rows} == {
        ("edge a,1", "s=1", "g 1", "gas", 42)}


@pytest.mark.servers
async def test_v1_bad_points_are_rejected_not_retried(influx_v1_url: str, database: str) -> None:
    async with httpx.AsyncClient(base_url=influx_v1_url) as http:
        # 'value' becomes a string field in this shard; a float 'value' then conflicts.
        await http.post("/write", params={"db": database},
                        content=b'reading,agent=x,sensor=y value="text" 1795000000000000000')
    async with InfluxV1Sink(influx_v1_url, database=database, encoder=LineEncoder()) as sink:
        with pytest.raises(RejectedPointsError, match="HTTP 400") as info:
            await sink.write([batch(1, [1.5], agent="x")])
    assert info.value.status == 400
    assert "field type conflict" in str(info.value)


@pytest.mark.servers
async def test_v1_a_missing_database_is_created_or_reported(influx_v1_url: str) -> None:
    name = f"created_{uuid.uuid4().hex[:8]}"
    async with InfluxV1Sink(influx_v1_url, database=name, encoder=LineEncoder()) as sink:
        await sink.write([batch(1, [1.0])])
    async with InfluxV1Sink(influx_v1_url, database=name + "_no", encoder=LineEncoder(),
                            create_database=False) as sink:
        with pytest.raises(SinkConfigError, match="database not found"):
            await sink.write([batch(1, [1.0])])
    async with httpx.AsyncClient(base_url=influx_v1_url) as http:
        resp = await http.get("/query", params={"db": name,
                                                "q": "SELECT count(value) FROM reading"})
        assert resp.json()["results"][0]["series"][0]["values"][0][1] == 1
        await http.post("/query", data={"q": f'DROP DATABASE "{name}"'})


async def test_a_server_that_is_down_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with InfluxV1Sink(url, database="x", encoder=LineEncoder()) as v1:
        with pytest.raises(RetryableSinkError, match="influxdb v1 at"):
            await v1.write([batch(1, [1.0])])
    async with InfluxV2Sink(url, org="o", bucket="b", token="t",
                            encoder=LineEncoder()) as v2:
        with pytest.raises(RetryableSinkError, match="influxdb v2 at"):
            await v2.write([batch(1, [1.0])])


@pytest.mark.servers
async def test_v2_writes_through_influxdb_client(victoria_url: str) -> None:
    agent = f"v2-{uuid.uuid4().hex[:8]}"
    b = batch(7, [2.5, 3.5], agent=agent)
    async with InfluxV2Sink(victoria_url, org="gridcall", bucket="gridcall", token="x",
                            encoder=LineEncoder()) as sink:
        await sink.write([b])
    async with httpx.AsyncClient(base_url=victoria_url) as http:
        values: list[float] = []
        for _ in range(100):
            await http.get("/internal/force_flush")
            resp = await http.get("/api/v1/export", params={
                "match[]": f'{{__name__="reading_value",agent="{agent}"}}', "start": "0"})
            values = [v for line in resp.text.splitlines()
                      for v in httpx.Response(200, content=line).json()["values"]]
            if len(values) == 2:
                break
    assert sorted(values) == [2.5, 3.5]


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "RejectedPointsError"), (422, "RejectedPointsError"), (413, "BatchTooLargeError"),
     (401, "SinkAuthError"), (403, "SinkAuthError"), (404, "SinkConfigError"),
     (429, "RetryableSinkError"), (500, "RetryableSinkError"), (503, "RetryableSinkError")],
)
def test_http_failures_are_classified_before_any_retry(status: int, kind: str) -> None:
    error = classify("influxdb v1", "http://db:8086", status, "boom", "7")
    assert type(error).__name__ == kind
    assert error.status == status
    assert "http://db:8086" in str(error)


def test_retry_after_is_honoured() -> None:
    error = classify("influxdb v1", "http://db", 503, "busy", "2.5")
    assert isinstance(error, RetryableSinkError)
    assert error.retry_after == 2.5


@given(st.text(max_size=30))
def test_escaped_tags_never_contain_a_bare_separator(text: str) -> None:
    escaped = escape_tag(text)
    bare = escaped.replace("\\\\", "").replace("\\,", "").replace("\\=", "").replace("\\ ", "")
    assert not {",", "=", " "} & set(bare)


def test_non_finite_values_are_skipped_and_counted() -> None:
    encoder = LineEncoder()
    body = encoder.encode([batch(1, [1.0, math.nan, math.inf, 2.0])])
    assert body.count(b"\n") == 2
    assert encoder.skipped_nonfinite == 2
