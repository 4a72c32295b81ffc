"""Indicators (hub/desk/indicators.py) from hand-built ledgers whose figures are worked out
by hand in the comments, and their InfluxDB write against the real InfluxDB 1.6.7."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from click.testing import Result
from typer.testing import CliRunner

from gridcall.config import SAMPLE_DISTRICT, ConfigSet
from gridcall.hub.board.indicator_writer import (
    IndicatorCounters,
    run_indicator_writer,
    write_indicators,
)
from gridcall.hub.desk.indicators import Indicator, by_unit, indicators, line_protocol, stints
from gridcall.hub.desk.lifecycle import AlertState, Transition, apply, opening, step
from gridcall.hub.desk.policy import Policy
from gridcall.hub.desk.whistle import Whistled
from gridcall.hub.ingest.sinks import InfluxV1Sink, LineEncoder
from gridcall.wire import AnomalyEvent, Deadlines
from tests.polling import wait_until
from tests.servers import influxql_async

S = 10**9
MIN = 60 * S
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_700_006_400 * S  # a Wednesday, 00:00 UTC


def window(at: int, response: int = 10 * MIN, arrival: int = 30 * MIN,
           disposal: int = 2 * HOUR) -> Deadlines:
    return Deadlines(response=at + response, arrival=at + arrival, disposal=at + disposal)


class Ledger:
    """Builds alert histories with the lifecycle's own rules (illegal steps raise)."""

    def __init__(self, cfg: ConfigSet) -> None:
        self.cfg = cfg
        self.engine = Policy(cfg)
        self.sensor = next(s for s in cfg.sensors.values() if s.kind == "gas")
        self.grid = self.sensor.grid
        self.community = self.sensor.path[2]
        self.town = self.sensor.path[1]
        self.transitions: list[Transition] = []
        self._state: dict[str, AlertState] = {}

    def open(self, n: int, at: int) -> str:
        event = AnomalyEvent(agent=self.sensor.agent, seq=n, sensor=self.sensor.id,
                             kind="out_of_limits", severity="major", score=0.9, value=30.0,
                             ts=at)
        draft = self.engine.draft(event, alert_id=f"AL{n:06d}", now_ns=at)
        draft = msgspec.structs.replace(
            draft, tier="D", unit=self.grid, unit_level="grid",
            unit_path=list(self.sensor.path), deadlines=window(at))
        return self._add(opening(draft, place=self.sensor.path))

    def do(self, alert_id: str, action: str, at: int, actor: str, **kw: object) -> None:
        self._add(step(self._state[alert_id], action, at=at, actor=actor, **kw))  # type: ignore[arg-type]

    def escalate(self, alert_id: str, at: int, actor: str, to: str,
                 reason: str = "response deadline passed") -> None:
        level, tier = {self.community: ("community", "C"), self.town: ("town", "B")}[to]
        path = self.cfg.units[to].path
        self.do(alert_id, "escalate", at, actor, tier=tier, unit=to, unit_level=level,
                unit_path=path, deadlines=window(at), reason=reason)

    def _add(self, t: Transition) -> str:
        self._state[t.alert_id] = apply(self._state.get(t.alert_id), t)
        self.transitions.append(t)
        return t.alert_id


@pytest.fixture
def week(cfg: ConfigSet) -> Ledger:
    """Four alerts at one grid on day 1, one on day 9 (outside the first week)."""
    led = Ledger(cfg)
    g, c = led.grid, led.community
    # a1: all in time. Response 5 min, arrival 20 min, disposal 90 min.
    a1 = led.open(1, T0)
    led.do(a1, "acknowledge", T0 + 5 * MIN, g)
    led.do(a1, "arrive", T0 + 20 * MIN, g)
    led.do(a1, "resolve", T0 + 90 * MIN, g)
    # a2: the grid never answers; the hub escalates at the response deadline to the
    # community, which answers late (15 min > 10) and resolves in time.
    t2 = T0 + 3 * HOUR
    a2 = led.open(2, t2)
    led.escalate(a2, t2 + 10 * MIN, "hub", c)
    led.do(a2, "acknowledge", t2 + 25 * MIN, c)
    led.do(a2, "arrive", t2 + 35 * MIN, c)
    led.do(a2, "resolve", t2 + 60 * MIN, c)
    # a3: the grid answers in 3 min, then calls upward by hand (whistle) at 8 min; the
    # community answers in 4 min but is late on site (40 min > 30) and never resolves.
    t3 = T0 + 6 * HOUR
    a3 = led.open(3, t3)
    led.do(a3, "acknowledge", t3 + 3 * MIN, g)
    led.escalate(a3, t3 + 8 * MIN, g, c, reason="needs the community's pump")
    led.do(a3, "acknowledge", t3 + 12 * MIN, c)
    led.do(a3, "arrive", t3 + 48 * MIN, c)
    # a4: a false alarm after 2 min.
    t4 = T0 + 9 * HOUR
    a4 = led.open(4, t4)
    led.do(a4, "false_alarm", t4 + 2 * MIN, g, note="sensor cleaned")
    # a5: next week, must not count in the first.
    led.open(5, T0 + 8 * DAY)
    return led


