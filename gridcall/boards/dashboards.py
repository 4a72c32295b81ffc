"""The three risk boards, in the order a town command centre asks its questions:

1. where is risk now (district overview: map, open alerts by tier and unit);
2. what is open and whose deadline is about to pass (town board: countdown, escalations);
3. which unit or department is slow (indicators, escalations per unit);
4. what did that sensor do before the alarm (sensor drill-down with annotations).

They read only what the hub writes to InfluxDB (docs/boards.md, "Board data"; the
contract in :mod:`gridcall.hub.board.feed`): ``grid_risk``, ``sensor_risk``,
``open_alert``, ``agent_state`` snapshots, ``anomaly`` and ``alert_change`` events,
``indicator`` and ``reading``.

**Snapshots and "now".** A snapshot measurement has one point per grid/sensor/alert/agent
every ``boards_interval`` (30 s by default). Panels that show the present set a panel
relative time of two intervals (``snapshot_window``, Grafana's "relative time" override)
and take ``last()`` per series: each grid, alert or agent once, from its latest snapshot.
An alert closed since then drops out within that window. Counting is done by Grafana
(``groupBy`` transformation) from one row per alert, never by ``count()`` over snapshots,
which would count an alert once per snapshot.

**InfluxQL for 1.6 … 3.x.** Plain ``SELECT`` with ``last()/mean()/max()/min()/count()``,
``GROUP BY time(), tags``, ``fill()``, regex tag matches and ``SHOW TAG VALUES ... WITH
KEY = ... WHERE``; no subqueries, no ``DISTINCT``, no ``INTO``, no ``SLIMIT``/``SOFFSET``,
no ``holt_winters``/``top()``/``bottom()``, no math on aggregates, no ``fill(linear)``
(docs/boards.md, "Grafana", lists what InfluxDB 3 lacks).

Template variables are used only in regex form ``"grid" =~ /^$grid$/`` so one value,
several values (``(a|b)``) and "All" behave alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gridcall.boards.grafana import JSON, Annotation, Dashboard, Panel, Query, Variable
from gridcall.config import ConfigSet
from gridcall.wire.ladder import RISK, TIERS, Tier

RISK_COLOURS: dict[Tier, str] = {"D": "blue", "C": "yellow", "B": "orange", "A": "red"}
RISK_STEPS: tuple[tuple[int, str, str], ...] = (
    (0, "none", "green"),
    *sorted((RISK[tier], tier, RISK_COLOURS[tier]) for tier in TIERS),
)
"""Risk levels as the board feed writes them (the ladder's scale: the highest open
alert's tier), lowest first, with their colour."""


@dataclass(frozen=True, slots=True)
class BoardSchema:
    """Measurement names and the snapshot window the boards read."""

    reading: str = "reading"
    indicator: str = "indicator"
    open_alert: str = "open_alert"
    grid_risk: str = "grid_risk"
    sensor_risk: str = "sensor_risk"
    agent_state: str = "agent_state"
    anomaly: str = "anomaly"
    alert_change: str = "alert_change"
    snapshot_window: str = "1m"
    """Relative time of the "now" panels: two snapshots of the default 30 s interval."""

    @classmethod
    def for_config(cls, cfg: ConfigSet, *, snapshot_window: str | None = None
                   ) -> BoardSchema:
        """The reading measurement hub.yaml names (``influx.measurement``) and, unless
        given, a snapshot window of two of its ``boards.interval`` (``full_every + 1``
        when the hub writes only what changed between full snapshots)."""
        boards = cfg.hub.boards
        reading = cfg.hub.influx.measurement if cfg.hub.influx else "reading"
        window = snapshot_window or grafana_duration(
            (max(2, boards.full_every + 1)) * boards.interval.total_seconds())
        return cls(reading=reading, snapshot_window=window)


def grafana_duration(seconds: float) -> str:
    """``60`` → ``"1m"``, ``90`` → ``"90s"``, ``7200`` → ``"2h"`` (whole seconds, at least 1)."""
    whole = max(1, math.ceil(seconds))
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def q(name: str) -> str:
    """A double-quoted InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def match(tag: str, variable: str) -> str:
    """``"tag" =~ /^$variable$/``: one value, several or All."""
    return f"{q(tag)} =~ /^${variable}$/"


def where(*conditions: str) -> str:
    return " AND ".join(("$timeFilter", *conditions))


def lasts(*fields: str) -> str:
    return ", ".join(f"last({q(f)}) AS {q(f)}" for f in fields)


def group_by(*tags: str) -> str:
    return ", ".join(q(t) for t in tags)


# --------------------------------------------------------------------------- shared parts

def _risk_field_config() -> JSON:
    return {
        "defaults": {
            "color": {"mode": "thresholds"},
            "thresholds": {"mode": "absolute", "steps": [
                {"color": color, "value": None if level == 0 else level}
                for level, _, color in RISK_STEPS]},
            "mappings": [{"type": "value", "options": {
                str(level): {"text": text, "index": level} for level, text, _ in RISK_STEPS}}],
        },
        "overrides": [],
    }


def _map_view(cfg: ConfigSet) -> JSON:
    """Centre and zoom that frame the district's polygon (or its grids' centres)."""
    district = cfg.district
    points: list[tuple[float, float]] = []
    for ring in district.location.polygon or ():
        points.extend(ring)
    if not points:
        points = [u.location.centre() for u in cfg.units_at("grid")] or [
            district.location.centre()]
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    span = max(max(lons) - min(lons), max(lats) - min(lats), 1e-3)
    zoom = max(3, min(16, math.floor(math.log2(360 / span))))
    return {"id": "coords", "lat": round((min(lats) + max(lats)) / 2, 5),
            "lon": round((min(lons) + max(lons)) / 2, 5), "zoom": zoom}


def _markers(name: str, ref_id: str, *, size: int, symbol: str, text_field: str) -> JSON:
    return {
        "type": "markers",
        "name": name,
        "config": {
            "showLegend": True,
            "style": {
                "size": {"fixed": size},
                "color": {"field": "risk", "fixed": "green"},
                "opacity": 0.8,
                "symbol": {"mode": "fixed", "fixed": f"img/icons/marker/{symbol}.svg"},
                "text": {"mode": "field", "field": text_field, "fixed": ""},
                "textConfig": {"fontSize": 10, "offsetY": -12, "textAlign": "center",
                               "textBaseline": "middle"},
            },
        },
        "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
        "filterData": {"id": "byRefId", "options": ref_id},
        "tooltip": True,
    }


def risk_map(cfg: ConfigSet, s: BoardSchema, *, title: str, width: int, height: int,
             filters: tuple[str, ...], fit: bool = False) -> Panel:
    """Grids (squares) and sensors (dots) coloured by risk, from the latest snapshot."""
    grids = Query(
        f"SELECT {lasts('risk', 'open', 'lat', 'lon')} FROM {q(s.grid_risk)} "
        f"WHERE {where(*filters)} GROUP BY {group_by('town', 'community', 'grid', 'grid_name')}",
        expect=("risk", "open", "lat", "lon", "grid", "grid_name"), table=True)
    sensors = Query(
        f"SELECT {lasts('risk', 'healthy', 'lat', 'lon')} FROM {q(s.sensor_risk)} "
        f"WHERE {where(*filters)} GROUP BY {group_by('grid', 'sensor', 'kind')}",
        expect=("risk", "healthy", "lat", "lon", "sensor", "kind"), table=True)
    return Panel(
        title=title, type="geomap", queries=(grids, sensors), width=width, height=height,
        description="Grids (squares, named) and sensors (dots) coloured by the tier of their "
                    "highest open alert: green none, blue D, yellow C, orange B, red A. "
                    f"Latest snapshot (last {s.snapshot_window}).",
        time_from=s.snapshot_window,
        options={
            # the town board fits the map to its (one town's) markers; the district
            # overview frames the whole district
            "view": {**_map_view(cfg), "allLayers": True,
                     **({"id": "fit", "padding": 10, "maxZoom": 16} if fit else {})},
            "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True},
            "basemap": {"type": "default", "name": "Basemap", "config": {}},
            "layers": [
                _markers("Grids", "A", size=14, symbol="square", text_field="grid_name"),
                _markers("Sensors", "B", size=6, symbol="circle", text_field="sensor"),
            ],
            "tooltip": {"mode": "details"},
        },
        field_config=_risk_field_config(),
    )


def _timeseries_options() -> JSON:
    """A time series' legend under it and a tooltip with every series."""
    return {"legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "multi"}}


def _stacked_bars() -> JSON:
    """Counts per interval as stacked whole-number bars (one colour per series)."""
    return {"defaults": {"custom": {"drawStyle": "bars", "fillOpacity": 60,
                                    "stacking": {"mode": "normal"}},
                         "decimals": 0}, "overrides": []}


def _table_options(sort_by: str | None = None, desc: bool = False) -> JSON:
    options: JSON = {"showHeader": True, "cellHeight": "sm",
                     "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": desc}]
    return options


