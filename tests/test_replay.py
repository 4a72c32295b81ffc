"""Replaying recorded data: files exported by the real InfluxDB 1.6.7 (its ``influx`` CLI
and its HTTP CSV) and VictoriaMetrics, an InfluxDB 2 annotated CSV, data-logger files;
bad rows skipped and reported by line; playback on a clock, and through a real edge
agent to the shared broker."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
import httpx
import pytest

from gridcall.config import ConfigSet
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.simulators.replay import (
    RecordedStream,
    ReplayError,
    ReplaySource,
    parse_time,
    read_recording,
)
from gridcall.simulators.steady import SimClock
from gridcall.wire import Decoder, topics
from tests.polling import wait_until

T0_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000_000
GAS = "dongyuan-g3-gas-1"
TEMP = "dongyuan-g3-temperature-1"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_protocol(n: int = 6) -> str:
    """What the hub writes: one reading per 5 s for a gas and a temperature sensor."""
    lines = []
    for i in range(n):
        ts = T0_NS + i * 5 * S
        lines.append(f"reading,agent=edge-dongyuan,sensor={GAS},grid=dongyuan-g3,kind=gas "
                     f"value={1.0 + i / 10},seq={i}i {ts}")
        lines.append(f"reading,agent=edge-dongyuan,sensor={TEMP},grid=dongyuan-g3,"
                     f"kind=temperature value={3.5 + i / 100},seq={i}i {ts}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- InfluxDB 1.6.7


@pytest.fixture
def influx_export(influx_v1_url: str, influx_database: str):  # type: ignore[no-untyped-def]
    """Write readings into a fresh database; return a function exporting a query as the
    ``influx`` CLI does (``-format csv``)."""
    httpx.post(f"{influx_v1_url}/write", params={"db": influx_database},
               content=line_protocol()).raise_for_status()
    cli = shutil.which("influx")
    if cli is None:
        pytest.skip("the influx CLI (apt influxdb-client, scripts/servers.sh installs it) "
                    "is not installed")
    url = urlsplit(influx_v1_url)

    def export(query: str, *extra: str) -> str:
        return subprocess.run(
            [cli, "-host", url.hostname or "127.0.0.1", "-port", str(url.port),
             "-database", influx_database, "-format", "csv", *extra, "-execute", query],
            check=True, capture_output=True, text=True, timeout=60).stdout

    return export


def test_an_influx_cli_select_star_export_plays_per_sensor_tag(influx_export, tmp_path: Path  # type: ignore[no-untyped-def]
                                                                ) -> None:
    text = influx_export("SELECT * FROM reading")
    assert text.startswith("name,time,agent,grid,kind,sensor,seq,value")  # the real header
    rec = read_recording(write(tmp_path, "export.csv", text), sensors=[GAS, TEMP])
    assert rec.format == "influx-v1"
    assert set(rec.series) == {GAS, TEMP}
    assert rec.series[GAS].ts == tuple(T0_NS + i * 5 * S for i in range(6))
    assert rec.series[GAS].values == pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4, 1.5])
    assert rec.skipped == ()


def test_an_influx_cli_group_by_export_with_rfc3339_times_plays_too(  # type: ignore[no-untyped-def]
        influx_export, tmp_path: Path) -> None:
    text = influx_export("SELECT value FROM reading GROUP BY sensor, agent",
                         "-precision", "rfc3339")
    assert text.count("name,tags,time,value") == 2  # a header before each series
    rec = read_recording(write(tmp_path, "grouped.csv", text))
    assert set(rec.series) == {GAS, TEMP}
    assert rec.series[TEMP].values == pytest.approx([3.5 + i / 100 for i in range(6)])
    assert rec.series[TEMP].ts[1] - rec.series[TEMP].ts[0] == 5 * S


async def test_influx_http_csv_export_plays(influx_v1_url: str, influx_database: str,
                                            tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=influx_v1_url) as http:
        (await http.post("/write", params={"db": influx_database},
                         content=line_protocol())).raise_for_status()
        resp = await http.post("/query", params={"db": influx_database},
                               data={"q": "SELECT value FROM reading GROUP BY sensor"},
                               headers={"Accept": "application/csv"})
    resp.raise_for_status()
    rec = read_recording(write(tmp_path, "http.csv", resp.text), sensors=[GAS, TEMP])
    assert rec.points == 12


async def test_a_victoriametrics_csv_export_plays_with_named_columns(
        victoria_url: str, tmp_path: Path) -> None:
    tag = f"replay{uuid.uuid4().hex[:10]}"  # the shared server keeps earlier runs' points
    lines = line_protocol().replace("reading,", f"{tag},")
    async with httpx.AsyncClient(base_url=victoria_url, timeout=30) as http:
        (await http.post("/write", content=lines)).raise_for_status()
        (await http.get("/internal/force_flush")).raise_for_status()

        async def exported() -> str:
            resp = await http.get("/api/v1/export/csv", params={
                "format": "__timestamp__:unix_ms,__name__,sensor,__value__",
                "match[]": f"{tag}_value", "start": "0"})
            resp.raise_for_status()
            return resp.text

        text = ""
        for _ in range(100):  # VictoriaMetrics may take a moment to make them searchable
            text = await exported()
            if len(text.splitlines()) >= 12:
                break
            await asyncio.sleep(0.2)
    rec = read_recording(write(tmp_path, "vm.csv", text),
                         columns=["time", "__name__", "sensor", "__value__"])
    assert set(rec.series) == {GAS, TEMP}
    assert rec.series[GAS].values == pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4, 1.5])


# --------------------------------------------------------------------------- InfluxDB 2


ANNOTATED = """\
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string,string
#group,false,false,true,true,false,false,true,true,true,true
#default,_result,,,,,,,,,
,result,table,_start,_stop,_time,_value,_field,_measurement,agent,sensor
,,0,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,2026-01-01T00:00:00Z,1,value,reading,edge-dongyuan,dongyuan-g3-gas-1
,,0,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,2026-01-01T00:00:05Z,1.5,value,reading,edge-dongyuan,dongyuan-g3-gas-1
,,1,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,2026-01-01T00:00:00Z,3.5,value,reading,edge-dongyuan,dongyuan-g3-temperature-1
,,1,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,2026-01-01T00:00:05Z,oops,value,reading,edge-dongyuan,dongyuan-g3-temperature-1