def test_a_grid_is_judged_on_its_own_stints(week: Ledger) -> None:
    rows = by_unit(indicators(week.transitions, T0, T0 + 7 * DAY))
    grid = rows[week.grid]
    assert grid.level == "grid"
    assert grid.calls == 4
    # responses: a1 5 min, a2 none by its deadline (escalated by the hub), a3 3 min,
    # a4 (false alarm) 2 min
    assert (grid.responses_timely, grid.responses_judged) == (3, 4)
    assert grid.response_timeliness_rate == 0.75
    # arrival and disposal: only a1 is judged (a2 and a3 left the grid before the
    # deadlines, a4 was a false alarm)
    assert (grid.arrivals_timely, grid.arrivals_judged) == (1, 1)
    assert (grid.disposals_timely, grid.disposals_judged) == (1, 1)
    # resolution: a1 resolved; a2 escalated by breach and a3 called upward are due too
    assert (grid.resolved, grid.resolution_due) == (1, 3)
    assert grid.resolution_rate == pytest.approx(1 / 3)
    assert grid.false_alarm_rate == 0.25
    assert grid.whistles == 1
    assert grid.whistle_rate == 0.25
    assert grid.breaches == 1
    assert grid.median_response_s == 180.0  # 5, 3 and 2 minutes
    assert grid.median_disposal_s == 5400.0


def test_the_unit_an_alert_is_escalated_to_is_judged_from_its_own_deadlines(
        week: Ledger) -> None:
    community = by_unit(indicators(week.transitions, T0, T0 + 7 * DAY))[week.community]
    assert community.level == "community"
    assert community.calls == 2  # a2 and a3, each from the moment it arrived
    # a2: answered 15 min after it came up (deadline 10 min): late; a3: 4 min: timely
    assert (community.responses_timely, community.responses_judged) == (1, 2)
    # a2 on site at 25 min of 30: timely; a3 at 40 min: late
    assert (community.arrivals_timely, community.arrivals_judged) == (1, 2)
    # a2 resolved in 50 min of 120; a3 not resolved, its 2 h passed within the week
    assert (community.disposals_timely, community.disposals_judged) == (1, 2)
    assert community.resolution_rate == 0.5
    assert community.whistles == 0
    assert community.breaches == 0
    assert community.median_response_s == (15 * 60 + 4 * 60) / 2


def test_figures_are_read_as_of_the_period_end_and_unjudged_rates_are_none(
        week: Ledger) -> None:
    # a5 opened at day 8, 00:00; judged 5 minutes later: nothing is due yet
    rows = by_unit(indicators(week.transitions, T0 + 7 * DAY, T0 + 14 * DAY,
                              as_of=T0 + 8 * DAY + 5 * MIN))
    fresh = rows[week.grid]
    assert fresh.calls == 1
    assert fresh.responses_judged == 0
    assert fresh.response_timeliness_rate is None
    assert fresh.resolution_rate is None
    assert fresh.median_response_s is None
    # at the period's end the response deadline has long passed without an answer
    late = by_unit(indicators(week.transitions, T0 + 7 * DAY, T0 + 14 * DAY))[week.grid]
    assert late.response_timeliness_rate == 0.0
    assert late.disposal_timeliness_rate == 0.0
    # steps after as_of do not count: a1 judged 10 min in is responded, not yet on site
    early = stints(week.transitions, as_of=T0 + 10 * MIN)
    a1 = next(s for s in early if s.alert_id == "AL000001")
    assert a1.responded_at == T0 + 5 * MIN
    assert a1.arrived_at is None


