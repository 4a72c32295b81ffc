"""The top of the ladder (issue 17 item 6): a tier-A alert whose deadline passes at the
district has nowhere higher to go. It used to increment a counter; now it is an overdue
step, shown on the alert (``overdue``), that pages the district's duty leader (roster.yaml)
through the notifier, else the district's channels; once per alert and deadline, across a
restart too."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from gridcall.config import ConfigSet
from gridcall.hub.desk.desk import Change, Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import OVERDUE, overdue_of
from gridcall.hub.notify.notifier import Notifier, desk_hook
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent
from tests.polling import wait_until
from tests.test_notify import Receiver, receiver, settings

__all__ = ["receiver"]

MONDAY = int(datetime(2026, 12, 7, 2, 0, tzinfo=UTC).timestamp()) * 10**9
"""10:00 in Huangpu on a Monday: the sample roster's district duty leader is sun-hui."""
MIN = 60 * 10**9
GAS = "dongyuan-g3-gas-1"


def leak(cfg: ConfigSet, at: int) -> AnomalyEvent:
    sensor = cfg.sensors[GAS]
    return AnomalyEvent(agent=sensor.agent, seq=1, sensor=GAS, kind="out_of_limits",
                        severity="major", score=0.9, value=40.0, ts=at)


async def test_a_tier_a_alert_overdue_at_the_district_pages_its_duty_leader_once(
        cfg: ConfigSet) -> None:
    async with Store(":memory:") as store:
        desk = Desk(cfg, Ledger(store))
        changes: list[Change] = []

        async def keep(change: Change) -> None:
            changes.append(change)

        desk.add_hook(keep)
        await desk.start()
        opened = await desk.on_event(leak(cfg, MONDAY), MONDAY)
        assert opened.alert is not None
        alert_id = opened.alert.alert_id
        assert opened.alert.tier == "A"
        response = opened.alert.alert.deadlines.response
        await desk.tick(response + MIN)
        (page,) = [c.transition for c in changes if overdue_of(c.transition)]
        assert page.at == response  # stamped with the deadline's own instant
        assert page.reason.startswith(f"{OVERDUE}response deadline passed at district huangpu")
        assert page.on_duty == desk.duty_leader("huangpu", response) == "sun-hui"
        assert "sun-hui" in page.note
        state = desk.get(alert_id)
        assert state.alert.overdue == "response"
        assert state.tier == "A"
        assert state.evidence == 0  # not an anomaly joining it
        assert desk.counters.overdue_pages == 1
        await desk.tick(response + 60 * MIN)  # later looks page nobody again
        assert desk.counters.overdue_pages == 1

        again = Desk(cfg, Ledger(store))  # a restart: the fold knows it was paged
        await again.start()
        assert again.get(alert_id).alert.overdue == "response"
        await again.tick(response + 61 * MIN)
        assert again.counters.overdue_pages == 0
        n = again.get(alert_id).n

        # answered: no longer overdue; the next deadline that passes pages again
        await again.act(alert_id, "acknowledge", "huangpu", now=response + 62 * MIN)
        assert again.get(alert_id).alert.overdue == ""
        arrival = again.get(alert_id).alert.deadlines.arrival
        await again.tick(arrival + MIN)
        assert again.get(alert_id).alert.overdue == "arrival"
        assert again.get(alert_id).n == n + 2


async def test_the_page_goes_through_the_notifier_to_the_district(
        cfg: ConfigSet, receiver: Receiver) -> None:
    """The sample's duty leader has no contact of their own: the district's channels in
    notify.yaml get the page, titled OVERDUE."""
    notify = settings({"huangpu": [{"type": "webhook", "url": receiver.url}]},
                      retry={"attempts": 2, "backoff": "0.01s", "timeout": "5s"})
    async with Store(":memory:") as store, Notifier(notify, duty=cfg.duty) as notifier:
        desk = Desk(cfg, Ledger(store))
        desk.add_hook(desk_hook(notifier))
        await desk.start()
        opened = await desk.on_event(leak(cfg, MONDAY), MONDAY)
        assert opened.alert is not None
        # the new alert, and the hub's dispatch of the gas plan's departments at tier A
        assert await wait_until(lambda: notifier.counters.sent == 2)
        await desk.tick(opened.alert.alert.deadlines.response + MIN)
        assert await wait_until(lambda: notifier.counters.sent == 3)
    titles = [payload["title"] for _, payload in receiver.got]
    assert not any("OVERDUE" in t for t in titles[:2])
    assert titles[2].startswith("[A] OVERDUE (response)")
    assert opened.alert.alert_id in titles[2]
    assert json.loads(receiver.got[2][1]["message"])["overdue"] == "response"
