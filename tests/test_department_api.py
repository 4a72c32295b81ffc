"""Departments over the real HTTP API (a uvicorn server on loopback): a department's token
made by ``gridcall hub token issue fire_safety`` (and a person's), its area of action
(403 "outside your area"), its own steps naming the person, refusals that write nothing,
and a missed arrival supervised (督办) as the unit and the department then read it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from gridcall.config import ConfigSet
from gridcall.config.rules import Spread
from gridcall.hub.api.app import create_app
from gridcall.hub.api.tokens import TokenFile, read_entries
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import Transition
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent
from tests.polling import wait_until
from tests.servers import unused_tcp_port

T0 = 1_800_000_000 * 10**9  # Fri 2027-01-15 16:00 in Asia/Shanghai
MIN = 60 * 10**9
SENSORS = {"g1": "dongyuan-g1-pm25-1", "far": "shenjing-g1-pm25-1"}
"""Dust in town dasha (police-dasha's area) and in town changzhou (not)."""


@dataclass
class World:
    desk: Desk
    ledger: Ledger
    http: httpx.AsyncClient
    tokens: dict[str, str]
    alerts: dict[str, str]
    clock: list[int]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def refused(self, method: str, url: str, status: int, who: str,
                      **kw: Any) -> str:
        """A request that must be refused with ``status``, the ledger unchanged."""
        before: list[Transition] = await self.ledger.all()
        resp = await self.http.request(method, url, headers=self.auth(who), **kw)
        assert resp.status_code == status, resp.text
        assert await self.ledger.all() == before
        detail: str = resp.json()["detail"]
        return detail


def cli_token(path: Path, *args: str) -> str:
    """A token issued by ``gridcall hub token issue``, as an operator would."""
    from gridcall.cli import app

    done = CliRunner().invoke(app, ["hub", "token", "issue", *args, "--tokens", str(path)])
    assert done.exit_code == 0, done.output
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
async def world(cfg: ConfigSet, tmp_path: Path) -> AsyncIterator[World]:
    rules = cfg.matters.rules.model_copy(update={
        "spread": Spread(when=()), "sites": {}, "severity": {"minor": 1}})
    cfg = dataclasses.replace(cfg, matters=cfg.matters.model_copy(update={"rules": rules}))
    async with Store(tmp_path / "hub.sqlite") as store:
        ledger = Ledger(store)
        desk = Desk(cfg, ledger)
        await desk.start()
        alerts: dict[str, str] = {}
        for i, (name, sensor_id) in enumerate(SENSORS.items()):
            sensor = cfg.sensors[sensor_id]
            out = await desk.on_event(AnomalyEvent(
                agent=sensor.agent, seq=i, sensor=sensor.id, kind="out_of_limits",
                severity="minor", score=0.6, value=200.0, ts=T0), T0)
            assert out.alert is not None
            alerts[name] = out.alert.alert_id
        path = tmp_path / "api-tokens.json"
        tokens = {who: cli_token(path, who) for who in (
            "police-dasha", "urban_mgmt", "dasha", "changzhou")}
        tokens["ma-li"] = cli_token(path, "--person", "ma-li")
        clock = [T0 + MIN]
        app = create_app(desk, TokenFile(path), clock=lambda: clock[0])
        port = unused_tcp_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve())
        try:
            assert await wait_until(lambda: server.started)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                yield World(desk, ledger, http, tokens, alerts, clock)
        finally:
            server.should_exit = True
            await task


async def test_a_department_token_opens_the_department_routes_only(world: World,
                                                                   tmp_path: Path) -> None:
    entries = {e.person or e.unit: e for e in read_entries(tmp_path / "api-tokens.json")}
    assert (entries["police-dasha"].unit, entries["ma-li"].unit) == ("police-dasha",
                                                                    "police-dasha")
    me = await world.http.get("/v1/department", headers=world.auth("police-dasha"))
    assert me.status_code == 200, me.text
    assert me.json() == {"department": "police-dasha", "name": "大沙派出所",
                         "towns": ["dasha"], "arrival_s": 900.0, "report_in_s": 900.0,
                         "remind_before_s": 300.0, "person": None, "on_duty": "ma-li"}
    mine = await world.http.get("/v1/department", headers=world.auth("ma-li"))
    assert mine.json()["person"] == "ma-li"
    # a department is not a unit, nor a unit a department
    detail = await world.refused("GET", "/v1/alerts", 401, "police-dasha")
    assert detail == ("the token belongs to the department 'police-dasha': it opens the "
                      "department routes (/v1/department/...)")
    detail = await world.refused("GET", "/v1/department/alerts", 401, "dasha")
    assert detail.startswith("not a department's token")
    from gridcall.cli import app

    unknown = CliRunner().invoke(app, ["hub", "token", "issue", "firemen", "--tokens",
                                       str(tmp_path / "x.json")])
    assert unknown.exit_code == 2
    assert "'firemen' is not a unit of the config" in unknown.stderr
    typo = CliRunner().invoke(app, ["hub", "token", "issue", "dongyan-g1", "--tokens",
                                    str(tmp_path / "x.json")])
    assert typo.exit_code == 2
    assert "did you mean dongyuan-g1" in typo.stderr  # a near miss is named


