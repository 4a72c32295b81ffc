"""Incidents (hub/desk/incidents.py) beyond the golden cases: one message per incident to
a real webhook receiver, the lead across communities through declared neighbours, the
incident ledger after a restart, the API, and the topology's neighbour checks."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from gridcall.config import SAMPLE_DISTRICT, ConfigError, ConfigSet, load_config
from gridcall.config.notify import NotifyFile
from gridcall.config.rules import Spread
from gridcall.hub.api.app import create_app
from gridcall.hub.api.tokens import TokenFile, issue
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.notify.incident import incident_hook
from gridcall.hub.notify.notifier import Notifier, desk_hook
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent
from tests.desk_stores import DeskStores
from tests.polling import wait_until
from tests.servers import unused_tcp_port

T0 = 1_800_000_000_000_000_000
M = 60 * 10**9


def event(cfg: ConfigSet, sensor_id: str, seq: int, at: int) -> AnomalyEvent:
    sensor = cfg.sensors[sensor_id]
    return AnomalyEvent(agent=sensor.agent, seq=seq, sensor=sensor.id, kind="out_of_limits",
                        severity="major", score=0.9, value=1.0, ts=at)


def without_spread(cfg: ConfigSet) -> ConfigSet:
    rules = cfg.matters.rules.model_copy(update={"spread": Spread(when=())})
    return dataclasses.replace(cfg, matters=cfg.matters.model_copy(update={"rules": rules}))


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    port = unused_tcp_port()
    got: list[dict[str, Any]] = []

    async def take(request: web.Request) -> web.Response:
        got.append({"unit": request.match_info["unit"], "body": await request.json()})
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook/{unit}", take)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/hook", got
    await runner.cleanup()


async def test_updates_go_out_as_one_message_per_incident(
        cfg: ConfigSet, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    # Manhole covers tilting in two grids of a community: the second alert opens at the
    # town (spread), lifting the first with it. Without incidents that was three
    # messages (the second's opening to the town, the first's escalation to the town and
    # to the community); as one incident it is one message to each unit concerned.
    url, got = webhook
    notify = NotifyFile.model_validate({"units": {
        unit: [{"type": "webhook", "url": f"{url}/{unit}"}]
        for unit in ("dasha-dong", "dasha", "dasha-dong-g2", "dasha-dong-g3")}})
    async with Store(":memory:") as store, Notifier(notify) as notifier:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        desk.add_hook(desk_hook(notifier))
        desk.add_batch_hook(incident_hook(notifier, lambda a: desk.get(a).unit))
        await desk.on_event(event(cfg, "dasha-dong-g2-manholetilt-1", 1, T0), T0)
        assert await wait_until(lambda: len(got) == 1)
        assert got[0]["unit"] == "dasha-dong"
        await desk.on_event(event(cfg, "dasha-dong-g3-manholetilt-1", 2, T0 + 5 * M),
                            T0 + 5 * M)
        assert await wait_until(lambda: notifier.pending == 0)
        incident = desk.incident_of("AL000002")
        assert incident is not None
        assert incident.alerts == ("AL000001", "AL000002")
        later = got[1:]
        assert sorted(x["unit"] for x in later) == ["dasha", "dasha-dong"]
        for message in later:
            assert f"incident {incident.incident_id} · 2 alerts in 2 grids" in (
                message["body"]["title"])
            body = json.loads(message["body"]["message"])
            assert body["incident"]["incident_id"] == incident.incident_id
            # at tier B the manhole plan's department is dispatched with each alert
            assert [(a["alert_id"], a["last_action"]) for a in body["alerts"]] == [
                ("AL000002", "open"), ("AL000002", "dispatch"), ("AL000001", "escalate"),
                ("AL000001", "dispatch")]


def with_topology(tmp_path: Path, neighbours: dict[str, list[str]]) -> Path:
    target = tmp_path / "district"
    target.mkdir()
    for f in SAMPLE_DISTRICT.glob("*.yaml"):
        (target / f.name).write_bytes(f.read_bytes())
    topo = yaml.safe_load((target / "topology.yaml").read_text(encoding="utf-8"))
    for town in topo["district"]["towns"]:
        for community in town["communities"]:
            for grid in community["grids"]:
                if grid["id"] in neighbours:
                    grid["neighbours"] = neighbours[grid["id"]]
    (target / "topology.yaml").write_text(yaml.safe_dump(topo, allow_unicode=True),
                                          encoding="utf-8")
    return target


async def test_declared_neighbours_across_communities_are_led_by_their_town(
        tmp_path: Path, desk_stores: DeskStores) -> None:
    cfg = without_spread(load_config(with_topology(
        tmp_path, {"dasha-dong-g1": ["huangpu-cun-g2"]})))
    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        first = await desk.on_event(event(cfg, "dasha-dong-g1-pm25-1", 1, T0), T0)
        assert first.alert is not None
        assert first.alert.unit == "dasha-dong-g1"
        await desk.on_event(event(cfg, "huangpu-cun-g2-pm25-1", 2, T0 + M), T0 + M)
        incident = desk.incident_of("AL000001")
        assert incident is not None
        assert (incident.lead, incident.lead_level, incident.first) == (
            "dasha", "town", "dasha-dong-g1")
        assert incident.grids == ("dasha-dong-g1", "huangpu-cun-g2")
    async with desk_stores.open() as store:
        again = Desk(cfg, Ledger(store))
        await again.start()
        assert again.incident_of("AL000002") == incident
        await again.on_event(event(cfg, "dasha-dong-g2-pm25-1", 3, T0 + 2 * M), T0 + 2 * M)
        grown = again.incident_of("AL000003")
        assert grown is not None
        assert grown.incident_id == incident.incident_id
        assert grown.alerts == ("AL000001", "AL000002", "AL000003")
        assert [s.action for s in await again.incident_history(incident.incident_id)] == [
            "open", "join"]


def test_neighbours_must_be_other_grids_of_the_topology(tmp_path: Path) -> None:
    folder = with_topology(tmp_path, {"dasha-dong-g1": ["dasha-dong-g1", "dasha-dong-g9"]})
    with pytest.raises(ConfigError) as caught:
        load_config(folder)
    text = str(caught.value)
    assert "grid dasha-dong-g1 cannot neighbour itself" in text
    assert "unknown grid 'dasha-dong-g9'" in text
    assert "neighbours[1]" in text


async def test_the_api_lists_incidents_in_the_callers_subtree(cfg: ConfigSet,
                                                              tmp_path: Path) -> None:
    cfg = without_spread(cfg)
    async with Store(":memory:") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        await desk.on_event(event(cfg, "dasha-dong-g1-pm25-1", 1, T0), T0)
        await desk.on_event(event(cfg, "dasha-dong-g2-pm25-1", 2, T0 + M), T0 + M)
        path = tmp_path / "tokens.json"
        tokens = {u: issue(path, u, known_units=cfg.units)
                  for u in ("dasha-dong-g1", "dasha", "changzhou")}
        app = create_app(desk, TokenFile(path), clock=lambda: T0 + 2 * M)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://hub") as client:
            def auth(unit: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {tokens[unit]}"}
            listed = (await client.get("/v1/incidents", headers=auth("dasha"),
                                       params={"open": True})).json()
            assert [i["incident_id"] for i in listed["incidents"]] == ["IN000001"]
            assert listed["incidents"][0]["lead"] == "dasha-dong"
            detail = (await client.get("/v1/incidents/IN000001",
                                       headers=auth("dasha-dong-g1"))).json()
            assert [a["alert_id"] for a in detail["alerts"]] == ["AL000001"]
            alerts = (await client.get("/v1/alerts", headers=auth("dasha"))).json()["alerts"]
            assert [(x["alert_id"], x["incident"]) for x in alerts] == [
                ("AL000001", "IN000001"), ("AL000002", "IN000001")]
            assert [h["action"] for h in detail["history"]] == ["open"]
            other = await client.get("/v1/incidents/IN000001", headers=auth("changzhou"))
            assert other.status_code == 403
            missing = await client.get("/v1/incidents/IN000009", headers=auth("dasha"))
            assert missing.status_code == 404


async def test_the_lead_hears_of_its_incident_when_another_units_person_is_on_duty(
        tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    # The second manhole alert opens at the town, whose person on duty has a contact; the
    # incident's lead is the community. The person replaces the town's channel, never
    # the lead's: before, the community (the lead) heard nothing of its own incident.
    url, got = webhook
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, folder)
    (folder / "roster.yaml").write_text(f"""timezone: Asia/Shanghai
