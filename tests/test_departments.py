"""Departments as actors (吹哨报到) on the injected clock: a dispatch whistles departments
(each with its person on duty and its promised arrival), each reports in, arrives and
reports disposal with its person; a missed arrival is supervised by the district (督办)
at its own instant, once; refusals write nothing; a restart, from the ledger or from a
snapshot, gives the same dept_calls and the same supervision. On both desk stores."""

from __future__ import annotations

import pytest

from gridcall.config import ConfigSet
from gridcall.hub.desk import whistle
from gridcall.hub.desk.desk import (
    BadAction,
    Change,
    Desk,
    OutsideArea,
    Unchanged,
    UnknownDepartment,
)
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import IllegalTransition
from gridcall.wire import AnomalyEvent
from tests.desk_stores import DeskStores

T0 = 1_800_000_000_000_000_000  # Fri 2027-01-15 16:00 in Asia/Shanghai
S = 10**9
MIN = 60 * S
NOISE = "dasha-dong-g1-noise-1"  # NOISE-NUISANCE in town dasha: urban_mgmt leads, police


def event(seq: int = 1) -> AnomalyEvent:
    return AnomalyEvent(agent="edge-dasha-dong", seq=seq, sensor=NOISE, kind="out_of_limits",
                        severity="major", score=0.9, value=80.0, ts=T0, phase="start")


def call(desk: Desk, department: str) -> whistle.DeptCall:
    found = whistle.find(desk.get("AL000001").dept_calls, department)
    if found is None:
        raise LookupError(f"{department} has no call on AL000001")
    return found


async def test_whistle_report_in_arrive_and_dispose_each_with_its_person(desk: Desk) -> None:
    await desk.on_event(event(), T0)
    sent = await desk.act("AL000001", "dispatch", "dasha", now=T0 + 2 * MIN,
                          departments=["urban_mgmt", "police-dasha"])
    # each department is called with its own deadlines (topology.yaml) and the person on
    # duty in its own roster (roster.yaml), whom the call is sent to
    assert sent.transition.whistled == (
        whistle.Whistled("urban_mgmt", T0 + 32 * MIN, T0 + 32 * MIN, "qian-lei"),
        whistle.Whistled("police-dasha", T0 + 17 * MIN, T0 + 17 * MIN, "ma-li"))
    assert sent.alert.state == "dispatched"

    r = await desk.department_act("AL000001", "report_in", "urban_mgmt", now=T0 + 5 * MIN,
                                  person="qian-lei", note="squad on its way")
    assert (r.transition.actor, r.transition.department, r.transition.person,
            r.transition.person_unit) == ("urban_mgmt", "urban_mgmt", "qian-lei",
                                          "urban_mgmt")
    assert r.alert.state == "dispatched"  # the unit's own state is not the department's
    assert r.alert.alert.last_action == "report_in"
    await desk.department_act("AL000001", "dept_arrive", "urban_mgmt", now=T0 + 20 * MIN,
                              person="qian-lei")
    await desk.department_act("AL000001", "dept_dispose", "urban_mgmt", now=T0 + 50 * MIN,
                              person="qian-lei", note="site sealed until 06:00")
    um = call(desk, "urban_mgmt")
    assert (um.stage, um.whistled_at, um.reported_at, um.arrived_at, um.disposed_at) == (
        "disposed", T0 + 2 * MIN, T0 + 5 * MIN, T0 + 20 * MIN, T0 + 50 * MIN)
    assert (um.whistled_by, um.reported_person, um.disposed_person) == (
        "dasha", "qian-lei", "qian-lei")
    assert um.supervised_at is None  # it arrived in time: nothing to supervise