async def test_the_area_of_action_is_the_departments_towns(world: World) -> None:
    g1, far = world.alerts["g1"], world.alerts["far"]
    assert await world.refused("GET", f"/v1/department/alerts/{far}", 403,
                               "police-dasha") == "outside your area"
    assert await world.refused("POST", f"/v1/department/alerts/{far}/report-in", 403,
                               "ma-li") == "outside your area"
    # the town of the far alert may not call a branch of another town
    detail = await world.refused("POST", f"/v1/alerts/{far}/dispatch", 422, "changzhou",
                                 json={"departments": ["police-dasha"]})
    assert "outside the area of police-dasha (acts in dasha)" in detail
    # a district-wide department sees both, a branch its own town only
    listed = await world.http.get("/v1/department/alerts", params={"called": "false"},
                                  headers=world.auth("urban_mgmt"))
    assert {a["alert_id"] for a in listed.json()["alerts"]} == {g1, far}
    listed = await world.http.get("/v1/department/alerts", params={"called": "false"},
                                  headers=world.auth("police-dasha"))
    assert [a["alert_id"] for a in listed.json()["alerts"]] == [g1]
    listed = await world.http.get("/v1/department/alerts", headers=world.auth("ma-li"))
    assert listed.json()["count"] == 0  # dispatched to nothing yet
    detail = await world.refused("POST", f"/v1/department/alerts/{g1}/report-in", 409,
                                 "ma-li")
    assert detail.endswith("police-dasha was not dispatched to it (no whistle to answer)")


async def test_whistle_report_in_arrive_dispose_and_supervision(world: World) -> None:
    g1 = world.alerts["g1"]
    sent = await world.http.post(f"/v1/alerts/{g1}/dispatch", headers=world.auth("dasha"),
                                 json={"departments": ["police-dasha", "urban_mgmt"]})
    assert sent.status_code == 200, sent.text
    dispatch = sent.json()["history"][-1]
    assert dispatch["whistled"] == [
        {"department": "police-dasha", "report_by": T0 + 16 * MIN,
         "arrive_by": T0 + 16 * MIN, "on_duty": "ma-li"},
        {"department": "urban_mgmt", "report_by": T0 + 31 * MIN,
         "arrive_by": T0 + 31 * MIN, "on_duty": "qian-lei"}]

    world.clock[0] = T0 + 3 * MIN
    # with the department's own token, the person must be named, and be its own
    assert "name the person of police-dasha" in await world.refused(
        "POST", f"/v1/department/alerts/{g1}/report-in", 422, "police-dasha")
    assert await world.refused(
        "POST", f"/v1/department/alerts/{g1}/report-in", 422, "police-dasha",
        json={"person": "gao-jun"}) == "'gao-jun' is not a person of police-dasha in roster.yaml"
    assert "must report in before it arrives" in await world.refused(
        "POST", f"/v1/department/alerts/{g1}/arrive", 409, "ma-li")
    r = await world.http.post(f"/v1/department/alerts/{g1}/report-in",
                              headers=world.auth("ma-li"), json={"note": "两人出警"})
    assert r.status_code == 200, r.text
    last = r.json()["history"][-1]
    assert {k: last[k] for k in ("action", "actor", "department", "person", "person_unit",
                                 "state", "note", "at")} == {
        "action": "report_in", "actor": "police-dasha", "department": "police-dasha",
        "person": "ma-li", "person_unit": "police-dasha", "state": "dispatched",
        "note": "两人出警", "at": T0 + 3 * MIN}
    world.clock[0] = T0 + 12 * MIN
    a = await world.http.post(f"/v1/department/alerts/{g1}/arrive",
                              headers=world.auth("police-dasha"), json={"person": "ma-li"})
    assert a.status_code == 200, a.text
    assert "already arrived" in await world.refused(
        "POST", f"/v1/department/alerts/{g1}/arrive", 409, "ma-li")
    world.clock[0] = T0 + 40 * MIN
    d = await world.http.post(f"/v1/department/alerts/{g1}/dispose", headers=world.auth("ma-li"))
    assert d.status_code == 200, d.text
    # urban_mgmt never came: its promised arrival (31 min) was supervised at that
    # instant, before the dispose at 40 min (the desk fires what passed first)
    history = d.json()["history"]
    assert [(h["action"], h["at"], h["department"], h["on_duty"]) for h in history[-2:]] == [
        ("supervise", T0 + 31 * MIN, "urban_mgmt", "lin-tao"),
        ("dept_dispose", T0 + 40 * MIN, "police-dasha", "")]
    calls = {c["department"]: c for c in d.json()["alert"]["department_calls"]}
    assert (calls["police-dasha"]["stage"], calls["police-dasha"]["arrived_at"],
            calls["police-dasha"]["disposed_person"]) == ("disposed", T0 + 12 * MIN, "ma-li")
    assert (calls["urban_mgmt"]["stage"], calls["urban_mgmt"]["supervised_at"],
            calls["urban_mgmt"]["supervised_by"]) == ("whistled", T0 + 31 * MIN, "lin-tao")
    # the unit reads the same calls on its own route
    unit_view = await world.http.get(f"/v1/alerts/{g1}", headers=world.auth("dasha"))
    assert unit_view.json()["alert"]["department_calls"] == d.json()["alert"][
        "department_calls"]
    # and each department finds the alert among those it was called to
    mine = await world.http.get("/v1/department/alerts", params={"open": "true"},
                                headers=world.auth("urban_mgmt"))
    assert mine.status_code == 200, mine.text
    assert [x["alert_id"] for x in mine.json()["alerts"]] == [g1]
