"""The departments' own steps (hub/desk/whistle.py, pure) as a table: for a call at each
stage, which step is legal and, if not, the reason; what each legal step records; and a
whistle anew only once a call is disposed of (the desk's choice, folded here)."""

from __future__ import annotations

import pytest

from gridcall.hub.desk.whistle import (
    DeptCall,
    Whistled,
    absorb,
    due_supervision,
    next_arrival,
    refusal,
)

T = 1_000
DEP = "fire_safety"
CALLED = DeptCall(department=DEP, whistled_at=T, whistled_by="dasha", report_by=T + 5,
                  arrive_by=T + 15, dispose_by=T + 100, on_duty="gao-jun")
STAGES: dict[str, DeptCall] = {}
_call = CALLED
STAGES["whistled"] = _call
for _action, _at in (("report_in", T + 3), ("dept_arrive", T + 12), ("dept_dispose", T + 40)):
    (_call,) = absorb((_call,), _action, at=_at, actor=DEP, person="gao-jun", department=DEP,
                      whistled=(), dispose_by=0)
    STAGES[_call.stage] = _call

TABLE: list[tuple[str, str, str | None]] = [
    # stage,        action,          refusal (None: legal)
    ("whistled",    "report_in",     None),
    ("whistled",    "dept_arrive",   "fire_safety must report in before it arrives"),
    ("whistled",    "dept_dispose",  "fire_safety must arrive before it reports disposal"),
    ("whistled",    "supervise",     None),
    ("reported_in", "report_in",     "fire_safety already reported in"),
    ("reported_in", "dept_arrive",   None),
    ("reported_in", "dept_dispose",  "fire_safety must arrive before it reports disposal"),
    ("reported_in", "supervise",     None),
    ("arrived",     "report_in",     "fire_safety already reported in"),
    ("arrived",     "dept_arrive",   "fire_safety already arrived"),
    ("arrived",     "dept_dispose",  None),
    ("arrived",     "supervise",     "fire_safety arrived: nothing to supervise"),
    ("disposed",    "report_in",     "fire_safety already reported in"),
    ("disposed",    "dept_arrive",   "fire_safety already arrived"),
    ("disposed",    "dept_dispose",  "fire_safety already reported disposal"),
    ("disposed",    "supervise",     "fire_safety arrived: nothing to supervise"),
]


def test_the_table_covers_every_stage_and_step() -> None:
    assert {(s, a) for s, a, _ in TABLE} == {
        (s, a) for s in ("whistled", "reported_in", "arrived", "disposed")
        for a in ("report_in", "dept_arrive", "dept_dispose", "supervise")}
    assert set(STAGES) == {"whistled", "reported_in", "arrived", "disposed"}


@pytest.mark.parametrize(("stage", "action", "why"), TABLE)
def test_each_step_at_each_stage(stage: str, action: str, why: str | None) -> None:
    assert refusal((STAGES[stage],), action, DEP) == why


def test_a_department_not_called_and_an_unknown_step_are_refused() -> None:
    assert refusal((CALLED,), "report_in", "police") == (
        "police was not dispatched to it (no whistle to answer)")
    assert refusal((), "supervise", DEP) == (
        "fire_safety was not dispatched to it (no whistle to answer)")
    assert refusal((CALLED,), "resolve", DEP) == "resolve is not a department's step"
    supervised = absorb((CALLED,), "supervise", at=T + 15, actor="hub", person="",
                        department=DEP, whistled=(), dispose_by=0, on_duty="lin-tao")
    assert refusal(supervised, "supervise", DEP) == (
        "fire_safety's missed arrival is already supervised")
    assert refusal(supervised, "report_in", DEP) is None  # late, but it still answers


def test_each_step_records_its_time_and_person() -> None:
    done = STAGES["disposed"]
    assert (done.reported_at, done.arrived_at, done.disposed_at) == (T + 3, T + 12, T + 40)
    assert (done.reported_person, done.arrived_person, done.disposed_person) == (
        "gao-jun", "gao-jun", "gao-jun")
    assert (done.whistled_at, done.report_by, done.arrive_by, done.on_duty) == (
        T, T + 5, T + 15, "gao-jun")  # the whistle's own, unchanged


def test_a_dispatch_whistles_and_a_fresh_whistle_replaces_a_disposed_call() -> None:
    (first,) = absorb((), "dispatch", at=T, actor="dasha", person="", department="",
                      whistled=(Whistled(DEP, T + 5, T + 15, "gao-jun"),), dispose_by=T + 100)
    assert first == CALLED
    other = absorb((STAGES["disposed"],), "dispatch", at=T + 200, actor="huangpu", person="",
                   department="", whistled=(Whistled("police", T + 215, T + 230, "ma-li"),
                                            Whistled(DEP, T + 205, T + 215, "xu-bin")),
                   dispose_by=T + 300)
    assert [(c.department, c.stage, c.whistled_at, c.on_duty) for c in other] == [
        ("police", "whistled", T + 200, "ma-li"), (DEP, "whistled", T + 200, "xu-bin")]
    # other steps leave the calls as they are
    assert absorb(other, "evidence", at=T + 300, actor="hub", person="", department="",
                  whistled=(), dispose_by=0) is other


def test_the_promised_arrivals_awaited_and_due() -> None:
    calls = (CALLED, STAGES["reported_in"], STAGES["arrived"])
    assert next_arrival(calls) == T + 15
    assert due_supervision(calls, T + 14) == []
    assert due_supervision(calls, T + 15) == [CALLED, STAGES["reported_in"]]
    assert next_arrival((STAGES["arrived"],)) is None