def test_a_tier_rule_raising_an_alert_is_no_breach_of_the_unit_below(cfg: ConfigSet) -> None:
    led = Ledger(cfg)
    a = led.open(1, T0)
    led.escalate(a, T0 + 2 * MIN, "hub", led.community, reason="spread: 3 grids in 30m")
    grid = by_unit(indicators(led.transitions, T0, T0 + DAY))[led.grid]
    assert grid.breaches == 0
    assert grid.whistles == 0
    assert grid.responses_judged == 0  # it left the grid before its response deadline


def whistled(department: str, at: int, report: int = 10 * MIN, arrive: int = 30 * MIN
             ) -> Whistled:
    return Whistled(department, at + report, at + arrive, "")


def test_departments_are_judged_on_their_own_times_only(cfg: ConfigSet) -> None:
    """The demo's "urban management had 78 calls and 33 breaches without ever acting":
    a department's row comes from its own whistles and steps, never from the units'
    stints it was listed on."""
    led = Ledger(cfg)
    g = led.grid
    # a1: fire_safety whistled at 2 min: reports in at 5 (in time), arrives at 40 (late:
    # promised 32), supervised at 32, disposes at 90 (in time: the alert's 2 h).
    # environment_water whistled at 2 min, never acts: supervised, judged late on
    # report-in and arrival, no response time. The grid meanwhile answers late.
    a1 = led.open(1, T0)
    led.do(a1, "dispatch", T0 + 2 * MIN, led.town, departments=["fire_safety",
                                                                 "environment_water"],
           whistled=(whistled("fire_safety", T0 + 2 * MIN),
                     whistled("environment_water", T0 + 2 * MIN)))
    led.do(a1, "report_in", T0 + 5 * MIN, "fire_safety", department="fire_safety")
    led.do(a1, "acknowledge", T0 + 20 * MIN, g)  # late for the grid
    for dep in ("fire_safety", "environment_water"):
        led.do(a1, "supervise", T0 + 32 * MIN, "hub", department=dep)
    led.do(a1, "dept_arrive", T0 + 40 * MIN, "fire_safety", department="fire_safety")
    led.do(a1, "dept_dispose", T0 + 90 * MIN, "fire_safety", department="fire_safety")
    # a2: fire_safety whistled at 3 h, in time on all three; the alert is then closed as
    # a false alarm before environment_water (whistled too) did anything: not judged.
    t2 = T0 + 3 * HOUR
    a2 = led.open(2, t2)
    led.do(a2, "dispatch", t2, led.town, departments=["fire_safety", "environment_water"],
           whistled=(whistled("fire_safety", t2), whistled("environment_water", t2)))
    led.do(a2, "report_in", t2 + 2 * MIN, "fire_safety", department="fire_safety")
    led.do(a2, "dept_arrive", t2 + 9 * MIN, "fire_safety", department="fire_safety")
    led.do(a2, "dept_dispose", t2 + 30 * MIN, "fire_safety", department="fire_safety")
    led.do(a2, "false_alarm", t2 + 5 * MIN + 30 * MIN, g)
    # a3: lead urban_mgmt and co-handlers listed by the catalog, never whistled
    led.open(3, T0 + 5 * HOUR)
    listed = set(led._state["AL000003"].departments)
    rows = {r.key: r for r in indicators(led.transitions, T0, T0 + DAY)
            if r.group == "department"}
    assert set(rows) == {"fire_safety", "environment_water"}  # never called: no row
    assert "urban_mgmt" in listed  # a3's lead, listed and never whistled
    fire, water = rows["fire_safety"], rows["environment_water"]
    table = {name: (getattr(fire, name), getattr(water, name)) for name in (
        "calls", "responses_judged", "responses_timely", "arrivals_judged",
        "arrivals_timely", "disposals_judged", "disposals_timely", "resolution_due",
        "resolved", "false_alarms", "breaches", "whistle_rate", "median_response_s",
        "median_disposal_s")}
    # water: a1 all three deadlines passed unanswered (judged, late); a2 closed at 35 min,
    # after its report-in (10) and arrival (30) deadlines, before its disposal (2 h): the
    # false alarm leaves its disposal unjudged and out of the resolution rate
    assert table == {
        "calls": (2, 2),
        "responses_judged": (2, 2),
        "responses_timely": (2, 0),
        "arrivals_judged": (2, 2),
        "arrivals_timely": (1, 0),       # fire arrived 8 min late on a1
        "disposals_judged": (2, 1),
        "disposals_timely": (2, 0),
        "resolution_due": (2, 1),
        "resolved": (2, 0),
        "false_alarms": (0, 1),          # fire had disposed of a2 before it was closed
        "breaches": (1, 1),              # supervised (督办) once each, on a1
        "whistle_rate": (None, None),
        "median_response_s": (150.0, None),  # 3 and 2 min; water never reported in
        "median_disposal_s": (3540.0, None),  # 88 and 30 min from the whistle
    }


