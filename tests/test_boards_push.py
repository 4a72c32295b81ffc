"""`gridcall boards push` against a recording HTTP server.

Grafana cannot be installed on this machine, so the server here is a stand-in for
Grafana's HTTP API: a real HTTP server on a loopback port (stdlib ``ThreadingHTTPServer``)
that records every request and answers with the status codes and JSON shapes Grafana's
API documents (folders, data sources by uid, ``POST /api/dashboards/db``). The tests
assert the *requests' shape* (method, path, bearer token, bodies) and that each failure
(missing variable, unreachable Grafana, 401, 403, 412) ends with a clear message. They do
not claim Grafana would accept the dashboards: their structure is checked in
tests/test_boards.py and their queries run on a real InfluxDB in test_boards_queries.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from gridcall.cli import app
from tests.servers import unused_tcp_port

TOKEN = "glsa_test_token_0123456789"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class GrafanaStandIn:
    """What it knows (folders, data sources, dashboards by uid) and what it was sent."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    answer_override: Callable[[Recorded], tuple[int, Any] | None] = lambda r: None

    def answer(self, r: Recorded) -> tuple[int, Any]:
        override = self.answer_override(r)
        if override is not None:
            return override
        if r.headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, {"message": "invalid API key"}
        parts = r.path.strip("/").split("/")
        match r.method, parts:
            case "GET", ["api", "folders", uid]:
                return (200, self.folders[uid]) if uid in self.folders else (
                    404, {"message": "folder not found", "status": "not-found"})
            case "POST", ["api", "folders"]:
                self.folders[r.body["uid"]] = {"id": len(self.folders) + 1, **r.body}
                return 200, self.folders[r.body["uid"]]
            case "GET", ["api", "datasources", "uid", uid]:
                return (200, self.datasources[uid]) if uid in self.datasources else (
                    404, {"message": "Data source not found"})
            case "PUT", ["api", "datasources", "uid", uid]:
                self.datasources[uid] = r.body
                return 200, {"message": "Datasource updated", "datasource": r.body}
            case "POST", ["api", "datasources"]:
                self.datasources[r.body["uid"]] = r.body
                return 200, {"message": "Datasource added", "datasource": r.body}
            case "POST", ["api", "dashboards", "db"]:
                uid = r.body["dashboard"]["uid"]
                version = self.dashboards.get(uid, {}).get("version", 0) + 1
                self.dashboards[uid] = {**r.body["dashboard"], "version": version}
                return 200, {"id": 7, "uid": uid, "url": f"/d/{uid}/x", "status": "success",
                             "version": version, "slug": "x"}
        return 404, {"message": "Not found"}


@pytest.fixture
def grafana() -> Iterator[GrafanaStandIn]:
    state = GrafanaStandIn()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            rec = Recorded(self.command, self.path,
                           {k.lower(): v for k, v in self.headers.items()},
                           json.loads(raw) if raw else None)
            state.requests.append(rec)
            status, body = state.answer(rec)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def push(grafana_url: str, *extra: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(
        app, ["boards", "push", "--grafana", grafana_url, "--token-env", "GRAFANA_TOKEN",
              *extra], env={"GRAFANA_TOKEN": TOKEN, **(env or {})})


def test_push_creates_the_folder_the_datasource_and_every_dashboard(
        grafana: GrafanaStandIn) -> None:
    result = push(grafana.url, "--influx-version", "2", "--influx-url",
                  "http://influxdb:8086", "--influx-token-env", "INFLUX_TOKEN",
                  env={"INFLUX_TOKEN": "influx-secret"})
    assert result.exit_code == 0, result.output
    assert [(r.method, r.path) for r in grafana.requests] == [
        ("GET", "/api/folders/gridcall"),
        ("POST", "/api/folders"),
        ("GET", "/api/datasources/uid/gridcall-influx"),
        ("POST", "/api/datasources"),
        ("POST", "/api/dashboards/db"),
        ("POST", "/api/dashboards/db"),
        ("POST", "/api/dashboards/db"),
    ]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in grafana.requests)
    ds = grafana.datasources["gridcall-influx"]
    assert ds["type"] == "influxdb"
    assert ds["url"] == "http://influxdb:8086"
    assert ds["jsonData"]["version"] == "InfluxQL"
    assert ds["secureJsonData"] == {"httpHeaderValue1": "Token influx-secret"}
    for r in grafana.requests[4:]:
        assert r.body["overwrite"] is True
        assert r.body["folderUid"] == "gridcall"
        assert r.body["dashboard"]["id"] is None
        panels = r.body["dashboard"]["panels"]
        assert {p["datasource"]["uid"] for p in panels} == {"gridcall-influx"}
    assert set(grafana.dashboards) == {"gridcall-district", "gridcall-town", "gridcall-sensor"}
    assert "/d/gridcall-town/x" in result.output


