"""Calls from people over the real HTTP API (uvicorn on a free port): a grid worker's report
with a photo opens an alert, a second report of the same matter there joins it, the
reporter follows and rates it; notes with photos; photos checked by content, limited in
size and served only inside the alert's area; the public intake off by default, and when
on rate-limited and landing in triage. Every refusal leaves the ledgers as they were."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridcall.config import ConfigSet
from gridcall.config.reports import PublicIntake, ReportSettings
from gridcall.hub.api.app import create_app
from gridcall.hub.api.server import ApiServer
from gridcall.hub.api.tokens import TokenFile, issue
from gridcall.hub.desk import photos
from gridcall.hub.desk.appendlog import BodyLog
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import Transition
from gridcall.hub.desk.report_ledger import ReportLedger
from gridcall.hub.desk.reports import ReportStep
from gridcall.hub.store import Store
from tests.images import jpeg, png

T0 = 1_800_000_000 * 10**9
S = 10**9
MIN = 60 * S


@dataclass
class Served:
    desk: Desk
    url: str
    tokens: dict[str, str]
    clock: list[int]
    photo_dir: Path
    reports: ReportLedger

    def client(self, who: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)

    async def ledgers(self) -> tuple[list[Transition], list[ReportStep]]:
        return await self.desk.ledger.all(), await self.reports.all()


def b64(data: bytes) -> dict[str, str]:
    return {"data": base64.b64encode(data).decode()}


Settings = Callable[[ReportSettings], ReportSettings]


async def serve(cfg: ConfigSet, tmp_path: Path, settings: Settings | None = None
                ) -> AsyncIterator[Served]:
    reports = settings(cfg.hub.reports) if settings else cfg.hub.reports
    hub = cfg.hub.model_copy(update={"reports": reports})
    cfg = dataclasses.replace(cfg, hub=hub)
    async with Store(tmp_path / "hub.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        path = tmp_path / "api-tokens.json"
        tokens = {u: issue(path, u, known_units=cfg.units)
                  for u in ("dongyuan-g1", "dongyuan-g2", "dongyuan", "dasha", "changzhou",
                            "huangpu")}
        tokens["wang-fang"] = issue(path, "dongyuan-g1", known_units=cfg.units,
                                    person="wang-fang")
        clock = [T0]
        photo_dir = tmp_path / "photos"
        app = create_app(desk, TokenFile(path), clock=lambda: clock[0], photo_dir=photo_dir)
        async with ApiServer(app, "127.0.0.1", 0) as server:
            yield Served(desk, server.url, tokens, clock, photo_dir, ReportLedger(store))


@pytest.fixture
async def served(cfg: ConfigSet, tmp_path: Path) -> AsyncIterator[Served]:
    async for s in serve(cfg, tmp_path, lambda r: r.model_copy(
            update={"photo_max_bytes": 4096})):
        yield s


async def refused(served: Served, who: str | None, method: str, url: str, status: int,
                  **kw: Any) -> str:
    before = await served.ledgers()
    async with served.client(who) as client:
        resp = await client.request(method, url, **kw)
    assert resp.status_code == status, resp.text
    assert await served.ledgers() == before
    detail: str = resp.json()["detail"]
    return detail


MANHOLE = {"matter": "MANHOLE-DISPLACED", "grid": "dongyuan-g2",
           "description": "井盖移位 near the school gate"}


async def test_a_grid_workers_report_opens_an_alert_that_others_join_follow_and_rate(
        served: Served) -> None:
    photo = png(4, 3)
    async with served.client("wang-fang") as c:
        r = await c.post("/v1/reports", json={
            **MANHOLE, "grid": "dongyuan-g1", "photos": [b64(photo)], "client_ref": "w1"})
    assert r.status_code == 201, r.text
    report = r.json()
    assert (report["report_id"], report["unit"], report["person"], report["joined"],
            report["state"], report["rateable"]) == (
        "R000001", "dongyuan-g1", "wang-fang", "open", "dispatched", False)  # B: the plan's
    alert_id = report["alert_id"]
    photo_id = report["photos"][0]
    # the desk's alert: the sample's elderly-home grid is +1 (C -> B, the town)
    async with served.client("dasha") as c:
        alert = (await c.get(f"/v1/alerts/{alert_id}")).json()
    assert (alert["alert"]["anomaly_kind"], alert["alert"]["tier"], alert["alert"]["unit"],
            alert["alert"]["matter"]) == ("report", "B", "dasha", "MANHOLE-DISPLACED")
    first = alert["history"][0]
    assert (first["action"], first["actor"], first["person"], first["photos"]) == (
        "open", "dongyuan-g1", "wang-fang", [photo_id])
    # a retry with the same client_ref is the same report, nothing written
    before = await served.ledgers()
    async with served.client("wang-fang") as c:
        again = await c.post("/v1/reports", json={**MANHOLE, "grid": "dongyuan-g1",
                                                  "client_ref": "w1"})
    assert again.status_code == 200
    assert again.json()["report_id"] == "R000001"
    assert await served.ledgers() == before
    # the community's own report of the same matter in that grid joins as evidence
    async with served.client("dongyuan") as c:
        joined = await c.post("/v1/reports", json={**MANHOLE, "grid": "dongyuan-g1"})
    assert joined.status_code == 201
    assert (joined.json()["alert_id"], joined.json()["joined"]) == (alert_id, "evidence")
    # the reporter follows; the photo is served to the area, not outside it
    async with served.client("wang-fang") as c:
        mine = (await c.get("/v1/reports")).json()
        assert [x["report_id"] for x in mine["reports"]] == ["R000001"]
        got = await c.get(f"/v1/alerts/{alert_id}/photos/{photo_id}")
    assert (got.status_code, got.headers["content-type"], got.content) == (
        200, "image/png", photo)
    assert await refused(served, "changzhou", "GET",
                         f"/v1/alerts/{alert_id}/photos/{photo_id}", 403) == (
        "outside your area")
    assert await refused(served, "changzhou", "GET", "/v1/reports/R000001", 403) == (
        "outside your area")
    # not rateable while open; the town answers, then the reporter rates once
    detail = await refused(served, "wang-fang", "POST", "/v1/reports/R000001/rating", 409,
                           json={"rating": "satisfied"})
    assert "once its alert is resolved" in detail
    async with served.client("dasha") as c:
        for action in ("acknowledge", "arrive", "resolve"):
            served.clock[0] += MIN
            assert (await c.post(f"/v1/alerts/{alert_id}/{action}")).status_code == 200
    assert await refused(served, "dongyuan", "POST", "/v1/reports/R000001/rating", 403,
                         json={"rating": "dissatisfied"}) == (
        "only the report's reporter rates it")
    served.clock[0] += MIN
    async with served.client("wang-fang") as c:
        rated = await c.post("/v1/reports/R000001/rating",
                             json={"rating": "basically_satisfied", "note": "slow but ok"})
    assert rated.status_code == 200, rated.text
    assert (rated.json()["rating"], rated.json()["rateable"], rated.json()["state"]) == (
        "basically_satisfied", False, "resolved")
    assert "rated already" in await refused(
        served, "wang-fang", "POST", "/v1/reports/R000001/rating", 409,
        json={"rating": "satisfied"})
    async with served.client("dongyuan") as c:
        unhappy = await c.post("/v1/reports/R000002/rating", json={"rating": "dissatisfied"})
    assert unhappy.status_code == 200
    # the ratings are steps of the alert, and the satisfaction rate counts them
    history = [t for t in await served.desk.history(alert_id) if t.action == "rate"]
    assert [(t.rating, t.reason, t.person, t.state) for t in history] == [
        ("basically_satisfied", "report R000001", "wang-fang", "resolved"),
        ("dissatisfied", "report R000002", "", "resolved")]
    async with served.client("dasha") as c:
        rows = (await c.get("/v1/indicators", params={
            "period": 3600, "until": T0 + 60 * MIN})).json()["rows"]
    town = next(r for r in rows if r["group"] == "unit" and r["key"] == "dasha")
    assert (town["rated"], town["satisfied"], town["satisfaction_rate"]) == (2, 1, 0.5)


async def test_photos_are_checked_by_content_and_size_and_nothing_is_written(
        served: Served) -> None:
    for bad, status, why in (
            (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", 422, "not a JPEG or PNG"),
            (png(depth=3), 422, "bit depth 3"),
            (png(pad=5000), 413, "at most 4096"),
    ):
        detail = await refused(served, "dongyuan-g2", "POST", "/v1/reports", status,
                               json={**MANHOLE, "photos": [b64(jpeg()), b64(bad)]})
        assert detail.startswith("photos.1: ")
        assert why in detail
    assert "not base64" in await refused(served, "dongyuan-g2", "POST", "/v1/reports", 422,
                                         json={**MANHOLE, "photos": [{"data": "%%%"}]})
    # no photo of a refused request is kept: not in the desk store, not on disk
    assert await BodyLog(served.desk.ledger.store, photos.TABLE).bodies() == []
    assert not served.photo_dir.exists()
    # six photos is one too many; a grid outside the caller's area is refused
    await refused(served, "dongyuan-g2", "POST", "/v1/reports", 422,
                  json={**MANHOLE, "photos": [b64(jpeg())] * 6})
    assert await refused(served, "dongyuan-g2", "POST", "/v1/reports", 403,
                         json={**MANHOLE, "grid": "shenjing-g1"}) == "outside your area"
    assert "not in the catalog" in await refused(
        served, "dongyuan-g2", "POST", "/v1/reports", 422,
        json={**MANHOLE, "matter": "NO-SUCH"})
    assert "outside every town" in await refused(
        served, "huangpu", "POST", "/v1/reports", 422,
        json={"description": "x", "point": [100.0, 10.0]})


async def test_a_note_with_photos_changes_nothing_else_and_a_retry_writes_once(
        served: Served) -> None:
    async with served.client("dongyuan-g2") as c:
        report = (await c.post("/v1/reports", json=MANHOLE)).json()
    alert_id = report["alert_id"]
    before = served.desk.get(alert_id)
    body = {"note": "before disposal", "photos": [b64(jpeg()), b64(png())]}
    async with served.client("dongyuan") as c:
        first = await c.post(f"/v1/alerts/{alert_id}/notes", json=body)
        again = await c.post(f"/v1/alerts/{alert_id}/notes", json=body)
    assert first.status_code == again.status_code == 200
    steps = first.json()["history"]
    assert len(steps) == len(again.json()["history"]) == 3  # open, the plan's dispatch
    note = steps[-1]
    assert (note["action"], note["actor"], note["state"], len(note["photos"])) == (
        "note", "dongyuan", "dispatched", 2)
    after = served.desk.get(alert_id)
    assert (after.state, after.deadlines, after.tier) == (before.state, before.deadlines,
                                                          before.tier)
    assert "needs text or a photo" in await refused(
        served, "dongyuan", "POST", f"/v1/alerts/{alert_id}/notes", 422, json={"note": " "})
    assert await refused(served, "changzhou", "POST", f"/v1/alerts/{alert_id}/notes", 403,
                         json={"note": "x"}) == "outside your area"
    # after disposal too: the after photo
    async with served.client("dasha") as c:  # tier B: the town closes it (closure.approval)
        await c.post(f"/v1/alerts/{alert_id}/false-alarm")
    async with served.client("dongyuan") as c:
        closed = await c.post(f"/v1/alerts/{alert_id}/notes",
                              json={"note": "after", "photos": [b64(png(5, 5))]})
    assert closed.status_code == 200
    assert closed.json()["history"][-1]["state"] == "false_alarm"


async def test_the_public_intake_is_off_by_default(served: Served) -> None:
    assert "off" in await refused(served, None, "POST", "/v1/public/reports", 404,
                                  json={"description": "x", "grid": "dongyuan-g1"})
    # and, off, it reads no more than any route: a large body from anyone is a 413
    big = {"description": "x", "grid": "dongyuan-g1", "photos": [b64(png(pad=60_000))]}
    assert "larger than the API takes (65536" in await refused(
        served, None, "POST", "/v1/public/reports", 413, json=big)
    # a unit's report is read whole (up to five photos' worth): its photo is what is
    # too large here (hub.reports.photo_max_bytes 4096 in this fixture)
    assert "photos.0: a photo of 60" in await refused(
        served, "dongyuan-g1", "POST", "/v1/reports", 413, json=big)


async def test_the_public_intake_when_on_lands_in_triage_and_is_rate_limited(
        cfg: ConfigSet, tmp_path: Path) -> None:
    public = PublicIntake(enabled=True, per_address=2)
    async for served in serve(cfg, tmp_path, lambda r: r.model_copy(
            update={"public": public})):
        point = cfg.units["dasha-dong-g2"].location.centre()
        keys = []
        for i in range(2):
            async with served.client() as c:
                r = await c.post("/v1/public/reports", json={
                    "description": f"路灯坏了 {i}", "point": list(point),
                    "matter": "NOISE-NUISANCE", "photos": [b64(png())]})
            assert r.status_code == 201, r.text
            keys.append(r.json()["follow_key"])
            report = r.json()["report"]
            assert (report["unit"], report["matter"], report["taken_as"], report["grid"]) == (
                "public", "NOISE-NUISANCE", "UNCLASSIFIED", "dasha-dong-g2")
        alert = served.desk.get(report["alert_id"])
        assert (alert.alert.matter, alert.unit, alert.unit_level, alert.last.actor) == (
            "UNCLASSIFIED", "dasha", "town", "hub")
        detail = await refused(served, None, "POST", "/v1/public/reports", 429,
                               json={"description": "third", "grid": "dasha-dong-g2"})
        assert "too many reports" in detail
        served.clock[0] += 61 * MIN  # the window has passed
        async with served.client() as c:
            r = await c.post("/v1/public/reports",
                             json={"description": "third", "grid": "dasha-dong-g2"})
            assert r.status_code == 201
        async with served.client("dasha") as town:  # the town's triage sees them all
            triage = (await town.get("/v1/reports", params={"area": "true"})).json()
            assert [(x["report_id"], x["unit"]) for x in triage["reports"]] == [
                ("R000001", "public"), ("R000002", "public"), ("R000003", "public")]
            assert (await town.get("/v1/reports")).json()["count"] == 0
        async with served.client("changzhou") as other:
            assert (await other.get("/v1/reports", params={"area": "true"})).json()[
                "count"] == 0
        async with served.client() as c:
            mine = await c.get("/v1/public/reports/R000001",
                               headers={"Authorization": f"Bearer {keys[0]}"})
            assert mine.status_code == 200, mine.text
            assert mine.json()["report_id"] == "R000001"
        assert await refused(served, None, "GET", "/v1/public/reports/R000001", 401,
                             headers={"Authorization": f"Bearer {keys[1]}"})
