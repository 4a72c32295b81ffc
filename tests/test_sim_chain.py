"""Issue 18's "Done when", first item: one scenario runs the whole chain in the simulated
district (simulators/scenarios/every-call-answered.yaml): a grid worker's report, a
sensor anomaly and a department's system's event, each through dispatch, the
department's report-in, arrival and disposal (吹哨报到), closure control, the district's
audit and the reporter's rating (满意率). Every ledger step's minute and actor (unit,
department, person) and whom it was sent to are checked against a golden file.

``GRIDCALL_GOLDEN_UPDATE=1 pytest tests/test_sim_chain.py`` rewrites the golden file from
the run; read the diff before committing it."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from gridcall.cli import app
from gridcall.config import ConfigSet
from gridcall.hub.desk.lifecycle import Transition
from gridcall.hub.desk.whistle import Whistled
from gridcall.simulators.scenario import load_scenario
from gridcall.simulators.sim import run_scenario
from gridcall.simulators.steps import step_rows
from gridcall.wire.clock import NS
from gridcall.wire.messages import Deadlines

GOLDEN = Path(__file__).parent / "data" / "sim" / "every-call-answered.steps"


async def test_every_call_is_answered_by_whom_and_when() -> None:
    run = await run_scenario("every-call-answered")
    assert not [e for e in run.timeline if e.kind == "refused"], run.describe()
    lines = [r.line() for r in run.steps()]
    if os.environ.get("GRIDCALL_GOLDEN_UPDATE") == "1":
        GOLDEN.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8").splitlines()
    assert lines == expected, run.describe()

    # the three sources of a call, each closed, audited and rated
    rows = run.steps()
    opened = {r.alert_id: r.via for r in rows if r.step == "open"}
    assert sorted(opened.values()) == ["dongyuan-g3-gas-1", "report",
                                       "system fire-alarm-platform"]
    for alert_id in opened:
        mine = [r for r in rows if r.alert_id == alert_id]
        steps = {r.step.split()[0] for r in mine}
        assert {"dispatch", "plan_step", "report_in", "dept_arrive", "dept_dispose",
                "resolve", "sample", "audit", "rate"} <= steps, (alert_id, steps)
        # the plan's departments are called by the hub as the alert opens (tier B, A)
        called = next(r for r in mine if r.step == "dispatch")
        assert (called.unit, called.minute) == ("hub", mine[0].minute), called
        assert all(r.person for r in mine if r.step in ("report_in", "dept_arrive",
                                                         "dept_dispose")), alert_id
        assert mine[-1].step.startswith("rate "), alert_id
        assert mine[-1].state == "resolved"


def test_step_rows_name_each_actor(cfg: ConfigSet) -> None:
    """The rows are pure over the ledger: a department's step is the department's and
    its person's, not the acting unit's; a dispatch names whom it called."""
    d = Deadlines(response=0, arrival=0, disposal=0)
    dispatch = Transition("AL000001", 3, "dispatch", 60 * NS, "dasha", "", "acknowledged",
                          "B", "dasha", "town", ("huangpu", "dasha"), d, (),
                          person="zhou-qiang",
                          whistled=(Whistled("urban_mgmt", 0, 0, on_duty="qian-lei"),))
    report_in = replace(dispatch, n=4, action="report_in", at=120 * NS, actor="urban_mgmt",
                        person="qian-lei", department="urban_mgmt", whistled=())
    a, b = step_rows([dispatch, report_in], cfg, 0)
    assert (a.unit, a.department, a.person, a.told) == ("dasha", "urban_mgmt",
                                                          "zhou-qiang", "qian-lei")
    assert (b.unit, b.department, b.person, b.minute) == ("", "urban_mgmt", "qian-lei", 2)
    assert "report_in by urban_mgmt/qian-lei" in b.line()
    assert "dispatch by dasha/zhou-qiang calling urban_mgmt -> qian-lei" in a.line()


def test_hub_report_over_the_chain_shows_every_rate(tmp_path: Path) -> None:
    """Issue 18's "Done when", second item, over the scenario's own ledger: gridcall hub
    report --period 7d shows units, departments, matters and tiers with response,
    arrival, disposal, resolution, audit-pass and satisfaction rates. Each figure below is
    read off the scenario (every-call-answered.yaml), not off a run."""
    scenario = load_scenario("every-call-answered")
    store = tmp_path / "hub.db"
    run = asyncio.run(run_scenario(scenario, store_path=store))
    assert not [e for e in run.timeline if e.kind == "refused"], run.describe()
    until = datetime.fromtimestamp(scenario.start_ns / NS + scenario.duration_s,
                                   UTC).isoformat()
    runner = CliRunner()
    args = ["hub", "report", "--period", "7d", "--store", str(store), "--until", until]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    for heading in ("units", "departments", "matters", "tiers", "audits", "satisfied"):
        assert heading in shown.stdout
    as_csv = runner.invoke(app, [*args, "--csv"])
    assert as_csv.exit_code == 0, as_csv.output
    rows = {(r["group"], r["key"]): r for r in csv.DictReader(io.StringIO(as_csv.stdout))}
    # (police and market supervision: the gas and smoke plans call them in at tier A)
    assert set(rows) == {("unit", "huangpu"), ("unit", "dasha"),
                         ("department", "fire_safety"), ("department", "urban_mgmt"),
                         ("department", "police"), ("department", "market_supervision"),
                         ("matter", "GAS-LEAK"), ("matter", "FIRE-SMOKE"),
                         ("matter", "MANHOLE-DISPLACED"), ("tier", "A"), ("tier", "B")}

    def rates(key: tuple[str, str]) -> tuple[float, ...]:
        r = rows[key]
        return tuple(float(r[f"{name}_rate"]) for name in (
            "response_timeliness", "arrival_timeliness", "disposal_timeliness",
            "resolution", "audit_pass", "satisfaction"))

    # every step was taken in time and every call resolved; the audits and ratings differ:
    # the smoke alarm's first closing failed its audit (its second passed), its reporter
    # was dissatisfied (不满意); the gas leak's reporter basically satisfied (基本满意)
    assert rates(("unit", "dasha")) == (1, 1, 1, 1, 1, 1)          # the manhole
    assert rates(("unit", "huangpu")) == (1, 1, 1, 1, 2 / 3, 0.5)  # gas, smoke twice
    assert rates(("department", "urban_mgmt")) == (1, 1, 1, 1, 1, 1)
    # fire safety's two calls: the gas leak's closing passed, the smoke alarm's failed
    assert rates(("department", "fire_safety")) == (1, 1, 1, 1, 0.5, 0.5)
    assert rates(("matter", "FIRE-SMOKE")) == (1, 1, 1, 1, 0.5, 0)
    assert rates(("matter", "GAS-LEAK")) == (1, 1, 1, 1, 1, 1)
    assert rates(("tier", "B")) == (1, 1, 1, 1, 1, 1)
    assert (rows[("department", "fire_safety")]["audits"],
            rows[("department", "fire_safety")]["rated"]) == ("2", "2")
