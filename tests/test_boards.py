"""The Grafana boards as files: what `gridcall boards build` writes is loadable provisioning
and structurally sound dashboards (unique ids, every data source reference the provisioned
one, panels inside the grid and not overlapping, every variable a query uses defined
before it), and the macro substitution the query tests rely on fails loudly.

The queries themselves run on a real InfluxDB in tests/test_boards_queries.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from gridcall.boards import SCHEMA_VERSION, build_dashboards
from gridcall.boards.dashboards import BoardSchema, grafana_duration
from gridcall.boards.grafana import Dashboard, Panel, Query
from gridcall.boards.macros import TimeRange, UnknownMacro, expand, regex_escape, variables_used
from gridcall.boards.provisioning import DatasourceSpec, MissingSecret
from gridcall.cli import app
from gridcall.config import SAMPLE_DISTRICT, ConfigSet
from gridcall.hub.board.feed import BoardFeed
from gridcall.hub.desk.desk import Change, Desk
from gridcall.hub.desk.indicators import indicators
from gridcall.hub.desk.indicators import line_protocol as indicator_lines
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.roster import Roster
from gridcall.hub.store import Store
from gridcall.sinks import encoder_for
from gridcall.wire import AgentStatus, AnomalyEvent, Reading, ReadingBatch, SensorHealth
from tests.lineproto_reader import parse

BUILTIN_GRAFANA_DS = {"type": "grafana", "uid": "-- Grafana --"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cfg: ConfigSet) -> Path:
    out = tmp_path_factory.mktemp("boards")
    result = CliRunner().invoke(app, ["boards", "build", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def dashboards_json(out: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((out / "dashboards").glob("*.json"))}


def provisioned_datasource(out: Path) -> dict[str, Any]:
    doc = yaml.safe_load((out / "provisioning/datasources/gridcall.yaml").read_text())
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    return dict(ds)


def test_build_writes_three_dashboards_a_datasource_and_a_file_provider(built: Path) -> None:
    boards = dashboards_json(built)
    assert set(boards) == {"gridcall-district", "gridcall-town", "gridcall-sensor"}
    assert {b["uid"] for b in boards.values()} == set(boards)
    ds = provisioned_datasource(built)
    assert ds["type"] == "influxdb"
    assert ds["jsonData"]["version"] == "InfluxQL"
    providers = yaml.safe_load((built / "provisioning/dashboards/gridcall.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].endswith("/gridcall")
    for board in boards.values():
        assert board["schemaVersion"] == SCHEMA_VERSION
        assert board["panels"], board["uid"]


def _datasource_refs(board: dict[str, Any]) -> list[tuple[str, Any]]:
    refs: list[tuple[str, Any]] = []
    for panel in board["panels"]:
        refs.append((f"panel {panel['title']}", panel["datasource"]))
        refs += [(f"panel {panel['title']} target {t['refId']}", t["datasource"])
                 for t in panel["targets"]]
    refs += [(f"variable {v['name']}", v["datasource"])
             for v in board["templating"]["list"] if v["type"] == "query"]
    refs += [(f"annotation {a['name']}", a["datasource"])
             for a in board["annotations"]["list"] if not a.get("builtIn")]
    return refs


def test_every_datasource_reference_is_the_provisioned_influxdb(built: Path) -> None:
    ds = provisioned_datasource(built)
    for uid, board in dashboards_json(built).items():
        refs = _datasource_refs(board)
        assert len(refs) > len(board["panels"])
        for where, ref in refs:
            assert ref == {"type": "influxdb", "uid": ds["uid"]}, f"{uid}: {where}"
        builtin = [a for a in board["annotations"]["list"] if a.get("builtIn")]
        assert [a["datasource"] for a in builtin] == [BUILTIN_GRAFANA_DS]


def test_panel_ids_are_unique_and_panels_sit_inside_the_grid_without_overlap(
        built: Path) -> None:
    for uid, board in dashboards_json(built).items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{uid}: panel ids {ids}"
        cells: dict[tuple[int, int], str] = {}
        for p in board["panels"]:
            g = p["gridPos"]
            assert min(g["w"], g["h"]) >= 1, (uid, g)
            assert min(g["x"], g["y"]) >= 0, (uid, g)
            assert g["x"] + g["w"] <= 24, f"{uid}: {p['title']} leaves the 24 columns: {g}"
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{uid}: {p['title']} overlaps {cells[x, y]}"
                    cells[x, y] = p["title"]


def _query_texts(board: dict[str, Any]) -> list[tuple[str, str]]:
    texts = [(f"{p['title']} {t['refId']}", t["query"]) for p in board["panels"]
             for t in p["targets"]]
    texts += [(f"annotation {a['name']}", a["target"]["query"])
              for a in board["annotations"]["list"] if not a.get("builtIn")]
    return texts


def test_every_variable_used_is_defined_and_chained_variables_only_use_earlier_ones(
        built: Path) -> None:
    for uid, board in dashboards_json(built).items():
        variables = board["templating"]["list"]
        names = [v["name"] for v in variables]
        assert len(names) == len(set(names)), uid
        for i, v in enumerate(variables):
            if v["type"] == "query":
                assert variables_used(v["query"]) <= set(names[:i]), f"{uid}: {v['name']}"
        used: set[str] = set()
        for where, text in _query_texts(board):
            assert variables_used(text) <= set(names), f"{uid}: {where}: {text}"
            used |= variables_used(text)
        for v in variables:
            used |= variables_used(v["query"]) if v["type"] == "query" else set()
        assert set(names) <= used, f"{uid}: variables nothing uses: {set(names) - used}"


def test_template_variables_town_community_grid_and_sensor(built: Path) -> None:
    boards = dashboards_json(built)
    for uid in boards:
        names = [v["name"] for v in boards[uid]["templating"]["list"]]
        assert names[:3] == ["town", "community", "grid"], uid
    sensor = [v["name"] for v in boards["gridcall-sensor"]["templating"]["list"]]
    assert "sensor" in sensor
    for v in boards["gridcall-district"]["templating"]["list"]:
        if v["type"] == "query":
            assert v["query"].startswith("SHOW TAG VALUES FROM "), v["query"]


def test_variables_appear_only_in_regex_form_so_all_and_multi_values_work(
        cfg: ConfigSet) -> None:
    """Every query expands with two values per variable (Grafana's ``(a|b)``), which the
    substitution allows only inside a regex literal."""
    two = {"town": ["t1", "t2"], "community": ["c1", "c2"], "grid": ["g-1", "g-2"],
           "sensor": ["s1", "s2"], "sensor_grid": ["g-1", "g-2"], "period": ["1d", "7d"]}
    for board in build_dashboards(cfg):
        for where, _, query in board.queries():
            text = expand(query.influxql, variables=two, time_range=TimeRange("6h"))
            assert "(g\\-1|g\\-2)" not in text  # '-' needs no escape: as Grafana writes it
            assert "$" not in text.replace("$/", ""), where


def _layer_fields(panel: Panel) -> set[str]:
    layers = panel.options["layers"]
    out: set[str] = set()
    for layer in layers:
        out |= {layer["location"]["latitude"], layer["location"]["longitude"],
                layer["config"]["style"]["color"]["field"]}
    return out


def test_columns_the_panels_read_are_among_the_columns_their_queries_promise(
        cfg: ConfigSet) -> None:
    for board in build_dashboards(cfg):
        for panel in board.panels:
            promised = {c for q in panel.queries for c in q.expect}
            if panel.type == "geomap":
                assert _layer_fields(panel) <= promised, panel.title
                for q in panel.queries:
                    assert {"lat", "lon", "risk"} <= set(q.expect), panel.title
            for sort in panel.options.get("sortBy", []):
                name = re.sub(r" \((sum|min|max|count)\)$", "", sort["displayName"])
                assert name in promised | {"Time"}, f"{panel.title}: sorts by {name}"
            if panel.type == "barchart":
                assert panel.options["xField"] in promised, panel.title


def test_the_now_panels_read_the_latest_snapshot_window(cfg: ConfigSet) -> None:
    schema = BoardSchema.for_config(cfg, snapshot_window="90s")
    snapshots = {schema.grid_risk, schema.sensor_risk, schema.open_alert,
                 schema.agent_state}
    for board in build_dashboards(cfg, schema):
        for _, panel, query in board.queries():
            assert panel is not None
            reads = set(re.findall(r'FROM "(\w+)"', query.influxql))
            if reads & snapshots:
                assert panel.time_from == "90s", f"{board.uid}: {panel.title}"
                assert "last(" in query.influxql, panel.title


def test_the_snapshot_window_spans_the_writes_between_two_full_snapshots(
        cfg: ConfigSet) -> None:
    boards = cfg.hub.boards
    interval = boards.interval.total_seconds()
    assert BoardSchema.for_config(cfg).snapshot_window == grafana_duration(
        (boards.full_every + 1) * interval)
    whole = dataclasses.replace(cfg, hub=cfg.hub.model_copy(update={
        "boards": boards.model_copy(update={"full_every": 1})}))
    assert BoardSchema.for_config(whole).snapshot_window == grafana_duration(2 * interval)
    assert BoardSchema.for_config(cfg, snapshot_window="5m").snapshot_window == "5m"
    assert [grafana_duration(x) for x in (60, 90, 7200, 4, 0.2)] == [
        "1m", "90s", "2h", "4s", "1s"]


def test_reading_measurement_follows_hub_yaml(cfg: ConfigSet) -> None:
    schema = BoardSchema(reading="water_readings")
    drill = build_dashboards(cfg, schema)[2]
    texts = [q.influxql for _, _, q in drill.queries()] + [v.query for v in drill.variables]
    assert any('FROM "water_readings"' in t for t in texts)
    assert not any('FROM "reading"' in t for t in texts)


# --------------------------------------------------------------------------- macros

def test_macros_and_variables_are_substituted_as_grafana_does() -> None:
    query = ('SELECT mean("value") FROM "reading" WHERE $timeFilter AND "grid" =~ '
             '/^$grid$/ AND "town" =~ /^${town}$/ GROUP BY time($__interval) -- $__interval_ms')
    text = expand(query, variables={"grid": ["a.b", "c/d"], "town": "dasha"},
                  time_range=TimeRange("6h"), interval="30s")
    assert text == ('SELECT mean("value") FROM "reading" WHERE time >= now() - 6h AND '
                    '"grid" =~ /^(a\\.b|c\\/d)$/ AND "town" =~ /^dasha$/ '
                    'GROUP BY time(30s) -- 30000')
    absolute = TimeRange(None, start_ms=1_700_000_000_000, end_ms=1_700_000_600_000)
    assert expand("WHERE $timeFilter", variables={}, time_range=absolute) == (
        "WHERE time >= 1700000000000ms and time <= 1700000600000ms")
    assert regex_escape("x^y$z*") == "x\\^y\\$z\\*"


@pytest.mark.parametrize(("query", "reason"), [
    ("WHERE time > now() - $__range", "__range"),
    ('WHERE "grid" =~ /^${grid:csv}$/', "grid:csv"),
    ('WHERE "grid" = [[grid]]', "[[grid]]"),
    ('WHERE "grid" =~ /^$gird$/', "$gird"),
    ("WHERE \"grid\" = '$grid'", "2 values outside a regex"),
])
def test_an_unknown_macro_or_a_misused_variable_fails_loudly(query: str, reason: str) -> None:
    with pytest.raises(UnknownMacro, match=re.escape(reason)):
        expand(query, variables={"grid": ["a", "b"]}, time_range=TimeRange("6h"))


def test_a_time_range_is_either_relative_or_absolute() -> None:
    with pytest.raises(ValueError, match="relative"):
        TimeRange(None)
    with pytest.raises(ValueError, match="6 hours"):
        TimeRange("6 hours")


# --------------------------------------------------------------------------- data source

def test_influxdb_2_datasource_sends_the_token_header_and_keeps_it_out_of_the_file(
        tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["boards", "build", "--out", str(tmp_path),
                                      "--influx-version", "2", "--influx-url",
                                      "http://influxdb:8086", "--influx-token-env", "TOK"])
    assert result.exit_code == 0, result.output
    ds = provisioned_datasource(tmp_path)
    assert ds["url"] == "http://influxdb:8086"
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
    assert ds["secureJsonData"] == {"httpHeaderValue1": "Token ${TOK}"}
    assert "TOK" in result.output  # it tells what Grafana needs in its environment
    spec = DatasourceSpec("http://influxdb:8086", version=2, token_env="TOK")
    assert spec.api_body({"TOK": "s3cret"})["secureJsonData"] == {
        "httpHeaderValue1": "Token s3cret"}
    with pytest.raises(MissingSecret, match="TOK is not set"):
        spec.api_body({})


def test_influxdb_1_with_credentials_and_3_with_a_token() -> None:
    v1 = DatasourceSpec("http://i:8086", user_env="U", password_env="P").provisioning()
    assert v1["user"] == "${U}"
    assert v1["secureJsonData"] == {"password": "${P}"}
    v3 = DatasourceSpec("https://i:8181", database="gridcall", version=3,
                        token_env="T").provisioning()
    assert v3["jsonData"]["dbName"] == "gridcall"
    assert v3["secureJsonData"]["httpHeaderValue1"] == "Token ${T}"
    with pytest.raises(ValueError, match="needs a token"):
        DatasourceSpec("http://i:8086", version=2)


def test_build_refuses_a_version_2_datasource_without_a_token_variable(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["boards", "build", "--out", str(tmp_path),
                                      "--influx-version", "2"])
    assert result.exit_code == 2
    assert "needs a token" in result.output
    assert not (tmp_path / "dashboards").exists()


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--snapshot-window", "0s", "--snapshot-window 0s: give at least 1s"),
    ("--snapshot-window", "500ms", "--snapshot-window 500ms: give at least 1s"),
    ("--snapshot-window", "a minute", "--snapshot-window: duration 'a minute'"),
    ("--database", "", "--database is empty"),
    ("--database", "  ", "--database is empty"),
])
@pytest.mark.parametrize("command", ["build", "push"])
def test_build_and_push_refuse_an_empty_window_or_database_and_write_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, option: str,
        value: str, says: str) -> None:
    """A window under 1 s would leave every "now" panel empty; an empty database name
    would have been replaced silently by hub.yaml's."""
    monkeypatch.setenv("GRAFANA_TOKEN_FOR_TEST", "glsa_x")
    where = (["--out", str(tmp_path)] if command == "build" else
             ["--grafana", "http://127.0.0.1:9", "--token-env", "GRAFANA_TOKEN_FOR_TEST"])
    result = CliRunner().invoke(app, ["boards", command, *where, option, value])
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split()), result.output
    assert list(tmp_path.iterdir()) == []


