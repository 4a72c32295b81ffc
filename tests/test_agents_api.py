"""GET /v1/agents: the hub's roster, scoped to the caller's subtree like every endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gridcall.config import ConfigSet
from gridcall.hub.api.app import create_app
from gridcall.hub.api.tokens import TokenFile, issue
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.roster import Roster
from gridcall.hub.store import Store
from gridcall.wire import AgentStatus, SensorHealth

T0 = 1_800_000_000 * 10**9
S = 10**9


@pytest.fixture
async def api(cfg: ConfigSet, tmp_path: Path
              ) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], Roster]]:
    roster = Roster(cfg)
    async with Store(tmp_path / "hub.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        path = tmp_path / "tokens.json"
        tokens = {u: issue(path, u, known_units=cfg.units)
                  for u in ("huangpu", "dasha", "dongyuan-g2")}
        app = create_app(desk, TokenFile(path), clock=lambda: T0 + 10 * S, roster=roster)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://hub") as client:
            yield client, tokens, roster


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_unit_sees_the_agents_with_sensors_in_its_subtree_and_their_health(
        cfg: ConfigSet, api: tuple[httpx.AsyncClient, dict[str, str], Roster]) -> None:
    client, tokens, roster = api
    agent = "edge-dongyuan"
    in_g2 = [s.id for s in cfg.agents[agent].sensors if s.grid == "dongyuan-g2"]
    roster.observe(AgentStatus(agent=agent, state="online", ts=T0, heartbeat_s=30.0,
                               outbox_messages=5,
                               sensor_health={in_g2[0]: SensorHealth(state="stuck")}), T0)
    roster.observe(AgentStatus(agent="edge-jiufo", state="offline", ts=0), T0)

    everything = (await client.get("/v1/agents", headers=bearer(tokens["huangpu"]))).json()
    assert [a["agent"] for a in everything["agents"]] == list(cfg.agents)
    states = {a["agent"]: a["state"] for a in everything["agents"]}
    assert (states[agent], states["edge-jiufo"], states["edge-longhu"]) == (
        "online", "lost", "unknown")

    town = (await client.get("/v1/agents", headers=bearer(tokens["dasha"]))).json()
    assert {a["agent"] for a in town["agents"]} == {
        a.id for a in cfg.agents.values() if any(s.path[1] == "dasha" for s in a.sensors)}

    grid = (await client.get("/v1/agents", headers=bearer(tokens["dongyuan-g2"]))).json()
    (only,) = grid["agents"]
    assert (only["agent"], only["online"], only["outbox_depth"], only["last_seen_s"]) == (
        agent, True, 5, 10.0)
    assert [s["sensor"] for s in only["sensors"]] == in_g2  # only its grid's sensors
    assert only["sensors"][0]["health"] == "stuck"
    assert only["unhealthy_sensors"] == len(in_g2)  # stuck, and the rest not reported


async def test_another_subtree_is_403_and_no_token_401(
        api: tuple[httpx.AsyncClient, dict[str, str], Roster]) -> None:
    client, tokens, _ = api
    resp = await client.get("/v1/agents", params={"unit": "jiufo"},
                            headers=bearer(tokens["dasha"]))
    assert resp.status_code == 403
    assert "outside" in resp.json()["detail"]
    assert (await client.get("/v1/agents")).status_code == 401