def _override(field: str, **properties: Any) -> JSON:
    return {"matcher": {"id": "byName", "options": field},
            "properties": [{"id": k.replace("_", "."), "value": v}
                           for k, v in properties.items()]}


DRILLDOWN_UID = "gridcall-sensor"
TOWN_UID = "gridcall-town"


def link_to(uid: str, variable: str, title: str) -> JSON:
    """A data link from a table cell to another board with ``var-<variable>`` set to the
    cell's value, keeping the time range."""
    return {"title": title, "url": f"/d/{uid}?var-{variable}=${{__value.raw}}"
                                    "&${__url_time_range}"}


def _links(field: str, *links: JSON) -> JSON:
    return {"matcher": {"id": "byName", "options": field},
            "properties": [{"id": "links", "value": list(links)}]}


def _colour_cells(field: str, steps: list[tuple[float | None, str]]) -> JSON:
    return {"matcher": {"id": "byName", "options": field}, "properties": [
        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
        {"id": "thresholds", "value": {"mode": "absolute", "steps": [
            {"color": c, "value": v} for v, c in steps]}},
    ]}


def _risk_cells(field: str) -> JSON:
    override = _colour_cells(field, [(None if lv == 0 else lv, c) for lv, _, c in RISK_STEPS])
    override["properties"].append({"id": "mappings", "value": [{"type": "value", "options": {
        str(lv): {"text": t, "index": lv} for lv, t, _ in RISK_STEPS}}]})
    return override