async def test_a_missed_arrival_is_supervised_by_the_district_at_its_instant_once(
        desk: Desk) -> None:
    heard: list[Change] = []

    async def hook(change: Change) -> None:
        heard.append(change)
    desk.add_hook(hook)
    await desk.on_event(event(), T0)
    await desk.act("AL000001", "dispatch", "dasha", now=T0 + 2 * MIN,
                   departments=["urban_mgmt", "police-dasha"])
    await desk.department_act("AL000001", "report_in", "police-dasha", now=T0 + 6 * MIN,
                              person="ma-li")
    await desk.department_act("AL000001", "report_in", "urban_mgmt", now=T0 + 7 * MIN,
                              person="qian-lei")
    # police-dasha's reminder before its promised arrival (+17), then the promise itself
    assert desk.next_deadline() == T0 + 12 * MIN
    assert desk.arrival_reminders.next() == T0 + 12 * MIN
    heard.clear()
    fired = [c for c in await desk.tick(T0 + 60 * MIN)  # looked at late: each at its own
             if c.transition.action == "supervise"]  # instant (the unit's escalations too)
    assert [(c.transition.action, c.transition.at - T0, c.transition.department,
             c.transition.actor, c.transition.on_duty) for c in fired] == [
        ("supervise", 17 * MIN, "police-dasha", "hub", "lin-tao"),
        ("supervise", 32 * MIN, "urban_mgmt", "hub", "lin-tao")]
    assert fired[0].transition.reason == (
        "督办: police-dasha promised to arrive by 2027-01-15 08:17:00 UTC and had not; "
        "supervised by district huangpu")
    assert [c.transition.department for c in heard if c.transition.action == "supervise"
            ] == ["police-dasha", "urban_mgmt"]
    assert call(desk, "police-dasha").supervised_at == T0 + 17 * MIN
    assert call(desk, "police-dasha").supervised_by == "lin-tao"
    assert [c for c in await desk.tick(T0 + 120 * MIN)
            if c.transition.action == "supervise"] == []  # once per call
    assert desk.counters.supervisions == 2
    # supervised, it still answers: arriving late is still arriving
    late = await desk.department_act("AL000001", "dept_arrive", "police-dasha",
                                     now=T0 + 125 * MIN, person="ma-li")
    assert call(desk, "police-dasha").arrived_at == T0 + 125 * MIN
    assert late.transition.department == "police-dasha"


async def test_a_closed_alert_supervises_nobody(desk: Desk) -> None:
    await desk.on_event(event(), T0)
    await desk.act("AL000001", "dispatch", "dasha", now=T0 + MIN, departments=["urban_mgmt"])
    await desk.act("AL000001", "false_alarm", "dasha", now=T0 + 10 * MIN, note="a drill")
    assert await desk.tick(T0 + 60 * MIN) == []
    assert desk.next_deadline() is None
    with pytest.raises(IllegalTransition, match="report_in needs opened or dispatched"):
        await desk.department_act("AL000001", "report_in", "urban_mgmt", now=T0 + 61 * MIN,
                                  person="qian-lei")


async def test_refusals_write_nothing(desk: Desk) -> None:
    await desk.on_event(event(), T0)
    await desk.act("AL000001", "dispatch", "dasha", now=T0 + MIN, departments=["urban_mgmt"])
    before = await desk.ledger.count()
    with pytest.raises(IllegalTransition, match="urban_mgmt must report in before it "
                       "arrives"):
        await desk.department_act("AL000001", "dept_arrive", "urban_mgmt", now=T0 + 2 * MIN,
                                  person="qian-lei")
    with pytest.raises(IllegalTransition, match="fire_safety was not dispatched to it"):
        await desk.department_act("AL000001", "report_in", "fire_safety", now=T0 + 2 * MIN,
                                  person="gao-jun")
    with pytest.raises(OutsideArea, match="department urban_mgmt-jiulong acts in jiulong "
                       "only; AL000001 is in huangpu/dasha/dasha-dong/dasha-dong-g1"):
        await desk.department_act("AL000001", "report_in", "urban_mgmt-jiulong",
                                  now=T0 + 2 * MIN, person="he-jian")
    with pytest.raises(BadAction, match="gao-jun is a person of fire_safety, not of "
                       "urban_mgmt"):
        await desk.department_act("AL000001", "report_in", "urban_mgmt", now=T0 + 2 * MIN,
                                  person="gao-jun")
    with pytest.raises(UnknownDepartment):
        await desk.department_act("AL000001", "report_in", "firemen", now=T0 + 2 * MIN)
    with pytest.raises(BadAction, match="is a department's step"):
        await desk.act("AL000001", "report_in", "dasha", now=T0 + 2 * MIN)
    with pytest.raises(BadAction, match="outside the area of urban_mgmt-jiulong "
                       r"\(acts in jiulong\)"):
        await desk.act("AL000001", "dispatch", "dasha", now=T0 + 2 * MIN,
                       departments=["urban_mgmt-jiulong"])
    with pytest.raises(Unchanged, match="urban_mgmt already dispatched"):  # under way
        await desk.act("AL000001", "dispatch", "dasha", now=T0 + 2 * MIN,
                       departments=["urban_mgmt"])
    assert await desk.ledger.count() == before


