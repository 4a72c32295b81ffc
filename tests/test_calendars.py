"""Working-hour calendars (calendars.yaml): deadlines of "5 working hours" or "15 working
days" across a weekend, a holiday and a 调休 workday, table-driven on the injected clock;
plain durations stay wall-clock; mistakes named with their file and key; and the desk
escalating at the working-time deadline, not before."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from gridcall.config import ConfigSet, load_config
from gridcall.config.calendars import CalendarsFile, WorkSpan, parse_deadline
from gridcall.config.models import MatterDeadlines
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.policy import absolute
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent
from gridcall.wire.clock import from_datetime
from tests.test_config import edit, problems_of, sample

__all__ = ["sample"]

SHANGHAI = ZoneInfo("Asia/Shanghai")

CALENDARS = {
    "default": "office",
    "calendars": {
        "office": {
            "timezone": "Asia/Shanghai",
            "weekdays": ["mon", "tue", "wed", "thu", "fri"],
            "hours": [{"from": "08:30", "to": "12:00"}, {"from": "14:30", "to": "18:00"}],
            "holidays": {2026: ["2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06",
                                "2026-10-07"],
                         2027: ["2027-01-01"]},
            "workdays": {2026: ["2026-10-10"]},
        },
        "round-the-clock": {"weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                            "hours": [{"from": "00:00", "to": "23:59"}]},
    },
}


def at(text: str) -> int:
    """A local time in Shanghai as ns."""
    return from_datetime(datetime.fromisoformat(text).replace(tzinfo=SHANGHAI))


def book() -> CalendarsFile:
    return CalendarsFile.model_validate(CALENDARS)


# The office day is 08:30-12:00 and 14:30-18:00: 7 working hours. 2026-12-04 is a Friday;
# 2026-10-01..07 are holidays but for the weekend, and Saturday 2026-10-10 is worked.
CASES = [
    # (start, deadline, due)                                        why
    ("2026-12-07T09:00", "2 working hours", "2026-12-07T11:00"),  # inside one period
    ("2026-12-07T11:00", "2 working hours", "2026-12-07T15:30"),  # across the lunch break
    ("2026-12-07T12:30", "5 working hours", "2026-12-08T10:00"),  # from the break, overnight
    ("2026-12-04T17:00", "2 working hours", "2026-12-07T09:30"),  # across the weekend
    ("2026-12-05T10:00", "1 working hour", "2026-12-07T09:30"),  # from a Saturday
    ("2026-12-04T10:00", "1 working day", "2026-12-07T10:00"),  # Friday to Monday
    ("2026-12-04T19:00", "1 working day", "2026-12-07T18:00"),  # after hours on Friday
    ("2026-12-07T09:00", "15 working days", "2026-12-28T09:00"),  # three weeks
    ("2026-12-21T09:00", "15 working days", "2027-01-12T09:00"),  # New Year's Day off
    ("2026-09-30T17:00", "2 working hours", "2026-10-08T09:30"),  # the National Day week
    ("2026-10-09T17:00", "2 working hours", "2026-10-10T09:30"),  # a Saturday worked
    ("2026-09-30T10:00", "1.5 working days", "2026-10-08T16:00"),  # a fraction
    ("2026-12-04T17:00", "2h", "2026-12-04T19:00"),  # plain: the wall clock
    ("2026-10-01T10:00", "1d", "2026-10-02T10:00"),  # plain: holidays do not count
]


@pytest.mark.parametrize(("start", "deadline", "due"), CASES)
def test_deadlines_in_working_time(start: str, deadline: str, due: str) -> None:
    span = parse_deadline(deadline)
    assert book().due(at(start), span, None) == at(due)


def test_a_deadline_names_its_calendar() -> None:
    span = WorkSpan(amount=2, unit="hours")
    assert book().due(at("2026-12-05T10:00"), span, "round-the-clock") == at(
        "2026-12-05T12:00")
    with pytest.raises(KeyError, match="no calendar 'night-shift'"):
        book().due(at("2026-12-05T10:00"), span, "night-shift")


def test_deadline_blocks_mix_plain_and_working_time() -> None:
    d = MatterDeadlines.model_validate({"response": "30m", "arrival": "5 working hours",
                                        "disposal": "15 working days"})
    assert d.response == timedelta(minutes=30)
    assert d.arrival == WorkSpan(amount=5, unit="hours")
    assert str(d.disposal) == "15 working days"
    got = absolute(d, at("2026-12-04T17:00"), book())
    assert (got.response, got.arrival, got.disposal) == (
        at("2026-12-04T17:30"), at("2026-12-07T15:00"), at("2026-12-25T17:00"))


@pytest.mark.parametrize(("deadlines", "why"), [
    ({"response": "2 working hours", "arrival": "4h", "disposal": "1d"},
     "response (2 working hours) is in working time but arrival (4h) is not"),
    ({"response": "2h", "arrival": "1 working hour", "disposal": "1 working day"},
     "response (2h) could fall after arrival (1 working hour)"),
    ({"response": "1h", "arrival": "3 working days", "disposal": "2 working days"},
     "arrival (3 working days) is longer than disposal (2 working days)"),
    ({"response": "1h", "arrival": "3 working weeks", "disposal": "2 working days"},
     "'3 working weeks' is not a working-time deadline"),
])
def test_deadlines_out_of_order_are_refused(deadlines: dict[str, str], why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("(", r"\(").replace(")", r"\)")):
        MatterDeadlines.model_validate(deadlines)


def test_mistakes_name_the_file_and_key(sample: Path) -> None:
    bad = {**CALENDARS, "calendars": {"office": {
        **CALENDARS["calendars"]["office"],  # type: ignore[index]
        "holidays": {2026: ["2027-01-01"]}, "hours": [{"from": "18:00", "to": "08:30"}]}}}
    (sample / "calendars.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    problems = problems_of(sample)
    assert any(p.startswith("calendars.yaml:") and "calendars.office.holidays: "
               "holiday 2027-01-01 is listed under 2026" in p for p in problems), problems
    assert any("calendars.office.hours[0]: a working period ends after it "
               "starts" in p for p in problems), problems


def test_working_time_needs_a_calendar_that_exists(sample: Path) -> None:
    def jiyuan(data: dict) -> None:  # type: ignore[type-arg]
        noise = next(m for m in data["matters"] if m["code"] == "NOISE-NUISANCE")
        noise["deadlines"] = {"response": "30m", "arrival": "8 working hours",
                              "disposal": "1 working day"}
        dust = next(m for m in data["matters"] if m["code"] == "DUST-PM25")
        dust["deadlines"] = {"response": "1h", "arrival": "5 working hours",
                             "disposal": "1 working day", "calendar": "offise"}

    edit(sample / "matters.yaml", jiyuan)
    (sample / "calendars.yaml").unlink(missing_ok=True)
    problems = problems_of(sample)
    assert any("deadlines in working time need a calendar" in p and ".deadlines:" in p
               for p in problems), problems
    assert any("deadlines.calendar: unknown calendar 'offise'" in p for p in problems)
    (sample / "calendars.yaml").write_text(yaml.safe_dump(CALENDARS), encoding="utf-8")
    problems = problems_of(sample)  # 8 working hours is more than a 7-hour working day
    assert problems == [p for p in problems if "arrival (8 working hours) is longer than "
                        "disposal (1 working day) in a working day of 7h" in p
                        or "unknown calendar 'offise' (did you mean 'office'?)" in p]
    assert len(problems) == 2


async def test_the_desk_escalates_at_the_working_time_deadline(sample: Path,
                                                              tmp_path: Path) -> None:
    """Noise (tier D, at its grid) with a response of 2 working hours, opened at 17:00
    on a Friday: due at 09:30 on Monday, so the weekend passes without an escalation."""
    def jiyuan(data: dict) -> None:  # type: ignore[type-arg]
        noise = next(m for m in data["matters"] if m["code"] == "NOISE-NUISANCE")
        noise["deadlines"] = {"response": "2 working hours", "arrival": "5 working hours",
                              "disposal": "1 working day"}

    edit(sample / "matters.yaml", jiyuan)
    (sample / "calendars.yaml").write_text(yaml.safe_dump(CALENDARS), encoding="utf-8")
    cfg: ConfigSet = load_config(sample)
    friday = at("2026-12-04T17:00")
    event = AnomalyEvent(agent="edge-dasha-dong", seq=1, sensor="dasha-dong-g1-noise-1",
                         kind="out_of_limits", severity="major", score=0.9, value=80.0,
                         ts=friday, phase="start")
    async with Store(str(tmp_path / "hub.sqlite")) as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        opened = await desk.on_event(event, friday)
        assert opened.alert is not None
        d = opened.alert.deadlines
        assert (d.response, d.arrival, d.disposal) == (
            at("2026-12-07T09:30"), at("2026-12-07T15:00"), at("2026-12-07T17:00"))
        assert await desk.tick(at("2026-12-07T09:29")) == []  # the whole weekend
        (up,) = await desk.tick(at("2026-12-07T09:31"))
        assert (up.transition.action, up.transition.at, up.alert.tier) == (
            "escalate", at("2026-12-07T09:30"), "C")
