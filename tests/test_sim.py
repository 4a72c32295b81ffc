"""The simulated district: real agents, detectors and hub on one simulated clock.

Same scenario, same result; a week passes in seconds; an agent that drops off has its
last will published and its outbox delivered when it is back; a unit's action that the
desk refuses is on the record, not lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridcall.simulators.scenario import load_scenario, scenario_from_data
from gridcall.simulators.sim import ScenarioRun, SimDistrict, run_scenario
from tests.private_servers import PrivateMosquitto


def steps(run: ScenarioRun) -> list[tuple[str, str, str, str]]:
    return [(t.alert_id, t.action, t.tier, t.unit) for t in run.transitions]


async def test_the_same_scenario_gives_the_same_timeline_every_run() -> None:
    first = await run_scenario("gas-leak-spreads")
    second = await run_scenario("gas-leak-spreads")
    assert first.timeline == second.timeline
    assert first.transitions == second.transitions
    assert first.alerts == second.alerts
    # and it is the story: a leak, its spread, the acknowledgement
    leak, spread = first.injections
    opened = {e.grid: e for e in first.timeline if e.action == "open"}
    assert set(opened) == {"dongyuan-g3", "huangpu-cun-g3"}
    start = first.scenario.start_ns / 1e9
    assert leak.start - start <= opened["dongyuan-g3"].offset_s < spread.start - start
    assert spread.start - start <= opened["huangpu-cun-g3"].offset_s
    acks = [e for e in first.timeline if e.action == "acknowledge"]
    assert [(e.offset_s, e.actor, e.grid) for e in acks] == [(1800.0, "dongyuan-g3",
                                                              "dongyuan-g3")]
    assert any(e.kind == "deadline" and e.action == "arrival" for e in first.timeline), (
        first.describe())


async def test_a_different_seed_gives_a_different_but_repeatable_run() -> None:
    scenario = load_scenario("gas-leak-spreads")
    async with SimDistrict(scenario, seed=99) as d:
        await d.advance(3600)
        a = d.timeline
    async with SimDistrict(scenario, seed=99) as d:
        await d.advance(3600)
        assert d.timeline == a
    assert d.samples > 0


async def test_a_week_runs_to_its_end_with_the_smoke_alarm_answered() -> None:
    run = await run_scenario("quiet-week")
    assert run.samples == 7 * 86400 // 2 + 7 * 86400 // 5  # smoke every 2 s, leak 5 s
    (smoke,) = run.injections
    start = run.scenario.start_ns / 1e9
    answered = [e for e in run.timeline if e.alert_id and e.actor == "dongyuan-g1"]
    assert [(e.action, e.offset_s) for e in answered] == [
        ("acknowledge", 67 * 3600 + 33 * 60), ("arrive", 67 * 3600 + 40 * 60),
        ("request_close", 68 * 3600 + 10 * 60)]  # tier A: the district approves (below)
    approved = [e for e in run.timeline if e.actor == "huangpu" and e.action == "resolve"]
    assert [e.offset_s for e in approved] == [68 * 3600 + 20 * 60]
    alert = answered[-1].alert_id
    seen = [e for e in run.timeline if e.alert_id == alert and e.sensor == smoke.sensor
            and smoke.start - start <= e.offset_s < smoke.start - start + 60]
    assert seen, f"the smoke at +67:30 is not on the alert within a minute:\n{run.describe()}"
    assert run.alerts[alert].state == "resolved"


async def test_an_agent_that_drops_off_leaves_its_last_will_and_sends_its_outbox_after(
        ) -> None:
    scenario = scenario_from_data({
        "config": "huangpu", "duration": "1h", "warmup": "2h",
        "sensors": ["dongyuan-g3-gas-1"],
        "timeline": [
            {"at": "00:10", "agent_offline": {"agent": "edge-dongyuan", "for": "10m"}},
            {"at": "00:12", "anomaly": {"sensor": "dongyuan-g3-gas-1", "shape": "step",
                                        "to": "2x", "lasts": "5m"}}]})
    async with SimDistrict(scenario) as d:
        await d.advance(11 * 60)
        status = d.hub.agents["edge-dongyuan"]
        assert (status.state, status.ts) == ("offline", 0)  # the broker's last will
        await d.advance(8 * 60)
        # the outage itself is a call (EDGE-OFFLINE, contracts.md section 1): one alert
        # listing each grid the agent's sensors are in; nothing else can arrive while it
        # is cut off
        (outage,) = d.alerts.values()
        assert outage.matter == "EDGE-OFFLINE"
        assert outage.grids == list(dict.fromkeys(
            s.grid for s in d.config.agents["edge-dongyuan"].sensors))
        await d.advance(2 * 60)
        (alert,) = [a for a in d.alerts.values() if a.matter != "EDGE-OFFLINE"]
        assert alert.matter == "GAS-LEAK"
        assert alert.opened_at == scenario.start_ns + 20 * 60 * 10**9  # when it came back
        assert alert.detected_at < alert.opened_at  # detected during the outage
        assert d.hub.agents["edge-dongyuan"].state == "online"
        kinds = [e.kind for e in d.timeline]
        assert kinds.index("agent_offline") < kinds.index("anomaly") < kinds.index(
            "agent_online")


async def test_an_action_the_desk_refuses_is_in_the_timeline() -> None:
    scenario = scenario_from_data({
        "config": "huangpu", "duration": "1h", "warmup": "1h",
        "sensors": ["dongyuan-g3-gas-1"],
        "timeline": [
            {"at": "00:01", "action": {"unit": "dongyuan-g3", "do": "acknowledge",
                                       "matter": "GAS-LEAK"}},
            {"at": "00:10", "anomaly": {"sensor": "dongyuan-g3-gas-1", "shape": "step",
                                        "to": "2x", "lasts": "5m"}},
            {"at": "00:20", "action": {"unit": "dongyuan-g3", "do": "resolve",
                                       "matter": "GAS-LEAK"}},
            {"at": "00:21", "action": {"unit": "dongyuan-g1", "do": "acknowledge",
                                       "matter": "GAS-LEAK"}}]})
    run = await run_scenario(scenario)
    refused = [e.text for e in run.timeline if e.kind == "refused"]
    assert len(refused) == 3, run.describe()
    assert "no such alert" in refused[0]
    # resolve before anyone arrived (the gas plan's departments were dispatched at A)
    assert "is dispatched; resolve needs on_site" in refused[1]
    assert "may not act on" in refused[2]  # another grid's alert


async def test_a_real_broker_gives_the_same_timeline_as_the_embedded_one(
        tmp_path: Path) -> None:
    embedded = await run_scenario("gas-leak-spreads")
    with PrivateMosquitto(tmp_path / "broker") as broker:
        real = await run_scenario("gas-leak-spreads", broker_url=broker.url)
    assert real.timeline == embedded.timeline


async def test_injecting_and_advancing_from_code() -> None:
    async with SimDistrict("gas-leak-spreads", warmup_s=3600) as d:
        d.inject("dongyuan-g3-gas-2", shape="step", to=60.0, lasts=300, at=120)
        await d.advance(180)
        (alert,) = d.alerts.values()
        assert (alert.sensor, alert.matter) == ("dongyuan-g3-gas-2", "GAS-LEAK")
        assert d.truth[-1].sensor == "dongyuan-g3-gas-2"
        with pytest.raises(ValueError, match="not simulated here"):
            d.inject("dongyuan-g1-smoke-1", to=1.0)


async def test_a_broker_that_is_not_there_is_named_instead_of_hanging() -> None:
    from gridcall.simulators.embedded import free_port
    from gridcall.simulators.sim import SimStalled

    url = f"mqtt://127.0.0.1:{free_port()}"
    with pytest.raises(SimStalled, match=rf"waited 1s \(real\) for the hub to subscribe at "
                                         rf"{url}"):
        async with SimDistrict("gas-leak-spreads", broker_url=url, connect_timeout=1):
            pass


async def test_a_paced_run_tells_its_progress_and_gives_the_same_timeline() -> None:
    seen: list[tuple[float, float]] = []
    fast = await run_scenario("gas-leak-spreads")
    paced = await run_scenario("gas-leak-spreads", speed=7200,
                               progress=lambda done, total: seen.append((done, total)))
    assert paced.timeline == fast.timeline
    assert seen[-1] == (7200.0, 7200.0)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert len(seen) > 100  # about every 1/200 of the run


async def test_readings_can_be_stored_too() -> None:
    async with SimDistrict("gas-leak-spreads", store_readings=True, warmup_s=0) as d:
        await d.advance("30m")
        taken = d.samples
    stored = d.hub.ingest.counters.readings_stored
    sent = sum(a.counters.readings_sent for a in d.agents.values())
    # the only readings not sent are the streams' lost ones (None, about 1 in 2000)
    reasons = {r for a in d.agents.values() for r, n in a.counters.skipped.items() if n}
    assert reasons <= {"no_value"}
    lost = sum(a.counters.skipped["no_value"] for a in d.agents.values())
    assert stored == sent == taken - lost > 0


async def test_departments_report_in_act_and_a_missed_arrival_is_supervised(
        tmp_path: Path) -> None:
    """吹哨报到 in the scenario language: department steps with their person, and the
    district's 督办 of the squad that was not on site by its promise, at that instant.
    (On a private mosquitto: the run is the embedded broker's, as test_a_real_broker_...
    shows, and mosquitto speaks the MQTT v5 the agents and the desk now use.)"""
    with PrivateMosquitto(tmp_path / "broker") as broker:
        run = await run_scenario("departments-whistle", broker_url=broker.url)
    steps = {(t.action, t.department, t.actor): t for t in run.transitions
             if t.department or t.action == "dispatch"}
    start = load_scenario("departments-whistle").start_ns
    at = {key[:2]: (t.at - start) // 60_000_000_000 for key, t in steps.items()}
    # at tier A the gas plan called its four departments as the alert opened (1:42:24);
    # the three that never came are supervised 30 minutes later, like the squad
    assert at == {("dispatch", ""): 105, ("report_in", "fire_safety"): 107,
                  ("report_in", "urban_mgmt-jiulong"): 110,
                  ("dept_arrive", "fire_safety"): 116,
                  ("supervise", "urban_mgmt-jiulong"): 135,  # whistled 1:45 + 30m
                  ("supervise", "police"): 132, ("supervise", "urban_mgmt"): 132,
                  ("supervise", "market_supervision"): 132,
                  ("dept_dispose", "fire_safety"): 140,
                  ("dept_arrive", "urban_mgmt-jiulong"): 145}, run.describe()
    assert [w.department for w in steps[("dispatch", "", "hub")].whistled] == [
        "fire_safety", "police", "urban_mgmt", "market_supervision"]
    # the town's own dispatch calls the squad; fire_safety is on its way already
    assert [w.department for w in steps[("dispatch", "", "jiulong")].whistled] == [
        "urban_mgmt-jiulong"]
    assert steps[("dept_dispose", "fire_safety", "fire_safety")].person == "xu-bin"
    assert steps[("supervise", "urban_mgmt-jiulong", "hub")].on_duty == "lin-tao"
    texts = [e.text for e in run.timeline if e.kind == "alert"]
    assert any("urban_mgmt-jiulong reported in (he-jian of urban_mgmt-jiulong)" in x
               for x in texts), run.describe()
    assert any("督办: urban_mgmt-jiulong missed its promised arrival" in x for x in texts)
    assert not [e for e in run.timeline if e.kind == "refused"], run.describe()


async def test_the_testing_kit_expects_a_departments_steps(tmp_path: Path) -> None:
    """gridcall.testing: expect_department waits for a department's own step, or for the
    district's 督办 of it, and fails with the timeline when it does not come."""
    from gridcall.testing.district import District, ExpectationFailed

    with PrivateMosquitto(tmp_path / "broker") as broker:
        async with District("departments-whistle", broker_url=broker.url) as d:
            alert = await d.expect_department("fire_safety", step="report_in", by="01:50",
                                              matter="GAS-LEAK")
            assert alert.matter == "GAS-LEAK"
            await d.expect_department("urban_mgmt-jiulong", step="supervise", by="02:20")
            # (the gas plan's departments that never came are supervised before it, at
            # 2:12:24: the plan called them as the alert opened)
            entry = next(e for e in d.timeline if e.action == "supervise"
                         and e.department == "urban_mgmt-jiulong")
            assert entry.offset_s == 135 * 60
            with pytest.raises(ExpectationFailed, match="expected fire_safety to supervise"):
                await d.expect_department("fire_safety", step="supervise", by="03:00")
            with pytest.raises(ValueError, match="unknown department 'fire'"):
                await d.expect_department("fire", by="03:00")
