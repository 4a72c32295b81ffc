"""Every query of the Grafana boards runs on a real InfluxDB filled by the real hub.

Grafana cannot be installed here, so this does what Grafana would do. A simulated
district runs through the shared mosquitto into the real hub, which writes readings,
board snapshots and events into a fresh database on the shared InfluxDB 1.6.7: two of
the three edge agents of town ``dasha`` run (the third stays off, so the town has an
offline agent and sensors with no health), an anomaly on a manhole-cover sensor opens a
community-tier alert whose response deadline (3 s in this test's copy of the catalog)
passes so the desk escalates it, and a noise anomaly opens a grid-tier one. The
assessment indicators are written by the hub's own writer function. Then, while the
district still runs, the queries are read from the dashboard JSON files that
``write_provisioning`` (what `gridcall boards build` calls) writes, so what runs is what
Grafana would load:

- every template variable's ``SHOW TAG VALUES`` query runs in dashboard order, each
  with the values chosen for the ones before it (the chain Grafana follows);
- every panel query and every annotation query runs with Grafana's macros substituted by
  :func:`gridcall.boards.macros.expand` (which fails on any macro it does not know):
  ``$timeFilter`` as the dashboard's relative range (or the panel's own relative time,
  the snapshot window) or as an absolute range, ``$__interval`` = 10s, and variables in
  Grafana's regex form;
- twice: with ids picked from the run (town ``dasha``, two communities and two grids as
  a multi-value selection, the manhole sensor), and with "All" for every variable that
  allows it and an absolute time range.

Each must answer without error, return at least one row and the columns its panel reads
(``Query.expect`` of the boards' Python values, matched by board uid, panel title and
refId / variable name / annotation name; a query in the JSON without an expectation, or
an expectation without a query in the JSON, fails). A few tests then check that what
the boards show is what the desk holds (the open alerts, the escalation, the offline agent).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridcall.boards import build_dashboards
from gridcall.boards.dashboards import BoardSchema
from gridcall.boards.macros import TimeRange, expand
from gridcall.boards.provisioning import DatasourceSpec, write_provisioning
from gridcall.config import SAMPLE_DISTRICT, ConfigSet, load_config
from gridcall.hub.board.indicator_writer import write_indicators
from gridcall.hub.desk.desk import Unchanged
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.simulators.district import InProcessDistrict
from gridcall.simulators.streams import Injection
from gridcall.sinks import influx_sink
from tests.polling import wait_until
from tests.servers import InfluxQLError, influxql_async, quote_ident, unique_name

pytestmark = pytest.mark.servers

TOWN = "dasha"
# Agent and sensor ids get this run's suffix: MQTT topics are named by agent id only and
# the hub takes an event by its sensor id, while other test runs on the shared mosquitto
# run the sample's agents too (their last wills and anomalies would reach this hub).
SUFFIX = uuid.uuid4().hex[:6]


def ours(sample_id: str) -> str:
    """An agent or sensor id of the sample as this run names it."""
    return f"{sample_id}-{SUFFIX}"


RUNNING = [ours("edge-dongyuan"), ours("edge-dasha-dong")]
OFF = ours("edge-huangpu-cun")  # dasha's third agent: never starts
ESCALATING = ours("dasha-dong-g1-manholetilt-1")  # MANHOLE-DISPLACED, base tier C
QUIET_GRID_ALERT = ours("dasha-dong-g1-noise-1")  # NOISE-NUISANCE, base tier D
FAST_MATTER = "MANHOLE-DISPLACED"
NOISE_MATTER = "NOISE-NUISANCE"
STAYS_OPEN = ours("dasha-dong-g1-pm25-1")  # DUST-PM25: keeps an alert open in dasha-dong-g1
PICKS: dict[str, list[str]] = {
    "town": [TOWN],
    "community": ["dasha-dong", "huangpu-cun"],
    "grid": ["dasha-dong-g1", "huangpu-cun-g1"],
    "sensor": [ESCALATING],
    "sensor_grid": ["dasha-dong-g1"],
    "period": ["1d"],
}
INTERVAL = "10s"


def board_config(folder: Path) -> ConfigSet:
    """The sample district (agents and sensors renamed for this run) with a 2 s board snapshot
    and a 3 s response deadline for the manhole matter at tier C (so the desk escalates
    it to the town during the test)."""
    shutil.copytree(SAMPLE_DISTRICT, folder)
    sensors = [s["id"] for s in yaml.safe_load(
        (folder / "sensors.yaml").read_text(encoding="utf-8"))["sensors"]]
    ids = re.compile(r"(?<![\w-])(" + "|".join(
        re.escape(i) for i in sorted(sensors, key=len, reverse=True)) + r")(?![\w-])")
    for name, items, key in (("agents.yaml", "agents", "id"),
                             ("sensors.yaml", "sensors", "agent")):
        doc = yaml.safe_load((folder / name).read_text(encoding="utf-8"))
        for item in doc[items]:
            item[key] = ours(item[key])
        text = yaml.safe_dump(doc, allow_unicode=True)
        # sensor ids wherever they appear (sensors.yaml, the agents' channel maps)
        (folder / name).write_text(ids.sub(lambda m: ours(m.group(1)), text),
                                   encoding="utf-8")
    hub = yaml.safe_load((folder / "hub.yaml").read_text(encoding="utf-8"))
    hub["hub"].setdefault("boards", {})["interval"] = "2s"
    (folder / "hub.yaml").write_text(yaml.safe_dump(hub, allow_unicode=True))
    matters = yaml.safe_load((folder / "matters.yaml").read_text(encoding="utf-8"))
    matters.setdefault("tier_deadlines", {})[FAST_MATTER] = {
        "C": {"response": "3s", "arrival": "1h", "disposal": "1d"}}
    (folder / "matters.yaml").write_text(yaml.safe_dump(matters, allow_unicode=True))
    return load_config(folder)


@dataclass
class Answer:
    variant: str
    query: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def columns(self) -> set[str]:
        return {k for row in self.rows for k, v in row.items() if v is not None}


@dataclass
class Run:
    """What the queries answered and what the desk held when they ran."""

    panels: dict[str, list[Answer]] = field(default_factory=dict)
    variables: dict[str, list[Answer]] = field(default_factory=dict)
    annotations: dict[str, list[Answer]] = field(default_factory=dict)
    chosen: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    open_alerts: dict[str, str] = field(default_factory=dict)
    """alert id → grid, of the desk's open alerts when the last snapshot was taken."""
    escalated: dict[str, str] = field(default_factory=dict)
    """alert id → town, of the alerts the desk raised a tier (deadline, spread...)."""
    escalated_later: dict[str, str] = field(default_factory=dict)
    """The same once the queries ran."""
    escalated_by_deadline: set[str] = field(default_factory=set)
    desk_before: dict[str, tuple[str, str]] = field(default_factory=dict)
    """alert id → (tier, unit) as the desk held it before the queries, and after."""
    desk_after: dict[str, tuple[str, str]] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    """Alerts the test's duty officers resolved during the run."""
    boards: list[dict[str, Any]] = field(default_factory=list)
    """The dashboard JSON the queries were read from."""

    def panel(self, uid: str, title: str) -> dict[str, Any]:
        (board,) = [b for b in self.boards if b["uid"] == uid]
        (panel,) = [p for p in board["panels"] if p["title"] == title]
        return dict(panel)


