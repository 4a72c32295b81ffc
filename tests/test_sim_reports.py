"""Reports in the scenario language (``report:``, ``rate:``, ``action: {do: note}``): a
grid worker's report runs in ``gridcall sim run`` through the desk to an alert, a second
report joins it, the town answers, and the reporter's rating is a step; references the
config does not have are named with their key path when the scenario loads."""

from __future__ import annotations

import pytest

from gridcall.simulators.scenario import ScenarioError, scenario_from_data
from gridcall.simulators.sim import SimDistrict

MIN = 60 * 10**9
REPORT = {"unit": "dongyuan-g1", "person": "wang-fang", "matter": "MANHOLE-DISPLACED",
          "grid": "dongyuan-g1", "description": "井盖移位"}


async def test_a_report_runs_through_the_desk_to_a_rating(mqtt_url: str) -> None:
    scenario = scenario_from_data({
        "config": "huangpu", "duration": "30m", "warmup": "10m",
        "sensors": ["dongyuan-g1-pm25-1"],
        "timeline": [
            {"at": "00:02", "rate": {"unit": "dongyuan-g1", "rating": "satisfied"}},
            {"at": "00:03", "report": REPORT},
            {"at": "00:04", "report": {**REPORT, "unit": "dongyuan", "person": None,
                                       "description": "seen too"}},
            {"at": "00:05", "rate": {"report": "R000001", "rating": "satisfied"}},
            {"at": "00:06", "action": {"unit": "dasha", "do": "acknowledge",
                                       "matter": "MANHOLE-DISPLACED", "grid": "dongyuan-g1"}},
            {"at": "00:07", "action": {"unit": "dasha", "do": "arrive",
                                       "matter": "MANHOLE-DISPLACED"}},
            {"at": "00:08", "action": {"unit": "dasha", "do": "note", "note": "after photo",
                                       "matter": "MANHOLE-DISPLACED"}},
            {"at": "00:09", "action": {"unit": "dasha", "do": "resolve",
                                       "matter": "MANHOLE-DISPLACED"}},
            {"at": "00:10", "rate": {"unit": "dongyuan-g1", "rating": "basically_satisfied"}},
        ]})
    async with SimDistrict(scenario, broker_url=mqtt_url) as d:
        run = await d.run()
    (alert,) = [a for a in run.alerts.values() if a.matter == "MANHOLE-DISPLACED"]
    assert (alert.anomaly_kind, alert.state, alert.unit) == ("report", "resolved", "dasha")
    mine = [e for e in run.timeline if e.kind in ("report", "rate", "refused")]
    assert [(e.kind, e.action, e.actor) for e in mine] == [
        ("refused", "rate", "dongyuan-g1"), ("report", "report", "wang-fang"),
        ("report", "report", "dongyuan"), ("refused", "rate", "wang-fang"),
        ("rate", "rate", "wang-fang")]
    assert mine[1].text.startswith(f"report R000001 by wang-fang: MANHOLE-DISPLACED in "
                                   f"dongyuan-g1, opened {alert.alert_id}")
    assert f"joined as evidence {alert.alert_id}" in mine[2].text
    assert "once its alert is resolved" in mine[3].text
    steps = [(e.action, e.actor, round((e.offset_s or 0) / 60)) for e in run.timeline
             if e.kind == "alert" and e.alert_id == alert.alert_id
             and e.action != "sample"]  # the audits' draw of closings, not this test's
    # (the hub's dispatch: the plan calls urban management in at tier B as it opens)
    assert steps == [("open", "dongyuan-g1", 3), ("dispatch", "hub", 3),
                     ("evidence", "dongyuan", 4),
                     ("acknowledge", "dasha", 6), ("arrive", "dasha", 7),
                     ("note", "dasha", 8), ("resolve", "dasha", 9), ("rate", "dongyuan-g1", 10)]


def test_a_reports_references_are_checked_when_the_scenario_loads() -> None:
    with pytest.raises(ScenarioError) as refused:
        scenario_from_data({"config": "huangpu", "duration": "10m", "timeline": [
            {"at": "00:01", "report": {**REPORT, "matter": "MANHOLE"}},
            {"at": "00:02", "report": {**REPORT, "grid": "shenjing-g1"}},
            {"at": "00:03", "report": {**REPORT, "person": "nobody"}}]})
    text = str(refused.value)
    assert "timeline[0].report.matter: unknown matter 'MANHOLE'" in text
    assert "timeline[1].report.grid: shenjing-g1 is outside dongyuan-g1's area" in text
    assert "timeline[2].report.person: unknown person of roster.yaml 'nobody'" in text
    with pytest.raises(ScenarioError) as shape:
        scenario_from_data({"config": "huangpu", "duration": "10m", "timeline": [
            {"at": "00:04", "report": {"unit": "dongyuan", "description": "where?"}},
            {"at": "00:05", "rate": {"rating": "satisfied"}}]})
    text = str(shape.value)
    assert "timeline[0].report: say where: 'grid', or 'point'" in text
    assert "timeline[1].rate: say which report: 'report' (an id) or 'unit'" in text
