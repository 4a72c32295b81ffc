"""The board's endpoints (hub/api/board.py) over real uvicorn: unit-scoped map, state and
event stream, the static page with no outside sources, and an open stream that does not
keep the server from stopping. The browser itself is tests/test_board_web.py."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridcall.config import ConfigSet
from gridcall.hub.api.app import create_app
from gridcall.hub.api.server import ApiServer
from gridcall.hub.api.tokens import TokenFile, issue
from gridcall.hub.board.view import board_actions, grid_risk
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent
from gridcall.wire.ladder import RISK

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000 * 10**9
SENSORS = {"g1": "dongyuan-g1-pm25-1", "g3": "dongyuan-g3-pm25-1",
           "far": "shenjing-g1-pm25-1"}


@dataclass
class Served:
    desk: Desk
    url: str
    tokens: dict[str, str]
    alerts: dict[str, str]
    clock: list[int]

    def client(self, unit: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[unit]}"} if unit else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
async def served(cfg: ConfigSet, tmp_path: Path) -> AsyncIterator[Served]:
    async with Store(tmp_path / "hub.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        alerts = {}
        for i, (name, sensor_id) in enumerate(SENSORS.items()):
            sensor = cfg.sensors[sensor_id]
            event = AnomalyEvent(agent=sensor.agent, seq=i, sensor=sensor.id,
                                 kind="out_of_limits", severity="minor", score=0.6,
                                 value=200.0, ts=T0)
            outcome = await desk.on_event(event, T0)
            assert outcome.alert is not None
            alerts[name] = outcome.alert.alert_id
        path = tmp_path / "api-tokens.json"
        tokens = {u: issue(path, u, known_units=cfg.units)
                  for u in ("dongyuan-g1", "dongyuan", "huangpu")}
        clock = [T0 + 60 * 10**9]
        app = create_app(desk, TokenFile(path), clock=lambda: clock[0])
        async with ApiServer(app, "127.0.0.1", 0) as server:
            yield Served(desk, server.url, tokens, alerts, clock)


async def get(served: Served, unit: str | None, path: str) -> Any:
    async with served.client(unit) as client:
        resp = await client.get(path)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_the_map_and_state_are_those_of_the_callers_subtree(
        cfg: ConfigSet, served: Served) -> None:
    grid_map = await get(served, "dongyuan-g1", "/v1/board/map")
    assert [a["id"] for a in grid_map["areas"]] == ["dongyuan-g1"]
    assert grid_map["areas"][0]["polygon"][0][0] == list(
        cfg.units["dongyuan-g1"].location.polygon[0][0])  # type: ignore[index]
    assert {s["grid"] for s in grid_map["sensors"]} == {"dongyuan-g1"}
    assert len(grid_map["sensors"]) == sum(1 for s in cfg.sensors.values()
                                           if s.grid == "dongyuan-g1")

    community = await get(served, "dongyuan", "/v1/board/map")
    assert [(a["id"], a["level"]) for a in community["areas"]] == [
        ("dongyuan", "community"), ("dongyuan-g1", "grid"), ("dongyuan-g2", "grid"),
        ("dongyuan-g3", "grid")]
    # the names the page shows for ids: every unit (an incident reaches into neighbouring
    # grids) and department, and the persons of the subtree, the units above it (an alert
    # of the subtree may be held there) and the departments
    names = community["names"]
    assert all(names[u.id] == u.name for u in cfg.units.values())
    assert all(names[d.id] == d.name for d in cfg.departments.values())
    persons = {p.id: p for p in cfg.duty.persons}
    assert names["chen-jing"] == persons["chen-jing"].name  # dongyuan's
    assert names["sun-hui"] == persons["sun-hui"].name      # the district's leader
    assert set(names) - set(cfg.units) - set(cfg.departments) <= {
        p.id for p in cfg.duty.persons if p.unit in ("dongyuan", "dongyuan-g1", "dongyuan-g2",
                                                     "dongyuan-g3", "dasha", "huangpu")
        or p.unit in cfg.departments}
    assert names["gao-jun"] == persons["gao-jun"].name  # fire_safety's
    # what the silence form offers: the catalog's matters, the subtree's edge agents
    assert community["matters"] == {m.code: m.name for m in cfg.matters.matters}
    assert community["agents"] == {"edge-dongyuan": cfg.agents["edge-dongyuan"].name}
    district = await get(served, "huangpu", "/v1/board/map")
    assert len(district["areas"]) == len(cfg.units)
    assert len(district["sensors"]) == len(cfg.sensors)

    state = await get(served, "dongyuan-g1", "/v1/board/state")
    assert [a["alert_id"] for a in state["alerts"]] == [served.alerts["g1"]]
    g1 = served.desk.get(served.alerts["g1"])
    assert state["grids"] == [{"id": "dongyuan-g1", "risk": RISK[g1.tier], "open": 1}]
    assert state["now"] == served.clock[0]
    (alert,) = state["alerts"]
    assert alert["actions"] == ["acknowledge", "false_alarm", "escalate"]
    assert alert["grid_name"] == "东苑社区第1网格"
    assert alert["unit_name"] == cfg.units[g1.unit].name

    # a state fetched again after a step shows the step (states are cached per unit
    # until the next change), and the clock moves on in the cached one too
    await served.desk.act(g1.alert_id, "acknowledge", "dongyuan-g1", now=served.clock[0])
    served.clock[0] += 10**9
    again = await get(served, "dongyuan-g1", "/v1/board/state")
    assert again["alerts"][0]["state"] == "acknowledged"
    assert again["alerts"][0]["actions"] == ["arrive", "false_alarm", "escalate"]
    served.clock[0] += 10**9
    assert (await get(served, "dongyuan-g1", "/v1/board/state"))["now"] == served.clock[0]

    everything = await get(served, "huangpu", "/v1/board/state")
    assert {a["alert_id"] for a in everything["alerts"]} == set(served.alerts.values())
    assert {g["id"] for g in everything["grids"]} == {"dongyuan-g1", "dongyuan-g3",
                                                      "shenjing-g1"}


async def test_the_board_endpoints_need_a_token(served: Served) -> None:
    async with served.client(None) as client:
        for path in ("/v1/board/map", "/v1/board/state", "/v1/board/events"):
            resp = await client.get(path)
            assert resp.status_code == 401, (path, resp.text)
            assert "no bearer token" in resp.json()["detail"]
        resp = await client.get("/v1/board/state",
                                headers={"Authorization": "Bearer gct_nope"})
        assert resp.json()["detail"] == "unknown or revoked token"


async def test_escalations_of_open_alerts_are_listed_latest_first(served: Served) -> None:
    alert_id = served.alerts["g1"]
    await served.desk.act(alert_id, "escalate", "dongyuan-g1", now=served.clock[0],
                          reason="needs the town's pump truck")
    state = await get(served, "dongyuan-g1", "/v1/board/state")
    history = await served.desk.history(alert_id)
    raised = [t for t in history if t.action == "escalate"]  # tier rules may add some
    assert [(e["alert_id"], e["at"], e["actor"], e["reason"]) for e in state["escalations"]
            ] == [(alert_id, t.at, t.actor, t.reason) for t in reversed(raised)]
    esc = state["escalations"][0]
    assert esc["actor"] == "dongyuan-g1"
    assert esc["reason"] == "needs the town's pump truck"
    assert state["alerts"][0]["escalations"] == len(raised)


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a text/event-stream response."""
    event, data = "message", []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data.append(line.split(":", 1)[1].strip())