def test_a_second_push_updates_in_place(grafana: GrafanaStandIn) -> None:
    assert push(grafana.url).exit_code == 0
    grafana.requests.clear()
    result = push(grafana.url)
    assert result.exit_code == 0, result.output
    assert [(r.method, r.path) for r in grafana.requests][:3] == [
        ("GET", "/api/folders/gridcall"),
        ("GET", "/api/datasources/uid/gridcall-influx"),
        ("PUT", "/api/datasources/uid/gridcall-influx"),
    ]
    assert {d["version"] for d in grafana.dashboards.values()} == {2}
    assert "updated" in result.output


def test_a_missing_token_variable_is_named_before_anything_is_sent(
        grafana: GrafanaStandIn) -> None:
    result = CliRunner().invoke(app, ["boards", "push", "--grafana", grafana.url,
                                      "--token-env", "NO_SUCH_GRAFANA_TOKEN"], env={})
    assert result.exit_code == 2
    assert "NO_SUCH_GRAFANA_TOKEN" in result.output
    assert "is not set" in result.output
    assert grafana.requests == []


def test_a_missing_influx_token_variable_is_named_before_anything_is_sent(
        grafana: GrafanaStandIn) -> None:
    result = push(grafana.url, "--influx-version", "3", "--influx-token-env",
                  "NO_SUCH_INFLUX_TOKEN")
    assert result.exit_code == 2
    assert "NO_SUCH_INFLUX_TOKEN is not set" in result.output
    assert grafana.requests == []


def test_unreachable_grafana_says_where_it_tried() -> None:
    url = f"http://127.0.0.1:{unused_tcp_port()}"
    result = push(url)
    assert result.exit_code == 1
    assert f"cannot reach Grafana at {url}" in result.output


def test_a_refused_token_is_reported_as_such(grafana: GrafanaStandIn) -> None:
    result = push(grafana.url, env={"GRAFANA_TOKEN": "wrong"})
    assert result.exit_code == 1
    assert "refused the token (401" in result.output
    assert "invalid API key" in result.output
    assert len(grafana.requests) == 1  # stops at the first failure


def test_a_token_without_admin_rights_is_told_what_role_it_needs(
        grafana: GrafanaStandIn) -> None:
    def forbid_datasources(r: Recorded) -> tuple[int, Any] | None:
        if r.path.startswith("/api/datasources"):
            return 403, {"message": "You'll need additional permissions to perform this "
                                    "action. Permissions needed: datasources:read"}
        return None

    grafana.answer_override = forbid_datasources
    result = push(grafana.url)
    assert result.exit_code == 1
    assert "403 Forbidden" in result.output
    assert "Admin role" in result.output
    assert not grafana.dashboards


def test_a_412_names_the_dashboard_and_what_to_do(grafana: GrafanaStandIn) -> None:
    def name_exists(r: Recorded) -> tuple[int, Any] | None:
        if r.path == "/api/dashboards/db" and r.body["dashboard"]["uid"] == "gridcall-town":
            return 412, {"message": "A dashboard with the same name in the folder already "
                                    "exists", "status": "name-exists"}
        return None

    grafana.answer_override = name_exists
    result = push(grafana.url)
    assert result.exit_code == 1
    assert "dashboard 'gridcall-town'" in result.output
    assert "412 Precondition Failed: name-exists" in result.output
    assert "Rename or delete" in result.output


def test_something_that_is_not_grafana_is_not_taken_for_it(grafana: GrafanaStandIn) -> None:
    grafana.answer_override = lambda r: (200, None) if r.method == "GET" else (200, "ok")
    result = push(grafana.url)
    assert result.exit_code == 1
    assert "unexpected answer" in result.output or "not with JSON" in result.output
