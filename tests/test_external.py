"""Calls from departments' business systems (issue 18, item 3): external.yaml's mappings,
the webhook with a system's own token over real HTTP, the MQTT topic (dead letters for
what cannot be mapped), and idempotency by (system, event id) across a hub restart on
both desk stores."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from gridcall.config import ConfigSet
from gridcall.hub.api.app import create_app
from gridcall.hub.api.tokens import TokenFile, issue, issue_system
from gridcall.hub.deadletter import DeadLetters
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.external import ExternalEvent, Unmappable, translate
from gridcall.hub.desk.external_intake import ExternalIntake
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.runtime import DeskRuntime
from gridcall.hub.store import Store
from gridcall.wire import topics
from gridcall.wire.broker import BrokerAddress
from tests.desk_stores import DeskStores
from tests.polling import wait_until
from tests.servers import unused_tcp_port
from tests.test_config import edit, problems_of, sample

__all__ = ["sample"]

T0 = 1_800_000_000 * 10**9
MIN = 60 * 10**9
WATER, FIRE = "water-flood-gauges", "fire-alarm-platform"


def flood(event_id: str = "WL-1", *, site: str = "HP-WL-0031", severity: str | None = "orange",
          kind: str = "WATERLOGGING_ALARM", **more: Any) -> ExternalEvent:
    return ExternalEvent.model_validate({"event_id": event_id, "type": kind, "site": site,
                                         "severity": severity, **more})


# --------------------------------------------------------------------------- mapping


def test_the_sample_maps_an_invented_flood_gauge_and_fire_alarm_platform(
        cfg: ConfigSet) -> None:
    assert [s.id for s in cfg.external.systems] == [WATER, FIRE]
    assert all("invented example" in s.name for s in cfg.external.systems)
    m = translate(cfg, WATER, flood(description="32 cm over the alarm depth",
                                    occurred_at=T0 - MIN), received_at=T0)
    assert (m.matter, m.grid, m.tier, m.point, m.at) == (
        "FLOOD-POINT", "huangpu-cun-g1", "B", (113.424, 23.080), T0 - MIN)
    assert m.note == ("区水务局内涝积水监测平台 (invented example): WATERLOGGING_ALARM orange at "
                      "黄埔村下穿通道积水点 (HP-WL-0031): 32 cm over the alarm depth [event WL-1]")
    fire = translate(cfg, FIRE, ExternalEvent(event_id="F1", type="SMOKE_ALARM",
                                              site="FA-DY-00017", severity="level-2"),
                     received_at=T0)
    assert (fire.matter, fire.grid, fire.tier, fire.at) == ("FIRE-SMOKE", "dongyuan-g1", "A", T0)


@pytest.mark.parametrize(("system", "event", "why"), [
    (WATER, flood(kind="TIDE_HIGH"), "unknown event type 'TIDE_HIGH' (known: "
     "PIPE_BURST_SUSPECTED, RAINFALL_INTENSE, WATERLOGGING_ALARM)"),
    (WATER, flood(site="HP-XX-9999"), "unknown site 'HP-XX-9999' (known: HP-RG-0107, "
     "HP-WL-0031, HP-WL-0032)"),
    (WATER, flood(severity="purple"), "unknown severity 'purple' (known: blue, orange, "
     "red, yellow)"),
    (WATER, flood(severity=None), "no severity, and the mapping needs one"),
    (WATER, flood(system=FIRE), "it names system 'fire-alarm-platform', but it came from "
     "'water-flood-gauges'"),
    ("sewage-scada", flood(), "no such system"),
    (WATER, flood(occurred_at=T0 // 10**6), "lies outside the hub's window"),  # ms, not ns
    (WATER, flood(occurred_at=T0 + 2 * 3600 * 10**9), "lies outside the hub's window"),
])
def test_what_the_mapping_cannot_place_is_refused_with_the_reason(
        cfg: ConfigSet, system: str, event: ExternalEvent, why: str) -> None:
    with pytest.raises(Unmappable) as info:
        translate(cfg, system, event, received_at=T0)
    assert why in str(info.value)
    assert str(info.value).endswith("(external.yaml)")


def test_mapping_mistakes_name_the_file_and_key(sample: Path) -> None:
    def bad(data: dict) -> None:  # type: ignore[type-arg]
        water = data["systems"][0]
        water["events"]["WATERLOGGING_ALARM"] = "FLOOD-POINTS"
        water["sites"]["HP-WL-0031"]["grid"] = "huangpu-cun-g9"
        water["department"] = "water_authority"
        water["id"] = "edge-dongyuan"
        data["systems"][1]["severities"]["black"] = "E"

    edit(sample / "external.yaml", bad)
    problems = problems_of(sample)
    for said in ("systems[1].severities.black: Input should be 'A', 'B', 'C' or 'D'",
                 "systems[0].events.WATERLOGGING_ALARM: unknown matter 'FLOOD-POINTS' "
                 "(did you mean 'FLOOD-POINT'?)",
                 "systems[0].sites.HP-WL-0031.grid: unknown grid 'huangpu-cun-g9'",
                 "systems[0].department: unknown department 'water_authority'",
                 "systems[0].id: system 'edge-dongyuan' has the id of an edge agent"):
        assert any(p.startswith("external.yaml:") and said in p for p in problems), (
            said, problems)


# --------------------------------------------------------------------------- the desk


@pytest.fixture
async def store_kind(desk_stores: DeskStores) -> DeskStores:
    return desk_stores


async def test_a_system_event_is_taken_once_across_a_restart(cfg: ConfigSet,
                                                            store_kind: DeskStores) -> None:
    async with store_kind.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        door = ExternalIntake(desk)
        first = await door.take(WATER, flood("WL-7"), body=b"{}", now=T0)
        assert (first.outcome, first.seq) == ("opened", 0)
        alert = first.result.alert
        assert alert is not None
        a = alert.alert
        assert (a.matter, a.tier, a.unit, a.anomaly_kind, a.agent, a.event_seq) == (
            "FLOOD-POINT", "B", "dasha", "external", WATER, 0)
        opened, sent = await desk.history(a.alert_id)  # at B the plan's dispatch follows
        assert opened.evidence == (WATER, 0)
        assert (sent.action, sent.actor) == ("dispatch", "hub")
        again = await door.take(WATER, flood("WL-7"), body=b"{}", now=T0 + MIN)
        assert (again.outcome, again.seq) == ("duplicate", 0)
        # another event of the same matter at the same site joins it as evidence
        more = await door.take(WATER, flood("WL-8", severity="blue"), body=b"{}",
                               now=T0 + 2 * MIN)
        assert (more.outcome, more.seq) == ("joined", 1)
        assert more.result.alert is not None
        assert more.result.alert.alert_id == a.alert_id
        steps = len(await desk.history(a.alert_id))
    async with store_kind.open() as store:  # the hub restarts
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        door = ExternalIntake(desk)
        for event_id, seq in (("WL-7", 0), ("WL-8", 1)):
            repeat = await door.take(WATER, flood(event_id), body=b"{}", now=T0 + 3 * MIN)
            assert (repeat.outcome, repeat.seq) == ("duplicate", seq)
        assert len(await desk.history(a.alert_id)) == steps
        new = await door.take(WATER, flood("WL-9", site="HP-RG-0107", severity="red"),
                              body=b"{}", now=T0 + 4 * MIN)
        assert (new.outcome, new.seq) == ("opened", 2)
        assert new.result.alert is not None
        assert new.result.alert.tier == "A"
        with pytest.raises(Unmappable):  # refused: nothing numbered, nothing written
            await door.take(WATER, flood("WL-10", site="nowhere"), body=b"{}",
                            now=T0 + 5 * MIN)
        after = await door.take(WATER, flood("WL-11", site="HP-WL-0032"), body=b"{}",
                                now=T0 + 6 * MIN)
        assert after.seq == 3


async def test_a_more_severe_event_lifts_the_open_alert_it_joins(cfg: ConfigSet,
                                                                 tmp_path: Path) -> None:
    """Orange opens FLOOD-POINT at B (the town); red at the same site joins it as
    evidence and lifts it to A (the district), with A's deadlines from then; yellow
    after that lowers nothing."""
    async with Store(tmp_path / "hub.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        door = ExternalIntake(desk)
        opened = await door.take(WATER, flood("WL-1"), body=b"{}", now=T0)
        red = await door.take(WATER, flood("WL-2", severity="red"), body=b"{}",
                              now=T0 + MIN)
        assert red.outcome == "joined"
        # at A the flood plan calls in police too (the hub's dispatch after the rise)
        assert [t.action for t in red.result.steps] == ["evidence", "escalate", "dispatch"]
        up = red.result.steps[1]
        assert (up.tier, up.unit, up.actor, up.reason) == (
            "A", "huangpu", "hub", "the caller's severity puts it at A")
        assert opened.result.steps[0].deadlines.response == T0 + 15 * MIN  # emergency at B
        assert up.deadlines.response == T0 + MIN + 10 * MIN  # A's, counted from the rise
        calm = await door.take(WATER, flood("WL-3", severity="yellow"), body=b"{}",
                               now=T0 + 2 * MIN)
        assert [t.action for t in calm.result.steps] == ["evidence"]
        assert calm.result.alert is not None
        assert calm.result.alert.tier == "A"


# --------------------------------------------------------------------------- the webhook


@pytest.fixture
async def served(cfg: ConfigSet, tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str],
                                                                        Desk]]:
    async with Store(tmp_path / "hub.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        path = tmp_path / "api-tokens.json"
        tokens = {WATER: issue_system(path, WATER, known_systems=[WATER, FIRE]),
                  "huangpu": issue(path, "huangpu", known_units=cfg.units)}
        app = create_app(desk, TokenFile(path), clock=lambda: T0)
        port = unused_tcp_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve())
        try:
            assert await wait_until(lambda: server.started)
            yield f"http://127.0.0.1:{port}", tokens, desk
        finally:
            server.should_exit = True
            await task


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_webhook_over_real_http(served: tuple[str, dict[str, str], Desk]) -> None:
    url, tokens, desk = served
    body = {"event_id": "WL-2026-000123", "type": "WATERLOGGING_ALARM",
            "site": "HP-WL-0031", "severity": "orange", "description": "32 cm"}
    async with httpx.AsyncClient(base_url=url) as http:
        resp = await http.post("/v1/events/external", json=body, headers=bearer(tokens[WATER]))
        assert resp.status_code == 201, resp.text
        got = resp.json()
        assert (got["outcome"], got["system"], got["seq"], got["matter"], got["grid"]) == (
            "opened", WATER, 0, "FLOOD-POINT", "huangpu-cun-g1")
        assert (got["alert"]["tier"], got["alert"]["anomaly_kind"]) == ("B", "external")
        alert_id = got["alert"]["alert_id"]
        repeat = await http.post("/v1/events/external", json=body,
                                 headers=bearer(tokens[WATER]))
        assert repeat.status_code == 200
        assert (repeat.json()["outcome"], repeat.json()["alert"]["alert_id"]) == (
            "duplicate", alert_id)
        steps = len(await desk.history(alert_id))
        refusals = [
            ({**body, "event_id": "x", "site": "HP-XX-1"}, tokens[WATER], 422,
             "unknown site 'HP-XX-1'"),
            ({**body, "colour": "red"}, tokens[WATER], 422, "colour"),
            (body, tokens["huangpu"], 401, "only an external system's token may post"),
            (body, "gct_not-a-token", 401, "unknown or revoked token"),
        ]
        for sent, token, status, said in refusals:
            resp = await http.post("/v1/events/external", json=sent, headers=bearer(token))
            assert resp.status_code == status, (said, resp.text)
            assert said in resp.json()["detail"], resp.text
        # the system's token opens nothing else
        resp = await http.get("/v1/alerts", headers=bearer(tokens[WATER]))
        assert resp.status_code == 401
        assert "may only post its events" in resp.json()["detail"]
        # the town sees the alert the system opened
        resp = await http.get(f"/v1/alerts/{alert_id}", headers=bearer(tokens["huangpu"]))
        assert resp.status_code == 200
    assert len(await desk.history(alert_id)) == steps


# --------------------------------------------------------------------------- MQTT


async def test_the_mqtt_topic_takes_events_and_dead_letters_what_it_cannot_map(
        cfg: ConfigSet, tmp_path: Path) -> None:
    async with Store(tmp_path / "hub.sqlite") as store:
        letters = DeadLetters(tmp_path / "dead.sqlite").open()
        runtime = DeskRuntime(cfg, store, address=BrokerAddress.parse("mqtt://127.0.0.1:1"),
                              client_id="t", clock=lambda: T0, dead_letters=letters)
        await runtime.desk.start()
        topic = topics.external_topic(FIRE)
        good = json.dumps({"event_id": "F-1", "type": "SMOKE_ALARM", "site": "FA-DY-00017",
                           "severity": "level-1"}).encode()
        await runtime.handle(topic, good)
        await runtime.handle(topic, good)  # a redelivery
        (alert,) = runtime.desk.alerts()  # level-1 asks for B; an elderly home adds one
        assert (alert.alert.matter, alert.tier, alert.alert.agent, alert.n) == (
            "FIRE-SMOKE", "A", FIRE, 2)  # opened, and the plan's departments dispatched
        assert "site elderly_home +1" in alert.alert.reason
        await runtime.handle(topic, json.dumps({"event_id": "F-2", "type": "SMOKE_ALARM",
                                                "site": "FA-ZZ-1", "severity": "level-1"}
                                               ).encode())
        await runtime.handle(topic, b"not json")
        await runtime.handle(topics.external_topic(WATER), good)  # the fire platform's
        kept = letters.entries()
        assert [(d.topic, d.reason) for d in kept] == [
            (topic, "unmappable"), (topic, "malformed_external"),
            (topics.external_topic(WATER), "unmappable")]
        assert "unknown site 'FA-ZZ-1'" in kept[0].detail
        assert "unknown event type 'SMOKE_ALARM'" in kept[2].detail
        assert (runtime.counters.external_events, runtime.counters.external_refused) == (2, 3)
        assert len(runtime.desk.alerts()) == 1
        letters.close()


def test_the_sample_external_yaml_is_yaml_the_loader_reads(cfg: ConfigSet) -> None:
    raw = yaml.safe_load((cfg.directory / "external.yaml").read_text(encoding="utf-8"))
    assert "INVENTED EXAMPLES" in (cfg.directory / "external.yaml").read_text(encoding="utf-8")
    assert len(raw["systems"]) == len(cfg.external.systems)


# --------------------------------------------------------------------------- scenarios


async def test_a_scenario_sends_system_events_through_the_broker() -> None:
    """``external:`` timeline entries reach the hub on the system's MQTT topic in
    ``gridcall sim run``: the first opens an alert, a repeat of its id writes nothing, an
    unknown site is refused (a dead letter) and shown as such, and the town answers."""
    from gridcall.simulators.scenario import scenario_from_data
    from gridcall.simulators.sim import SimDistrict

    flood_at = {"system": WATER, "type": "WATERLOGGING_ALARM", "site": "HP-WL-0031",
                "severity": "orange", "description": "32 cm over the alarm depth"}
    scenario = scenario_from_data({
        "config": "huangpu", "duration": "20m", "warmup": "10m",
        "sensors": ["anle-g1-rain-1"],
        "timeline": [
            {"at": "00:05", "external": {**flood_at, "event_id": "WL-1"}},
            {"at": "00:06", "external": {**flood_at, "event_id": "WL-1"}},
            {"at": "00:07", "external": {**flood_at, "site": "HP-XX-1"}},
            {"at": "00:10", "action": {"unit": "dasha", "do": "acknowledge",
                                       "matter": "FLOOD-POINT", "grid": "huangpu-cun-g1"}}]})
    assert [e.event_id for e in scenario.externals] == ["WL-1", "WL-1",
                                                        "water-flood-gauges-3"]
    async with SimDistrict(scenario) as d:
        run = await d.run()
    (alert,) = run.alerts.values()
    assert (alert.matter, alert.anomaly_kind, alert.agent, alert.tier, alert.state) == (
        "FLOOD-POINT", "external", WATER, "B", "acknowledged")
    assert alert.detected_at == scenario.start_ns + 5 * MIN
    steps = [e for e in run.timeline if e.alert_id == alert.alert_id]
    assert [e.action for e in steps] == ["open", "dispatch", "acknowledge"]  # the plan's
    (refused,) = [e.text for e in run.timeline if e.kind == "refused"]
    assert refused.startswith(f"{WATER} event water-flood-gauges-3: refused by the hub, "
                              "its mapping cannot place it")
    assert [e.kind for e in run.timeline].count("external") == 3


def test_a_systems_token_is_issued_listed_and_revoked_from_the_cli(cfg: ConfigSet,
                                                                  tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gridcall.cli import app

    path = tmp_path / "api-tokens.json"
    run = CliRunner()
    common = ["-c", str(cfg.directory), "--tokens", str(path)]
    issued = run.invoke(app, ["hub", "token", "issue", "--system", WATER, *common])
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip().splitlines()[-1]
    assert token.startswith("gct_")
    entry = TokenFile(path).entry_of(token)
    assert entry is not None
    assert (entry.system, entry.unit) == (WATER, "")
    wrong = run.invoke(app, ["hub", "token", "issue", "--system", "sewage-scada", *common])
    assert wrong.exit_code == 2
    assert "'sewage-scada' is not a system of external.yaml" in wrong.output
    listed = run.invoke(app, ["hub", "token", "list", *common], env={"COLUMNS": "200"})
    assert WATER in listed.stdout
    gone = run.invoke(app, ["hub", "token", "revoke", "--system", WATER, *common])
    assert gone.exit_code == 0, gone.output
    assert "1 token(s) of water-flood-gauges revoked" in gone.stdout
    assert TokenFile(path).entry_of(token) is None


async def test_the_packaged_scenario_joins_both_sources_of_sensing() -> None:
    """flood-gauge-platform: the platform's events join the underpass sensor's alert, a
    retry writes nothing, and its red warning lifts the alert to the district."""
    from gridcall.simulators.scenario import load_scenario
    from gridcall.simulators.sim import SimDistrict

    scenario = load_scenario("flood-gauge-platform")
    async with SimDistrict(scenario) as d:
        run = await d.run()
    (alert,) = run.alerts.values()
    assert (alert.matter, alert.tier, alert.state, alert.anomaly_kind) == (
        "FLOOD-POINT", "A", "resolved", "spike")  # the sensor opened it
    steps = [s for s in run.transitions if s.alert_id == alert.alert_id]
    from_platform = [s for s in steps if s.evidence is not None and s.evidence[0] == WATER]
    assert [s.evidence for s in from_platform] == [(WATER, 0), (WATER, 1)]  # not the retry
    (rise,) = [s for s in steps if s.reason == "the caller's severity puts it at A"]
    assert (rise.action, rise.at, rise.unit) == (
        "escalate", scenario.start_ns + (2 * 60 + 35) * MIN, "huangpu")