def _tier_cells(field: str) -> JSON:
    return {"matcher": {"id": "byName", "options": field}, "properties": [
        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
        {"id": "mappings", "value": [{"type": "value", "options": {
            text: {"color": color, "index": level}
            for level, text, color in RISK_STEPS if level}}]},
    ]}


def _indicator_table(s: BoardSchema, *, title: str, description: str,
                     conditions: tuple[str, ...], by: tuple[str, ...], width: int,
                     sort_by: str, desc: bool, id_links: tuple[JSON, ...] = ()) -> Panel:
    fields = ("calls", "reopens", "breaches", "response_timeliness_rate",
              "disposal_timeliness_rate", "resolution_rate", "median_response_s",
              "median_disposal_s")
    return Panel(
        title=title, type="table", width=width, height=9, description=description,
        queries=(Query(f"SELECT {lasts(*fields)} FROM {q(s.indicator)} "
                       f"WHERE {where(match('period', 'period'), *conditions)} "
                       f"GROUP BY {group_by(*by)}",
                       expect=(*fields, *by), table=True),),
        options=_table_options(sort_by, desc),
        field_config={"defaults": {"custom": {"align": "auto"}}, "overrides": [
            *(_override(f, unit="percentunit", decimals=0) for f in fields if f.endswith("rate")),
            *(_override(f, unit="s") for f in fields if f.endswith("_s")),
            _colour_cells("breaches", [(None, "transparent"), (1, "orange"), (5, "red")]),
            _override("Time", custom_hidden=True),
            *((_links("id", *id_links),) if id_links else ()),
        ]},
        transformations=({"id": "organize", "options": {"excludeByName": {"Time": True}}},),
    )


def _period_variable() -> Variable:
    return Variable("period", "Indicator period", "1d,7d", kind="custom", multi=False,
                    include_all=False)


def _place_variables(s: BoardSchema, *, town_multi: bool) -> tuple[Variable, ...]:
    """town → community → grid, each narrowed by the ones before (``SHOW TAG VALUES``
    on the small ``grid_risk`` snapshot, not on the readings)."""
    m = q(s.grid_risk)
    return (
        Variable("town", "Town", f'SHOW TAG VALUES FROM {m} WITH KEY = "town"',
                 multi=town_multi, include_all=town_multi),
        Variable("community", "Community",
                 f'SHOW TAG VALUES FROM {m} WITH KEY = "community" WHERE {match("town", "town")}'),
        Variable("grid", "Grid",
                 f'SHOW TAG VALUES FROM {m} WITH KEY = "grid" WHERE '
                 f'{match("town", "town")} AND {match("community", "community")}'),
    )