persons:
- {{id: zhou-qiang, name: 周强, unit: dasha,
   contact: {{type: webhook, url: "{url}/zhou-qiang"}}}}
shifts:
  dasha:
  - {{days: [mon, tue, wed, thu, fri, sat, sun], from: "08:00", to: "08:00",
     person: zhou-qiang}}
""", encoding="utf-8")
    cfg = load_config(folder)
    notify = NotifyFile.model_validate({"units": {
        unit: [{"type": "webhook", "url": f"{url}/{unit}"}]
        for unit in ("dasha-dong", "dasha")}})
    async with Store(":memory:") as store, Notifier(notify, duty=cfg.duty) as notifier:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        desk.add_hook(desk_hook(notifier))
        desk.add_batch_hook(incident_hook(notifier, lambda a: desk.get(a).unit))
        await desk.on_event(event(cfg, "dasha-dong-g2-manholetilt-1", 1, T0), T0)
        assert await wait_until(lambda: len(got) == 1)
        await desk.on_event(event(cfg, "dasha-dong-g3-manholetilt-1", 2, T0 + 5 * M),
                            T0 + 5 * M)
        assert await wait_until(lambda: notifier.pending == 0)
        incident = desk.incident_of("AL000002")
        assert incident is not None
        assert incident.lead == "dasha-dong"
        assert (await desk.history("AL000002"))[0].on_duty == "zhou-qiang"
        later = sorted(x["unit"] for x in got[1:])
        assert later == ["dasha-dong", "zhou-qiang"]
        for message in got[1:]:
            assert f"incident {incident.incident_id}" in message["body"]["title"]


async def test_the_lead_department_hears_of_an_incident_as_of_any_alert(
        cfg: ConfigSet, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    # notify.yaml gives urban management (the manhole covers' lead department) a channel:
    # it heard of the first alert, and before heard nothing once the alerts were one
    # incident (notify.yaml's department under units: 'hears of every step above').
    url, got = webhook
    notify = NotifyFile.model_validate({"units": {
        unit: [{"type": "webhook", "url": f"{url}/{unit}"}]
        for unit in ("dasha-dong", "dasha", "urban_mgmt")}})
    async with Store(":memory:") as store, Notifier(notify) as notifier:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        desk.add_hook(desk_hook(notifier))
        desk.add_batch_hook(incident_hook(notifier, lambda a: desk.get(a).unit))
        await desk.on_event(event(cfg, "dasha-dong-g2-manholetilt-1", 1, T0), T0)
        assert await wait_until(lambda: len(got) == 2)
        assert sorted(x["unit"] for x in got) == ["dasha-dong", "urban_mgmt"]
        await desk.on_event(event(cfg, "dasha-dong-g3-manholetilt-1", 2, T0 + 5 * M),
                            T0 + 5 * M)
        assert await wait_until(lambda: notifier.pending == 0)
        incident = desk.incident_of("AL000002")
        assert incident is not None
        assert desk.get("AL000002").alert.departments.lead == "urban_mgmt"
        # at B the manhole plan calls urban_mgmt to each alert (吹哨): one call each
        notices = [x for x in got[2:] if "incident" in x["body"]["title"]]
        calls = [x for x in got[2:] if x not in notices]
        assert sorted(x["unit"] for x in notices) == ["dasha", "dasha-dong", "urban_mgmt"]
        assert sorted((x["unit"], x["body"]["title"].rsplit(" · ", 1)[-1]) for x in calls) == [
            ("urban_mgmt", "AL000001 (dasha)"), ("urban_mgmt", "AL000002 (dasha)")]
        for message in notices:
            assert f"incident {incident.incident_id}" in message["body"]["title"]


async def test_an_incident_message_names_the_unit_of_an_alert_the_desk_dropped(
        cfg: ConfigSet, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    # The first manhole alert of the incident is closed and leaves the desk's memory
    # (Desk.keep_closed); the second calls upward: its message still goes to the units
    # of every alert of the incident, the dropped one's read from the store (prefetch).
    url, got = webhook
    notify = NotifyFile.model_validate({"units": {
        unit: [{"type": "webhook", "url": f"{url}/{unit}"}]
        for unit in ("dasha-dong", "dasha", "dasha-dong-g2", "dasha-dong-g3", "huangpu")}})
    async with Store(":memory:") as store, Notifier(notify) as notifier:
        desk = Desk(cfg, Ledger(store))
        await desk.start()

        async def units_now(alert_ids: list[str]) -> dict[str, str]:
            return {a: s.unit for a, s in (await desk.states_of(alert_ids)).items()}
        desk.add_batch_hook(incident_hook(notifier, lambda a: desk.get(a).unit,
                                          prefetch=units_now))
        await desk.on_event(event(cfg, "dasha-dong-g2-manholetilt-1", 1, T0), T0)
        await desk.on_event(event(cfg, "dasha-dong-g3-manholetilt-1", 2, T0 + 5 * M),
                            T0 + 5 * M)
        incident = desk.incident_of("AL000002")
        assert incident is not None
        assert incident.alerts == ("AL000001", "AL000002")
        first = await desk.act("AL000001", "false_alarm", "huangpu", now=T0 + 6 * M)
        desk.keep_closed = 0
        assert desk.sweep(T0 + 7 * M) == 1
        assert desk.held_alert("AL000001") is None
        assert await wait_until(lambda: notifier.pending == 0)
        before = len(got)
        await desk.act("AL000002", "escalate", "dasha", now=T0 + 8 * M,
                       reason="two covers in one street: the district's call")
        assert await wait_until(lambda: notifier.pending == 0)
        assert desk.counters.hook_errors == 0
        told = {x["unit"] for x in got[before:]}
        assert first.alert.unit in told
        assert desk.get("AL000002").unit in told
