"""Plans (一事一预案): the catalog's structured plans, the alert that carries one, the
hub's dispatch of its departments at tier B and A, and steps ticked off as ledger steps,
on the injected clock and over the real HTTP API."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gridcall.config import SAMPLE_DISTRICT, ConfigError, ConfigSet, load_config
from gridcall.config.plans import Plan
from gridcall.hub.api.app import create_app
from gridcall.hub.api.server import ApiServer
from gridcall.hub.api.tokens import TokenFile, issue
from gridcall.hub.desk.desk import BadAction, Desk, OutsideSubtree
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import IllegalTransition, Transition
from gridcall.hub.desk.plans import AlreadyTicked, NoSuchStep
from gridcall.hub.notify.notifier import render
from tests.desk_stores import DeskStores

T0 = 1_800_000_000 * 10**9
S = 10**9
MIN = 60 * S


def called(t: Transition) -> tuple[str, ...]:
    """The departments a dispatch step called (吹哨)."""
    return tuple(w.department for w in t.whistled)


class Events:
    def __init__(self) -> None:
        self.seq = 0

    def __call__(self, cfg: ConfigSet, sensor: str, severity: str = "major") -> Any:
        from gridcall.wire import AnomalyEvent

        self.seq += 1
        return AnomalyEvent(agent=cfg.sensors[sensor].agent, seq=self.seq, sensor=sensor,
                            kind="out_of_limits", severity=severity,  # type: ignore[arg-type]
                            score=0.9, value=80.0, ts=T0)


# --------------------------------------------------------------------------- config


def matters_with(tmp_path: Path, plan: Any, code: str = "NOISE-NUISANCE") -> Path:
    """The sample district with ``code``'s plan replaced."""
    target = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, target)
    path = target / "matters.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    for m in doc["matters"]:
        if m["code"] == code:
            m["plan"] = plan
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return target


def test_every_matter_of_the_sample_has_a_plan_with_steps(cfg: ConfigSet) -> None:
    for m in cfg.matters.matters:
        assert (bool(m.plan.summary), bool(m.plan.steps), bool(m.plan.contacts)) == (
            True, True, True), m.code
        assert m.plan.dispatch, m.code  # each names whom tier B or A calls in


def test_a_plain_string_is_still_a_plan_its_summary(tmp_path: Path) -> None:
    cfg = load_config(matters_with(tmp_path, "网格员现场劝导。"))
    (noise,) = [m for m in cfg.matters.matters if m.code == "NOISE-NUISANCE"]
    assert noise.plan == Plan(summary="网格员现场劝导。")
    assert (noise.plan.steps, noise.plan.dispatch) == ((), ())
    assert Plan.model_validate("").empty


