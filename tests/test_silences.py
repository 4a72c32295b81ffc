"""Silences (hub/desk/silence.py) through the API, the CLI and a restart: who may set and
lift what, refusals that write nothing, the ledger rebuilt after a restart, deadlines held
by a silence and the indicators that judge them so. The desk's timeline of muting, holding
and expiry is the golden case tests/golden/silences-and-maintenance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import ValidationError
from typer.testing import CliRunner

from gridcall.cli import app as cli
from gridcall.config import ConfigSet
from gridcall.config.desk_rules import MaxDuration
from gridcall.hub.api.app import create_app
from gridcall.hub.api.tokens import TokenFile, issue
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.indicators import by_unit, indicators
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.silence import Scope, SilenceStep, defer, deferral
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent
from tests.desk_stores import DeskStores
from tests.polling import wait_until
from tests.servers import unused_tcp_port

T0 = 1_800_000_000 * 10**9
NS = 10**9
H = 3600 * NS
SENSOR = "dongyuan-g1-pm25-1"


def event(cfg: ConfigSet, sensor_id: str, seq: int, at: int) -> AnomalyEvent:
    sensor = cfg.sensors[sensor_id]
    return AnomalyEvent(agent=sensor.agent, seq=seq, sensor=sensor.id, kind="out_of_limits",
                        severity="minor", score=0.6, value=200.0, ts=at)


@dataclass
class World:
    desk: Desk
    client: httpx.AsyncClient
    tokens: dict[str, str]
    clock: list[int]
    tokens_path: Path

    def auth(self, unit: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[unit]}"}

    async def steps(self) -> list[SilenceStep]:
        return await self.desk.silence_ledger.all()


@pytest.fixture
async def world(cfg: ConfigSet, tmp_path: Path) -> AsyncIterator[World]:
    async with Store(tmp_path / "hub.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        path = tmp_path / "api-tokens.json"
        units = ["dongyuan-g1", "dongyuan-g3", "dongyuan", "dasha", "changzhou", "huangpu"]
        tokens = {u: issue(path, u, known_units=cfg.units) for u in units}
        clock = [T0]
        app = create_app(desk, TokenFile(path), clock=lambda: clock[0])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://hub") as client:
            yield World(desk, client, tokens, clock, path)


async def refused(world: World, method: str, url: str, status: int, unit: str,
                  **kw: Any) -> str:
    """A request refused with ``status`` that leaves the silence ledger as it was."""
    before = await world.steps()
    resp = await world.client.request(method, url, headers=world.auth(unit), **kw)
    assert resp.status_code == status, resp.text
    assert await world.steps() == before
    detail: str = resp.json()["detail"]
    return detail


async def test_set_read_list_and_lift_through_the_api(world: World, cfg: ConfigSet) -> None:
    resp = await world.client.post("/v1/silences", headers=world.auth("dongyuan-g1"), json={
        "scope": "sensor", "id": SENSOR, "reason": "filter replaced", "duration_s": 7200})
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["silence_id"] == "SI000001"
    assert (made["status"], made["author"], made["start"], made["end"]) == (
        "active", "dongyuan-g1", T0, T0 + 2 * H)
    outcome = await world.desk.on_event(event(cfg, SENSOR, 1, T0 + 60 * NS), T0 + 60 * NS)
    assert (outcome.alert, outcome.silenced) == (None, "SI000001")
    assert world.desk.alerts() == []
    detail = (await world.client.get("/v1/silences/SI000001",
                                     headers=world.auth("dongyuan"))).json()
    assert [h["action"] for h in detail["history"]] == ["add", "mute"]
    assert detail["history"][1]["sensor"] == SENSOR
    assert detail["silence"]["muted"] == 1
    # The town above sees it (set inside its subtree), the other town does not.
    listed = (await world.client.get("/v1/silences", headers=world.auth("dasha"))).json()
    assert [s["silence_id"] for s in listed["silences"]] == ["SI000001"]
    other = (await world.client.get("/v1/silences", headers=world.auth("changzhou"))).json()
    assert other["count"] == 0
    await refused(world, "GET", "/v1/silences/SI000001", 403, "changzhou")
    await refused(world, "POST", "/v1/silences/SI000001/lift", 403, "dongyuan-g3")
    world.clock[0] = T0 + H
    resp = await world.client.post("/v1/silences/SI000001/lift",
                                   headers=world.auth("dongyuan"), json={"note": "done"})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["status"], resp.json()["ends_at"], resp.json()["lifted_by"]) == (
        "lifted", T0 + H, "dongyuan")
    await refused(world, "POST", "/v1/silences/SI000001/lift", 409, "dongyuan")
    current = (await world.client.get("/v1/silences", headers=world.auth("dasha"),
                                      params={"current": True})).json()
    assert current["count"] == 0
    outcome = await world.desk.on_event(event(cfg, SENSOR, 2, T0 + H), T0 + H)
    assert outcome.alert is not None
    assert outcome.silenced is None


async def test_the_same_silence_posted_twice_is_one_silence(world: World) -> None:
    """A double click or a retry: the same scope, reason and author again, 30 s later
    (duration_s from now, so its end moved by 30 s), answers 200 with the first silence
    and writes no second step; another reason, another scope, another author, an end more
    than 60 s away, or the same one after the first was lifted each make a new one."""
    def body(**kw: Any) -> dict[str, Any]:
        return {"scope": "sensor", "id": SENSOR, "reason": "filter replaced",
                "duration_s": 7200, **kw}

    g1 = world.auth("dongyuan-g1")
    first = await world.client.post("/v1/silences", headers=g1, json=body())
    assert first.status_code == 201, first.text
    steps = await world.steps()
    world.clock[0] = T0 + 30 * NS
    again = await world.client.post("/v1/silences", headers=g1, json=body())
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "status": "active"}
    assert await world.steps() == steps  # no second ledger step
    assert world.desk.counters.silences_repeated == 1
    made = []
    for unit, kw in (("dongyuan-g1", {"reason": "filter replaced, second pump"}),
                     ("dongyuan-g1", {"scope": "grid", "id": "dongyuan-g1"}),
                     ("dongyuan", {}),
                     ("dongyuan-g1", {"duration_s": 7200 + 120})):
        resp = await world.client.post("/v1/silences", headers=world.auth(unit),
                                       json=body(**kw))
        assert resp.status_code == 201, (kw, resp.text)
        made.append(resp.json()["silence_id"])
    assert len(set(made)) == 4
    assert first.json()["silence_id"] not in made
    lifted = await world.client.post(f"/v1/silences/{first.json()['silence_id']}/lift",
                                     headers=g1)
    assert lifted.status_code == 200, lifted.text
    after = await world.client.post("/v1/silences", headers=g1, json=body())
    assert after.status_code == 201, after.text
    assert after.json()["silence_id"] not in {first.json()["silence_id"], *made}


async def test_refusals_say_why_and_write_nothing(world: World) -> None:
    def body(**kw: Any) -> dict[str, Any]:
        return {"scope": "sensor", "id": SENSOR, "reason": "works", "duration_s": 3600, **kw}

    detail = await refused(world, "POST", "/v1/silences", 403, "dongyuan-g1",
                           json=body(duration_s=3 * 86400))
    assert "a grid may silence for at most 1d, not 3d: a community or above" in detail
    detail = await refused(world, "POST", "/v1/silences", 403, "dongyuan-g3", json=body())
    assert detail == "outside your area"  # names no place, unit or sensor
    detail = await refused(world, "POST", "/v1/silences", 403, "dongyuan",
                           json=body(scope="agent", id="edge-shenjing"))
    assert detail == "outside your area"
    detail = await refused(world, "POST", "/v1/silences", 422, "dongyuan",
                           json=body(id="no-such-sensor"))
    assert "no sensor 'no-such-sensor'" in detail
    detail = await refused(world, "POST", "/v1/silences", 422, "dongyuan",
                           json=body(scope="grid", id="dongyuan"))
    assert "dongyuan is a community" in detail
    await refused(world, "POST", "/v1/silences", 422, "dongyuan",
                  json=body(end=T0 + H))  # both end and duration_s
    await refused(world, "POST", "/v1/silences", 422, "dongyuan", json=body(reason=""))
    detail = await refused(world, "POST", "/v1/silences", 422, "dongyuan",
                           json={**body(end=T0 - H), "duration_s": None})
    assert "not after its start" in detail
    await refused(world, "POST", "/v1/silences/SI000009/lift", 404, "huangpu")
    resp = await world.client.post("/v1/silences", json=body())
    assert resp.status_code == 401


async def test_silences_survive_a_restart_and_expire_by_themselves(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        await desk.add_silence(Scope("agent", "edge-dongyuan"), start=T0, end=T0 + 2 * H,
                               reason="gateway replaced", author="dasha", now=T0)
        await desk.on_event(event(cfg, SENSOR, 7, T0 + H), T0 + H)
    async with desk_stores.open() as store:
        again = Desk(cfg, Ledger(store))
        await again.start()
        silence = again.silences.get("SI000001")
        assert (silence.muted, silence.status(T0 + H)) == (1, "active")
        redelivered = await again.on_event(event(cfg, SENSOR, 7, T0 + H), T0 + H)
        assert redelivered.duplicate
        assert redelivered.silenced == "SI000001"
        assert again.next_deadline() == T0 + 2 * H
        await again.tick(T0 + 3 * H)
        steps = await again.silence_history("SI000001")
        assert [(s.action, s.at) for s in steps] == [
            ("add", T0), ("mute", T0 + H), ("expire", T0 + 2 * H)]
        assert again.counters.silences_expired == 1
        fresh = await again.on_event(event(cfg, SENSOR, 8, T0 + 3 * H), T0 + 3 * H)
        assert fresh.alert is not None


async def test_indicators_do_not_count_silenced_time_against_the_unit(
        cfg: ConfigSet, tmp_path: Path) -> None:
    async with Store(":memory:") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        opened = await desk.on_event(event(cfg, SENSOR, 1, T0), T0)
        assert opened.alert is not None
        alert_id = opened.alert.alert_id
        response = opened.alert.alert.deadlines.response
        await desk.add_silence(Scope("sensor", SENSOR), start=T0 + 60 * NS,
                               end=response + H, reason="sensor swapped",
                               author=opened.alert.unit, now=T0 + 60 * NS)
        await desk.tick(response + 30 * 60 * NS)  # past the deadline, inside the silence
        assert desk.get(alert_id).escalations == 0
        assert desk.counters.deadlines_held == 1
        late = response + 45 * 60 * NS
        await desk.act(alert_id, "acknowledge", opened.alert.unit, now=late)
        steps = await desk.transitions()
        held = by_unit(indicators(steps, T0, late + 1, defer=desk.defer))
        plain = by_unit(indicators(steps, T0, late + 1))
        unit = opened.alert.unit
        assert (held[unit].responses_judged, held[unit].responses_timely) == (1, 1)
        assert (plain[unit].responses_judged, plain[unit].responses_timely) == (1, 0)
        # A report read from the store alone judges it the same (gridcall hub report).
        offline = deferral(await desk.silence_ledger.all(), steps)
        assert offline(alert_id, response) == desk.defer(alert_id, response) == response + H
        assert by_unit(indicators(steps, T0, late + 1, defer=offline)) == held


def test_defer_moves_a_time_past_overlapping_windows() -> None:
    assert defer(5, [(10, 20)]) == 5
    assert defer(12, [(10, 20), (18, 30), (40, 50)]) == 30
    assert defer(20, [(10, 20)]) == 20


def test_max_duration_must_not_shrink_up_the_ladder() -> None:
    with pytest.raises(ValidationError, match=r"town .* may not be shorter than community"):
        MaxDuration(community=timedelta(days=10), town=timedelta(days=5))
    limits = MaxDuration()
    assert limits.lowest_allowed(timedelta(days=3)) == "community"
    assert limits.lowest_allowed(timedelta(days=365)) is None


async def test_the_cli_sets_lists_and_lifts_through_a_real_server(world: World) -> None:
    port = unused_tcp_port()
    app = create_app(world.desk, TokenFile(world.tokens_path), clock=lambda: world.clock[0])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    runner = CliRunner()
    env = {"GRIDCALL_API": f"http://127.0.0.1:{port}", "GRIDCALL_TOKEN": world.tokens["dasha"]}

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["hub", "silence", *args], env=env)
    try:
        assert await wait_until(lambda: server.started)
        added = await asyncio.to_thread(run, "add", "--grid", "dongyuan-g2", "--for", "8h",
                                        "--reason", "road works")
        assert added.exit_code == 0, added.output
        assert "SI000001: grid dongyuan-g2 silenced" in added.output
        too_long = await asyncio.to_thread(run, "add", "--grid", "dongyuan-g2", "--for",
                                           "400d", "--reason", "forever")
        assert too_long.exit_code == 1
        assert "422" in too_long.output
        assert "no level may" in too_long.output
        listed = await asyncio.to_thread(run, "list", "--current")
        assert listed.exit_code == 0, listed.output
        assert "SI000001" in listed.output
        assert "road works" in listed.output
        lifted = await asyncio.to_thread(run, "lift", "SI000001", "--note", "done early")
        assert lifted.exit_code == 0, lifted.output
        assert "SI000001 lifted" in lifted.output
        assert world.desk.silences.get("SI000001").lifted_by == "dasha"
    finally:
        server.should_exit = True
        await task


async def test_a_persons_token_is_recorded_on_the_silence_it_sets_and_lifts(
        world: World, cfg: ConfigSet) -> None:
    token = issue(world.tokens_path, "dongyuan", known_units=cfg.units, person="chen-jing")
    auth = {"Authorization": f"Bearer {token}"}
    resp = await world.client.post("/v1/silences", headers=auth, json={
        "scope": "grid", "id": "dongyuan-g2", "reason": "school fence works",
        "duration_s": 3600})
    assert resp.status_code == 201, resp.text
    assert (resp.json()["author"], resp.json()["author_person"]) == ("dongyuan", "chen-jing")
    lifted = await world.client.post("/v1/silences/SI000001/lift", headers=world.auth("dasha"))
    assert (lifted.json()["lifted_by"], lifted.json()["lifted_by_person"]) == ("dasha", "")
    steps = await world.desk.silence_history("SI000001")
    assert [(s.action, s.actor, s.person) for s in steps] == [
        ("add", "dongyuan", "chen-jing"), ("lift", "dasha", "")]
