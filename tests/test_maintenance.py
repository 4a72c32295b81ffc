"""Device faults go to maintenance (issue 17 item 4), end to end at the desk and the
notifier: a stuck sensor's SENSOR-FAULT is led by the maintenance department, which hears
of it on its own channels (notify.yaml may name a department), and its missed deadlines
stop at the town instead of reaching the district command centre."""

from __future__ import annotations

import json

from gridcall.config import ConfigSet
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.notify.notifier import Notifier, desk_hook
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent
from tests.polling import wait_until
from tests.test_notify import Receiver, receiver, settings

__all__ = ["receiver"]

T0 = 1_800_000_000_000_000_000
HOUR = 3600 * 10**9
SENSOR = "dongyuan-g3-pm25-1"


async def test_a_device_fault_is_led_and_heard_by_maintenance_and_stops_at_the_town(
        cfg: ConfigSet, receiver: Receiver) -> None:
    upkeep = cfg.matters.maintenance
    assert upkeep is not None
    notify = settings({upkeep.department: [{"type": "webhook", "url": receiver.url}]},
                      retry={"attempts": 2, "backoff": "0.01s", "timeout": "5s"})
    sensor = cfg.sensors[SENSOR]
    async with Store(":memory:") as store, Notifier(notify, duty=cfg.duty) as notifier:
        desk = Desk(cfg, Ledger(store))
        desk.add_hook(desk_hook(notifier))
        await desk.start()
        out = await desk.on_event(AnomalyEvent(
            agent=sensor.agent, seq=1, sensor=SENSOR, kind="stuck", severity="critical",
            score=0.9, value=12.0, ts=T0), T0)
        assert out.alert is not None
        alert_id = out.alert.alert_id
        assert out.alert.alert.matter == "SENSOR-FAULT"
        assert out.alert.departments[0] == upkeep.department
        assert await wait_until(lambda: notifier.counters.sent == 1)
        await desk.tick(T0 + 48 * HOUR)  # two days unanswered
        state = desk.get(alert_id)
        assert state.tier == upkeep.top_tier == "B"
        assert state.unit == "dasha"  # the town, not the district
        assert state.alert.overdue == "response"
        assert await wait_until(lambda: notifier.counters.sent >= 3)
    sent = [json.loads(payload["message"]) for _, payload in receiver.got]
    assert {m["alert_id"] for m in sent} == {alert_id}
    assert [m["tier"] for m in sent][-1] == "B"
    assert all(m["unit"] != cfg.district.id for m in sent)