async def test_a_department_is_whistled_anew_once_its_call_is_disposed_of(desk: Desk) -> None:
    await desk.on_event(event(), T0)
    await desk.act("AL000001", "dispatch", "dasha", now=T0 + MIN, departments=["urban_mgmt"])
    for i, action in enumerate(("report_in", "dept_arrive", "dept_dispose")):
        await desk.department_act("AL000001", action, "urban_mgmt",  # type: ignore[arg-type]
                                  now=T0 + (2 + i) * MIN, person="qian-lei")
    again = await desk.act("AL000001", "dispatch", "dasha", now=T0 + 10 * MIN,
                           departments=["urban_mgmt"], note="the site started again")
    assert [w.department for w in again.transition.whistled] == ["urban_mgmt"]
    assert (call(desk, "urban_mgmt").stage, call(desk, "urban_mgmt").whistled_at) == (
        "whistled", T0 + 10 * MIN)


async def test_the_catalog_default_calls_only_departments_whose_area_it_is(
        desk: Desk) -> None:
    await desk.on_event(event(), T0)
    sent = await desk.act("AL000001", "dispatch", "dasha", now=T0 + MIN)
    assert [w.department for w in sent.transition.whistled] == ["urban_mgmt", "police"]
    assert desk.department_alerts("urban_mgmt")[0].alert_id == "AL000001"
    assert desk.department_alerts("urban_mgmt-jiulong", called_only=False) == []
    assert desk.department_alerts("fire_safety") == []  # in its area, never called


async def test_a_restart_rebuilds_the_calls_and_supervises_what_passed_meanwhile(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        await desk.on_event(event(), T0)
        await desk.act("AL000001", "dispatch", "dasha", now=T0 + 2 * MIN,
                       departments=["urban_mgmt", "police-dasha"])
        await desk.department_act("AL000001", "report_in", "urban_mgmt", now=T0 + 5 * MIN,
                                  person="qian-lei")
        await desk.write_snapshot()
        before = desk.get("AL000001")
    async with desk_stores.open() as store:  # the hub was down for an hour
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        assert desk.restored_from is not None  # from the snapshot
        assert desk.get("AL000001") == before
        assert desk.next_deadline() == T0 + 12 * MIN  # police-dasha's reminder, re-armed
        fired = await desk.tick(T0 + 60 * MIN)
        assert [(c.transition.at, c.transition.department) for c in fired
                if c.transition.action == "supervise"] == [
            (T0 + 17 * MIN, "police-dasha"), (T0 + 32 * MIN, "urban_mgmt")]
    async with desk_stores.open() as store:  # and the full fold agrees with it
        desk = Desk(cfg, Ledger(store))
        await desk.start(snapshot=False)
        assert [(c.department, c.supervised_at) for c in desk.get("AL000001").dept_calls] == [
            ("urban_mgmt", T0 + 32 * MIN), ("police-dasha", T0 + 17 * MIN)]
        assert desk.counters.supervisions == 0  # written before: not again


async def test_simulated_department_staff_answer_their_calls_in_time(desk: Desk) -> None:
    """The demo's duty staff (simulators/responders.py): a department called answers each
    stage before its deadline, as its person on duty, and the unit's own plan is not made
    moot by the department's steps."""
    from gridcall.simulators.responders import Responders

    staff = Responders(desk, lambda: T0, seed=3, in_time=1.0, false_alarm=0.0)
    await desk.on_event(event(), T0)
    await desk.act("AL000001", "dispatch", "dasha", now=T0 + MIN, departments=["urban_mgmt"])
    for minute in range(2, 24 * 60):  # the hub's clock, a minute at a time
        await staff.act_due(T0 + minute * MIN)  # what run() does at each poll
        await desk.tick(T0 + minute * MIN)
        if call(desk, "urban_mgmt").stage == "disposed":
            break
    um = call(desk, "urban_mgmt")
    assert um.stage == "disposed", desk.get("AL000001").dept_calls
    assert um.reported_at is not None
    assert um.arrived_at is not None
    assert um.disposed_at is not None
    assert um.reported_at <= um.report_by
    assert um.arrived_at <= um.arrive_by
    assert um.disposed_at <= um.dispose_by
    assert (um.reported_person, um.arrived_person) == ("qian-lei", "qian-lei")
    assert um.supervised_at is None
    assert staff.dept_taken == 3