async def _ask(url: str, db: str, variant: str, text: str) -> Answer:
    answer = Answer(variant, text)
    try:
        answer.rows = await influxql_async(url, text, database=db)
    except InfluxQLError as exc:
        answer.error = str(exc)
    return answer


def written_boards(cfg: ConfigSet, schema: BoardSchema, out: Path) -> list[dict[str, Any]]:
    """The dashboards as `gridcall boards build` writes them (write_provisioning), read back
    from the JSON files: the queries that run are the ones Grafana would load."""
    write_provisioning(out, build_dashboards(cfg, schema), DatasourceSpec.for_config(cfg))
    return [json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((out / "dashboards").glob("*.json"))]


def _custom_values(var: dict[str, Any]) -> list[str]:
    return [str(o["value"]) for o in var["options"]]


async def query_boards(boards: list[dict[str, Any]], url: str, db: str, run: Run,
                       *, variant: str, all_values: bool, time_range: TimeRange) -> None:
    """Run every query of the dashboard JSON as Grafana would: the variables in order (each
    with the values chosen for the ones before), then each panel target's ``query`` (with
    the panel's ``timeFrom`` as its range if it has one) and each annotation's."""
    for board in boards:
        uid = board["uid"]
        values: dict[str, list[str]] = {}
        for var in board["templating"]["list"]:
            name = var["name"]
            if var["type"] == "custom":
                options = _custom_values(var)
            else:
                answer = await _ask(url, db, variant, expand(
                    var["query"], variables=values, time_range=time_range, interval=INTERVAL))
                run.variables.setdefault(f"{uid} / ${name}", []).append(answer)
                options = [str(r["value"]) for r in answer.rows]
            if all_values and var["includeAll"]:
                values[name] = options  # Grafana's "All" without allValue: every value
            else:
                picked = [p for p in PICKS[name] if p in options] or options[:1]
                values[name] = picked if var["multi"] else picked[:1]
        run.chosen[f"{uid} {variant}"] = values
        for panel in board["panels"]:
            # a panel's relative time replaces the dashboard's range, as in Grafana
            span = TimeRange(panel["timeFrom"]) if panel.get("timeFrom") else time_range
            for target in panel["targets"]:
                text = expand(target["query"], variables=values, time_range=span,
                              interval=INTERVAL)
                run.panels.setdefault(f"{uid} / {panel['title']} / {target['refId']}",
                                      []).append(await _ask(url, db, variant, text))
        for annotation in board["annotations"]["list"]:
            if annotation.get("builtIn"):
                continue
            text = expand(annotation["target"]["query"], variables=values,
                          time_range=time_range, interval=INTERVAL)
            run.annotations.setdefault(f"{uid} / {annotation['name']}", []).append(
                await _ask(url, db, variant, text))