def test_line_protocol_has_counts_as_integers_and_leaves_out_unjudged_rates(
        week: Ledger) -> None:
    rows = [r for r in indicators(week.transitions, T0 + 7 * DAY, T0 + 14 * DAY,
                                  as_of=T0 + 8 * DAY + MIN) if r.group == "unit"]
    text = line_protocol(rows, period="7d").decode()
    assert text.startswith(f"indicator,group=unit,id={week.grid},level=grid,period=7d "
                           "calls=1i,")
    assert "response_timeliness_rate" not in text
    assert text.endswith(f" {T0 + 14 * DAY}\n")


async def test_indicators_are_written_to_influxdb_and_read_back_with_influxql(
        week: Ledger, influx_v1_url: str, influx_database: str) -> None:
    now = T0 + 7 * DAY
    async with InfluxV1Sink(influx_v1_url, database=influx_database,
                            encoder=LineEncoder()) as sink:
        points = await write_indicators(sink, week.transitions, now)
    expected = indicators(week.transitions, now - 7 * DAY, now)
    assert points == len(expected) + len(indicators(week.transitions, now - DAY, now))
    rows = await influxql_async(
        influx_v1_url, "SELECT calls, response_timeliness_rate, whistle_rate, resolution_rate "
        f"FROM indicator WHERE \"group\"='unit' AND period='7d' AND id='{week.grid}'",
        database=influx_database)
    assert len(rows) == 1
    assert rows[0]["time"] == now
    grid: Indicator = by_unit(expected)[week.grid]
    assert rows[0]["calls"] == grid.calls == 4
    assert rows[0]["response_timeliness_rate"] == grid.response_timeliness_rate
    assert rows[0]["whistle_rate"] == grid.whistle_rate
    assert rows[0]["resolution_rate"] == pytest.approx(1 / 3)
    # every unit and department of the week has a 7d point
    series = await influxql_async(
        influx_v1_url, "SELECT count(calls) FROM indicator WHERE period='7d' GROUP BY id",
        database=influx_database)
    assert {r["id"] for r in series} == {r.key for r in expected}


async def test_the_periodic_writer_keeps_going_when_influxdb_refuses(
        week: Ledger, influx_v1_url: str, influx_database: str) -> None:
    async def ledger() -> list[Transition]:
        return week.transitions

    failing = IndicatorCounters()
    stop = asyncio.Event()
    async with InfluxV1Sink(influx_v1_url, database=influx_database + "_missing",
                            encoder=LineEncoder(), create_database=False) as bad:
        task = asyncio.create_task(run_indicator_writer(
            bad, ledger, lambda: T0 + 7 * DAY, stop, interval=0.05, counters=failing))
        assert await wait_until(lambda: failing.failed_writes >= 2)  # it tried again
        stop.set()
        await task
    assert failing.rounds == 0

    writing = IndicatorCounters()
    stop = asyncio.Event()
    async with InfluxV1Sink(influx_v1_url, database=influx_database,
                            encoder=LineEncoder()) as good:
        task = asyncio.create_task(run_indicator_writer(
            good, ledger, lambda: T0 + 7 * DAY, stop, interval=30, counters=writing))
        assert await wait_until(lambda: writing.rounds == 1)
        stop.set()
        await task
    assert writing.failed_writes == 0
    rows = await influxql_async(influx_v1_url, "SELECT count(calls) FROM indicator",
                                database=influx_database)
    assert rows[0]["count"] == writing.points


