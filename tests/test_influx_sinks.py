"""The InfluxDB sinks: line encoding, and writes against the real servers (InfluxDB 1.6.7
and VictoriaMetrics from scripts/servers.sh) with exact values, nanosecond timestamps and
tags read back, and every failure classified so the ingest runner knows whether to keep,
split or reject the data."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridcall.config import ConfigSet
from gridcall.config.models import InfluxSettings
from gridcall.hub.ingest.sinks import (
    BatchTooLargeError,
    InfluxV1Sink,
    InfluxV2Sink,
    LineEncoder,
    RejectedPointsError,
    RetryableSinkError,
    SinkAuthError,
    SinkConfigError,
    SinkError,
)
from gridcall.hub.ingest.sinks.influx import classify, public_url, server_message
from gridcall.hub.ingest.sinks.lineproto import escape_tag
from gridcall.sinks import influx_sink
from gridcall.wire import Reading, ReadingBatch
from tests.servers import (
    create_influx_database,
    drop_influx_database,
    influxql,
    influxql_async,
    quote_ident,
    unique_name,
    unused_tcp_port,
    victoria_export,
)

T0 = 1_795_000_000_123_456_789  # ns; deliberately not a whole millisecond
TAGS = {"kind": "gas", "grid": "g1", "community": "c1", "town": "t1"}


def batch(seq: int, values: list[float], *, agent: str = "a1", sensor: str = "s1",
          t0: int = T0) -> ReadingBatch:
    return ReadingBatch(agent=agent, seq=seq, sent_at=t0,
                        readings=[Reading(sensor, t0 + i, v) for i, v in enumerate(values)])


# --- line protocol ------------------------------------------------------------------------

def test_a_reading_is_by_default_the_harness_lean_line_agent_sensor_value() -> None:
    encoder = LineEncoder()
    body = encoder.encode([batch(123, [1.5, -2.0], t0=1_700_000_000_000_000_000)])
    assert body == (b"reading,agent=a1,sensor=s1 value=1.5 1700000000000000000\n"
                    b"reading,agent=a1,sensor=s1 value=-2.0 1700000000000000001\n")


def test_a_rich_reading_is_one_line_with_sensor_tags_seq_and_nanoseconds() -> None:
    encoder = LineEncoder({"s1": TAGS}, seq_field=True)
    body = encoder.encode([batch(123, [1.5], t0=1_700_000_000_000_000_000)])
    assert body == (b"reading,agent=a1,sensor=s1,community=c1,grid=g1,kind=gas,town=t1 "
                    b"value=1.5,seq=123i 1700000000000000000\n")


def test_unknown_sensors_get_agent_and_sensor_tags_only() -> None:
    encoder = LineEncoder({"s1": TAGS}, measurement="m", seq_field=True)
    body = encoder.encode([batch(7, [2.0], sensor="s9", t0=5)])
    assert body == b"m,agent=a1,sensor=s9 value=2.0,seq=7i 5\n"


def test_escaping_of_measurement_tag_keys_and_values() -> None:
    encoder = LineEncoder({"s 1": {"k=1": "v,1", "k 2": "a\\b", "empty": "", "nl": "x\ny"}},
                          measurement="my m,1", seq_field=True)
    body = encoder.encode([batch(1, [1.0], agent="a=1", sensor="s 1", t0=9)])
    assert body == (b"my\\ m\\,1,agent=a\\=1,sensor=s\\ 1,k\\ 2=a\\b,k\\=1=v\\,1,nl=x\\ny "
                    b"value=1.0,seq=1i 9\n")


def test_trailing_backslashes_are_dropped_and_empty_tags_omitted() -> None:
    encoder = LineEncoder({"s\\": {"kind": "\\\\"}}, seq_field=True)
    assert encoder.encode([batch(1, [1.0], sensor="s\\", t0=1)]) == (
        b"reading,agent=a1,sensor=s value=1.0,seq=1i 1\n")


def test_non_finite_values_are_skipped_and_counted() -> None:
    encoder = LineEncoder()
    body = encoder.encode([batch(1, [1.0, math.nan, math.inf, -math.inf, 2.0], t0=0)])
    assert body.splitlines() == [b"reading,agent=a1,sensor=s1 value=1.0 0",
                                 b"reading,agent=a1,sensor=s1 value=2.0 4"]
    assert encoder.skipped_nonfinite == 3
    assert encoder.encode([batch(2, [math.nan])]) == b""
    assert encoder.skipped_nonfinite == 4


def test_finite_values_whose_sum_overflows_are_all_written() -> None:
    # the encoder checks a batch's values once, on their sum: an overflow to inf must
    # only send the batch down the per-reading check, never drop a finite reading
    encoder = LineEncoder()
    big = 1.7976931348623157e308
    body = encoder.encode([batch(1, [big, big, -big], t0=0), batch(2, [1.0, math.inf], t0=9)])
    assert [float(re.search(rb"value=(\S+) ", line)[1])  # type: ignore[index]
            for line in body.splitlines()] == [big, big, -big, 1.0]
    assert encoder.skipped_nonfinite == 1


def test_floats_keep_every_digit() -> None:
    values = [0.1, 1e-7, 5e-324, 1.7976931348623157e308, -0.0, 1e22, 2.0 / 3.0]
    body = LineEncoder().encode([batch(1, values, t0=0)])
    written = [float(re.search(rb"value=(\S+) ", line)[1])  # type: ignore[index]
               for line in body.splitlines()]
    assert written == values
    assert math.copysign(1.0, written[4]) == -1.0


def test_sensor_tags_may_not_redefine_agent_or_sensor() -> None:
    with pytest.raises(ValueError, match=r"'s1'.*\['agent'\]"):
        LineEncoder({"s1": {"agent": "x", "kind": "gas"}})
    with pytest.raises(ValueError, match="measurement"):
        LineEncoder(measurement="\\")


def test_a_bounded_prefix_cache_gives_the_same_lines() -> None:
    batches = [ReadingBatch(agent=f"a{i % 3}", seq=i, sent_at=0,
                            readings=[Reading(f"s{j}", j, float(j)) for j in range(5)])
               for i in range(7)]
    tags = {f"s{j}": {"grid": f"g{j}"} for j in range(5)}
    assert LineEncoder(tags, max_cached_series=2, seq_field=True).encode(batches) == (
        LineEncoder(tags, seq_field=True).encode(batches))


def unescaped_separators(line: str) -> list[int]:
    """Where InfluxDB 1.x would see a separator: ',', '=' or ' ' not after a backslash."""
    return [i for i, c in enumerate(line) if c in ", =" and (i == 0 or line[i - 1] != "\\")]


@given(st.text(max_size=40))
def test_escaped_tags_never_contain_a_separator_a_line_break_or_a_dangling_backslash(
    text: str,
) -> None:
    escaped = escape_tag(text)
    assert unescaped_separators(escaped) == []
    assert "\n" not in escaped
    assert "\r" not in escaped
    assert not escaped.endswith("\\")


def written_value(line: str, tail: str) -> float:
    """The float a line's ``value=`` field holds, the line checked to end with ``tail``
    (the encoder writes the shortest digits that read back exactly, ``1e16`` for
    ``1e+16``)."""
    match = re.search(r" value=(-?[0-9.e+-]+)" + re.escape(tail) + "$", line)
    assert match is not None, line
    return float(match[1])


@given(agent=st.text(min_size=1, max_size=20), sensor=st.text(min_size=1, max_size=20),
       kind=st.text(max_size=20),
       value=st.floats(allow_nan=True, allow_infinity=True), seq=st.integers(0, 2**62))
def test_every_line_has_exactly_the_expected_structure(
    agent: str, sensor: str, kind: str, value: float, seq: int,
) -> None:
    rich = LineEncoder({sensor: {"kind": kind}}, seq_field=True)
    lean = LineEncoder({sensor: {"kind": kind}})
    # Only "\n" ends a line in line protocol (str.splitlines would split at more).
    lines = rich.encode([batch(seq, [value], agent=agent, sensor=sensor, t0=42)]
                        ).decode().split("\n")[:-1]
    lean_lines = lean.encode([batch(seq, [value], agent=agent, sensor=sensor, t0=42)]
                             ).decode().split("\n")[:-1]
    if not math.isfinite(value):
        assert (lines, rich.skipped_nonfinite) == ([], 1)
        assert (lean_lines, lean.skipped_nonfinite) == ([], 1)
        return
    (line,), (lean_line,) = lines, lean_lines
    tag_count = sum(1 for t in (agent, sensor, kind) if escape_tag(t))
    # measurement, then ',key=value' per tag, then ' value=...,seq=...i ts'
    separators = [line[i] for i in unescaped_separators(line)]
    assert separators == [",", "="] * tag_count + [" ", "=", ",", "=", " "]
    assert written_value(line, f",seq={seq}i 42") == value
    # the lean line: the same tags (kind given explicitly here), no seq
    assert [lean_line[i] for i in unescaped_separators(lean_line)] == (
        [",", "="] * tag_count + [" ", "=", " "])
    assert written_value(lean_line, " 42") == value


# --- HTTP failures are classified before any retry ------------------------------------------

@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [(400, RejectedPointsError, False), (422, RejectedPointsError, False),
     (413, BatchTooLargeError, False), (401, SinkAuthError, False),
     (403, SinkAuthError, False), (404, SinkConfigError, False),
     (429, RetryableSinkError, True), (500, RetryableSinkError, True),
     (502, RetryableSinkError, True), (503, RetryableSinkError, True),
     (504, RetryableSinkError, True), (418, SinkError, False)],
)
def test_http_failures_are_classified(status: int, kind: type[SinkError],
                                      retryable: bool) -> None:
    error = classify("influxdb v1", "http://db:8086", status, '{"error":"boom"}')
    assert type(error) is kind
    assert (error.status, error.retryable) == (status, retryable)
    assert str(error) == f"influxdb v1 at http://db:8086: HTTP {status}: boom"


def test_retry_after_is_honoured_in_seconds_only() -> None:
    assert classify("s", "http://db", 429, "", "2.5").retry_after == 2.5
    assert classify("s", "http://db", 503, "", "Wed, 21 Oct 2015 07:28:00 GMT"
                    ).retry_after is None
    assert classify("s", "http://db", 503, "").retry_after is None


def test_messages_never_show_credentials() -> None:
    url = "http://admin:s3cret@db.example:8086/?u=admin&p=s3cret"
    error = classify("influxdb v1", url, 500, "down")
    assert "s3cret" not in str(error)
    assert "admin" not in str(error)
    assert public_url(url) == "http://db.example:8086"
    assert public_url("https://[::1]:8443/x/") == "https://[::1]:8443/x"


def test_server_messages_are_taken_from_json_and_kept_short() -> None:
    assert server_message('{"code":"invalid","message":"bad line"}') == "bad line"
    assert server_message("plain\ntext ") == "plain text"
    assert len(server_message("x" * 5000)) == 401


def test_bad_configuration_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="http"):
        InfluxV1Sink("ftp://db", database="d", encoder=LineEncoder())
    with pytest.raises(ValueError, match="database"):
        InfluxV1Sink("http://db", database="", encoder=LineEncoder())
    with pytest.raises(ValueError, match="bucket"):
        InfluxV2Sink("http://db", org="o", bucket="", token="t", encoder=LineEncoder())
    with pytest.raises(ValueError, match="token") as info:
        InfluxV2Sink("http://me:s3cret@db", org="o", bucket="b", token="t",
                     encoder=LineEncoder())
    assert "s3cret" not in str(info.value)


async def test_a_sink_must_be_opened_before_writing() -> None:
    sink = InfluxV1Sink("http://127.0.0.1:1", database="d", encoder=LineEncoder())
    with pytest.raises(RuntimeError, match="outside 'async with'"):
        await sink.write([batch(1, [1.0])])


async def test_a_server_that_is_down_is_retryable_and_named_without_credentials() -> None:
    port = unused_tcp_port()
    url = f"http://gridcall:s3cret@127.0.0.1:{port}"
    async with InfluxV1Sink(url, database="x", encoder=LineEncoder()) as v1:
        with pytest.raises(RetryableSinkError,
                           match=f"^influxdb v1 at http://127.0.0.1:{port}: "
                                 "ClientConnectorError: Cannot connect") as e1:
            await v1.write([batch(1, [1.0])])
    async with InfluxV2Sink(f"http://127.0.0.1:{port}", org="o", bucket="b",
                            token="s3cret", encoder=LineEncoder()) as v2:
        with pytest.raises(RetryableSinkError,
                           match=f"^influxdb v2 at http://127.0.0.1:{port}: ") as e2:
            await v2.write([batch(1, [1.0])])
    for error in (e1.value, e2.value):
        assert error.retryable
        assert error.status is None
        assert "s3cret" not in str(error)


async def test_a_batch_over_the_body_limit_is_too_large_before_anything_is_sent() -> None:
    big = batch(1, [float(i) for i in range(2000)])
    url = f"http://127.0.0.1:{unused_tcp_port()}"  # nobody listens: nothing may be sent
    async with InfluxV1Sink(url, database="x", encoder=LineEncoder(),
                            max_body_bytes=50_000) as v1:
        with pytest.raises(BatchTooLargeError, match="max_body_bytes=50000"):
            await v1.write([big])
        await v1.write([])  # nothing to write: no request at all
    async with InfluxV2Sink(url, org="o", bucket="b", token="t", encoder=LineEncoder(),
                            max_body_bytes=50_000) as v2:
        with pytest.raises(BatchTooLargeError, match="split the batch"):
            await v2.write([big])


# --- InfluxDB 1.6 through the v1 API ---------------------------------------------------

async def test_v1_stores_exact_values_nanoseconds_tags_and_seq(
    influx_v1_url: str, influx_database: str
) -> None:
    encoder = LineEncoder({"s1": TAGS, "s 2": {"kind": "water", "grid": "g,2"}},
                          seq_field=True)
    values = [0.1, 1e-7, -3.25, 123456.789, 5e-324, 1.7976931348623157e308, 3.0]
    batches = [batch(42, values), batch(43, [2.5, -1.0], agent="edge a,1", sensor="s 2"),
               batch(7, [9.75], agent="a2", sensor="unknown", t0=T0 + 10**9)]
    async with InfluxV1Sink(influx_v1_url, database=influx_database, encoder=encoder) as sink:
        await sink.write(batches)
    rows = await influxql_async(
        influx_v1_url, "SELECT value, seq, agent, sensor, kind, grid, community, town "
        "FROM reading", database=influx_database)
    got = sorted((r["time"], r["value"], r["agent"], r["seq"], r["sensor"], r["kind"],
                  r["grid"], r["community"], r["town"]) for r in rows)
    assert got == sorted(
        [(T0 + i, v, "a1", 42, "s1", "gas", "g1", "c1", "t1") for i, v in enumerate(values)]
        + [(T0, 2.5, "edge a,1", 43, "s 2", "water", "g,2", None, None),
           (T0 + 1, -1.0, "edge a,1", 43, "s 2", "water", "g,2", None, None),
           (T0 + 10**9, 9.75, "a2", 7, "unknown", None, None, None, None)])


async def test_v1_writes_gzip_and_to_a_retention_policy(
    influx_v1_url: str, influx_database: str
) -> None:
    await influxql_async(influx_v1_url, f"CREATE RETENTION POLICY week ON "
                         f"{quote_ident(influx_database)} DURATION 520w REPLICATION 1")
    async with InfluxV1Sink(influx_v1_url, database=influx_database, encoder=LineEncoder(),
                            retention_policy="week", gzip=True) as sink:
        await sink.write([batch(1, [1.25, 2.5])])
    rows = await influxql_async(influx_v1_url, 'SELECT value FROM "week"."reading"',
                                database=influx_database)
    assert [(r["time"], r["value"]) for r in rows] == [(T0, 1.25), (T0 + 1, 2.5)]
    assert await influxql_async(influx_v1_url, 'SELECT value FROM "autogen"."reading"',
                                database=influx_database) == []


async def test_v1_rejects_a_field_type_conflict_with_400_after_storing_the_good_points(
    influx_v1_url: str, influx_database: str
) -> None:
    # 'value' is an integer field of 'reading' in this shard (a week of time, with the
    # default retention policy) once an int is written; InfluxDB 1.6 then refuses float
    # (and string) values for it there, but keeps the other points of the request.
    async with httpx.AsyncClient(base_url=influx_v1_url) as http:
        resp = await http.post("/write", params={"db": influx_database, "precision": "ns"},
                               content=f"reading,agent=a1,sensor=s1 value=1i {T0}".encode())
        assert resp.status_code == 204
    good = batch(1, [2.0], agent="a2", t0=T0 + 30 * 86_400 * 10**9)  # another shard
    bad = batch(2, [1.5], agent="a1", t0=T0 + 6)
    async with InfluxV1Sink(influx_v1_url, database=influx_database, encoder=LineEncoder(),
                            create_database=False) as sink:
        with pytest.raises(RejectedPointsError) as info:
            await sink.write([good, bad])
    error = info.value
    assert (error.status, error.retryable, error.dropped) == (400, False, 1)
    assert re.match(rf"influxdb v1 at {influx_v1_url}: HTTP 400: partial write: "
                    r"field type conflict", str(error))
    rows = await influxql_async(influx_v1_url, "SELECT value, agent FROM reading",
                                database=influx_database)
    assert sorted((r["time"], r["agent"], r["value"]) for r in rows) == [
        (T0, "a1", 1), (good.readings[0].ts, "a2", 2.0)]


async def test_v1_creates_a_missing_database_unless_told_not_to(influx_v1_url: str) -> None:
    name = unique_name("created")
    try:
        async with InfluxV1Sink(influx_v1_url, database=name, encoder=LineEncoder()) as sink:
            await sink.write([batch(1, [1.0])])
        rows = await influxql_async(influx_v1_url, "SELECT count(value) FROM reading",
                                    database=name)
        assert rows[0]["count"] == 1
    finally:
        drop_influx_database(influx_v1_url, name)
    async with InfluxV1Sink(influx_v1_url, database=name, encoder=LineEncoder(),
                            create_database=False) as sink:
        with pytest.raises(SinkConfigError, match=f"HTTP 404: database not found: .*{name}"
                           ) as info:
            await sink.write([batch(1, [1.0])])
    assert (info.value.status, info.value.retryable) == (404, False)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(st.characters(exclude_categories=["Cs"]), min_size=1,
                              max_size=12), min_size=1, max_size=8, unique=True))
def test_v1_tags_come_back_as_escaped_whatever_the_characters(
    influx_v1_url: str, tags_database: str, texts: list[str]
) -> None:
    """InfluxDB 1.6 itself is the oracle: each text as agent, sensor and tag value reads
    back unchanged, except what the encoder documents (control characters \\n \\r \\t as
    two characters, trailing backslashes dropped, empty tags omitted)."""
    measurement = unique_name("m")
    encoder = LineEncoder({t: {"kind": t} for t in texts}, measurement=measurement)
    batches = [batch(i, [float(i)], agent=t, sensor=t, t0=T0 + i) for i, t in enumerate(texts)]

    async def write() -> None:
        async with InfluxV1Sink(influx_v1_url, database=tags_database,
                                encoder=encoder) as sink:
            await sink.write(batches)

    asyncio.run(write())
    rows = influxql(influx_v1_url, f"SELECT value, agent, sensor, kind FROM "
                    f"{quote_ident(measurement)}", database=tags_database)

    def expected(text: str) -> str | None:
        for c, e in {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.items():
            text = text.replace(c, e)
        return text.rstrip("\\") or None

    assert sorted((r["time"], r["agent"], r["sensor"], r["kind"]) for r in rows) == [
        (T0 + i, expected(t), expected(t), expected(t)) for i, t in enumerate(texts)]


@pytest.fixture(scope="module")
def tags_database(influx_v1_url: str) -> Iterator[str]:
    """One database for all examples of the hypothesis test (each uses its measurement)."""
    name = create_influx_database(influx_v1_url, "tags")
    yield name
    drop_influx_database(influx_v1_url, name)


# --- the v2 API: influxdb-client against VictoriaMetrics and InfluxDB 1.6 ----------------

async def test_v2_writes_through_influxdb_client_to_victoriametrics(victoria_url: str) -> None:
    agent = unique_name("v2")
    # VictoriaMetrics keeps about 12 significant digits and scales a block of values to a
    # common exponent: values of very different magnitude (1e-7 beside 1e308) lose the
    # small ones, so this sticks to ordinary sensor values.
    values = [0.1, 21.5, -3.25, 123456.789, 1e-3]
    # a millisecond apart: VictoriaMetrics keeps milliseconds (T0 has 456789 ns beyond)
    b = ReadingBatch(agent=agent, seq=7, sent_at=T0, readings=[
        Reading("s1", T0 + i * 1_000_000, v) for i, v in enumerate(values)])
    async with InfluxV2Sink(victoria_url, org="gridcall", bucket="district", token="x",
                            encoder=LineEncoder({"s1": TAGS}, seq_field=True)) as sink:
        await sink.write([b])
    series = await victoria_export(victoria_url, f'{{agent="{agent}"}}')
    by_name = {s["metric"]["__name__"]: s for s in series}
    assert sorted(by_name) == ["reading_seq", "reading_value"]
    labels = by_name["reading_value"]["metric"]
    # VictoriaMetrics 1.79 ignores org and bucket: no 'db' label (newer ones set db=bucket).
    assert labels.get("db") in (None, "district")
    assert {k: v for k, v in labels.items() if k != "db"} == {
        "__name__": "reading_value", "agent": agent, "sensor": "s1", **TAGS}
    assert by_name["reading_value"]["values"] == values
    assert by_name["reading_value"]["timestamps"] == [r.ts // 1_000_000 for r in b.readings]
    assert by_name["reading_seq"]["values"] == [7] * len(values)


async def test_v1_sink_to_victoriametrics_labels_the_database(victoria_url: str) -> None:
    agent = unique_name("v1vm")
    async with InfluxV1Sink(victoria_url, database="district", encoder=LineEncoder()) as sink:
        await sink.write([batch(1, [4.5], agent=agent)])
    (series,) = await victoria_export(victoria_url, f'reading_value{{agent="{agent}"}}')
    assert series["metric"]["db"] == "district"
    assert series["values"] == [4.5]


async def test_v2_to_a_server_without_the_v2_api_is_a_config_error(influx_v1_url: str) -> None:
    async with InfluxV2Sink(influx_v1_url, org="o", bucket="b", token="t",
                            encoder=LineEncoder()) as sink:
        with pytest.raises(SinkConfigError, match=f"^influxdb v2 at {influx_v1_url}: HTTP 404"
                           ) as info:
            await sink.write([batch(1, [1.0])])
    assert (info.value.status, info.value.retryable) == (404, False)
    assert not isinstance(info.value, SinkAuthError)


def test_the_fresh_database_helper_gives_an_empty_database(influx_v1_url: str) -> None:
    name = create_influx_database(influx_v1_url, "helper")
    try:
        assert any(r["name"] == name for r in influxql(influx_v1_url, "SHOW DATABASES"))
        assert influxql(influx_v1_url, "SHOW MEASUREMENTS", database=name) == []
    finally:
        drop_influx_database(influx_v1_url, name)
    assert all(r["name"] != name for r in influxql(influx_v1_url, "SHOW DATABASES"))


def test_unique_names_differ_and_are_plain_identifiers() -> None:
    assert unique_name("x y") != unique_name("x y")
    assert re.fullmatch(r"x_y_[0-9a-f]{12}", unique_name("x y"))


# --- the stored reading's layout, as hub.yaml's influx.points chooses it -------------------

async def test_hub_yaml_chooses_lean_points_by_default_and_rich_ones_on_request(
    cfg: ConfigSet, influx_v1_url: str, influx_database: str,
) -> None:
    sensor = next(iter(cfg.sensors.values()))
    written = {}
    for agent, extra in (("lean-agent", {}), ("rich-agent", {"points": "rich"})):
        influx = InfluxSettings.model_validate({"url": influx_v1_url,
                                                "database": influx_database, **extra})
        config = dataclasses.replace(cfg, hub=cfg.hub.model_copy(update={"influx": influx}))
        b = ReadingBatch(agent=agent, seq=11, sent_at=T0, readings=[Reading(sensor.id, T0, 2.5)])
        async with influx_sink(config, url=influx_v1_url, database=influx_database) as sink:
            await sink.write([b])
        (row,) = await influxql_async(influx_v1_url, f"SELECT * FROM reading WHERE "
                                      f"agent='{agent}'", database=influx_database)
        written[agent] = {k: v for k, v in row.items() if v is not None and k != "_measurement"}
    assert written["lean-agent"] == {"time": T0, "agent": "lean-agent", "sensor": sensor.id,
                                     "value": 2.5}
    assert written["rich-agent"] == {"time": T0, "agent": "rich-agent", "sensor": sensor.id,
                                     "value": 2.5, "seq": 11, "kind": sensor.kind,
                                     "town": sensor.path[1], "community": sensor.path[2],
                                     "grid": sensor.grid}