async def test_a_units_event_stream_carries_only_its_subtrees_steps(served: Served) -> None:
    async with served.client("dongyuan-g1") as client, \
            client.stream("GET", "/v1/board/events") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        stream = events(resp)
        assert await anext(stream) == ("hello", {"unit": "dongyuan-g1",
                                                 "now": served.clock[0]})
        # another grid's step first: the grid's stream must not carry it
        await served.desk.act(served.alerts["g3"], "acknowledge", "dongyuan",
                              now=served.clock[0])
        await served.desk.act(served.alerts["g1"], "acknowledge", "dongyuan-g1",
                              now=served.clock[0], note="on my way")
        name, change = await anext(stream)
        while name == "tick":
            name, change = await anext(stream)
        assert name == "change"
        assert change["alert"]["alert_id"] == served.alerts["g1"]
        assert change["alert"]["state"] == "acknowledged"
        assert change["alert"]["actions"] == ["arrive", "false_alarm", "escalate"]
        assert change["step"]["action"] == "acknowledge"
        assert change["step"]["actor"] == "dongyuan-g1"
        assert change["step"]["note"] == "on my way"


async def test_an_open_event_stream_ends_cleanly_when_the_server_stops(
        cfg: ConfigSet, tmp_path: Path) -> None:
    async with Store(":memory:") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        path = tmp_path / "api-tokens.json"
        token = issue(path, "huangpu", known_units=cfg.units)
        app = create_app(desk, TokenFile(path), clock=lambda: T0)
        server = ApiServer(app, "127.0.0.1", 0)
        async with server, httpx.AsyncClient(
                base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                timeout=30) as client, client.stream("GET", "/v1/board/events") as resp:
            stream = events(resp)
            assert (await anext(stream))[0] == "hello"
            await server.__aexit__(None, None, None)  # the hub stops while it is open
            # the stream was closed by the server with a proper end (no cut connection,
            # which httpx would raise as RemoteProtocolError)
            assert [name async for name, _ in stream if name != "tick"] == []
        assert not server.started


