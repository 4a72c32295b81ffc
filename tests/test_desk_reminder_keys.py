"""The keys of the reminders a desk sent leave its memory with their closed alert
(issue 20 item 4): the desk remembers which (alert, stint, reminder) it sent so as not
to send one twice, and held them for every alert it ever reminded of, as it once held
every closed alert. The sample roster reminds at every tier, so they grew with the
history. The reminder log in the desk store keeps them all; what goes is the copy in
memory, and nothing is sent twice for it."""

from __future__ import annotations

from pathlib import Path

from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.store import Store
from tests.test_persons import MIN, MONDAY_9, Receiver, district, event


def held_keys(desk: Desk) -> set[str]:
    """The alerts whose reminders' keys the desk holds in memory."""
    return {alert for alert, _, _ in desk._reminded}


async def test_a_swept_alerts_reminder_keys_go_and_its_reopening_is_reminded_once(
        tmp_path: Path) -> None:
    cfg = district(tmp_path, Receiver("http://127.0.0.1:9"))  # nothing delivered: no hook
    async with Store(tmp_path / "hub.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        opened = await desk.on_event(event(1, MONDAY_9), MONDAY_9)
        assert opened.alert is not None
        alert_id = opened.alert.alert_id
        await desk.tick(MONDAY_9 + 10 * MIN)  # the roster's one reminder, at 10 min
        assert desk.counters.reminders == 1
        assert held_keys(desk) == {alert_id}
        closed_at = MONDAY_9 + 11 * MIN
        await desk.act(alert_id, "false_alarm", "huangpu", now=closed_at)
        assert desk.keep_closed is not None
        await desk.tick(closed_at + desk.keep_closed + MIN)  # the sweep drops the alert
        assert alert_id not in {s.alert_id for s in desk.alerts()}
        assert held_keys(desk) == set()
        assert [r.key for r in await desk.reminders_of(alert_id)] == [(alert_id, 1, 0)]
        # a later step, so that a start's clock is past the closed alert's keep window
        recurred = closed_at + desk.keep_closed + 2 * MIN
        second = await desk.on_event(event(2, recurred), recurred)
        assert second.alert is not None
        assert second.alert.alert_id != alert_id

    async with Store(tmp_path / "hub.sqlite") as store:  # a restart reads only the held
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        assert alert_id not in {s.alert_id for s in desk.alerts()}
        assert held_keys(desk) == set()
        later = recurred + MIN
        reopened = await desk.act(alert_id, "reopen", "huangpu", now=later,
                                  reason="back again")
        await desk.tick(later + 10 * MIN)  # the new stint's reminder, once
        await desk.tick(later + 20 * MIN)
        stints = [r.stint for r in await desk.reminders_of(alert_id)]
        assert stints == [1, reopened.alert.n]
