"""roster.yaml: persons, weekly shifts, overrides and escalation policies load into the
config set with precise errors, and the pure lookups say who is on duty when."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gridcall.cli import app
from gridcall.config import SAMPLE_DISTRICT, ConfigError, ConfigSet, load_config
from gridcall.config.duty import DutyFile
from gridcall.hub.desk.duty import Stretch, chain, duty_leader, next_on_duty, on_duty
from gridcall.wire.clock import from_iso

HEAD = """timezone: Asia/Shanghai
persons:
- {id: wang-fang, name: 王芳, unit: dongyuan-g1, leader: chen-jing}
- {id: zhao-lei, name: 赵磊, unit: dongyuan-g1}
- {id: chen-jing, name: 陈静, unit: dongyuan, leader: liu-yang}
- {id: liu-yang, name: 刘洋, unit: dasha}
"""


def roster(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, folder)
    (folder / "roster.yaml").write_text(text, encoding="utf-8")
    return folder


def problems(folder: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(folder)
    return [str(p) for p in info.value.problems]


def span(stretch: Stretch | None) -> tuple[str, int, int, bool] | None:
    if stretch is None:
        return None
    return stretch.person.id, stretch.start, stretch.end, stretch.override


def at(text: str) -> int:
    return from_iso(text + "+08:00")


def test_the_sample_roster_loads_and_names_someone_on_duty_all_week() -> None:
    cfg = load_config(SAMPLE_DISTRICT)
    assert cfg.duty.persons
    for hour in range(0, 7 * 24, 5):  # Monday 2026-12-07 onwards, every 5 hours
        moment = at("2026-12-07T00:30") + hour * 3600 * 10**9
        for unit in ("dongyuan-g1", "dongyuan", "dasha", "huangpu"):
            assert on_duty(cfg.duty, unit, moment) is not None, (unit, hour)
        assert duty_leader(cfg.duty, "huangpu", moment) is not None


def who(cfg: ConfigSet, unit: str, moment: str) -> str:
    stretch = on_duty(cfg.duty, unit, at(moment))
    return stretch.person.id if stretch else ""


def test_the_sample_departments_a_plan_calls_have_a_person_on_duty_all_week() -> None:
    """Every department the sample's plans dispatch (gas leaks, smoke at a school, food
    storage, a bridge, device faults) has a named person of its own on duty, day and
    night, so no dispatch goes to the department's channels only; police and operations
    and maintenance have a duty leader."""
    cfg = load_config(SAMPLE_DISTRICT)
    called = {d.department for m in cfg.matters.matters if m.plan for d in m.plan.dispatch}
    assert {"police", "market_supervision", "fire_safety", "urban_mgmt", "environment_water",
            "health_supervision", "planning_land", "operations_maintenance"} <= called
    for department in sorted(called):
        for hour in range(0, 7 * 24, 3):  # Monday 2026-12-07 onwards, every 3 hours
            stretch = on_duty(cfg.duty, department, at("2026-12-07T00:30") + hour * 3600 * 10**9)
            assert stretch is not None, (department, hour)
            assert stretch.person.unit == department
    # the day and night watches of the police, office hours and standby of market supervision
    assert who(cfg, "police", "2026-12-07T10:00") == "zheng-hao"
    assert who(cfg, "police", "2026-12-07T23:00") == "feng-wei"
    assert who(cfg, "market_supervision", "2026-12-07T10:00") == "lu-fang"
    assert who(cfg, "market_supervision", "2026-12-12T10:00") == "song-jia"
    # office hours and standby of health supervision and of planning and land, the day and
    # night shifts of operations and maintenance
    assert who(cfg, "health_supervision", "2026-12-07T10:00") == "jiang-min"
    assert who(cfg, "health_supervision", "2026-12-07T23:00") == "cao-yu"
    assert who(cfg, "health_supervision", "2026-12-12T10:00") == "cao-yu"
    assert who(cfg, "planning_land", "2026-12-07T10:00") == "yang-bo"
    assert who(cfg, "planning_land", "2026-12-13T23:00") == "xie-na"
    assert who(cfg, "operations_maintenance", "2026-12-07T10:00") == "han-lei"
    assert who(cfg, "operations_maintenance", "2026-12-07T23:00") == "deng-chao"
    for department, leader in (("police", "wu-gang"), ("operations_maintenance", "peng-jun")):
        on_call = duty_leader(cfg.duty, department, at("2026-12-07T23:00"))
        assert on_call is not None, department
        assert on_call.id == leader


def test_a_config_without_roster_yaml_has_nobody_on_duty(tmp_path: Path) -> None:
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, folder)
    (folder / "roster.yaml").unlink()
    cfg = load_config(folder)
    assert cfg.duty == DutyFile()
    assert on_duty(cfg.duty, "dongyuan-g1", at("2026-12-07T09:00")) is None
    assert chain(cfg.duty, "dongyuan-g1", at("2026-12-07T09:00")) == ()


def test_day_night_and_weekend_shifts_and_an_override(tmp_path: Path) -> None:
    cfg = load_config(roster(tmp_path, HEAD + """shifts:
  dongyuan-g1:
  - {days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00", person: wang-fang}
  - {days: [mon, tue, wed, thu, fri], from: "20:00", to: "08:00", person: zhao-lei}
  - {days: [sat], from: "08:00", to: "08:00", person: zhao-lei}
  dongyuan:
  - {days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "00:00", person: liu-yang,
     role: leader}
overrides:
- {unit: dongyuan-g1, from: "2026-12-09T12:00", to: "2026-12-09T20:00", person: zhao-lei,
   reason: dentist}
"""))
    duty = cfg.duty
    assert span(on_duty(duty, "dongyuan-g1", at("2026-12-07T09:00"))) == (
        "wang-fang", at("2026-12-07T08:00"), at("2026-12-07T20:00"), False)
    assert span(on_duty(duty, "dongyuan-g1", at("2026-12-08T03:00"))) == (  # Monday night
        "zhao-lei", at("2026-12-07T20:00"), at("2026-12-08T08:00"), False)
    # Wednesday: the override cuts wang-fang's shift short at noon
    assert span(on_duty(duty, "dongyuan-g1", at("2026-12-09T10:00"))) == (
        "wang-fang", at("2026-12-09T08:00"), at("2026-12-09T12:00"), False)
    assert span(on_duty(duty, "dongyuan-g1", at("2026-12-09T12:00"))) == (
        "zhao-lei", at("2026-12-09T12:00"), at("2026-12-09T20:00"), True)
    # Sunday has no shift: nobody (the unit's channels), and Monday 08:00 is next
    assert on_duty(duty, "dongyuan-g1", at("2026-12-13T09:00")) is None
    assert span(next_on_duty(duty, "dongyuan-g1", at("2026-12-13T09:00"))) == (
        "wang-fang", at("2026-12-14T08:00"), at("2026-12-14T20:00"), False)
    assert span(next_on_duty(duty, "dongyuan-g1", at("2026-12-11T10:00"))) == (
        "zhao-lei", at("2026-12-11T20:00"), at("2026-12-12T08:00"), False)
    # the chain: the person, their leader (no duty leader shift at the grid), and on
    assert [p.id for p in chain(duty, "dongyuan-g1", at("2026-12-07T09:00"))] == [
        "wang-fang", "chen-jing", "liu-yang"]
    leader = duty_leader(duty, "dongyuan", at("2026-12-07T09:00"))
    assert leader is not None
    assert leader.id == "liu-yang"


@pytest.mark.parametrize(("body", "expected"), [
    ("shifts:\n  dongyuan-g1:\n  - {days: [mon], from: '08:00', to: '20:00', person: wang-fang}\n"
     "  - {days: [mon], from: '19:00', to: '23:00', person: zhao-lei}\n",
     "roster.yaml:10: shifts.dongyuan-g1[1]: this duty shift overlaps shifts.dongyuan-g1[0]"),
    ("shifts:\n  dongyuan-g1:\n  - {days: [sun], from: '20:00', to: '08:00', person: wang-fang}\n"
     "  - {days: [mon], from: '07:00', to: '09:00', person: zhao-lei}\n",
     "roster.yaml:10: shifts.dongyuan-g1[1]: this duty shift overlaps shifts.dongyuan-g1[0]"),
    ("shifts:\n  dongyuan-g1:\n  - {days: [mon], from: '08:00', to: '20:00', person: wang-fong}\n",
     "roster.yaml:9: shifts.dongyuan-g1[0].person: unknown person 'wang-fong' "
     "(did you mean 'wang-fang'?)"),
    ("shifts:\n  dongyuan-g9:\n  - {days: [mon], from: '08:00', to: '20:00', person: wang-fang}\n",
     "roster.yaml:8: shifts.dongyuan-g9: unknown unit or department 'dongyuan-g9'"),
    ("shifts:\n  dongyuan-g1:\n  - {days: [mon], from: '8 am', to: '20:00', person: wang-fang}\n",
     "roster.yaml:9: shifts.dongyuan-g1[0].from: '8 am' is not a time of day like '08:00'"),
    ("overrides:\n- {unit: dongyuan-g1, from: '2026-12-09T12:00', to: '2026-12-09T11:00', "
     "person: zhao-lei}\n",
     "roster.yaml:8: overrides[0]: 'to' (2026-12-09T11:00:00) is not after 'from'"),
    ("escalation:\n  default: {A: [10m, 5m]}\n",
     "roster.yaml:8: escalation.default.A: reminders must come later and later"),
    ("escalation:\n  gird: {A: [5m]}\n",
     "roster.yaml:8: escalation.gird: unknown unit, level or 'default' 'gird' "
     "(did you mean 'grid'?)"),
    ("timezone: Mars/Olympus\n", "roster.yaml:1: timezone: 'Mars/Olympus' is not a time zone"),
    ("persons2: []\n", "roster.yaml:7: persons2: unknown key 'persons2' (did you mean 'persons'?)"),
])
def test_mistakes_in_roster_yaml_name_the_file_line_key_and_reason(
        tmp_path: Path, body: str, expected: str) -> None:
    text = HEAD + body
    if body.startswith("timezone"):  # in place of the first line
        text = body + HEAD.removeprefix("timezone: Asia/Shanghai\n")
    found = problems(roster(tmp_path, text))
    assert any(p.startswith(expected) for p in found), found


def test_a_person_of_an_unknown_unit_or_leader_is_named(tmp_path: Path) -> None:
    found = problems(roster(tmp_path, """persons:
- {id: a, name: A, unit: nowhere}
- {id: b, name: B, unit: police, leader: c}
"""))
    assert "roster.yaml:2: persons[0].unit: unknown unit or department 'nowhere'" in found
    assert "roster.yaml:3: persons[1].leader: unknown person 'c'" in found


def test_config_check_says_what_the_roster_holds() -> None:
    result = CliRunner().invoke(app, ["config", "check", str(SAMPLE_DISTRICT)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    cfg = load_config(SAMPLE_DISTRICT)
    assert (f"roster.yaml: {len(cfg.duty.persons)} persons, shifts for "
            f"{len(cfg.duty.shifts)} units") in result.output


BERLIN = """timezone: Europe/Berlin
persons:
- {id: a, name: A, unit: dongyuan-g1, leader: c}
- {id: b, name: B, unit: dongyuan-g1, leader: c}
- {id: c, name: C, unit: dongyuan}
shifts:
  dongyuan-g1:
  - {days: [mon, tue, wed, thu, fri], from: "07:00", to: "19:00", person: a}
  - {days: [mon, tue, wed, thu, fri, sat, sun], from: "19:00", to: "07:00", person: b}
  - {days: [sat, sun], from: "07:00", to: "19:00", person: a}
overrides:
- {unit: dongyuan-g1, from: "2027-03-27T12:00", to: "2027-03-29T09:00", person: b}
"""
"""Europe/Berlin springs forward on 2027-03-28: the lookups must hold across it."""


@pytest.fixture(scope="module")
def rosters(tmp_path_factory: pytest.TempPathFactory) -> tuple[DutyFile, DutyFile]:
    """The Berlin roster above, and the sample district's (Asia/Shanghai)."""
    return (load_config(roster(tmp_path_factory.mktemp("berlin"), BERLIN)).duty,
            load_config(SAMPLE_DISTRICT).duty)


@settings(max_examples=300, deadline=None)
@given(minute=st.integers(0, 21 * 24 * 60))
def test_a_stretch_holds_its_moment_and_the_next_is_someone_else(
        rosters: tuple[DutyFile, DutyFile], minute: int) -> None:
    for duty in rosters:
        unit = "dongyuan-g1"
        moment = from_iso("2027-03-15T00:00+00:00") + minute * 60 * 10**9
        now = on_duty(duty, unit, moment)
        assert now is not None  # both rosters cover the whole week
        assert now.start <= moment < now.end
        at_start = on_duty(duty, unit, now.start)
        assert at_start is not None
        assert at_start.person.id == now.person.id
        nxt = next_on_duty(duty, unit, moment)
        if nxt is not None:
            assert nxt.start > moment
            assert nxt.person.id != now.person.id
            before = on_duty(duty, unit, nxt.start - 1)
            assert before is not None
            assert before.person.id == now.person.id  # nobody else between
