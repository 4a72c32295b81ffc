"""The Grafana dashboard JSON we write, as small typed values.

Why not a builder library (checked 2026-11): grafana-foundation-sdk (Grafana Labs,
maintained) has typed builders for panels but none for InfluxDB queries (its
``builders/`` has prometheus, loki, elasticsearch... and no influxdb), so every target,
variable and annotation would still be a raw dict; and its PyPI releases carry the
Grafana version in an epoch (``1769699998!10.1.0``), so a plain ``pip install`` resolves
to the Grafana 10.1 types unless one exact release is pinned. grafanalib's last release
is 0.7.1 (January 2024; its owner Weaveworks closed) and it writes old schema versions.
The subset we need is small and fixed: panels placed on the 24-column grid, raw InfluxQL
targets, query variables, InfluxQL annotations. Written here by hand, each shape in one
place, checked by ``tests/test_boards.py`` (structure) and run on a real InfluxDB
(every query, every variable, every annotation).

Every query is *raw InfluxQL* (``rawQuery: true``): the visual query builder's model is
not needed and raw text is what the tests can run as is after macro substitution
(:mod:`gridcall.boards.macros`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

JSON = dict[str, Any]

SCHEMA_VERSION = 41
"""Dashboard schema of Grafana 11.6 and 12.x; Grafana 13 migrates it on load (to 42)."""

DATASOURCE_TYPE = "influxdb"
DATASOURCE_UID = "gridcall-influx"
"""The uid the provisioning gives the InfluxDB data source; every panel references it."""

GRID_COLUMNS = 24

PanelType = Literal["geomap", "table", "timeseries", "stat", "barchart", "text"]


def datasource_ref(uid: str = DATASOURCE_UID) -> JSON:
    return {"type": DATASOURCE_TYPE, "uid": uid}


@dataclass(frozen=True, slots=True)
class Query:
    """One raw InfluxQL target. ``expect`` names the columns the panel's options read
    (a geomap's lat/lon, a table's sort column...): the tests check that the query really
    returns them, so a renamed field cannot silently blank a panel."""

    influxql: str
    expect: tuple[str, ...]
    table: bool = False
    """``resultFormat: table`` (one row per series/point, tags as columns) instead of
    time series."""
    alias: str = ""

    def target(self, ref_id: str, datasource: JSON) -> JSON:
        target: JSON = {
            "refId": ref_id,
            "datasource": datasource,
            "query": self.influxql,
            "rawQuery": True,
            "resultFormat": "table" if self.table else "time_series",
        }
        if self.alias:
            target["alias"] = self.alias
        return target


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    type: PanelType
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    field_config: Mapping[str, Any] = field(default_factory=dict)
    transformations: tuple[Mapping[str, Any], ...] = ()
    time_from: str | None = None
    """A panel-level relative time (Grafana's "relative time" override), e.g. ``"1m"``
    for panels that show the latest snapshot whatever the dashboard's range."""

    def to_json(self, panel_id: int, x: int, y: int, datasource: JSON) -> JSON:
        panel: JSON = {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "datasource": datasource,
            "gridPos": {"x": x, "y": y, "w": self.width, "h": self.height},
            "targets": [q.target(_ref_id(i), datasource) for i, q in enumerate(self.queries)],
            "options": dict(self.options),
            "fieldConfig": {"defaults": {}, "overrides": [], **self.field_config},
        }
        if self.transformations:
            panel["transformations"] = [dict(t) for t in self.transformations]
        if self.time_from is not None:
            panel["timeFrom"] = self.time_from
        return panel


def _ref_id(index: int) -> str:
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[index]


@dataclass(frozen=True, slots=True)
class Variable:
    """A query template variable filled by ``SHOW TAG VALUES`` (refreshed on load).

    Queries use them only in regex form, ``"town" =~ /^$town$/``, so that "All" and
    several values (Grafana writes ``(a|b)``) work the same as one value.
    """

    name: str
    label: str
    query: str
    """``SHOW TAG VALUES ...``; for ``kind="custom"`` the comma-separated values."""
    multi: bool = True
    include_all: bool = True
    kind: Literal["query", "custom"] = "query"
    hidden: bool = False

    def values(self) -> tuple[str, ...]:
        """A custom variable's values (the first is the default)."""
        if self.kind != "custom":
            raise ValueError(f"variable {self.name!r}: its values come from InfluxDB")
        return tuple(v.strip() for v in self.query.split(",") if v.strip())

    def to_json(self, datasource: JSON) -> JSON:
        common: JSON = {
            "name": self.name,
            "label": self.label,
            "includeAll": self.include_all,
            "multi": self.multi,
            "hide": 2 if self.hidden else 0,
        }
        if self.kind == "custom":
            first, *_ = self.values()
            return {**common, "type": "custom", "query": self.query,
                    "current": {"text": first, "value": first},
                    "options": [{"text": v, "value": v, "selected": v == first}
                                for v in self.values()]}
        return {
            **common,
            "type": "query",
            "datasource": datasource,
            "query": self.query,
            "definition": self.query,
            "refresh": 1,  # on dashboard load: grids and sensors change with the config
            "sort": 1,
            "regex": "",
            "current": {},
            "options": [],
        }


@dataclass(frozen=True, slots=True)
class Annotation:
    """InfluxQL annotations: one marker per returned point, its text from
    ``text_column`` and its tags from ``tags_column`` (comma-separated column names)."""

    name: str
    query: str
    text_column: str
    tags_column: str
    color: str
    expect: tuple[str, ...]

    def to_json(self, datasource: JSON) -> JSON:
        # Grafana 10+ keeps InfluxQL annotation settings in ``target`` (older dashboards
        # had them at the top level and are migrated to this shape on load).
        return {
            "name": self.name,
            "datasource": datasource,
            "enable": True,
            "hide": False,
            "iconColor": self.color,
            "target": {
                "refId": "Anno",
                "query": self.query,
                "rawQuery": True,
                "fromAnnotations": True,
                "textColumn": self.text_column,
                "tagsColumn": self.tags_column,
            },
        }


_BUILT_IN_ANNOTATIONS: JSON = {
    "name": "Annotations & Alerts",
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "type": "dashboard",
}


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[Variable, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    tags: tuple[str, ...] = ("gridcall",)
    time_from: str = "now-6h"
    refresh: str = "30s"

    def queries(self) -> Iterator[tuple[str, Panel | None, Query]]:
        """``(where, panel, query)`` for every panel query, for checks and tests."""
        for panel in self.panels:
            for i, q in enumerate(panel.queries):
                yield f"{self.uid} / {panel.title} / {_ref_id(i)}", panel, q

    def to_json(self, datasource_uid: str = DATASOURCE_UID) -> JSON:
        ds = datasource_ref(datasource_uid)
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "editable": True,
            "graphTooltip": 1,  # shared crosshair: compare a reading with its annotations
            "timezone": "browser",
            "time": {"from": self.time_from, "to": "now"},
            "refresh": self.refresh,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "templating": {"list": [v.to_json(ds) for v in self.variables]},
            "annotations": {"list": [_BUILT_IN_ANNOTATIONS,
                                     *(a.to_json(ds) for a in self.annotations)]},
            "links": [{"title": "gridcall boards", "type": "dashboards", "tags": ["gridcall"],
                       "asDropdown": True, "includeVars": True, "keepTime": True}],
            "panels": layout(self.panels, ds),
        }


def layout(panels: Sequence[Panel], datasource: JSON) -> list[JSON]:
    """Panels left to right on Grafana's 24-column grid, a new row when one is full;
    ids from 1 in order."""
    placed: list[JSON] = []
    x = y = row_height = 0
    for panel_id, panel in enumerate(panels, start=1):
        if not 1 <= panel.width <= GRID_COLUMNS:
            raise ValueError(f"panel {panel.title!r}: width {panel.width} is not 1..24")
        if x + panel.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        placed.append(panel.to_json(panel_id, x, y, datasource))
        x += panel.width
        row_height = max(row_height, panel.height)
    return placed