async def test_the_page_and_its_assets_load_nothing_from_elsewhere(served: Served) -> None:
    async with served.client(None) as client:
        page = await client.get("/board")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "connect-src 'self'" in csp
        texts = [page.text]
        for asset, kind in (("board.js", "text/javascript"), ("board.css", "text/css")):
            resp = await client.get(f"/board/{asset}")
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith(kind)
            texts.append(resp.text)
        # the only absolute URL is SVG's namespace name, which is never fetched
        urls = {u for t in texts for u in re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')]*", t)}
        assert urls <= {"http://www.w3.org/2000/svg"}, urls
        # the page is not an API operation: left out of the OpenAPI document
        schema = (await client.get("/openapi.json")).json()
        assert "/board" not in schema["paths"]
        assert {"/v1/board/map", "/v1/board/state", "/v1/board/events"} <= set(schema["paths"])


async def test_a_grids_risk_is_the_highest_open_tier_in_it(served: Served) -> None:
    g1, g3 = served.alerts["g1"], served.alerts["g3"]
    before = RISK[served.desk.get(g1).tier]
    await served.desk.act(g1, "escalate", "dongyuan-g1", now=served.clock[0], reason="big")
    await served.desk.act(g3, "false_alarm", "dongyuan", now=served.clock[0])
    states = served.desk.alerts()
    risk = grid_risk(states)
    assert risk["dongyuan-g1"] == (RISK[served.desk.get(g1).tier], 1)
    assert RISK[served.desk.get(g1).tier] == before + 1  # called one tier up
    assert "dongyuan-g3" not in risk  # closed alerts carry no risk
    assert board_actions(served.desk.get(g3)) == []


async def test_a_sensor_that_added_evidence_is_marked_at_risk_like_the_one_that_opened(
        served: Served) -> None:
    # The same rule as the sensor_risk measurement the Grafana boards read.
    first, second = "dongyuan-g1-smoke-1", "dongyuan-g1-smoke-2"
    alert_id = ""
    for seq, sensor in enumerate((first, second), start=100):
        event = AnomalyEvent(agent="edge-dongyuan", seq=seq, sensor=sensor,
                             kind="out_of_limits", severity="minor", score=0.6,
                             value=3.0, ts=T0 + seq * 10**9)
        outcome = await served.desk.on_event(event, T0 + seq * 10**9)
        assert outcome.alert is not None
        alert_id = alert_id or outcome.alert.alert_id
        assert outcome.alert.alert_id == alert_id  # the second one joined as evidence
    state = await get(served, "dongyuan", "/v1/board/state")
    sensors = {s["id"]: s["risk"] for s in state["sensors"]}
    tier_risk = RISK[served.desk.get(alert_id).tier]
    assert sensors[first] == sensors[second] == tier_risk
