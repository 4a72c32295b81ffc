"""Closure control and audits as a user sees them over the real HTTP API (uvicorn on a
free port), with the sample district's rules (closure: A district, B town; audits: tier A
always drawn): a grid's false alarm of a tier-A gas leak is only a request, the district
sees it pending, a town may not approve it, the district rejects then approves; the
closing lands in the district's audit queue; a failed audit reopens the alert; refusals
write nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gridcall.config import ConfigSet
from gridcall.hub.api.app import create_app
from gridcall.hub.api.server import ApiServer
from gridcall.hub.api.tokens import TokenFile, issue
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import OPEN
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent

T0 = 1_800_000_000 * 10**9
MIN = 60 * 10**9
GAS = "dongyuan-g3-gas-1"  # GAS-LEAK: tier A, the district's


@dataclass
class Served:
    desk: Desk
    url: str
    tokens: dict[str, str]
    clock: list[int]

    def client(self, who: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10,
                                 headers={"Authorization": f"Bearer {self.tokens[who]}"})


@pytest.fixture
async def served(cfg: ConfigSet, tmp_path: Path) -> AsyncIterator[Served]:
    assert cfg.matters.closure.approval == {"A": "district", "B": "town"}
    async with Store(tmp_path / "hub.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        path = tmp_path / "api-tokens.json"
        tokens = {u: issue(path, u, known_units=cfg.units)
                  for u in ("dongyuan-g3", "dasha", "huangpu", "changzhou")}
        clock = [T0]
        app = create_app(desk, TokenFile(path), clock=lambda: clock[0])
        async with ApiServer(app, "127.0.0.1", 0) as server:
            yield Served(desk, server.url, tokens, clock)


async def leak(s: Served, seq: int = 1) -> str:
    sensor = s.desk.config.sensors[GAS]
    out = await s.desk.on_event(AnomalyEvent(
        agent=sensor.agent, seq=seq, sensor=GAS, kind="out_of_limits", severity="major",
        score=0.9, value=40.0, ts=s.clock[0]), s.clock[0])
    assert out.alert is not None
    return out.alert.alert_id


async def test_a_grids_false_alarm_waits_for_the_district_then_is_audited(
        served: Served) -> None:
    s = served
    alert = await leak(s)
    s.clock[0] += MIN
    async with s.client("dongyuan-g3") as grid:
        asked = await grid.post(f"/v1/alerts/{alert}/false-alarm", json={"note": "no smell"})
    assert asked.status_code == 200
    body = asked.json()
    assert body["alert"]["state"] in OPEN  # (the plan's departments dispatched at tier A)
    assert (body["alert"]["pending_close"], body["alert"]["pending_by"]) == (
        "false_alarm", "dongyuan-g3")
    assert body["alert"]["due"] is None
    assert body["history"][-1]["action"] == "request_close"
    assert body["history"][-1]["request"] == "false_alarm"

    async with s.client("huangpu") as district, s.client("dasha") as town, \
            s.client("changzhou") as other:
        listed = (await district.get("/v1/approvals")).json()
        assert listed["count"] == 1
        (item,) = listed["pending"]
        assert (item["alert"]["alert_id"], item["requested"], item["approver_level"],
                item["may_approve"]) == (alert, "false_alarm", "district", True)
        seen_by_town = (await town.get("/v1/approvals")).json()["pending"]
        assert [i["may_approve"] for i in seen_by_town] == [False]
        assert (await other.get("/v1/approvals")).json()["count"] == 0  # another town

        before = await s.desk.ledger.count()
        refused = await town.post(f"/v1/alerts/{alert}/approve")
        assert refused.status_code == 403
        assert "needs approval by a district" in refused.json()["detail"]
        assert (await other.post(f"/v1/alerts/{alert}/approve")).status_code == 403
        assert (await other.post(f"/v1/alerts/{alert}/approve")).json()["detail"] == (
            "outside your area")
        no_reason = await district.post(f"/v1/alerts/{alert}/reject", json={})
        assert no_reason.status_code == 422
        assert await s.desk.ledger.count() == before  # refusals write nothing

        s.clock[0] += MIN
        rejected = await district.post(f"/v1/alerts/{alert}/reject",
                                       json={"reason": "the detector still reads 40 ppm"})
        assert rejected.status_code == 200
        assert rejected.json()["alert"]["pending_close"] == ""
        assert rejected.json()["alert"]["due"] is not None
        again = await district.post(f"/v1/alerts/{alert}/reject", json={"reason": "x"})
        assert again.status_code == 409

        async with s.client("dongyuan-g3") as grid:
            await grid.post(f"/v1/alerts/{alert}/false-alarm")
        s.clock[0] += MIN
        approved = await district.post(f"/v1/alerts/{alert}/approve", json={"note": "ok"})
        assert approved.status_code == 200
        done = approved.json()
        assert done["alert"]["state"] == "false_alarm"
        assert done["alert"]["audit"] == "sampled"  # tier A: always drawn
        assert [h["action"] for h in done["history"][-2:]] == ["false_alarm", "sample"]
        assert (await district.get("/v1/approvals")).json()["count"] == 0

        queue = (await district.get("/v1/audits")).json()
        assert queue["count"] == 1
        (queued,) = queue["items"]
        assert (queued["alert"]["alert_id"], queued["closed_by"], queued["closed_as"]) == (
            alert, "huangpu", "false_alarm")
        assert (await town.get("/v1/audits")).json()["count"] == 1  # its subtree's
        assert (await other.get("/v1/audits")).json()["count"] == 0

        assert (await town.post(f"/v1/alerts/{alert}/audit",
                                json={"verdict": "pass"})).status_code == 403
        bare_fail = await district.post(f"/v1/alerts/{alert}/audit", json={"verdict": "fail"})
        assert bare_fail.status_code == 422
        assert "needs a note" in bare_fail.json()["detail"]
        bad = await district.post(f"/v1/alerts/{alert}/audit", json={"verdict": "maybe"})
        assert bad.status_code == 422

        s.clock[0] += MIN
        failed = await district.post(f"/v1/alerts/{alert}/audit", json={
            "verdict": "fail", "note": "the gas company found a leaking valve"})
        assert failed.status_code == 200
        back = failed.json()
        assert back["alert"]["state"] in OPEN
        assert back["alert"]["audit"] == ""
        last = back["history"][-1]
        assert (last["action"], last["actor"], last["reason"]) == (
            "reopen", "huangpu", "audit failed: the gas company found a leaking valve")
        assert back["history"][-2]["verdict"] == "fail"
        assert (await district.get("/v1/audits")).json()["count"] == 0

        # the district closes it itself now: no approval, drawn again, and passed
        for action in ("acknowledge", "arrive", "resolve"):
            s.clock[0] += MIN
            r = await district.post(f"/v1/alerts/{alert}/{action}")
            assert r.status_code == 200
        s.clock[0] += MIN
        passed = await district.post(f"/v1/alerts/{alert}/audit",
                                     json={"verdict": "pass", "note": "valve replaced"})
        assert passed.status_code == 200
        twice = await district.post(f"/v1/alerts/{alert}/audit", json={"verdict": "pass"})
        assert twice.status_code == 409
        done_list = (await district.get("/v1/audits", params={"status": "pass"})).json()
        assert [i["alert"]["alert_id"] for i in done_list["items"]] == [alert]
        assert done_list["audit_pass_rate"] == 1.0

        # the indicators: two audits of the district's closings, one passed
        s.clock[0] += MIN
        rows = (await district.get("/v1/indicators", params={
            "period": 86400, "until": s.clock[0], "breakdown": "true"})).json()["rows"]
    district_row = next(r for r in rows if r["group"] == "unit" and r["key"] == "huangpu")
    assert (district_row["audits"], district_row["audits_passed"]) == (2, 1)
    assert district_row["audit_pass_rate"] == 0.5
    tier_a = next(r for r in rows if r["group"] == "tier" and r["key"] == "A")
    assert tier_a["audit_pass_rate"] == 0.5
    gas = next(r for r in rows if r["group"] == "matter" and r["key"] == "GAS-LEAK")
    assert gas["calls"] >= 1
