"""Issue 18's "Done when", first item: one scenario runs the whole chain in the simulated
district (simulators/scenarios/every-call-answered.yaml): a grid worker's report, a
sensor anomaly and a department's system's event, each through dispatch, the
department's report-in, arrival and disposal (吹哨报到), closure control, the district's
audit and the reporter's rating (满意率). Every ledger step's minute and actor (unit,
department, person) and whom it was sent to are checked against a golden file.

``GRIDCALL_GOLDEN_UPDATE=1 pytest tests/test_sim_chain.py`` rewrites the golden file from
the run; read the diff before committing it."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from gridcall.config import ConfigSet
from gridcall.hub.desk.lifecycle import Transition
from gridcall.hub.desk.whistle import Whistled
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
        assert {"dispatch", "report_in", "dept_arrive", "dept_dispose", "resolve",
                "audit", "rate"} <= steps, (alert_id, steps)
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