# --------------------------------------------------------------------------- CLI


def _report(*args: str) -> Result:
    from gridcall.cli import app

    return CliRunner().invoke(app, ["hub", "report", *args])


@pytest.fixture
def store_file(week: Ledger, tmp_path: Path) -> Path:
    from gridcall.hub.desk.ledger import Ledger as SqlLedger
    from gridcall.hub.store import Store

    path = tmp_path / "hub.sqlite"

    async def write() -> None:
        async with Store(path) as store:
            await SqlLedger(store).append(*week.transitions)
    asyncio.run(write())
    return path


UNTIL = datetime.fromtimestamp((T0 + 7 * DAY) / S, UTC).isoformat()


def test_hub_report_prints_the_ledger_s_indicators_as_csv(week: Ledger,
                                                          store_file: Path) -> None:
    result = _report("--period", "7d", "--csv", "--store", str(store_file), "--until", UNTIL)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = indicators(week.transitions, T0, T0 + 7 * DAY,
                          groups=("unit", "department", "matter", "tier"))
    assert [(r["group"], r["key"]) for r in rows] == [(e.group, e.key) for e in expected]
    grid = next(r for r in rows if r["key"] == week.grid)
    assert grid["calls"] == "4"
    assert float(grid["response_timeliness_rate"]) == 0.75
    assert grid["median_response_s"] == "180.0"


def test_hub_report_table_and_mistakes(week: Ledger, store_file: Path,
                                       tmp_path: Path) -> None:
    result = _report("--store", str(store_file), "--until", UNTIL)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if week.grid in x)
    assert "75%" in line  # response timeliness
    assert "3.0 min" in line  # median response
    bad = _report("--period", "a week", "--store", str(store_file))
    assert bad.exit_code == 2
    assert "'a week' is not a duration" in bad.stderr
    missing = _report("--store", str(tmp_path / "nope.sqlite"))
    assert missing.exit_code == 1
    assert "no hub store at" in missing.stderr