async def ledger_summary(hub: Hub) -> list[str]:
    return [f"{a.alert_id} {a.alert.matter} {a.place[-1]} tier {a.tier} {a.state}: "
            + ", ".join(f"{t.action}→{t.tier} ({t.reason})"
                        for t in await hub.desk.history(a.alert_id))
            for a in hub.desk.alerts()]


async def escalations(hub: Hub) -> dict[str, str]:
    """alert id → town of every alert the desk has raised a tier so far."""
    towns = {a.alert_id: a.place[1] for a in hub.desk.alerts()}
    return {t.alert_id: towns[t.alert_id] for t in await hub.desk.transitions()
            if t.action == "escalate"}


async def fill_and_query(cfg: ConfigSet, mqtt_url: str, url: str, db: str,
                         tmp: Path) -> Run:
    start = time.time()
    injections = (
        Injection(ESCALATING, start + 1.0, 10.0, "step",
                  (cfg.sensors[ESCALATING].limits.alarm_high or 10) * 1.3, "cover lifted"),
        Injection(QUIET_GRID_ALERT, start + 1.5, 10.0, "step",
                  (cfg.sensors[QUIET_GRID_ALERT].limits.alarm_high or 70) * 1.3, "loud"),
        Injection(STAYS_OPEN, start + 2.0, 10.0, "step",
                  (cfg.sensors[STAYS_OPEN].limits.alarm_high or 150) * 1.3, "dust"),
    )
    # The hub snapshots every 2 s here; the boards' "now" window stays at minutes (as for
    # a 30 s hub, whose default would be 1m) so that the snapshots before and after the
    # escalation are both inside it however slowly a loaded CI machine runs the queries.
    boards = written_boards(cfg, BoardSchema.for_config(cfg, snapshot_window="5m"),
                            tmp / "grafana")
    run = Run(boards=boards)
    async with Store(tmp / "hub.sqlite") as store, influx_sink(cfg, url=url, api=1,
                                                       database=db) as sink:
        district = InProcessDistrict(cfg, broker_url=mqtt_url, store=store, sink=sink,
                                     injections=injections, agents=RUNNING,
                                     interval_scale=0.1, tick_interval=0.2)
        async with district:
            hub = district.hub
            wanted = {(matter, cfg.sensors[sensor].grid) for sensor, matter in (
                (ESCALATING, FAST_MATTER), (QUIET_GRID_ALERT, NOISE_MATTER))}
            assert await wait_until(lambda: wanted <= {
                (s.alert.matter, s.place[-1]) for s in hub.desk.alerts(open_only=True)},
                polls=1200), (
                f"the injected anomalies raised no alerts: {await ledger_summary(hub)}")
            ok = await wait_until(lambda: any(
                s.alert.matter == FAST_MATTER and s.tier == "B"
                for s in hub.desk.alerts(open_only=True)), polls=1200)
            assert ok, ("the desk did not escalate the manhole alert to the town after its "
                        f"3 s deadline; its alerts: {await ledger_summary(hub)}")
            assert hub.boards is not None
            # a snapshot with the alert at B (the hub's own 2 s ones may all fall before
            # the escalation or after the town closes it below)
            assert await hub.write_boards()
            # duty officers handle two alerts from start to end, so the indicators of a
            # grid, the town and the departments have response, arrival and disposal
            # times to judge: the grid its noise alert, the town the escalated one
            for sensor, matter in ((QUIET_GRID_ALERT, NOISE_MATTER),
                                   (ESCALATING, FAST_MATTER)):
                (alert,) = [s for s in hub.desk.alerts(open_only=True)
                            if s.place[-1] == cfg.sensors[sensor].grid
                            and s.alert.matter == matter]
                for action in ("dispatch", "acknowledge", "arrive", "resolve"):
                    try:
                        await hub.desk.act(alert.alert_id, action, alert.unit,
                                           now=hub.clock(), note=f"{action} (test duty officer)")
                    except Unchanged:  # at B the hub dispatched the plan's departments
                        assert action == "dispatch"
                    if action != "dispatch":
                        continue
                    # the departments the dispatch whistled answer for themselves (报到):
                    # their indicator rows come from their own steps only
                    called = hub.desk.get(alert.alert_id).dept_calls
                    assert called, f"the dispatch of {alert.alert_id} called no department"
                    for call in called:
                        for dept_action in ("report_in", "dept_arrive", "dept_dispose"):
                            await hub.desk.department_act(
                                alert.alert_id, dept_action, call.department,
                                now=hub.clock(), note=f"{dept_action} (test department)")
                run.closed.add(alert.alert_id)
            assert hub.boards is not None
            # the hub's own indicator writer function, now rather than at its next round
            await write_indicators(hub.boards.sink, await hub.desk.transitions(),
                                   hub.clock())
            assert await hub.write_boards()
            run.open_alerts = {s.alert_id: s.place[-1] for s in hub.desk.alerts(open_only=True)}
            run.escalated = await escalations(hub)
            run.desk_before = {a.alert_id: (a.tier, a.unit) for a in hub.desk.alerts()}
            run.escalated_by_deadline = {t.alert_id for t in await hub.desk.transitions()
                                         if t.action == "escalate" and "deadline" in t.reason}
            await query_boards(boards, url, db, run, variant="picked ids, relative range",
                               all_values=False, time_range=TimeRange("6h"))
            now_ms = time.time_ns() // 10**6
            await query_boards(boards, url, db, run, variant="All, absolute range",
                               all_values=True, time_range=TimeRange(
                                   None, start_ms=int(start * 1000) - 60_000,
                                   end_ms=now_ms + 60_000))
            # the desk goes on while the queries run (a spread may raise another alert)
            run.escalated_later = await escalations(hub)
            run.desk_after = {a.alert_id: (a.tier, a.unit) for a in hub.desk.alerts()}
    return run


