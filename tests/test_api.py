"""The hub's HTTP API (hub/api/app.py): tokens, subtrees, actions, refusals that leave the
ledger unchanged, the published OpenAPI document, and one run through real uvicorn."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import stat
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
from gridcall.hub.api.tokens import TokenFile, digest, issue, read_entries, revoke
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import Transition
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent
from tests.polling import wait_until
from tests.servers import unused_tcp_port

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000 * 10**9
SENSORS = {"g1": "dongyuan-g1-pm25-1", "g3": "dongyuan-g3-pm25-1",
           "far": "shenjing-g1-pm25-1"}
"""pm25 anomalies of severity minor: tier C alerts at the community (checked below)."""


@dataclass
class World:
    desk: Desk
    ledger: Ledger
    client: httpx.AsyncClient
    tokens: dict[str, str]
    alerts: dict[str, str]
    clock: list[int]
    tokens_path: Path

    def auth(self, unit: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[unit]}"}

    async def steps(self) -> list[Transition]:
        return await self.ledger.all()


@pytest.fixture
async def world(cfg: ConfigSet, tmp_path: Path) -> AsyncIterator[World]:
    # These tests are about who may act, not about tier rules: every alert opens one tier
    # above pm25's base D, at its community (with the sample's rules one grid would count
    # a sensitive site and the spread to the other grid, and go to the town).
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
            event = AnomalyEvent(agent=sensor.agent, seq=i, sensor=sensor.id,
                                 kind="out_of_limits", severity="minor", score=0.6,
                                 value=200.0, ts=T0)
            outcome = await desk.on_event(event, T0)
            assert outcome.alert is not None
            assert outcome.alert.tier == "C"
            alerts[name] = outcome.alert.alert_id
        path = tmp_path / "api-tokens.json"
        units = ["dongyuan-g1", "dongyuan-g3", "dongyuan", "dasha", "changzhou", "huangpu"]
        tokens = {u: issue(path, u, known_units=cfg.units) for u in units}
        clock = [T0 + 60 * 10**9]
        app = create_app(desk, TokenFile(path), clock=lambda: clock[0])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://hub") as client:
            yield World(desk, ledger, client, tokens, alerts, clock, path)


async def refused(world: World, method: str, url: str, status: int,
                  **kw: Any) -> dict[str, Any]:
    """Send a request that must be refused with ``status``; the ledger must not change."""
    before = await world.steps()
    resp = await world.client.request(method, url, **kw)
    assert resp.status_code == status, resp.text
    assert await world.steps() == before
    body: dict[str, Any] = resp.json()
    return body


async def test_no_token_or_an_unknown_one_is_401_and_changes_nothing(world: World) -> None:
    url = f"/v1/alerts/{world.alerts['g1']}/acknowledge"
    body = await refused(world, "POST", url, 401)
    assert "no bearer token" in body["detail"]
    body = await refused(world, "POST", url, 401,
                         headers={"Authorization": "Bearer gct_not-a-real-token"})
    assert body["detail"] == "unknown or revoked token"
    resp = await world.client.get("/v1/me")
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_each_unit_sees_its_own_subtree(world: World) -> None:
    async def listed(caller: str, **params: Any) -> set[str]:
        resp = await world.client.get("/v1/alerts", headers=world.auth(caller), params=params)
        assert resp.status_code == 200, resp.text
        return {a["alert_id"] for a in resp.json()["alerts"]}

    a = world.alerts
    assert await listed("dongyuan-g1") == {a["g1"]}
    assert await listed("dongyuan-g3") == {a["g3"]}
    assert await listed("dongyuan") == {a["g1"], a["g3"]}
    assert await listed("dasha") == {a["g1"], a["g3"]}
    assert await listed("changzhou") == {a["far"]}
    assert await listed("huangpu") == set(a.values())
    assert await listed("dasha", unit="dongyuan-g3") == {a["g3"]}
    assert await listed("huangpu", tier="C", state="opened") == set(a.values())
    assert await listed("huangpu", tier="A") == set()
    page = (await world.client.get("/v1/alerts", headers=world.auth("huangpu"),
                                   params={"limit": 2, "offset": 1})).json()
    assert page["count"] == 3
    assert [x["alert_id"] for x in page["alerts"]] == sorted(a.values())[1:]
    body = await refused(world, "GET", "/v1/alerts", 403, headers=world.auth("dongyuan-g1"),
                         params={"unit": "dongyuan"})
    assert body == {"detail": "outside your area"}
    me = (await world.client.get("/v1/me", headers=world.auth("dasha"))).json()
    assert me == {"unit": "dasha", "name": "大沙街道", "level": "town",
                  "path": ["huangpu", "dasha"], "person": None}


async def test_a_grid_acknowledges_its_alert_and_the_step_is_recorded(world: World) -> None:
    alert_id = world.alerts["g1"]
    resp = await world.client.post(f"/v1/alerts/{alert_id}/acknowledge",
                                   headers=world.auth("dongyuan-g1"),
                                   json={"note": "on my way"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["alert"]["state"] == "acknowledged"
    assert body["alert"]["due"]["name"] == "arrival"
    last = body["history"][-1]
    assert (last["action"], last["actor"], last["note"], last["at"]) == (
        "acknowledge", "dongyuan-g1", "on my way", world.clock[0])
    steps = await world.steps()
    assert steps[-1].action == "acknowledge"
    assert steps[-1].actor == "dongyuan-g1"
    detail = (await world.client.get(f"/v1/alerts/{alert_id}",
                                     headers=world.auth("dongyuan"))).json()
    assert [t["action"] for t in detail["history"]] == ["open", "acknowledge"]
    # no body at all is fine for the simple actions
    world.clock[0] += 10**9
    resp = await world.client.post(f"/v1/alerts/{alert_id}/arrive",
                                   headers=world.auth("dongyuan-g1"))
    assert resp.json()["alert"]["state"] == "on_site"


async def test_a_grid_cannot_touch_another_grid_s_alert_but_its_town_can(
        world: World) -> None:
    g3 = world.alerts["g3"]
    body = await refused(world, "POST", f"/v1/alerts/{g3}/acknowledge", 403,
                         headers=world.auth("dongyuan-g1"))
    assert body == {"detail": "outside your area"}  # no path, no id, no unit
    body = await refused(world, "GET", f"/v1/alerts/{g3}", 403,
                         headers=world.auth("dongyuan-g1"))
    assert body == {"detail": "outside your area"}
    await refused(world, "POST", f"/v1/alerts/{world.alerts['far']}/false-alarm", 403,
                  headers=world.auth("dasha"))
    resp = await world.client.post(f"/v1/alerts/{g3}/false-alarm", headers=world.auth("dasha"),
                                   json={"note": "dust from the road works, known"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["alert"]["state"] == "false_alarm"


async def test_a_unit_reopens_a_closed_alert_in_its_area_with_a_reason(world: World) -> None:
    g3 = world.alerts["g3"]
    town = world.auth("dasha")
    body = await refused(world, "POST", f"/v1/alerts/{g3}/reopen", 409, headers=town,
                         json={"reason": "not closed yet"})
    assert "reopen" in body["detail"]
    resp = await world.client.post(f"/v1/alerts/{g3}/false-alarm", headers=town,
                                   json={"note": "dust from the road works, known"})
    assert resp.json()["alert"]["state"] == "false_alarm", resp.text
    await refused(world, "POST", f"/v1/alerts/{g3}/reopen", 422, headers=town, json={})
    body = await refused(world, "POST", f"/v1/alerts/{g3}/reopen", 422, headers=town,
                         json={"reason": "  "})
    assert "needs a reason" in body["detail"]
    await refused(world, "POST", f"/v1/alerts/{g3}/reopen", 403,
                  headers=world.auth("dongyuan-g1"), json={"reason": "not mine"})
    world.clock[0] += 60 * 10**9
    resp = await world.client.post(f"/v1/alerts/{g3}/reopen", headers=town,
                                   json={"reason": "the dust is back: not the road works"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["alert"]["state"] == "opened"
    assert body["alert"]["due"]["name"] == "response"
    assert body["alert"]["due"]["at"] > world.clock[0]
    reopened = [t for t in body["history"] if t["action"] == "reopen"]
    assert [(t["actor"], t["reason"], t["at"]) for t in reopened] == [
        ("dasha", "the dust is back: not the road works", world.clock[0])]
    # open again: a second reopen is refused, and writes nothing
    await refused(world, "POST", f"/v1/alerts/{g3}/reopen", 409, headers=town,
                  json={"reason": "the dust is back: not the road works"})


async def test_unknown_alerts_illegal_steps_and_bad_bodies_are_refused(world: World) -> None:
    g1 = world.alerts["g1"]
    grid = world.auth("dongyuan-g1")
    body = await refused(world, "POST", "/v1/alerts/AL999999/acknowledge", 404, headers=grid)
    assert "AL999999" in body["detail"]
    body = await refused(world, "POST", f"/v1/alerts/{g1}/resolve", 409, headers=grid)
    assert body["detail"] == f"{g1} is opened; resolve needs on_site"
    await refused(world, "POST", f"/v1/alerts/{g1}/acknowledge", 422, headers=grid,
                  json={"note": "x", "colour": "red"})
    await refused(world, "POST", f"/v1/alerts/{g1}/escalate", 422, headers=grid, json={})
    body = await refused(world, "POST", f"/v1/alerts/{g1}/escalate", 422, headers=grid,
                         json={"reason": "   "})
    assert "needs a reason" in body["detail"]
    await refused(world, "GET", "/v1/alerts", 422, headers=grid, params={"tier": "E"})
    await refused(world, "GET", "/v1/alerts/bad id!", 422, headers=grid)


async def test_calling_upward_raises_the_tier_and_hands_the_alert_to_the_town(
        world: World) -> None:
    g1 = world.alerts["g1"]
    resp = await world.client.post(f"/v1/alerts/{g1}/escalate", headers=world.auth("dongyuan-g1"),
                                   json={"reason": "needs the town's pump truck"})
    assert resp.status_code == 200, resp.text
    alert = resp.json()["alert"]
    # at tier B the hub dispatched the plan's departments right after the call upward
    assert (alert["tier"], alert["unit"], alert["unit_level"], alert["state"]) == (
        "B", "dasha", "town", "dispatched")
    *_, up, sent = resp.json()["history"]
    assert (up["action"], up["actor"], sent["action"], sent["actor"]) == (
        "escalate", "dongyuan-g1", "dispatch", "hub")
    assert sent["reason"].startswith("plan (一事一预案) at tier B: ")
    assert alert["reason"] == "needs the town's pump truck"
    assert alert["deadlines"]["response"] > world.clock[0]
    # the grid still sees the alert it called upward
    listed = (await world.client.get("/v1/alerts", headers=world.auth("dongyuan-g1"))).json()
    assert [a["alert_id"] for a in listed["alerts"]] == [g1]
    # the town calls the district; above the district there is no one
    resp = await world.client.post(f"/v1/alerts/{g1}/escalate", headers=world.auth("dasha"),
                                   json={"reason": "flooding across three communities"})
    assert resp.json()["alert"]["tier"] == "A"
    body = await refused(world, "POST", f"/v1/alerts/{g1}/escalate", 409,
                         headers=world.auth("huangpu"), json={"reason": "more"})
    assert "the district already holds it" in body["detail"]


async def test_dispatching_departments_is_for_the_levels_above_the_grid(
        world: World, cfg: ConfigSet) -> None:
    g1 = world.alerts["g1"]
    body = await refused(world, "POST", f"/v1/alerts/{g1}/dispatch", 403,
                         headers=world.auth("dongyuan-g1"), json={"departments": ["police"]})
    assert "cannot dispatch" in body["detail"]
    await refused(world, "POST", "/v1/alerts/AL999999/dispatch", 404,
                  headers=world.auth("dongyuan-g1"), json={"departments": []})
    body = await refused(world, "POST", f"/v1/alerts/{g1}/dispatch", 422,
                         headers=world.auth("dasha"), json={"departments": ["nobody"]})
    assert "unknown department" in body["detail"]
    resp = await world.client.post(f"/v1/alerts/{g1}/dispatch", headers=world.auth("dasha"),
                                   json={"departments": ["urban_mgmt"], "note": "go"})
    assert resp.status_code == 200, resp.text
    alert = resp.json()["alert"]
    assert alert["state"] == "dispatched"
    assert "urban_mgmt" in [alert["departments"]["lead"], *alert["departments"]["co"]]


async def test_indicators_cover_the_caller_s_subtree(world: World) -> None:
    grid = world.auth("dongyuan-g1")
    await world.client.post(f"/v1/alerts/{world.alerts['g1']}/acknowledge", headers=grid)
    resp = await world.client.get("/v1/indicators", headers=world.auth("dasha"),
                                  params={"period": 86400})
    assert resp.status_code == 200, resp.text
    rows = {(r["group"], r["key"]): r for r in resp.json()["rows"]}
    community = rows[("unit", "dongyuan")]
    assert community["calls"] == 2
    assert community["responses_judged"] == 1
    assert community["response_timeliness_rate"] == 1.0
    assert ("unit", "changzhou") not in rows
    assert all(key[0] == "department" or key[1] == "dongyuan" for key in rows)
    await refused(world, "GET", "/v1/indicators", 403, headers=grid,
                  params={"unit": "dongyuan"})


async def test_tokens_are_stored_hashed_and_take_effect_without_a_restart(
        world: World, cfg: ConfigSet) -> None:
    text = world.tokens_path.read_text()
    for token in world.tokens.values():
        assert token not in text
        assert digest(token) in text
    assert stat.S_IMODE(world.tokens_path.stat().st_mode) == 0o600
    late = issue(world.tokens_path, "dongyuan-g2", known_units=cfg.units, label="new phone")
    resp = await world.client.get("/v1/me", headers={"Authorization": f"Bearer {late}"})
    assert resp.json()["unit"] == "dongyuan-g2"
    # a broken hand edit keeps the tokens known so far rather than locking everyone out
    world.tokens_path.write_text('{"tokens": [{"unit": "dasha"', encoding="utf-8")
    resp = await world.client.get("/v1/me", headers={"Authorization": f"Bearer {late}"})
    assert resp.json()["unit"] == "dongyuan-g2"
    assert revoke(world.tokens_path.with_name("other.json"), "dasha") == 0


def test_token_commands_issue_list_and_revoke(tmp_path: Path) -> None:
    from gridcall.cli import app

    path = tmp_path / "tokens.json"
    runner = CliRunner()
    issued = runner.invoke(app, ["hub", "token", "issue", "dasha", "--tokens", str(path),
                                 "--label", "town app"])
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip().splitlines()[-1]
    assert token.startswith("gct_")
    assert [(e.unit, e.sha256, e.label) for e in read_entries(path)] == [
        ("dasha", digest(token), "town app")]
    listed = runner.invoke(app, ["hub", "token", "list", "--tokens", str(path)])
    assert "dasha" in listed.stdout
    assert token not in listed.stdout
    unknown = runner.invoke(app, ["hub", "token", "issue", "dashaa", "--tokens", str(path)])
    assert unknown.exit_code == 2
    assert "'dashaa' is not a unit" in unknown.stderr
    revoked = runner.invoke(app, ["hub", "token", "revoke", "dasha", "--tokens", str(path)])
    assert revoked.exit_code == 0
    assert read_entries(path) == []


def test_the_published_openapi_document_is_current() -> None:
    from scripts.make_openapi import openapi_document

    published = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert published == openapi_document(), (
        "docs/openapi.json is stale: run python scripts/make_openapi.py")


async def test_through_a_real_uvicorn_server_on_loopback(world: World) -> None:
    port = unused_tcp_port()
    app = create_app(world.desk, TokenFile(world.tokens_path), clock=lambda: world.clock[0])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        assert await wait_until(lambda: server.started)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            g3 = world.alerts["g3"]
            resp = await http.post(f"/v1/alerts/{g3}/acknowledge",
                                   headers=world.auth("dongyuan-g3"), json={"note": "seen"})
            assert resp.status_code == 200, resp.text
            assert resp.json()["alert"]["state"] == "acknowledged"
            resp = await http.post(f"/v1/alerts/{g3}/acknowledge",
                                   headers=world.auth("dongyuan-g3"))
            assert resp.status_code == 409
            assert "acknowledge needs opened or dispatched" in resp.json()["detail"]
    finally:
        server.should_exit = True
        await task


def test_hub_run_serves_the_api_and_stops_with_the_hub(cfg: ConfigSet, mqtt_url: str,
                                                       tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import uuid

    import yaml

    from gridcall.config import SAMPLE_DISTRICT
    from tests.test_hub_shutdown import forget_session

    config_dir = tmp_path / "district"
    config_dir.mkdir()
    for f in SAMPLE_DISTRICT.glob("*.yaml"):
        (config_dir / f.name).write_bytes(f.read_bytes())
    client_id = f"test-hub-api-{uuid.uuid4().hex[:8]}"
    (config_dir / "hub.yaml").write_text(yaml.safe_dump({"hub": {
        "broker": {"url": mqtt_url}, "client_id": client_id,
        "store_path": str(tmp_path / "hub.sqlite")}}), encoding="utf-8")
    tokens = tmp_path / "tokens.json"
    token = issue(tokens, "dasha", known_units=cfg.units)
    port = unused_tcp_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gridcall.cli import app; app()", "hub", "run",
         "--config", str(config_dir), "--api", f"127.0.0.1:{port}", "--tokens", str(tokens)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        async def ask() -> dict[str, Any] | None:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                for _ in range(300):
                    if proc.poll() is not None:
                        return None
                    try:
                        resp = await http.get("/v1/me",
                                              headers={"Authorization": f"Bearer {token}"})
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
                        continue
                    body: dict[str, Any] = resp.json()
                    return body
            return None

        me = asyncio.run(ask())
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    asyncio.run(forget_session(mqtt_url, client_id))
    assert me is not None, stderr.decode()
    assert me["unit"] == "dasha"
    assert proc.returncode == 0, stderr.decode()
    assert f"API http://127.0.0.1:{port}" in stdout.decode()
    assert b"Traceback" not in stderr


async def test_the_demo_serves_the_api_and_prints_its_url_and_a_district_token(
        cfg: ConfigSet, capsys: pytest.CaptureFixture[str]) -> None:
    import re

    from gridcall.demo import DemoOptions, run_demo

    with pytest.raises(ValueError, match="--api 'nowhere'"):
        DemoOptions(config=cfg, api="nowhere")
    port = unused_tcp_port()
    demo = asyncio.create_task(run_demo(DemoOptions(
        config=cfg, duration=8, live=False, clock_speed=600, api=f"127.0.0.1:{port}")))
    printed = ""

    def token_printed() -> bool:
        nonlocal printed
        printed += capsys.readouterr().out
        return "Bearer gct_" in printed or demo.done()

    assert await wait_until(token_printed, polls=600)
    match = re.search(r"Bearer (gct_[A-Za-z0-9_-]+)", printed)
    assert match, printed
    url = f"http://127.0.0.1:{port}"
    assert f"API {url}/docs" in printed
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/v1/alerts")).status_code == 401
        resp = await http.get("/v1/alerts", headers={"Authorization": f"Bearer {match[1]}"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["unit"] == cfg.district.id
    summary = await demo
    assert summary["api"] == url


# --- refusing cleanly (issue 16, item 4) -----------------------------------------------

async def test_a_body_over_the_limit_is_413_and_read_no_further(world: World) -> None:
    g1 = world.alerts["g1"]
    big = json.dumps({"note": "x" * 70_000}).encode()
    body = await refused(world, "POST", f"/v1/alerts/{g1}/acknowledge", 413,
                         headers={**world.auth("dongyuan-g1"),
                                  "Content-Type": "application/json"}, content=big)
    assert body == {"detail": "the request body is larger than the API takes (65536 bytes)"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(100):
            yield b" " * 1000

    body = await refused(world, "POST", f"/v1/alerts/{g1}/acknowledge", 413,
                         headers={**world.auth("dongyuan-g1"),
                                  "Content-Type": "application/json"}, content=chunks())
    assert "larger than the API takes" in body["detail"]


async def test_the_body_limit_is_configurable(world: World) -> None:
    app = create_app(world.desk, TokenFile(world.tokens_path), clock=lambda: world.clock[0],
                     max_body_bytes=10)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://hub") as client:
        resp = await client.post(f"/v1/alerts/{world.alerts['g1']}/acknowledge",
                                 headers=world.auth("dongyuan-g1"), json={"note": "0123456789"})
    assert resp.status_code == 413
    assert resp.json() == {"detail": "the request body is larger than the API takes (10 bytes)"}


@pytest.mark.parametrize(("content", "why"), [
    (b'{"note": "\xff"}', "not valid UTF-8 (byte 10: invalid start byte)"),
    (b'{"note": "caf\xc3"}', "not valid UTF-8 (byte 13: invalid continuation byte)"),
    (b'{"note": "\\ud800"}', "a lone surrogate (\\ud800): text must be valid Unicode"),
    (b'{"note": "ok", "\\udfff": 1}', "a lone surrogate (\\udfff)"),
])
async def test_text_that_is_not_valid_unicode_is_422_not_500(world: World, content: bytes,
                                                             why: str) -> None:
    body = await refused(world, "POST", f"/v1/alerts/{world.alerts['g1']}/acknowledge", 422,
                         headers={**world.auth("dongyuan-g1"),
                                  "Content-Type": "application/json"}, content=content)
    assert why in body["detail"]


async def test_json_nested_past_the_parsers_limit_is_422_not_500(world: World) -> None:
    """60 KB, under the body limit, nested past the JSON parser's recursion limit: the
    RecursionError was a 500."""
    body = await refused(world, "POST", f"/v1/alerts/{world.alerts['g1']}/acknowledge", 422,
                         headers={**world.auth("dongyuan-g1"),
                                  "Content-Type": "application/json"},
                         content=b'{"note": ' + b"[" * 30_000 + b"]" * 30_000 + b"}")
    assert body["detail"] == "the request body is JSON nested deeper than the API reads"


async def test_every_error_body_is_one_string_detail(world: World) -> None:
    grid = world.auth("dongyuan-g1")
    g1 = world.alerts["g1"]
    cases = [
        ("POST", f"/v1/alerts/{g1}/escalate", 422, {"json": {}}),  # FastAPI's validation
        ("POST", f"/v1/alerts/{g1}/acknowledge", 422,
         {"content": b"{not json", "headers": {**grid, "Content-Type": "application/json"}}),
        ("GET", "/v1/alerts", 422, {"params": {"limit": 0}}),
        ("GET", "/v1/nowhere", 404, {}),
        ("DELETE", f"/v1/alerts/{g1}", 405, {}),
    ]
    for method, url, status, kw in cases:
        body = await refused(world, method, url, status, **{"headers": grid, **kw})
        assert list(body) == ["detail"], body
        assert isinstance(body["detail"], str), body
    body = await refused(world, "POST", f"/v1/alerts/{g1}/escalate", 422, headers=grid,
                         json={"reason": 5})
    assert body["detail"] == "body.reason: Input should be a valid string"


async def test_the_spec_declares_one_error_model_on_every_route(world: World) -> None:
    spec = (await world.client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            for status in ("400", "401", "413", "422"):
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path)


async def test_a_repeated_dispatch_writes_nothing_and_answers_the_alert(world: World) -> None:
    g1 = world.alerts["g1"]
    town = world.auth("dasha")
    first = await world.client.post(f"/v1/alerts/{g1}/dispatch", headers=town,
                                    json={"departments": ["urban_mgmt"]})
    assert first.status_code == 200, first.text
    steps = await world.steps()
    for _ in range(3):
        again = await world.client.post(f"/v1/alerts/{g1}/dispatch", headers=town,
                                        json={"departments": ["urban_mgmt"]})
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
    assert await world.steps() == steps
    assert world.desk.counters.repeats == 3
    # a department not yet on the alert is a new step
    more = await world.client.post(f"/v1/alerts/{g1}/dispatch", headers=town,
                                   json={"departments": ["police"]})
    assert more.status_code == 200, more.text
    assert len(await world.steps()) == len(steps) + 1


async def test_the_same_call_upward_twice_is_a_409(world: World) -> None:
    g1 = world.alerts["g1"]
    grid = world.auth("dongyuan-g1")
    resp = await world.client.post(f"/v1/alerts/{g1}/escalate", headers=grid,
                                   json={"reason": "needs the town's pump truck"})
    assert resp.status_code == 200, resp.text
    body = await refused(world, "POST", f"/v1/alerts/{g1}/escalate", 409, headers=grid,
                         json={"reason": "needs the town's pump truck"})
    assert "dongyuan-g1 already called it upward for this reason" in body["detail"]
    assert "the town dasha holds it now" in body["detail"]
    # acknowledging twice was already refused by the lifecycle
    town = world.auth("dasha")
    assert (await world.client.post(f"/v1/alerts/{g1}/acknowledge",
                                    headers=town)).status_code == 200
    await refused(world, "POST", f"/v1/alerts/{g1}/acknowledge", 409, headers=town)


async def test_the_store_and_its_ledger_are_0600_in_a_0700_folder(tmp_path: Path) -> None:
    """The ledger (and the readings of the embedded store) live in the hub's store: the
    database and SQLite's -wal and -shm beside it are the owner's only."""
    from gridcall.edge_agent.outbox import Outbox
    from gridcall.hub.ingest.spool import Spool

    path = tmp_path / "var" / "hub" / "hub.sqlite"
    async with Store(path) as store:
        assert await Ledger(store).count() == 0  # makes the ledger's table: a write
        files = sorted(p.name for p in path.parent.iterdir())
        assert files == ["hub.sqlite", "hub.sqlite-shm", "hub.sqlite-wal"]
        for p in path.parent.iterdir():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    for folder in (path.parent, path.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    outbox = Outbox(tmp_path / "edge" / "outbox.sqlite")
    try:
        for p in outbox.path.parent.iterdir() if outbox.path else ():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        assert outbox.path is not None
        assert stat.S_IMODE(outbox.path.parent.stat().st_mode) == 0o700
    finally:
        outbox.close()
    Spool(tmp_path / "spool" / "w1")
    assert stat.S_IMODE((tmp_path / "spool" / "w1").stat().st_mode) == 0o700


def test_the_first_token_makes_the_hubs_folder_0700(tmp_path: Path) -> None:
    """`gridcall hub token issue` usually runs before the hub ever has: the folder it makes
    for the tokens file is the one the store and the ledger go into next."""
    path = tmp_path / "var" / "api-tokens.json"
    issue(path, "dasha", known_units={"dasha"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


async def test_a_store_left_readable_by_an_older_version_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite"
    path.touch(mode=0o644)
    path.chmod(0o644)
    async with Store(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