def test_an_empty_database_name_is_refused_wherever_it_comes_from() -> None:
    with pytest.raises(ValueError, match="database name is empty"):
        DatasourceSpec("http://i:8086", database="")


def test_build_names_the_config_set_it_used(tmp_path: Path, cfg: ConfigSet) -> None:
    default = CliRunner().invoke(app, ["boards", "build", "--out", str(tmp_path / "a")])
    assert default.exit_code == 0, default.output
    said = " ".join(default.output.split())
    assert f"from config set {SAMPLE_DISTRICT} (the built-in sample district" in said
    mine = tmp_path / "mine"
    shutil.copytree(SAMPLE_DISTRICT, mine)
    given = CliRunner().invoke(app, ["boards", "build", "--out", str(tmp_path / "b"),
                                     "-c", str(mine)])
    assert given.exit_code == 0, given.output
    said = " ".join(given.output.split())
    assert f"from config set {mine} in" in said
    assert "sample" not in said


def test_same_config_same_files(tmp_path: Path, built: Path) -> None:
    result = CliRunner().invoke(app, ["boards", "build", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for path in built.rglob("*"):
        if path.is_file():
            assert (tmp_path / path.relative_to(built)).read_bytes() == path.read_bytes()


def test_dashboard_values_expose_every_query_for_the_checks(cfg: ConfigSet) -> None:
    boards: tuple[Dashboard, ...] = build_dashboards(cfg)
    counted = sum(len(p.queries) for b in boards for p in b.panels)
    listed: list[Query] = [q for b in boards for _, _, q in b.queries()]
    assert len(listed) == counted > 15


def test_data_links_lead_to_a_built_board_and_set_one_of_its_variables(built: Path) -> None:
    boards = dashboards_json(built)
    links = [(uid, link["url"]) for uid, board in boards.items() for p in board["panels"]
             for o in p["fieldConfig"]["overrides"] for prop in o["properties"]
             if prop["id"] == "links" for link in prop["value"]]
    assert {(uid, url.split("?")[0]) for uid, url in links} >= {
        ("gridcall-town", "/d/gridcall-sensor"), ("gridcall-district", "/d/gridcall-town")}
    for uid, url in links:
        m = re.fullmatch(r"/d/([\w-]+)\?var-(\w+)=\$\{__value\.raw\}&\$\{__url_time_range\}",
                         url)
        assert m, f"{uid}: {url}"
        target, variable = m.groups()
        assert variable in {v["name"] for v in boards[target]["templating"]["list"]}, url


def test_open_alert_panels_keep_one_row_per_alert(cfg: ConfigSet) -> None:
    """An alert whose tier or unit changed inside the snapshot window is two series of
    ``open_alert``; each panel on it first keeps the latest row per alert (largest
    ``age_s``), over columns its query really returns."""
    panels = [p for b in build_dashboards(cfg) for p in b.panels
              if any('FROM "open_alert"' in q.influxql for q in p.queries)]
    assert len(panels) == 3
    for panel in panels:
        (query,) = panel.queries
        sort, group, rename = panel.transformations[:3]
        assert sort == {"id": "sortBy", "options": {"sort": [{"field": "age_s"}]}}
        fields = group["options"]["fields"]
        assert fields["alert_id"]["operation"] == "groupby", panel.title
        assert set(fields) == set(query.expect), panel.title
        assert all(f["aggregations"] == ["last"] for k, f in fields.items()
                   if k != "alert_id")
        assert set(rename["options"]["renameByName"].values()) == set(query.expect) - {
            "alert_id"}


# --------------------------------------------------------------------------- dialect

# What docs/boards.md ("InfluxDB 1.x, 2.x, 3.x") promises the boards never use, because
# InfluxQL on InfluxDB 3 (or 2.x through DBRP) lacks it.
NOT_ON_3X = {
    "SLIMIT": r"\bSLIMIT\b", "SOFFSET": r"\bSOFFSET\b", "INTO": r"\bINTO\b",
    "DISTINCT": r"\bDISTINCT\b", "subquery": r"\bFROM\s*\(",
    "fill(linear)": r"\bfill\s*\(\s*linear\s*\)", "SHOW SERIES": r"\bSHOW\s+SERIES\b",
    "SHOW DATABASES": r"\bSHOW\s+DATABASES\b", "INTEGRAL": r"\bINTEGRAL\s*\(",
    "HOLT_WINTERS": r"\bHOLT_WINTERS(_WITH_FIT)?\s*\(", "SAMPLE": r"\bSAMPLE\s*\(",
    "TOP": r"\bTOP\s*\(", "BOTTOM": r"\bBOTTOM\s*\(",
}
_QUOTED = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|=~\s*/(?:\\.|[^/\\])*/')


def not_on_3x(query: str) -> list[str]:
    """What of ``NOT_ON_3X`` the query uses, outside quoted names, strings and regexes
    (a field named "into" is fine)."""
    bare = _QUOTED.sub('""', query)
    return [name for name, pattern in NOT_ON_3X.items()
            if re.search(pattern, bare, re.IGNORECASE)]


@pytest.mark.parametrize("query", [
    'SELECT last("risk") FROM "grid_risk" WHERE $timeFilter SLIMIT 5',
    'SELECT count("x") FROM (SELECT last("risk") AS "x" FROM "grid_risk")',
    'SELECT DISTINCT("grid") FROM "grid_risk"',
    'SELECT mean("value") INTO "copy" FROM "reading"',
    'SELECT mean("value") FROM "reading" GROUP BY time(1m) FILL(linear)',
    "show series from reading", "SHOW DATABASES",
    'SELECT integral("value") FROM "reading"', 'SELECT top("value", 3) FROM "reading"',
    'SELECT holt_winters(mean("value"), 5, 0) FROM "reading" GROUP BY time(1m)',
    'SELECT sample("value", 2) FROM "reading"', 'SELECT bottom("value", 1) FROM "reading"',
])
def test_the_dialect_check_catches_what_3x_lacks(query: str) -> None:
    assert not_on_3x(query), query


def test_quoted_names_strings_and_regexes_are_not_mistaken_for_keywords() -> None:
    assert not_on_3x('SELECT last("into") FROM "top(" WHERE "t" = \'SLIMIT\' AND '
                     '"g" =~ /^DISTINCT$/') == []


def test_every_query_of_the_written_dashboards_is_in_the_dialect_2x_and_3x_run(
        built: Path) -> None:
    queries: list[tuple[str, str]] = []
    for uid, board in dashboards_json(built).items():
        queries += [(f"{uid}: {where}", text) for where, text in _query_texts(board)]
        queries += [(f"{uid}: variable {v['name']}", v["query"])
                    for v in board["templating"]["list"] if v["type"] == "query"]
    assert len(queries) > 25
    for where, text in queries:
        assert not not_on_3x(text), f"{where} uses {not_on_3x(text)}: {text}"


async def test_no_measurement_the_boards_read_has_a_tag_and_a_field_of_one_name(
        cfg: ConfigSet) -> None:
    """InfluxDB 1.x/2.x let a tag and a field share a name (a query then needs ``::tag``/
    ``::field``, which the boards never write); InfluxDB 3 refuses such a write. Every
    measurement the hub writes for the boards, with every optional field present: an open
    alert with a deadline and a reason, an escalation, an acknowledgement, an anomaly,
    an agent with a full status, the indicators and the readings."""
    async with Store(":memory:") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        changes: list[Change] = []

        async def keep(change: Change) -> None:
            changes.append(change)

        desk.add_hook(keep)
        t0 = 1_800_000_000_000_000_000
        noise = "dasha-dong-g1-noise-1"
        anomaly = AnomalyEvent(agent="edge-dasha-dong", seq=1, sensor=noise,
                               kind="out_of_limits", severity="major", score=0.9,
                               value=80.0, ts=t0)
        out = await desk.on_event(anomaly, t0)
        assert out.alert is not None
        await desk.tick(out.alert.deadlines.response + 1)
        await desk.act(out.alert.alert_id, "acknowledge", "dasha-dong",
                       now=out.alert.deadlines.response + 2, note="on my way")
        roster = Roster(cfg)
        agent = cfg.agents["edge-dasha-dong"]
        roster.observe(AgentStatus(
            agent=agent.id, state="online", ts=t0, heartbeat_s=30.0, outbox_messages=2,
            outbox_oldest_age_s=1.5, dropped={"readings_age": 1},
            sensor_health={s.id: SensorHealth(state="ok") for s in agent.sensors}), t0)
        now = out.alert.deadlines.response + 10
        feed = BoardFeed(cfg)
        open_alerts = desk.alerts(open_only=True)
        body = feed.snapshot(open_alerts, now, agents=roster.views(now),
                             evidence={a.alert_id: desk.sensors_of(a.alert_id)
                                       for a in open_alerts})
        body += b"".join(feed.alert_change(c.alert, c.transition) for c in changes)
        body += feed.anomaly(anomaly)
        transitions = await desk.transitions()
        body += indicator_lines(indicators(transitions, t0 - 1, now), period="1d")
        body += encoder_for(cfg).encode([ReadingBatch(
            agent=agent.id, seq=1, sent_at=t0, readings=[Reading(noise, t0, 61.0)])])
    tags: dict[str, set[str]] = {}
    fields: dict[str, set[str]] = {}
    for point in parse(body):
        tags.setdefault(point.measurement, set()).update(point.tags)
        fields.setdefault(point.measurement, set()).update(point.fields)
    schema = BoardSchema()
    read = {schema.reading, schema.indicator, schema.open_alert, schema.grid_risk,
            schema.sensor_risk, schema.agent_state, schema.anomaly, schema.alert_change}
    assert set(fields) == read  # every measurement the boards read was written here
    for measurement in sorted(read):
        both = tags.get(measurement, set()) & fields[measurement]
        assert not both, f"{measurement}: {sorted(both)} are both tags and fields"
    assert "deadline_left_s" in fields["open_alert"]
    assert "outbox_age_s" in fields["agent_state"]