PLACE = (match("town", "town"), match("community", "community"), match("grid", "grid"))
ESCALATED = '"escalated" = 1'
AGENT_FIELDS = lasts("online", "last_seen_s", "outbox_depth", "outbox_age_s", "dropped")


def latest_per_alert(columns: tuple[str, ...]) -> tuple[JSON, ...]:
    """Grafana transformations that keep one row per alert: its latest.

    ``open_alert``'s tier, state, unit, level and department are tags, so an alert that
    changed one of them inside the snapshot window is two series (two rows from
    ``last()``: say tier C and tier B). ``age_s`` only grows, so the row with the largest
    age is the alert's latest snapshot: sort by it, group by ``alert_id`` keeping each
    column's last value, and rename the columns back. Rows come as one frame (InfluxQL
    ``resultFormat: table``), so the grouping spans every series. Then only rows with
    ``open`` 1 are kept: a hub that writes only what changed (``boards.full_every``)
    writes a closing point (``open=0``) for an alert that closed, the latest of its rows.
    """
    kept = [c for c in columns if c != "alert_id"]
    return (
        {"id": "sortBy", "options": {"sort": [{"field": "age_s"}]}},
        {"id": "groupBy", "options": {"fields": {
            "alert_id": {"operation": "groupby", "aggregations": []},
            **{c: {"operation": "aggregate", "aggregations": ["last"]} for c in kept}}}},
        {"id": "organize", "options": {"renameByName": {f"{c} (last)": c for c in kept}}},
        {"id": "filterByValue", "options": {
            "type": "include", "match": "all",
            "filters": [{"fieldName": "open", "config": {"id": "equal",
                                                         "options": {"value": 1}}}]}},
    )


# --------------------------------------------------------------------------- the boards

def district_overview(cfg: ConfigSet, s: BoardSchema) -> Dashboard:
    open_fields = ("open", "escalations", "deadline_left_s", "age_s")
    open_tags = ("alert_id", "tier", "unit", "town")
    open_rows = Query(
        f"SELECT {lasts(*open_fields)} FROM {q(s.open_alert)} "
        f"WHERE {where(*PLACE)} GROUP BY {group_by(*open_tags)}",
        expect=(*open_fields, *open_tags), table=True)
    one_row_per_alert = latest_per_alert((*open_fields, *open_tags))
    group_tier_unit = {"id": "groupBy", "options": {"fields": {
        "tier": {"operation": "groupby", "aggregations": []},
        "unit": {"operation": "groupby", "aggregations": []},
        "open": {"operation": "aggregate", "aggregations": ["sum"]},
        "escalations": {"operation": "aggregate", "aggregations": ["sum"]},
        "deadline_left_s": {"operation": "aggregate", "aggregations": ["min"]}}}}
    group_tier = {"id": "groupBy", "options": {"fields": {
        "tier": {"operation": "groupby", "aggregations": []},
        "open": {"operation": "aggregate", "aggregations": ["sum"]}}}}
    panels = (
        risk_map(cfg, s, title="Where is risk now", width=14, height=15, filters=PLACE),
        Panel(title="Open alerts by tier", type="barchart", width=10, height=6,
              description=f"Alerts open in the latest snapshot (last {s.snapshot_window}), "
                          "counted per tier by Grafana from one row per alert.",
              queries=(open_rows,), time_from=s.snapshot_window,
              transformations=(*one_row_per_alert, group_tier, {"id": "sortBy", "options": {
                  "sort": [{"field": "tier"}]}}),
              options={"xField": "tier", "orientation": "horizontal", "showValue": "always",
                       "legend": {"showLegend": False, "displayMode": "list",
                                  "placement": "bottom"}},
              field_config={"defaults": {"color": {"mode": "fixed", "fixedColor": "orange"},
                                         "decimals": 0}, "overrides": []}),
        Panel(title="Open alerts by tier and unit", type="table", width=10, height=9,
              description="Per responsible unit: open alerts, escalations so far and the "
                          "closest deadline (seconds; negative = passed).",
              queries=(open_rows,), time_from=s.snapshot_window,
              transformations=(*one_row_per_alert, group_tier_unit),
              options=_table_options("deadline_left_s (min)"),
              field_config={"defaults": {}, "overrides": [
                  _override("deadline_left_s (min)", unit="s"),
                  _tier_cells("tier"),
                  _colour_cells("deadline_left_s (min)",
                                [(None, "red"), (0, "orange"), (900, "green")])]}),
        _indicator_table(s, title="Indicators by town", width=12,
                         description="Assessment indicators of each town over the chosen "
                                     "period (hub/desk/indicators.py): calls, reopenings (the "
                                     "same calls back, not new ones), deadline breaches, "
                                     "on-time rates, median times.",
                         conditions=("\"level\" = 'town'", match("id", "town")), by=("id",),
                         sort_by="breaches", desc=True,
                         id_links=(link_to(TOWN_UID, "town", "Town board"),)),
        _indicator_table(s, title="Indicators by department", width=12,
                         description="The same figures per lead department (权责清单).",
                         conditions=("\"group\" = 'department'",), by=("id",),
                         sort_by="breaches", desc=True),
        _indicator_table(s, title="Which unit is slow", width=24,
                         description="Grids, communities and towns by deadline breaches, "
                                     "then median response. All units of the district "
                                     "(indicator rows carry no town tag).",
                         conditions=("\"group\" = 'unit'",), by=("id", "level"),
                         sort_by="breaches", desc=True),
        Panel(title="Alert steps over time", type="timeseries", width=24, height=8,
              description="Ledger transitions per action (opened, acknowledged, escalated, "
                          "resolved...) per interval.",
              queries=(Query(f"SELECT count({q('escalated')}) AS {q('steps')} "
                             f"FROM {q(s.alert_change)} WHERE {where(*PLACE)} "
                             f"GROUP BY time($__interval), {q('action')} fill(0)",
                             expect=("steps", "action"), alias="$tag_action"),),
              options=_timeseries_options(), field_config=_stacked_bars()),
    )
    return Dashboard(
        uid="gridcall-district", title=f"{cfg.district.name} · risk overview",
        description="Where is risk now, what is open by tier and unit, and how towns and "
                    "departments perform (gridcall).",
        panels=panels, variables=(*_place_variables(s, town_multi=True), _period_variable()))