def test_hub_report_away_from_the_hubs_folder_says_its_store_path_is_relative(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample's store_path is var/hub.sqlite: run from another folder, the report
    said "run the hub first" to an operator whose hub had run for weeks."""
    monkeypatch.chdir(tmp_path)
    result = _report("-c", str(SAMPLE_DISTRICT))
    assert result.exit_code == 1
    text = " ".join(result.stderr.split())
    assert f"no hub store at {tmp_path / 'var' / 'hub.sqlite'}" in text
    assert "is relative" in text
    assert "--store FILE" in text


def test_hub_run_writes_the_indicators_to_influxdb(cfg: ConfigSet, mqtt_url: str,
                                                   influx_v1_url: str, influx_database: str,
                                                   tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time
    import uuid

    import yaml

    from gridcall.config import SAMPLE_DISTRICT
    from gridcall.hub.desk.desk import Desk
    from gridcall.hub.desk.ledger import Ledger as SqlLedger
    from gridcall.hub.store import Store
    from tests.test_hub_shutdown import forget_session

    store_path = tmp_path / "hub.sqlite"
    sensor = cfg.sensors["dongyuan-g1-pm25-1"]
    now = time.time_ns()

    async def a_call_answered_an_hour_ago() -> None:
        async with Store(store_path) as store:
            desk = Desk(cfg, SqlLedger(store))
            await desk.start()
            event = AnomalyEvent(agent=sensor.agent, seq=1, sensor=sensor.id,
                                 kind="out_of_limits", severity="minor", score=0.6,
                                 value=200.0, ts=now - HOUR)
            opened = (await desk.on_event(event, now - HOUR)).alert
            assert opened is not None
            await desk.act(opened.alert_id, "acknowledge", sensor.grid, now=now - HOUR + MIN)
    asyncio.run(a_call_answered_an_hour_ago())

    config_dir = tmp_path / "district"
    config_dir.mkdir()
    for f in SAMPLE_DISTRICT.glob("*.yaml"):
        (config_dir / f.name).write_bytes(f.read_bytes())
    client_id = f"test-hub-indicators-{uuid.uuid4().hex[:8]}"
    (config_dir / "hub.yaml").write_text(yaml.safe_dump({"hub": {
        "broker": {"url": mqtt_url}, "client_id": client_id, "store_path": str(store_path),
        "influx": {"url": influx_v1_url, "database": influx_database}}}), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gridcall.cli import app; app()", "hub", "run",
         "--config", str(config_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    query = (f"SELECT calls, response_timeliness_rate FROM indicator WHERE "
             f"\"group\"='unit' AND id='{sensor.path[2]}' AND period='1d'")
    try:
        async def written() -> list[dict[str, object]]:
            for _ in range(300):
                rows = await influxql_async(influx_v1_url, query, database=influx_database)
                if rows or proc.poll() is not None:
                    return rows
                await asyncio.sleep(0.1)
            return []
        rows = asyncio.run(written())
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    asyncio.run(forget_session(mqtt_url, client_id))
    assert rows, stderr.decode()
    assert rows[0]["calls"] == 1  # the community held it (tier C)
    assert rows[0]["response_timeliness_rate"] == 1.0
    assert proc.returncode == 0, stderr.decode()


def test_hub_report_judges_a_period_not_yet_over_as_of_now(cfg: ConfigSet,
                                                           tmp_path: Path) -> None:
    import time

    from gridcall.hub.desk.ledger import Ledger as SqlLedger
    from gridcall.hub.store import Store

    # a store whose clock runs ahead (a demo's): its last step is "now" for it
    led = Ledger(cfg)
    opened_at = time.time_ns() + HOUR
    led.open(1, opened_at)
    path = tmp_path / "hub.sqlite"

    async def write() -> None:
        async with Store(path) as store:
            await SqlLedger(store).append(*led.transitions)
    asyncio.run(write())
    until = datetime.fromtimestamp((opened_at + 2 * DAY) / S, UTC).isoformat()
    result = _report("--csv", "--store", str(path), "--until", until)
    assert result.exit_code == 0, result.output
    grid = next(r for r in csv.DictReader(io.StringIO(result.stdout)) if r["key"] == led.grid)
    assert grid["calls"] == "1"
    assert grid["responses_judged"] == "0"  # its deadline is 10 min after the last step
    assert grid["response_timeliness_rate"] == ""


def test_hub_report_defaults_to_the_store_s_desk_clock_and_names_the_store(
        cfg: ConfigSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A --clock-speed demo's desk runs ahead (600x: a minute is ten hours): without
    --until the report ends at that desk's now, so its alerts are in it; and it says which
    file it read, absolutely, whatever the working directory."""
    import time

    from gridcall.hub.desk.ledger import Ledger as SqlLedger
    from gridcall.hub.store import Store

    led = Ledger(cfg)
    led.open(1, time.time_ns() + 10 * HOUR)
    monkeypatch.chdir(tmp_path)

    async def write(path: Path) -> None:
        async with Store(path) as store:
            await SqlLedger(store).append(*led.transitions)
    asyncio.run(write(tmp_path / "demo.sqlite"))
    result = _report("--csv", "--store", "demo.sqlite")
    assert result.exit_code == 0, result.output
    grid = next(r for r in csv.DictReader(io.StringIO(result.stdout)) if r["key"] == led.grid)
    assert grid["calls"] == "1"
    table = _report("--store", "demo.sqlite")
    assert table.exit_code == 0, table.output
    assert str(tmp_path / "demo.sqlite") in " ".join(table.stdout.split())

    async def empty(path: Path) -> None:
        async with Store(path):
            pass
    asyncio.run(empty(tmp_path / "empty.sqlite"))
    nothing = _report("--store", "empty.sqlite")
    assert nothing.exit_code == 0, nothing.output
    assert f"in {tmp_path / 'empty.sqlite'}" in " ".join(nothing.stdout.split())


def test_hub_report_reads_the_desk_store_on_postgresql(
        week: Ledger, postgres_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With hub.desk_store in hub.yaml (and no --store) the report reads the ledger from
    PostgreSQL, and names the database without its password."""
    import shutil
    from urllib.parse import urlsplit

    import yaml

    from gridcall.config import SAMPLE_DISTRICT
    from gridcall.hub.desk.ledger import Ledger as PgLedger
    from gridcall.hub.pgstore import PgStore
    from tests.desk_stores import pg_database

    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, folder)
    (folder / "hub.yaml").write_text(yaml.safe_dump({"hub": {
        "store_path": str(tmp_path / "absent.sqlite"),
        "desk_store": {"url_env": "GRIDCALL_REPORT_DESK_URL"}}}), encoding="utf-8")
    with pg_database(postgres_url) as url:
        async def write() -> None:
            async with PgStore(url) as store:
                await PgLedger(store).append(*week.transitions)
        asyncio.run(write())
        unset = _report("--config", str(folder), "--until", UNTIL)
        assert unset.exit_code == 2
        assert "GRIDCALL_REPORT_DESK_URL" in unset.stderr
        monkeypatch.setenv("GRIDCALL_REPORT_DESK_URL", url)
        result = _report("--config", str(folder), "--csv", "--until", UNTIL)
        assert result.exit_code == 0, result.output
        grid = next(r for r in csv.DictReader(io.StringIO(result.stdout))
                    if r["key"] == week.grid)
        assert grid["calls"] == "4"
        table = _report("--config", str(folder), "--until", UNTIL)
        assert table.exit_code == 0, table.output
        named = " ".join(table.stdout.split())
        assert url.split("@")[1] in named
        password = urlsplit(url).password
        assert password
        assert password not in named


def test_a_departments_person_is_judged_on_the_calls_sent_to_them(cfg: ConfigSet) -> None:
    led = Ledger(cfg)
    a = led.open(1, T0)
    at = T0 + 2 * MIN
    led.do(a, "dispatch", at, led.town, departments=["fire_safety"],
           whistled=(Whistled("fire_safety", at + 5 * MIN, at + 15 * MIN, "gao-jun"),))
    led.do(a, "report_in", at + 4 * MIN, "fire_safety", department="fire_safety")
    rows = {(r.group, r.key): r for r in indicators(led.transitions, T0, T0 + DAY,
                                                     groups=("department", "person"))}
    gao = rows[("person", "gao-jun")]
    assert (gao.calls, gao.responses_judged, gao.responses_timely,
            gao.median_response_s) == (1, 1, 1, 240.0)
    assert gao.arrivals_judged == 1  # the promise (17 min) passed unanswered by the day's end
    assert gao.arrivals_timely == 0
    assert rows[("department", "fire_safety")].calls == 1


def test_a_failed_audit_stays_a_departments_verdict_after_the_reopened_alert_passes(
        cfg: ConfigSet) -> None:
    """Fire safety disposes of its part, the alert is closed, the district's audit fails
    it and reopens it; the units close it again without calling fire safety anew, and
    that closing passes. The units were judged on two closings (one failed, one passed);
    fire safety's one call was judged once, on the closing its disposal led to: failed
    (before, the later pass overwrote it and fire safety read 100 %)."""
    led = Ledger(cfg)
    g = led.grid
    a = led.open(1, T0)
    led.do(a, "dispatch", T0 + MIN, led.town, departments=["fire_safety"],
           whistled=(whistled("fire_safety", T0 + MIN),))
    led.do(a, "acknowledge", T0 + 2 * MIN, g)
    led.do(a, "report_in", T0 + 3 * MIN, "fire_safety", department="fire_safety")
    led.do(a, "arrive", T0 + 9 * MIN, g)
    led.do(a, "dept_arrive", T0 + 10 * MIN, "fire_safety", department="fire_safety")
    led.do(a, "dept_dispose", T0 + 20 * MIN, "fire_safety", department="fire_safety")
    led.do(a, "resolve", T0 + 25 * MIN, g)
    led.do(a, "audit", T0 + HOUR, "huangpu", verdict="fail", note="no photo")
    led.do(a, "reopen", T0 + HOUR, "huangpu", reason="audit failed: no photo",
           deadlines=window(T0 + HOUR))
    led.do(a, "acknowledge", T0 + HOUR + MIN, g)
    led.do(a, "arrive", T0 + HOUR + 5 * MIN, g)
    led.do(a, "resolve", T0 + HOUR + 10 * MIN, g)
    led.do(a, "audit", T0 + 2 * HOUR, "huangpu", verdict="pass")
    rows = {(r.group, r.key): r for r in indicators(led.transitions, T0, T0 + DAY)}
    fire = rows[("department", "fire_safety")]
    assert (fire.audits, fire.audits_passed, fire.audit_pass_rate) == (1, 0, 0.0)
    unit = rows[("unit", g)]
    assert (unit.audits, unit.audits_passed) == (2, 1)


def test_a_reopened_alert_is_one_call_with_its_reopening_counted_apart(
        cfg: ConfigSet, tmp_path: Path) -> None:
    """A town expects a matter that came back to be the same call, not a second one
    (units are judged on effect, never on how many reports they handle): the grid's gas
    alert is resolved, reopened by a recurrence, called a false alarm. The grid had 1 call
    and 1 reopening; the reopened stint is still judged (it responded in 4 min, against
    its own deadline); the false-alarm rate is over the handlings (1 of 3). Fire safety,
    dispatched on the first handling and again after the reopening, had 1 call and 1
    reopening. The matter, tier and person rows, the CSV of gridcall hub report and the
    InfluxDB lines agree."""
    led = Ledger(cfg)
    g = led.grid
    a = led.open(1, T0)
    led.do(a, "dispatch", T0 + MIN, led.town, departments=["fire_safety"],
           whistled=(whistled("fire_safety", T0 + MIN),))
    led.do(a, "acknowledge", T0 + 2 * MIN, g)
    led.do(a, "report_in", T0 + 3 * MIN, "fire_safety", department="fire_safety")
    led.do(a, "dept_arrive", T0 + 10 * MIN, "fire_safety", department="fire_safety")
    led.do(a, "dept_dispose", T0 + 20 * MIN, "fire_safety", department="fire_safety")
    led.do(a, "arrive", T0 + 22 * MIN, g)
    led.do(a, "resolve", T0 + 25 * MIN, g)
    led.do(a, "reopen", T0 + HOUR, "hub", reason="recurred", deadlines=window(T0 + HOUR))
    led.do(a, "dispatch", T0 + HOUR + MIN, led.town, departments=["fire_safety"],
           whistled=(whistled("fire_safety", T0 + HOUR + MIN),))
    led.do(a, "acknowledge", T0 + HOUR + 4 * MIN, g)
    led.do(a, "false_alarm", T0 + HOUR + 6 * MIN, g)
    # a second alert, never reopened: 2 calls in all, 1 reopening
    b = led.open(2, T0 + 2 * HOUR)
    led.do(b, "acknowledge", T0 + 2 * HOUR + 20 * MIN, g)  # late (10 min)
    rows = {(r.group, r.key): r for r in indicators(
        led.transitions, T0, T0 + DAY, groups=("unit", "department", "matter", "tier"))}
    grid = rows[("unit", g)]
    assert (grid.calls, grid.reopens) == (2, 1)
    assert (grid.responses_judged, grid.responses_timely) == (3, 2)
    assert (grid.false_alarms, grid.false_alarm_rate) == (1, 1 / 3)
    fire = rows[("department", "fire_safety")]
    # its second call ended (a false alarm) before its report-in was due: not judged
    assert (fire.calls, fire.reopens, fire.responses_judged) == (1, 1, 1)
    matter = next(r for (group, _), r in rows.items() if group == "matter")
    tier = rows[("tier", "D")]
    assert (matter.calls, matter.reopens) == (tier.calls, tier.reopens) == (2, 1)
    assert "reopens=1i" in line_protocol([grid], period="1d").decode()

    async def write() -> None:
        from gridcall.hub.desk.ledger import Ledger as SqlLedger
        from gridcall.hub.store import Store

        async with Store(tmp_path / "hub.sqlite") as store:
            await SqlLedger(store).append(*led.transitions)
    asyncio.run(write())
    until = datetime.fromtimestamp((T0 + DAY) / S, UTC).isoformat()
    result = _report("--period", "1d", "--csv", "--store", str(tmp_path / "hub.sqlite"),
                     "--until", until)
    assert result.exit_code == 0, result.output
    csv_rows = {(r["group"], r["key"]): r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert (csv_rows[("unit", g)]["calls"], csv_rows[("unit", g)]["reopens"]) == ("2", "1")
    assert (csv_rows[("department", "fire_safety")]["calls"],
            csv_rows[("department", "fire_safety")]["reopens"]) == ("1", "1")
