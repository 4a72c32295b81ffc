"""Reminders to departments before their promised arrival (hub/desk/arrival_reminders.py)
on the injected clock, on both desk stores: each call not on site is reminded once, at its
instant (``remind_before`` the promise, a third of it by default), to the department's
person on duty then; it is logged, not a ledger step; a restart, a hub down across the
reminder, and a second hub on the same store (a failover) never send it twice; a promise
that passed while nobody looked is supervised, not reminded. Then the notification to the
person's contact, and the config's refusals."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from gridcall.config import SAMPLE_DISTRICT, ConfigError, ConfigSet, load_config
from gridcall.config.duty import Person
from gridcall.hub.desk.arrival_reminders import ArrivalReminder
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import AlertState
from gridcall.hub.notify.notifier import Notifier, arrival_reminder_hook
from gridcall.hub.store import DeskStore
from gridcall.wire import AnomalyEvent
from tests.desk_stores import DeskStores
from tests.polling import wait_until
from tests.test_notify import FAST, Receiver, receiver, settings

__all__ = ["receiver"]  # the fixture, shared with test_notify

T0 = 1_800_000_000_000_000_000  # Fri 2027-01-15 16:00 in Asia/Shanghai
S = 10**9
MIN = 60 * S
HOUR = 60 * MIN
NOISE = "dasha-dong-g1-noise-1"  # NOISE-NUISANCE in town dasha


def event(seq: int = 1) -> AnomalyEvent:
    return AnomalyEvent(agent="edge-dasha-dong", seq=seq, sensor=NOISE, kind="out_of_limits",
                        severity="major", score=0.9, value=80.0, ts=T0, phase="start")


class Heard:
    """An arrival reminder hook that keeps what it got."""

    def __init__(self) -> None:
        self.got: list[ArrivalReminder] = []

    async def __call__(self, reminder: ArrivalReminder, state: AlertState) -> None:
        self.got.append(reminder)


@pytest.fixture
async def store(desk_stores: DeskStores) -> AsyncIterator[DeskStore]:
    async with desk_stores.open() as s:
        yield s


async def started(cfg: ConfigSet, store: DeskStore) -> tuple[Desk, Heard]:
    desk = Desk(cfg, Ledger(store))
    await desk.start()
    heard = Heard()
    desk.arrival_reminders.add_hook(heard)
    return desk, heard


async def dispatched(desk: Desk) -> str:
    """A noise alert in dasha, both departments called at T0 + 2 min: police-dasha
    promises 15 min (reminded 5 min before, at +12), urban_mgmt 30 (10 before, at +22)."""
    opened = (await desk.on_event(event(), T0)).alert
    assert opened is not None
    await desk.act(opened.alert_id, "dispatch", "dasha", now=T0 + 2 * MIN,
                   departments=["urban_mgmt", "police-dasha"])
    return opened.alert_id


async def test_each_call_not_on_site_is_reminded_once_before_its_promise(
        cfg: ConfigSet, store: DeskStore) -> None:
    desk, heard = await started(cfg, store)
    alert = await dispatched(desk)
    assert desk.next_deadline() == T0 + 12 * MIN  # police-dasha's reminder comes first
    await desk.department_act(alert, "report_in", "urban_mgmt", now=T0 + 5 * MIN,
                              person="qian-lei")
    await desk.department_act(alert, "report_in", "police-dasha", now=T0 + 6 * MIN,
                              person="ma-li")
    await desk.department_act(alert, "dept_arrive", "police-dasha", now=T0 + 10 * MIN,
                              person="ma-li")  # on site before its reminder: none
    steps = len(await desk.history(alert))
    await desk.tick(T0 + 12 * MIN)
    assert heard.got == []
    await desk.tick(T0 + 25 * MIN)  # looked at late: the reminder keeps its own instant
    assert [(r.department, r.at - T0, r.arrive_by - T0, r.person, r.stage, r.unit)
            for r in heard.got] == [
        ("urban_mgmt", 22 * MIN, 32 * MIN, "qian-lei", "reported_in", "dasha-dong-g1")]
    # a notification, not a step: the alert's ledger and its published state are as they were
    assert len(await desk.history(alert)) == steps
    assert desk.get(alert).n == steps
    await desk.tick(T0 + 28 * MIN)
    assert len(heard.got) == 1  # once
    assert await desk.arrival_reminders_of(alert) == heard.got
    stats = desk.stats()
    assert (stats["arrival_reminders.sent"], stats["arrival_reminders.dropped_late"]) == (1, 0)
    # the promise passes: the 督办 follows as before, and no second reminder
    supervised = [c.transition.department for c in await desk.tick(T0 + 40 * MIN)
                  if c.transition.action == "supervise"]
    assert supervised == ["urban_mgmt"]
    assert len(heard.got) == 1


async def test_a_restart_and_a_second_hub_on_the_store_send_it_once(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    """The hub sends police-dasha's reminder and restarts: not again. Then the hub is down
    across urban_mgmt's reminder and comes back before the promise: sent, at its
    instant (a failover is such a start, by the other hub)."""
    async with desk_stores.open() as store:
        desk, heard = await started(cfg, store)
        alert = await dispatched(desk)
        await desk.tick(T0 + 13 * MIN)
        assert [r.department for r in heard.got] == ["police-dasha"]
    async with desk_stores.open() as store:  # a restart, down from +13 to +26 min
        desk, heard = await started(cfg, store)
        await desk.tick(T0 + 26 * MIN)
        assert [(r.department, r.at - T0) for r in heard.got] == [("urban_mgmt", 22 * MIN)]
    async with desk_stores.open() as store:  # and again: both were sent already
        desk, heard = await started(cfg, store)
        await desk.tick(T0 + 30 * MIN)
        assert heard.got == []
        assert [r.department for r in await desk.arrival_reminders_of(alert)] == [
            "police-dasha", "urban_mgmt"]



async def test_two_hubs_armed_with_one_call_send_it_once(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    """A failover's overlap: the hub taking over read the ledger (and armed the call's
    reminder) before the old one sent it. The log's row is written by one of them only,
    and only that one sends."""
    async with desk_stores.open() as store_a, desk_stores.open() as store_b:
        a, heard_a = await started(cfg, store_a)
        alert = await dispatched(a)
        b, heard_b = await started(cfg, store_b)
        await a.tick(T0 + 13 * MIN)
        await b.arrival_reminders.fire(T0 + 13 * MIN, a.get)  # the same call, as it stands
        assert [(r.alert_id, r.department) for r in heard_a.got] == [(alert, "police-dasha")]
        assert heard_b.got == []
        assert len(await b.arrival_reminders_of(alert)) == 1
        assert b.stats()["arrival_reminders.sent"] == 0


async def test_a_promise_passed_while_nobody_looked_is_supervised_not_reminded(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    async with desk_stores.open() as store:
        desk, _ = await started(cfg, store)
        alert = await dispatched(desk)
    async with desk_stores.open() as store:  # down from +2 min to +40 min
        desk, heard = await started(cfg, store)
        changes = await desk.tick(T0 + 40 * MIN)
        assert sorted(c.transition.department for c in changes
                      if c.transition.action == "supervise") == ["police-dasha", "urban_mgmt"]
        assert heard.got == []
        assert desk.stats()["arrival_reminders.dropped_late"] == 2
        assert await desk.arrival_reminders_of(alert) == []


async def test_a_closed_alert_gets_none(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    async with desk_stores.open() as store:
        desk, heard = await started(cfg, store)
        alert = await dispatched(desk)
        await desk.act(alert, "false_alarm", "dasha", now=T0 + 5 * MIN, note="a drill")
        await desk.tick(T0 + 25 * MIN)
        assert heard.got == []
        assert desk.arrival_reminders.next() is None
        assert await desk.arrival_reminders_of(alert) == []


async def test_a_department_with_remind_before_off_gets_none(cfg: ConfigSet,
                                                             store: DeskStore) -> None:
    deps = tuple(d.model_copy(update={"remind_before": "off"}) if d.id == "urban_mgmt" else d
                 for d in cfg.topology.departments)
    quiet = dataclasses.replace(
        cfg, topology=cfg.topology.model_copy(update={"departments": deps}),
        departments={d.id: d for d in deps})
    assert quiet.departments["urban_mgmt"].reminder_lead is None
    desk, heard = await started(quiet, store)
    await dispatched(desk)
    await desk.tick(T0 + 13 * MIN)
    await desk.tick(T0 + 25 * MIN)
    assert [r.department for r in heard.got] == ["police-dasha"]  # urban_mgmt: off


async def test_the_reminder_reaches_the_person_on_duty_else_the_department(
        cfg: ConfigSet, receiver: Receiver, store: DeskStore) -> None:
    hook = {"type": "webhook", "url": receiver.url}
    notify = settings({who: [{**hook, "headers": {"X-To": who}}]
                       for who in ("urban_mgmt", "police-dasha")}, retry=FAST)
    # ma-li (police-dasha's person on duty) has a contact of her own; qian-lei has none
    persons = tuple(p if p.id != "ma-li" else Person.model_validate({
        **p.model_dump(), "contact": {**hook, "headers": {"X-To": "ma-li"}}})
        for p in cfg.duty.persons)
    duty = cfg.duty.model_copy(update={"persons": persons})
    cfg = dataclasses.replace(cfg, duty=duty)
    async with Notifier(notify, duty=duty) as notifier:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        desk.arrival_reminders.add_hook(arrival_reminder_hook(notifier))
        alert = await dispatched(desk)
        await desk.department_act(alert, "report_in", "police-dasha", now=T0 + 4 * MIN,
                                  person="ma-li")
        await desk.tick(T0 + 13 * MIN)
        await desk.tick(T0 + 25 * MIN)
        assert await wait_until(lambda: len(receiver.got) == 2)
    by_whom = {h["X-To"]: p for h, p in receiver.got}
    assert set(by_whom) == {"ma-li", "urban_mgmt"}
    assert by_whom["ma-li"]["title"].startswith(
        "Reminder · police-dasha on site by 2027-01-15 08:17:00 UTC · ")
    assert by_whom["urban_mgmt"]["title"].startswith(
        "Reminder · urban_mgmt on site by 2027-01-15 08:32:00 UTC · ")
    assert notifier.counters.to_person == 1


def test_remind_before_is_checked_against_the_promise(tmp_path: Path) -> None:
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, folder)
    topology = folder / "topology.yaml"
    data = yaml.safe_load(topology.read_text(encoding="utf-8"))
    for d in data["departments"]:
        if d["id"] == "fire_safety":
            d["remind_before"] = "20m"  # its promise is 15m
        if d["id"] == "police":
            d["remind_before"] = "off"
    topology.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"topology\.yaml.*departments\[5\].*remind_before "
                       r"\(1200 s\) must be shorter than the promised arrival \(900 s\)"):
        load_config(folder)
    data["departments"][5]["remind_before"] = "5m"
    topology.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    loaded = load_config(folder)
    assert loaded.departments["police"].reminder_lead is None
    assert loaded.departments["fire_safety"].reminder_lead is not None
    assert loaded.departments["urban_mgmt"].reminder_lead == \
        load_config(SAMPLE_DISTRICT).departments["urban_mgmt"].arrival / 3