@pytest.fixture(scope="module")
def run(mqtt_url: str, influx_v1_url: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("boards-queries")
    cfg = board_config(tmp / "config")
    db = unique_name("boards")

    async def main() -> Run:
        await influxql_async(influx_v1_url, f"CREATE DATABASE {quote_ident(db)}")
        try:
            return await fill_and_query(cfg, mqtt_url, influx_v1_url, db, tmp)
        finally:
            await influxql_async(influx_v1_url, f"DROP DATABASE {quote_ident(db)}")

    return asyncio.run(main())


# What each query must return, from the boards' Python values (known at collection time);
# the queries that run are read from the JSON files (written_boards).
_BOARDS = build_dashboards(load_config(SAMPLE_DISTRICT))
PANEL_QUERIES = {where: q.expect for b in _BOARDS for where, _, q in b.queries()}
VARIABLES = [f"{b.uid} / ${v.name}" for b in _BOARDS for v in b.variables
             if v.kind == "query"]
ANNOTATIONS = {f"{b.uid} / {a.name}": a.expect for b in _BOARDS for a in b.annotations}


def _check(answers: list[Answer], expect: tuple[str, ...] | set[str]) -> None:
    assert {a.variant for a in answers} == {"picked ids, relative range",
                                            "All, absolute range"}
    for a in answers:
        assert a.error is None, f"[{a.variant}] InfluxDB refused it: {a.error}"
        assert a.rows, f"[{a.variant}] no rows for {a.query}"
        missing = set(expect) - a.columns
        assert not missing, f"[{a.variant}] {a.query}\n  lacks {missing}; has {a.columns}"


def test_every_query_in_the_written_json_has_an_expectation_and_every_expectation_ran(
        run: Run) -> None:
    assert set(run.panels) == set(PANEL_QUERIES), (
        f"in the JSON only: {set(run.panels) - set(PANEL_QUERIES)}; "
        f"expected but not in the JSON: {set(PANEL_QUERIES) - set(run.panels)}")
    assert set(run.variables) == set(VARIABLES)
    assert set(run.annotations) == set(ANNOTATIONS)


@pytest.mark.parametrize("where", sorted(PANEL_QUERIES))
def test_panel_query_returns_the_columns_its_panel_reads(run: Run, where: str) -> None:
    _check(run.panels[where], PANEL_QUERIES[where])


@pytest.mark.parametrize("where", sorted(VARIABLES))
def test_variable_query_lists_values(run: Run, where: str) -> None:
    _check(run.variables[where], {"key", "value"})


@pytest.mark.parametrize("where", sorted(ANNOTATIONS))
def test_annotation_query_returns_text_and_tags(run: Run, where: str) -> None:
    _check(run.annotations[where], ANNOTATIONS[where])


def test_the_variables_chain_town_community_grid(run: Run, cfg: ConfigSet) -> None:
    picked = run.chosen["gridcall-town picked ids, relative range"]
    assert picked["town"] == [TOWN]
    assert picked["community"] == PICKS["community"]
    every = run.chosen["gridcall-town All, absolute range"]
    # "All" of a variable narrowed by town dasha is exactly dasha's communities and grids
    assert set(every["community"]) == {u.id for u in cfg.units_at("community")
                                       if u.path[1] == TOWN}
    assert set(every["grid"]) == {u.id for u in cfg.units_at("grid") if u.path[1] == TOWN}
    district = run.chosen["gridcall-district All, absolute range"]
    assert set(district["town"]) == {u.id for u in cfg.units_at("town")}


def test_the_open_alerts_board_lists_the_desks_open_alerts(run: Run) -> None:
    """Every alert the desk holds open is on the board; an alert closed within the
    snapshot window may still be (its last snapshot as open is in the window), and one
    opened while the queries ran may already be; nothing else is."""
    (all_towns,) = [a for a in run.panels["gridcall-district / Open alerts by tier / A"]
                    if a.variant.startswith("All")]
    shown = {r["alert_id"] for r in all_towns.rows}
    assert set(run.open_alerts) <= shown
    opened_meanwhile = set(run.desk_after) - set(run.desk_before)
    assert shown - set(run.open_alerts) <= run.closed | opened_meanwhile


def test_the_escalation_shows_on_the_town_board(run: Run, cfg: ConfigSet) -> None:
    (manhole,) = run.escalated_by_deadline
    for answer in run.panels["gridcall-town / Escalations / A"]:
        shown = {r["alert_id"] for r in answer.rows}
        assert manhole in shown, answer.variant
        # the town board shows dasha's escalations only, and (with All) every one of them
        assert shown <= {a for a, town in run.escalated_later.items() if town == TOWN}
        if answer.variant.startswith("All"):
            assert shown >= {a for a, town in run.escalated.items() if town == TOWN}


def test_the_agent_that_never_started_is_offline_and_its_sensors_unhealthy(
        run: Run, cfg: ConfigSet) -> None:
    for answer in run.panels["gridcall-town / Edge agents, offline first / A"]:
        online = {r["agent"]: r["online"] for r in answer.rows}
        assert online[OFF] == 0, answer.variant
        assert {online[a] for a in RUNNING} == {1}, answer.variant
    off_sensors = {ours(s.id) for s in cfg.agents[OFF.removesuffix(f"-{SUFFIX}")].sensors
                   if s.grid == "huangpu-cun-g1"}
    assert off_sensors
    panel = run.panel("gridcall-town", "Unhealthy sensors")
    for answer in run.panels["gridcall-town / Unhealthy sensors / A"]:
        shown = {r["sensor"] for r in filter_by_value(panel, answer.rows)}
        assert shown >= off_sensors, answer.variant
        # the query has every sensor's latest health; the panel keeps the unhealthy ones
        healthy = {r["sensor"] for r in answer.rows if r["healthy"] == 1}
        assert healthy, answer.variant  # the running agents report their sensors ok
        assert not shown & healthy, answer.variant


def filter_by_value(panel: dict[str, Any], rows: list[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
    """The rows a panel's ``filterByValue`` transformations keep (Grafana's semantics for
    the ``equal`` matcher, the only one the boards use: include/exclude, match any/all)."""
    for t in panel.get("transformations", []):
        if t["id"] != "filterByValue":
            continue
        options = t["options"]
        assert all(f["config"]["id"] == "equal" for f in options["filters"]), options

        def hits(row: dict[str, Any], options: dict[str, Any] = options) -> bool:
            found = [row.get(f["fieldName"]) == f["config"]["options"]["value"]
                     for f in options["filters"]]
            return all(found) if options["match"] == "all" else any(found)

        keep = options["type"] == "include"
        rows = [r for r in rows if hits(r) == keep]
    return rows


def test_the_latest_row_per_alert_is_the_alert_as_the_desk_holds_it(run: Run) -> None:
    """What the panels' transformations keep (the row with the largest age_s per alert,
    see gridcall.boards.dashboards.latest_per_alert) has the desk's tier and unit, also
    for the manhole alert that was escalated from C to B inside the snapshot window and
    so has two series there."""
    for answer in run.panels["gridcall-town / Open alerts: whose deadline passes next / A"]:
        latest: dict[str, dict[str, Any]] = {}
        for row in sorted(answer.rows, key=lambda r: r["age_s"]):
            latest[row["alert_id"]] = row
        for alert_id, row in latest.items():
            # an alert may open while the queries run: then it is only in desk_after
            assert (row["tier"], row["unit"]) in {run.desk_before.get(alert_id),
                                                  run.desk_after[alert_id]}, answer.variant
        (manhole,) = run.escalated_by_deadline
        tiers = {r["tier"] for r in answer.rows if r["alert_id"] == manhole}
        assert tiers == {"C", "B"}, answer.variant  # why the panels de-duplicate

