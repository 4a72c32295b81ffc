"""A standby hub's read-only API (hub/standby.py) on the real PostgreSQL: it serves the
alerts, incidents, indicators and board data the active hub's desk wrote to the shared
store, follows what that desk writes next, and refuses every change with a 503 that
names the active hub and says when to retry, writing nothing."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx

from gridcall.config import ConfigSet
from gridcall.hub.api.app import create_app
from gridcall.hub.api.standby import RETRY_AFTER_S
from gridcall.hub.api.tokens import TokenFile, issue
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.pgstore import PgStore
from gridcall.hub.standby import serve_standby
from gridcall.wire import AnomalyEvent
from tests.desk_stores import pg_database
from tests.images import png

T0 = 1_800_000_000 * 10**9
ACTIVE = "'gridcall-lease hub-a host-a pid 4242' from 10.0.0.7 (backend pid 77)"


def event(cfg: ConfigSet, sensor_id: str, seq: int) -> AnomalyEvent:
    sensor = cfg.sensors[sensor_id]
    return AnomalyEvent(agent=sensor.agent, seq=seq, sensor=sensor.id, kind="out_of_limits",
                        severity="major", score=0.9, value=200.0, ts=T0)


async def test_a_standby_serves_reads_from_the_shared_store_and_refuses_changes(
        cfg: ConfigSet, postgres_url: str, tmp_path: Path) -> None:
    tokens = tmp_path / "api-tokens.json"
    token = issue(tokens, "huangpu", known_units=cfg.units)
    auth = {"Authorization": f"Bearer {token}"}
    with pg_database(postgres_url) as url:
        async with PgStore(url) as active_store, PgStore(url) as standby_store:
            active = Desk(cfg, Ledger(active_store))
            await active.start()
            first = await active.on_event(event(cfg, "dongyuan-g1-pm25-1", 1), T0)
            assert first.alert is not None
            alert_id = first.alert.alert_id
            async with serve_standby(cfg, standby_store, ("127.0.0.1", 0), TokenFile(tokens),
                                     holder=lambda: ACTIVE, clock=lambda: T0 + 60 * 10**9,
                                     follow_every=0.05) as standby, \
                    httpx.AsyncClient(base_url=standby.server.url, headers=auth) as http:
                listed = (await http.get("/v1/alerts")).json()
                assert [a["alert_id"] for a in listed["alerts"]] == [alert_id]
                assert listed["alerts"][0]["state"] == "opened"

                # the active desk acts and opens another alert; the standby follows
                await active.act(alert_id, "acknowledge", first.alert.unit, now=T0 + 10**9)
                second = await active.on_event(event(cfg, "shenjing-g1-pm25-1", 2), T0)
                assert second.alert is not None

                async def followed() -> bool:
                    got = (await http.get("/v1/alerts")).json()["alerts"]
                    return {(a["alert_id"], a["state"]) for a in got} == {
                        (alert_id, "acknowledged"), (second.alert.alert_id, "opened")}
                for _ in range(600):  # polled, bounded: not a timing assertion
                    if await followed():
                        break
                    await asyncio.sleep(0.05)
                assert await followed()
                detail = (await http.get(f"/v1/alerts/{alert_id}")).json()
                assert [t["action"] for t in detail["history"]] == ["open", "acknowledge"]
                rows = (await http.get("/v1/indicators", params={"until": T0 + 60 * 10**9})
                        ).json()["rows"]
                assert any(r["key"] == first.alert.unit for r in rows), rows
                state = await http.get("/v1/board/state")
                assert state.status_code == 200, state.text
                assert (await http.get("/v1/incidents")).status_code == 200

                written = await active.ledger.count()
                refused = await http.post(f"/v1/alerts/{second.alert.alert_id}/acknowledge",
                                          json={"note": "on my way"})
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == str(RETRY_AFTER_S)
                assert ACTIVE in refused.json()["detail"]
                assert "standby" in refused.json()["detail"]
                # refused before the body is read; the active hub is named only to a
                # caller with a token this API knows
                bare = await http.post("/v1/alerts/AL000001/resolve", content=b"\xff",
                                       headers={"Authorization": "Bearer gct_unknown"})
                assert bare.status_code == 503
                assert bare.headers["retry-after"] == str(RETRY_AFTER_S)
                assert "standby" in bare.json()["detail"]
                assert "host-a" not in bare.json()["detail"]
                assert await active.ledger.count() == written
                assert standby.failures == 0


async def test_a_standby_serves_the_photos_the_active_hub_took(
        cfg: ConfigSet, postgres_url: str, tmp_path: Path) -> None:
    """Photos live in the desk store (hub/desk/photos.py), not on the active hub's disk:
    a note with a photo taken by the active hub's API is served by the standby's, to a
    unit that may see the alert, and refused to one that may not."""
    tokens = tmp_path / "api-tokens.json"
    district = {"Authorization": f"Bearer {issue(tokens, 'huangpu', known_units=cfg.units)}"}
    other_town = {"Authorization": "Bearer " + issue(tokens, "changzhou",
                                                    known_units=cfg.units)}
    photo = png(6, 4)
    with pg_database(postgres_url) as url:
        async with PgStore(url) as active_store, PgStore(url) as standby_store:
            active = Desk(cfg, Ledger(active_store))
            await active.start()
            opened = await active.on_event(event(cfg, "dongyuan-g1-pm25-1", 1), T0)
            assert opened.alert is not None
            alert_id = opened.alert.alert_id
            app = create_app(active, TokenFile(tokens), clock=lambda: T0 + 10**9,
                             photo_dir=tmp_path / "active-photos")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://active", headers=district) as api:
                noted = await api.post(f"/v1/alerts/{alert_id}/notes", json={
                    "note": "before", "photos": [{"data": base64.b64encode(photo).decode()}]})
                assert noted.status_code == 200, noted.text
                [photo_id] = noted.json()["history"][-1]["photos"]
            assert not (tmp_path / "active-photos").exists()  # nothing on the active's disk
            async with serve_standby(cfg, standby_store, ("127.0.0.1", 0), TokenFile(tokens),
                                     holder=lambda: ACTIVE, clock=lambda: T0 + 60 * 10**9,
                                     follow_every=0.05) as standby, \
                    httpx.AsyncClient(base_url=standby.server.url) as http:
                got = await http.get(f"/v1/alerts/{alert_id}/photos/{photo_id}",
                                     headers=district)
                assert got.status_code == 200, got.text
                assert (got.content, got.headers["content-type"]) == (photo, "image/png")
                outside = await http.get(f"/v1/alerts/{alert_id}/photos/{photo_id}",
                                         headers=other_town)
                assert outside.status_code == 403, outside.text