#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,long,string,string,string,string
#group,false,false,true,true,false,false,true,true,true,true
#default,_result,,,,,,,,,
,result,table,_start,_stop,_time,_value,_field,_measurement,agent,sensor
,,2,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,2026-01-01T00:00:00Z,7,seq,reading,edge-dongyuan,dongyuan-g3-gas-1
"""


def test_an_influxdb2_annotated_csv_plays_its_tables_and_reports_a_bad_row(
        tmp_path: Path) -> None:
    path = write(tmp_path, "v2.csv", ANNOTATED)
    rec = read_recording(path, value_field="value")
    assert rec.format == "influx-v2"
    assert set(rec.series) == {GAS, TEMP}
    assert rec.series[GAS].values == (1.0, 1.5)
    assert rec.series[TEMP].values == (3.5,)
    (bad,) = rec.skipped
    assert bad.line == 8
    assert "oops" in bad.describe(path)
    assert bad.describe(path).startswith(f"{path}:8: ")


# --------------------------------------------------------------------------- data loggers


def test_a_wide_logger_file_maps_columns_to_sensors(tmp_path: Path) -> None:
    path = write(tmp_path, "logger.csv",
                 "Timestamp,TT-101,GAS_A\n"
                 "2026-01-01 00:00:00,3.5,1.0\n"
                 "2026-01-01 00:00:05,3.6,\n"       # the gas channel missed one
                 "2026-01-01 00:00:10,3.7,1.2\n")
    rec = read_recording(path, mapping={"TT-101": TEMP, "GAS_A": GAS}, sensors=[GAS, TEMP])
    assert rec.format == "logger"
    assert rec.series[TEMP].values == (3.5, 3.6, 3.7)
    assert rec.series[GAS].ts == (T0_NS, T0_NS + 10 * S)


@pytest.mark.parametrize(("stamp", "unit"), [("1767225600", "s"), ("1767225600000", "ms"),
                                             ("1767225600000000", "us"),
                                             ("1767225600000000000", "ns"),
                                             ("2026-01-01T08:00:00+08:00", "iso"),
                                             ("2026-01-01T00:00:00Z", "iso")])
def test_epoch_timestamps_in_any_unit_and_iso_times_read_alike(stamp: str, unit: str) -> None:
    assert parse_time(stamp) == T0_NS, unit


def test_bad_rows_are_skipped_and_named_by_line_and_the_good_ones_all_play(
        tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv",
                 "time,dongyuan-g3-gas-1\n"
                 "1767225600,1.0\n"
                 "yesterday,1.1\n"
                 "1767225610,one point two\n"
                 "1767225615,1.3,extra\n"
                 "1767225620,1.4\n")
    rec = read_recording(path, sensors=[GAS])
    assert rec.series[GAS].values == (1.0, 1.4)
    assert rec.rows == 2
    assert [s.line for s in rec.skipped] == [3, 4, 5]
    described = [s.describe(path) for s in rec.skipped]
    assert "yesterday" in described[0]
    assert "one point two" in described[1]
    assert "3 cells" in described[2]
    with pytest.raises(ReplayError, match=r"bad\.csv:3: .*yesterday"):
        read_recording(path, strict=True)


def test_unusable_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match=r"empty\.csv: no rows"):
        read_recording(write(tmp_path, "empty.csv", "\n\n"))
    with pytest.raises(ReplayError, match=r"data\.csv:1: the first row is data"):
        read_recording(write(tmp_path, "data.csv", "1767225600,1.0\n"))
    with pytest.raises(ReplayError, match=r"none\.csv: no readable values in 2 row"):
        read_recording(write(tmp_path, "none.csv", "time,x\nnever,1\nnope,2\n"))
    with pytest.raises(ReplayError, match=r"dongyuan-g3-gas-9.*did you mean "
                                          r"'dongyuan-g3-gas-1'"):
        read_recording(write(tmp_path, "typo.csv", "time,dongyuan-g3-gas-9\n1767225600,1\n"),
                       sensors=[GAS, TEMP])
    with pytest.raises(ReplayError, match=r"missing\.csv: cannot read"):
        read_recording(tmp_path / "missing.csv")


# --------------------------------------------------------------------------- playing


def recording(tmp_path: Path) -> Path:
    rows = [f"{1767225600 + 5 * i},{1.0 + i},{3.5 + i / 10}" for i in range(12)]
    del rows[6:9]  # a 20-second gap in the recording: a dropout
    return write(tmp_path, "rec.csv", f"time,{GAS},{TEMP}\n" + "\n".join(rows) + "\n")


async def test_a_replay_source_paces_by_the_clock_at_speed(tmp_path: Path) -> None:
    rec = read_recording(recording(tmp_path))
    clock = SimClock(T0_NS + 3600 * S)
    start = clock()

    async def sleep(seconds: float) -> None:  # the simulated clock moves while we wait
        clock.now += round(seconds * S)

    source = ReplaySource(rec, clock=clock, speed=5.0, then_idle=False, sleep=sleep)
    got = [s async for s in source.samples()]
    assert len(got) == 18
    assert [s.sensor for s in got[:2]] == [GAS, TEMP]
    gas = [s for s in got if s.sensor == GAS]
    # recorded every 5 s, played every 1 s at speed 5, stamped when played
    assert [s.ts - start for s in gas[:3]] == [0, S, 2 * S]
    assert gas[6].ts - gas[5].ts == 4 * S  # the gap plays as a gap
    assert [s.value for s in gas] == [1.0 + i for i in (0, 1, 2, 3, 4, 5, 9, 10, 11)]
    assert clock() == start + 11 * S


def test_a_recorded_stream_holds_values_and_keeps_gaps(tmp_path: Path) -> None:
    rec = read_recording(recording(tmp_path))
    stream = RecordedStream(rec.series[GAS], start=1000.0)
    assert stream.value(999.0) is None           # before it starts
    assert stream.value(1000.0) == 1.0
    assert stream.value(1007.0) == 2.0           # held until the next reading
    assert stream.value(1040.0) is None          # inside the recorded gap
    assert stream.value(1045.0) == 10.0
    assert stream.value(1100.0) is None          # after it ends
    fast = RecordedStream(rec.series[GAS], start=1000.0, speed=5.0)
    assert fast.value(1001.0) == 2.0


async def test_an_edge_agent_plays_a_recording_to_the_broker(cfg: ConfigSet, mqtt_url: str,
                                                             tmp_path: Path) -> None:
    """The replay is an agent source like any other: readings reach the broker."""
    import dataclasses
    import time


    spec = cfg.agents["edge-dongyuan"]
    # an agent id of its own: others' agents on the shared broker publish edge-dongyuan's
    spec = dataclasses.replace(spec, id=f"replay-{uuid.uuid4().hex[:8]}",
                               sensors=tuple(s for s in spec.sensors if s.id in (GAS, TEMP)))
    rec = read_recording(recording(tmp_path), sensors=[GAS, TEMP])
    source = ReplaySource(rec, clock=time.time_ns, speed=50.0)
    seen: list[tuple[str, float | None]] = []
    url = urlsplit(mqtt_url)
    decoder = Decoder()
    stop = asyncio.Event()
    agent = EdgeAgent(spec, source, broker_url=mqtt_url)
    async with aiomqtt.Client(url.hostname or "127.0.0.1", url.port or 1883) as client:
        await client.subscribe(topics.readings_topic(spec.id), qos=1)

        async def listen() -> None:
            async for msg in client.messages:
                payload = msg.payload if isinstance(msg.payload, bytes) else b""
                batch = decoder.readings(str(msg.topic), payload)
                if batch.agent == spec.id:
                    seen.extend((r.sensor, r.value) for r in batch.readings)

        listener = asyncio.create_task(listen())
        run = asyncio.create_task(agent.run(stop))
        try:
            assert await wait_until(lambda: len(seen) >= 18), seen
        finally:
            stop.set()
            await run
            listener.cancel()
    assert sorted(v or 0.0 for s, v in seen if s == GAS) == [1.0 + i for i in
                                                      (0, 1, 2, 3, 4, 5, 9, 10, 11)]