def town_board(cfg: ConfigSet, s: BoardSchema) -> Dashboard:
    alert_fields = ("title", "deadline_left_s", "deadline_ms", "deadline_kind", "escalations",
                    "age_s", "sensor", "open")
    alert_tags = ("alert_id", "tier", "state", "unit", "department", "grid")
    panels = (
        risk_map(cfg, s, title="Risk in the town now", width=12, height=12, filters=PLACE,
                 fit=True),
        Panel(title="Communities and grids", type="table", width=12, height=12,
              description=f"Each grid's risk and open alerts (last {s.snapshot_window}).",
              time_from=s.snapshot_window,
              queries=(Query(f"SELECT {lasts('risk', 'open')} FROM {q(s.grid_risk)} "
                             f"WHERE {where(*PLACE)} "
                             f"GROUP BY {group_by('community', 'grid', 'grid_name')}",
                             expect=("risk", "open", "community", "grid", "grid_name"),
                             table=True),),
              options=_table_options("risk", desc=True),
              field_config={"defaults": {}, "overrides": [_risk_cells("risk")]},
              transformations=({"id": "organize", "options": {"excludeByName": {
                  "Time": True}}},)),
        Panel(title="Open alerts: whose deadline passes next", type="table", width=24,
              height=10,
              description="Open alerts sorted by the time left to their next deadline "
                          "(response, arrival or disposal). 'due' counts live in the "
                          "browser; 'left' is as of the snapshot and red once passed.",
              time_from=s.snapshot_window,
              queries=(Query(f"SELECT {lasts(*alert_fields)} FROM {q(s.open_alert)} "
                             f"WHERE {where(*PLACE)} GROUP BY {group_by(*alert_tags)}",
                             expect=(*alert_fields, *alert_tags), table=True),),
              options=_table_options("deadline_left_s"),
              field_config={"defaults": {}, "overrides": [
                  _override("deadline_ms", unit="dateTimeFromNow", displayName="due"),
                  _override("deadline_left_s", unit="s", displayName="left"),
                  _colour_cells("deadline_left_s",
                                [(None, "red"), (0, "orange"), (900, "green")]),
                  _override("age_s", unit="s", displayName="open for"),
                  _tier_cells("tier"),
                  _links("sensor", link_to(DRILLDOWN_UID, "sensor",
                                           "What did this sensor do before the alarm?"))]},
              transformations=latest_per_alert((*alert_fields, *alert_tags))),
        Panel(title="Escalations", type="table", width=14, height=9,
              description="Every escalation in the time range: which alert, to which unit, "
                          "and why (deadline passed, spread, persistence...).",
              queries=(Query(f"SELECT {q('text')}, {q('sensor')} FROM {q(s.alert_change)} "
                             f"WHERE {where(*PLACE, ESCALATED)} "
                             f"GROUP BY {group_by('alert_id', 'matter', 'tier', 'unit')}",
                             expect=("text", "sensor", "alert_id", "tier", "unit"),
                             table=True),),
              options=_table_options("Time", desc=True),
              field_config={"defaults": {}, "overrides": [_tier_cells("tier")]}),
        Panel(title="Escalations per unit", type="timeseries", width=10, height=9,
              description="Which unit lets deadlines pass: escalations away from each unit "
                          "per interval.",
              queries=(Query(f"SELECT count({q('escalated')}) AS {q('escalations')} "
                             f"FROM {q(s.alert_change)} "
                             f"WHERE {where(*PLACE, ESCALATED)} "
                             f"GROUP BY time($__interval), {q('unit')} fill(0)",
                             expect=("escalations", "unit"), alias="$tag_unit"),),
              options=_timeseries_options(), field_config=_stacked_bars()),
        Panel(title="Edge agents, offline first", type="table", width=12, height=8,
              description="Each agent of the town: online, last heard, what waits in its "
                          f"outbox (last {s.snapshot_window}).",
              time_from=s.snapshot_window,
              queries=(Query(f"SELECT {AGENT_FIELDS} FROM {q(s.agent_state)} "
                             f"WHERE {where(match('town', 'town'))} GROUP BY {q('agent')}",
                             expect=("online", "last_seen_s", "outbox_depth", "outbox_age_s",
                                     "dropped", "agent"),
                             table=True),),
              options=_table_options("online"),
              field_config={"defaults": {}, "overrides": [
                  {"matcher": {"id": "byName", "options": "online"}, "properties": [
                      {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                      {"id": "mappings", "value": [{"type": "value", "options": {
                          "0": {"text": "OFFLINE", "color": "red", "index": 0},
                          "1": {"text": "online", "color": "green", "index": 1}}}]}]},
                  _override("last_seen_s", unit="s", displayName="last heard"),
                  _override("outbox_age_s", unit="s")]},
              transformations=({"id": "organize", "options": {"excludeByName": {
                  "Time": True}}},)),
        Panel(title="Unhealthy sensors", type="table", width=12, height=8,
              description="Sensors the hub judges stuck, missing or unknown in the latest "
                          f"snapshot (last {s.snapshot_window}).",
              time_from=s.snapshot_window,
              # The latest health of every sensor, then Grafana keeps the unhealthy ones:
              # filtering on healthy = 0 in InfluxQL before last() would still list a
              # sensor that recovered inside the window (its last *unhealthy* point).
              queries=(Query(f"SELECT {lasts('healthy', 'health', 'risk')} "
                             f"FROM {q(s.sensor_risk)} WHERE {where(*PLACE)} "
                             f"GROUP BY {group_by('grid', 'sensor', 'kind', 'agent')}",
                             expect=("healthy", "health", "risk", "sensor", "kind", "agent"),
                             table=True),),
              options=_table_options("sensor"),
              field_config={"defaults": {}, "overrides": [
                  _risk_cells("risk"),
                  _links("sensor", link_to(DRILLDOWN_UID, "sensor", "Sensor drill-down"))]},
              transformations=(
                  {"id": "filterByValue", "options": {
                      "type": "include", "match": "all",
                      "filters": [{"fieldName": "healthy", "config": {
                          "id": "equal", "options": {"value": 0}}}]}},
                  {"id": "organize", "options": {"excludeByName": {
                      "Time": True, "healthy": True}}})),
    )
    return Dashboard(
        uid=TOWN_UID, title="Town board",
        description="One town: its communities and grids, open alerts with their deadline "
                    "countdown, escalations, offline agents and unhealthy sensors.",
        panels=panels, variables=_place_variables(s, town_multi=False), refresh="30s",
        time_from="now-24h")


def sensor_drilldown(cfg: ConfigSet, s: BoardSchema) -> Dashboard:
    reading = q(s.reading)
    # A sensor's place comes from the sensor_risk snapshot (tags town, community, grid,
    # sensor), not from the readings: a stored reading carries only agent and sensor
    # (hub.yaml influx.points: lean, issue 20), and the snapshot lists every configured
    # sensor, recent on 3.x too, whether or not it sent lately.
    sensors = q(s.sensor_risk)
    variables = (
        *_place_variables(s, town_multi=True),
        Variable("sensor", "Sensor",
                 f'SHOW TAG VALUES FROM {sensors} WITH KEY = "sensor" WHERE {" AND ".join(PLACE)}',
                 multi=False, include_all=False),
        Variable("sensor_grid", "Its grid",
                 f'SHOW TAG VALUES FROM {sensors} WITH KEY = "grid" WHERE '
                 f'{match("sensor", "sensor")}', multi=False, include_all=False,
                 hidden=True),
    )
    sensor = match("sensor", "sensor")
    panels = (
        Panel(title="Readings", type="timeseries", width=24, height=11,
              description="Mean, max and min per interval; orange markers are anomalies the "
                          "edge agent reported, red ones the steps of alerts in its grid.",
              queries=(Query(f"SELECT mean({q('value')}) AS {q('mean')}, max({q('value')}) "
                             f"AS {q('max')}, min({q('value')}) AS {q('min')} FROM {reading} "
                             f"WHERE {where(sensor)} GROUP BY time($__interval), "
                             f"{q('sensor')} fill(none)",
                             expect=("mean", "max", "min")),),
              options=_timeseries_options(),
              field_config={"defaults": {"custom": {"drawStyle": "line", "lineWidth": 1,
                                                    "fillOpacity": 0, "spanNulls": False}},
                            "overrides": []}),
        Panel(title="Now", type="stat", width=6, height=7, time_from=s.snapshot_window,
              description="Risk and health of the sensor in the latest snapshot.",
              queries=(Query(f"SELECT {lasts('risk', 'healthy', 'health')} "
                             f"FROM {q(s.sensor_risk)} WHERE {where(sensor)}",
                             expect=("risk", "healthy", "health"), table=True),),
              options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "/.*/",
                                         "values": False},
                       "colorMode": "background", "graphMode": "none", "textMode": "auto"},
              field_config=_risk_field_config()),
        Panel(title="Anomalies it reported", type="table", width=9, height=7,
              description="What the edge agent's detector saw, with its score.",
              queries=(Query(f"SELECT {q('text')}, {q('score')}, {q('value')}, "
                             f"{q('anomaly')}, {q('severity')} FROM {q(s.anomaly)} "
                             f"WHERE {where(sensor)}",
                             expect=("text", "score", "anomaly", "severity"), table=True),),
              options=_table_options("Time", desc=True)),
        Panel(title="Alert steps in its grid", type="table", width=9, height=7,
              description="Who did what on the alerts of the sensor's grid.",
              queries=(Query(f"SELECT {q('text')}, {q('action')}, {q('tier')}, {q('unit')}, "
                             f"{q('sensor')} FROM {q(s.alert_change)} "
                             f"WHERE {where(match('grid', 'sensor_grid'))}",
                             expect=("text", "action", "tier", "unit"), table=True),),
              options=_table_options("Time", desc=True),
              field_config={"defaults": {}, "overrides": [_tier_cells("tier")]}),
    )
    annotations = (
        Annotation("Anomalies", f"SELECT {q('text')}, {q('anomaly')}, {q('severity')} "
                                f"FROM {q(s.anomaly)} WHERE {where(sensor)}",
                   text_column="text", tags_column="anomaly,severity", color="orange",
                   expect=("text", "anomaly", "severity")),
        Annotation("Alert steps", f"SELECT {q('text')}, {q('action')}, {q('tier')} "
                                  f"FROM {q(s.alert_change)} "
                                  f"WHERE {where(match('grid', 'sensor_grid'))}",
                   text_column="text", tags_column="action,tier", color="red",
                   expect=("text", "action", "tier")),
    )
    return Dashboard(
        uid=DRILLDOWN_UID, title="Sensor drill-down",
        description="What a sensor did before and around its alarm: readings with the "
                    "anomalies and alert steps as annotations.",
        panels=panels, variables=variables, annotations=annotations, time_from="now-3h")


def build_dashboards(cfg: ConfigSet, schema: BoardSchema | None = None
                     ) -> tuple[Dashboard, ...]:
    """The three boards, in the order of the command centre's questions."""
    s = schema or BoardSchema.for_config(cfg)
    return district_overview(cfg, s), town_board(cfg, s), sensor_drilldown(cfg, s)