@pytest.mark.parametrize(("plan", "said"), [
    ({"dispatch": [{"department": "firemen", "when": {"B": "always"}}]},
     "plan.dispatch[0].department: unknown department 'firemen'"),
    ({"steps": [{"id": "a", "text": "x", "role": "mayor"}]},
     "plan.steps[0].role: unknown role"),
    ({"contacts": [{"name": "x", "department": "polic"}]},
     "unknown department 'polic' (did you mean 'police'?)"),
    ({"dispatch": [{"department": "police", "when": {"C": "always"}}]},
     "plan.dispatch[0].when.C: Input should be 'A' or 'B'"),
    ({"dispatch": [{"department": "police", "when": {"B": {}}}]},
     "a condition names sites and/or severities"),
    ({"steps": [{"id": "a", "text": "x", "role": "grid"}, {"id": "a", "text": "y",
                                                            "role": "town"}]},
     "step id 'a' is given twice"),
])
def test_a_wrong_plan_is_reported_with_its_place(tmp_path: Path, plan: Any, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(matters_with(tmp_path, plan))
    text = str(caught.value)
    assert "matters.yaml" in text, text
    assert said in text, text


DISPATCH_TABLE = [
    # sensor, severity -> tier the rules give, departments the plan dispatches then
    ("dasha-dong-g1-noise-1", "major", "D", ()),                       # below B: none
    ("dasha-dong-g1-noise-1", "critical", "C", ()),
    ("shenjing-g2-noise-1", "critical", "B", ("urban_mgmt", "police")),  # B if critical
    ("dasha-dong-g2-smoke-1", "major", "B", ("fire_safety",)),          # residential
    ("dasha-dong-g3-smoke-1", "major", "B", ("fire_safety", "police")),  # at hospital
    ("dongyuan-g1-smoke-1", "major", "A", ("fire_safety", "police")),   # elderly home +1
    ("dongyuan-g3-gas-1", "major", "A",
     ("fire_safety", "police", "urban_mgmt", "market_supervision")),
]


@pytest.mark.parametrize(("sensor", "severity", "tier", "sent"), DISPATCH_TABLE)
async def test_the_plan_dispatches_its_departments_at_tier_b_and_a(
        cfg: ConfigSet, desk: Desk, sensor: str, severity: str, tier: str,
        sent: tuple[str, ...]) -> None:
    out = await desk.on_event(Events()(cfg, sensor, severity), T0)
    assert out.alert is not None
    assert out.alert.tier == tier
    history = await desk.history(out.alert.alert_id)
    if not sent:
        assert [t.action for t in history] == ["open"]
        assert out.alert.state == "opened"
        return
    opened, dispatch = history
    # right after the opening, at its instant, by the hub, in the plan's order
    assert (dispatch.action, dispatch.actor, dispatch.at, called(dispatch)) == (
        "dispatch", "hub", opened.at, sent)
    assert dispatch.reason.startswith(f"plan (一事一预案) at tier {tier}: ")
    assert set(sent) <= set(dispatch.departments)
    assert out.alert.state == "dispatched"
    assert tuple(c.department for c in out.alert.dept_calls) == sent
    assert [t.action for t in out.steps] == ["open", "dispatch"]


async def test_a_rise_to_a_dispatches_only_the_departments_not_sent_yet(
        cfg: ConfigSet, desk: Desk) -> None:
    ev = Events()
    out = await desk.on_event(ev(cfg, "dasha-dong-g2-smoke-1"), T0)  # B: fire_safety
    assert out.alert is not None
    alert_id = out.alert.alert_id
    await desk.act(alert_id, "escalate", "dasha", now=T0 + MIN, reason="spreading")
    *_, up, sent = await desk.history(alert_id)
    assert (up.action, up.tier, sent.action, sent.at, called(sent)) == (
        "escalate", "A", "dispatch", T0 + MIN, ("police",))
    state = desk.get(alert_id)
    assert tuple(c.department for c in state.dept_calls) == ("fire_safety", "police")
    # a unit's own dispatch of a department the plan left out is written, of those sent
    # already it is a repeat
    done = await desk.act(alert_id, "dispatch", "huangpu", now=T0 + 2 * MIN,
                          departments=["environment_water"])
    assert called(done.transition) == ("environment_water",)
    from gridcall.hub.desk.desk import Unchanged
    with pytest.raises(Unchanged):
        await desk.act(alert_id, "dispatch", "huangpu", now=T0 + 3 * MIN,
                       departments=["police"])


async def test_the_alert_carries_its_plan_and_the_message_says_it(
        cfg: ConfigSet, desk: Desk) -> None:
    out = await desk.on_event(Events()(cfg, "dongyuan-g1-pm25-1"), T0)
    assert out.alert is not None
    plan = out.alert.alert.plan
    (dust,) = [m for m in cfg.matters.matters if m.code == "DUST-PM25"]
    assert plan is not None
    assert plan.summary == dust.plan.summary
    assert [(s.id, s.role, s.text) for s in plan.steps] == [
        (s.id, s.role, s.text) for s in dust.plan.steps]
    assert [(d.department, d.when) for d in plan.dispatch] == [
        ("environment_water", {"A": "always", "B": "always"}),
        ("urban_mgmt", {"A": "always", "B": "at construction_site"})]
    # the open step in the ledger keeps the plan the alert was given
    (opened,) = await desk.history(out.alert.alert_id)
    assert opened.alert is not None
    assert opened.alert.plan == plan
    _, text = render(out.alert.alert)
    assert f"Plan: {dust.plan.summary}" in text
    assert f"[ ] 1. {dust.plan.steps[0].text} (grid; {dust.plan.steps[0].id})" in text


async def test_ticking_off_steps_is_a_ledger_step_once(cfg: ConfigSet, desk: Desk) -> None:
    out = await desk.on_event(Events()(cfg, "dongyuan-g1-pm25-1"), T0)
    assert out.alert is not None
    alert_id = out.alert.alert_id
    change = await desk.tick_plan(alert_id, "sprinkle", "dongyuan-g1", now=T0 + 5 * MIN,
                                  person="wang-fang")
    t = change.transition
    assert (t.action, t.plan_step, t.actor, t.person, t.person_unit, t.at, t.state) == (
        "plan_step", "sprinkle", "dongyuan-g1", "wang-fang", "dongyuan-g1", T0 + 5 * MIN,
        "opened")
    assert t.note == "督促工地洒水、覆盖裸土"  # the step's text, for the record
    done = change.alert.alert.plan_done
    assert [(d.step, d.at, d.by, d.person) for d in done] == [
        ("sprinkle", T0 + 5 * MIN, "dongyuan-g1", "wang-fang")]
    assert change.alert.alert.last_action == "plan_step"
    before = await desk.ledger.count()
    with pytest.raises(AlreadyTicked):
        await desk.tick_plan(alert_id, "sprinkle", "dongyuan", now=T0 + 6 * MIN)
    with pytest.raises(NoSuchStep, match="no plan step 'nap'; its plan's steps: sprinkle, "
                       "recheck, enforce"):
        await desk.tick_plan(alert_id, "nap", "dongyuan", now=T0 + 6 * MIN)
    with pytest.raises(OutsideSubtree):
        await desk.tick_plan(alert_id, "recheck", "shenjing-g1", now=T0 + 6 * MIN)
    with pytest.raises(BadAction, match="tick_plan"):
        await desk.act(alert_id, "plan_step", "dongyuan", now=T0 + 6 * MIN)
    assert await desk.ledger.count() == before
    await desk.act(alert_id, "false_alarm", "dongyuan-g1", now=T0 + 7 * MIN)
    with pytest.raises(IllegalTransition, match="plan_step needs opened"):
        await desk.tick_plan(alert_id, "recheck", "dongyuan", now=T0 + 8 * MIN)


async def test_a_restart_and_a_snapshot_rebuild_ticks_and_dispatches(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    ev = Events()
    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        smoke = await desk.on_event(ev(cfg, "dasha-dong-g3-smoke-1"), T0)
        assert smoke.alert is not None
        await desk.tick_plan(smoke.alert.alert_id, "call", "dasha-dong-g3", now=T0 + MIN)
        await desk.tick(T0 + 60 * MIN)  # the response deadline passes: A, nobody new to send
        before = {s.alert_id: s for s in desk.alerts()}
        assert await desk.write_snapshot()
    for snapshot in (False, True):
        async with desk_stores.open() as store:
            again = Desk(cfg, Ledger(store))
            await again.start(snapshot=snapshot)
            assert (again.restored_from is not None) == snapshot
            assert {s.alert_id: s for s in again.alerts()} == before
            state = again.get("AL000001")
            assert [d.step for d in state.alert.plan_done] == ["call"]
            assert tuple(c.department for c in state.dept_calls) == ("fire_safety", "police")


# --------------------------------------------------------------------------- over HTTP


@dataclass
class Api:
    desk: Desk
    url: str
    tokens: dict[str, str]
    alert: str
    clock: list[int]

    async def post(self, path: str, who: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url) as client:
            return await client.post(path, headers={
                "Authorization": f"Bearer {self.tokens[who]}"}, **kw)

    async def get(self, path: str, who: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url) as client:
            return await client.get(path, headers={
                "Authorization": f"Bearer {self.tokens[who]}"})


@pytest.fixture
async def api(cfg: ConfigSet, tmp_path: Path) -> AsyncIterator[Api]:
    from gridcall.hub.store import Store

    async with Store(tmp_path / "hub.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        out = await desk.on_event(Events()(cfg, "dasha-dong-g2-smoke-1"), T0)  # B
        assert out.alert is not None
        path = tmp_path / "tokens.json"
        tokens = {u: issue(path, u, known_units=cfg.units)
                  for u in ("dasha-dong-g2", "dasha", "dongyuan")}
        tokens["person"] = issue(path, "dasha", known_units=cfg.units, person="zhou-qiang")
        clock = [T0 + MIN]
        app = create_app(desk, TokenFile(path), clock=lambda: clock[0])
        async with ApiServer(app, "127.0.0.1", 0) as server:
            yield Api(desk, server.url, tokens, out.alert.alert_id, clock)


async def test_a_unit_ticks_a_step_over_http_and_a_repeat_writes_nothing(api: Api) -> None:
    got = await api.get(f"/v1/alerts/{api.alert}", "dasha-dong-g2")
    assert got.status_code == 200, got.text
    alert = got.json()["alert"]
    assert [s["id"] for s in alert["plan"]["steps"]] == [
        "call", "neighbour", "visit", "extinguish", "watch"]
    assert alert["plan"]["contacts"][0] == {"name": "火警", "phone": "119", "department": "",
                                            "note": ""}
    assert (alert["state"], alert["plan_done"]) == ("dispatched", [])
    sent = got.json()["history"][1]
    assert (sent["action"], sent["actor"]) == ("dispatch", "hub")
    assert sent["reason"] == "plan (一事一预案) at tier B: fire_safety"

    resp = await api.post(f"/v1/alerts/{api.alert}/plan/call", "person",
                          json={"note": "住户接听：厨房烧焦，无明火"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["alert"]["plan_done"] == [
        {"step": "call", "at": T0 + MIN, "by": "dasha", "person": "zhou-qiang"}]
    last = body["history"][-1]
    assert (last["action"], last["plan_step"], last["person"], last["note"]) == (
        "plan_step", "call", "zhou-qiang", "住户接听：厨房烧焦，无明火")
    count = await api.desk.ledger.count()
    again = await api.post(f"/v1/alerts/{api.alert}/plan/call", "dasha-dong-g2")
    assert again.status_code == 200, again.text
    assert again.json()["alert"]["plan_done"] == body["alert"]["plan_done"]
    assert await api.desk.ledger.count() == count


@pytest.mark.parametrize(("who", "path", "status", "said"), [
    ("dongyuan", "/v1/alerts/{a}/plan/call", 403, "outside your area"),
    ("dasha", "/v1/alerts/{a}/plan/nap", 404, "has no plan step 'nap'"),
    ("dasha", "/v1/alerts/AL999999/plan/call", 404, "no alert 'AL999999'"),
    ("dasha", "/v1/alerts/{a}/plan/bad%20id", 422, ""),
])
async def test_a_tick_is_refused_cleanly_and_writes_nothing(
        api: Api, who: str, path: str, status: int, said: str) -> None:
    count = await api.desk.ledger.count()
    resp = await api.post(path.format(a=api.alert), who)
    assert resp.status_code == status, resp.text
    assert said in str(resp.json()["detail"])
    assert await api.desk.ledger.count() == count


async def test_a_closed_alert_takes_no_tick(api: Api) -> None:
    resp = await api.post(f"/v1/alerts/{api.alert}/false-alarm", "dasha")
    assert resp.status_code == 200, resp.text
    count = await api.desk.ledger.count()
    resp = await api.post(f"/v1/alerts/{api.alert}/plan/call", "dasha")
    assert resp.status_code == 409, resp.text
    assert "plan_step needs opened" in resp.json()["detail"]
    assert await api.desk.ledger.count() == count


# --------------------------------------------------------------------------- scenarios


def test_a_scenario_ticks_plan_steps_and_names_a_wrong_one(tmp_path: Path) -> None:
    from gridcall.simulators.scenario import ScenarioError, load_scenario

    text = """\
config: huangpu
duration: 1h
sensors: [dasha-dong-g3-smoke-1]
timeline:
  - at: "00:20"
    action: {{unit: dasha-dong-g3, do: plan_step, step: {step}, matter: FIRE-SMOKE}}
"""
    path = tmp_path / "s.yaml"
    path.write_text(text.format(step="call"), encoding="utf-8")
    (action,) = load_scenario(path).actions
    assert (action.do, action.step, action.matter) == ("plan_step", "call", "FIRE-SMOKE")
    path.write_text(text.format(step="nap"), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert [str(p) for p in caught.value.problems] == [
        "s.yaml:6: timeline[0].action.step: unknown step of FIRE-SMOKE's plan 'nap'"]
    path.write_text(text.replace(", step: {step}", "").format(), encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"'step' .* goes with do: plan_step"):
        load_scenario(path)


async def test_a_simulated_unit_ticks_a_step_and_the_timeline_says_so(
        sim_district: Any) -> None:
    district = await sim_district("huangpu", sensors=["dasha-dong-g3-smoke-1"])
    district.inject("dasha-dong-g3-smoke-1", shape="step", to="2x", lasts=600, at=60)
    # at a hospital, B; a critical reading +1: A. Either way the plan sends both
    alert = await district.expect_alert(matter="FIRE-SMOKE", within="5m")
    history = await district.hub.desk.history(alert.alert_id)
    assert [(t.action, t.actor, called(t)) for t in history[:2]] == [
        ("open", "hub", ()), ("dispatch", "hub", ("fire_safety", "police"))]
    await district.act("dasha-dong-g3", "plan_step", alert=alert.alert_id, step="call")
    await district.act("dasha-dong-g3", "plan_step", alert=alert.alert_id, step="call")
    texts = [e.text for e in district.timeline if e.kind in ("alert", "refused")]
    assert f"{alert.alert_id} FIRE-SMOKE plan step call done by dasha-dong-g3" in texts[-2]
    assert "ticked off already" in texts[-1]
