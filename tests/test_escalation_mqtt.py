"""The escalation timeline through the real hub and mosquitto, on an injected clock:
grid → community → town → district with exact timestamps (from a real noise sensor, on
the simulated district of gridcall's pytest plugin), the retained copy at every address
kept current, and timers that resume after a restart."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import msgspec
import pytest

from gridcall.config import ConfigSet
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent, RiskAlert, encode, topics
from gridcall.wire.broker import BrokerAddress
from tests.conftest import SimDistrictFactory
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto

MIN = 60 * 10**9
SENSOR = "dasha-dong-g1-noise-1"  # NOISE-NUISANCE: base tier D, response within 30 min
PLACE = ("huangpu", "dasha", "dasha-dong", "dasha-dong-g1")


class Clock:
    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


@asynccontextmanager
async def running(cfg: ConfigSet, url: str, store: Store, clock: Clock) -> AsyncIterator[Hub]:
    hub = Hub(cfg, sink=store, store=store, broker_url=url, clock=clock,
              client_id=f"test-hub-{uuid.uuid4().hex[:8]}", tick_interval=0.02)
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    try:
        await asyncio.wait_for(hub.subscribed.wait(), 10)
        yield hub
    finally:
        stop.set()
        await task


async def retained(url: str, unit_path: tuple[str, ...], opened_at: int) -> dict[str, RiskAlert]:
    """What a unit's app that connects now gets from its subscription (retained copies),
    only this test's alerts (opened at our random start time)."""
    address = BrokerAddress.parse(url)
    got: dict[str, RiskAlert] = {}
    async with aiomqtt.Client(address.host, address.port) as client:
        await client.subscribe(topics.unit_subscription(unit_path), qos=1)
        try:
            async with asyncio.timeout(1.0):
                async for msg in client.messages:
                    if not msg.retain or not isinstance(msg.payload, bytes) or not msg.payload:
                        continue
                    alert = msgspec.json.decode(msg.payload, type=RiskAlert)
                    if alert.opened_at == opened_at:
                        got[str(msg.topic)] = alert
        except TimeoutError:
            pass
    return got


async def clear(url: str, topic_names: set[str]) -> None:
    """Leave the shared broker as we found it: no retained copies of our alerts."""
    address = BrokerAddress.parse(url)
    async with aiomqtt.Client(address.host, address.port) as client:
        for name in topic_names:
            await client.publish(name, b"", qos=1, retain=True)


async def send(url: str, event: AnomalyEvent) -> None:
    address = BrokerAddress.parse(url)
    async with aiomqtt.Client(address.host, address.port) as client:
        await client.publish(topics.events_topic(event.agent), encode(event), qos=1)


def noise_event(seq: int, t0: int) -> AnomalyEvent:
    return AnomalyEvent(agent="edge-dasha-dong", seq=seq, sensor=SENSOR, kind="out_of_limits",
                        severity="major", score=0.9, value=82.0, ts=t0)


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    """A mosquitto of this test's own: the district's agents use fixed client ids and
    leave retained statuses, which must not meet other tests on the shared broker."""
    with PrivateMosquitto(tmp_path / "broker") as broker:
        yield broker


async def test_an_unanswered_alert_climbs_to_the_district_and_every_copy_follows(
        private_broker: PrivateMosquitto, sim_district: SimDistrictFactory) -> None:
    district = await sim_district("huangpu", sensors=[SENSOR], broker_url=private_broker.url)
    district.inject(SENSOR, shape="step", to="1.25x", lasts=3600, at=60)
    alert = await district.expect_alert(matter="NOISE-NUISANCE", tier="D", within="5m")
    await district.expect_escalation(to="A", within="91m", alert=alert.alert_id)
    t0 = alert.opened_at
    steps = await district.hub.desk.history(alert.alert_id)
    assert [(t.action, t.at - t0, t.tier, t.unit_level, t.unit) for t in steps] == [
        ("open", 0, "D", "grid", "dasha-dong-g1"),
        ("escalate", 30 * MIN, "C", "community", "dasha-dong"),
        ("escalate", 60 * MIN, "B", "town", "dasha"),
        ("dispatch", 60 * MIN, "B", "town", "dasha"),  # the noise plan's departments
        ("escalate", 90 * MIN, "A", "district", "huangpu"),
        ("dispatch", 90 * MIN, "A", "district", "huangpu"),
        # urban_mgmt, called at B, promised to arrive within 30 minutes: 督办
        ("supervise", 90 * MIN, "A", "district", "huangpu"),
    ]
    # The grid's app, connecting now, sees its alert held by the district, not a stale
    # "opened at the grid"; so do the community's and the town's.
    names: set[str] = set()
    for depth in (4, 3, 2):
        copies = await retained(private_broker.url, PLACE[:depth], t0)
        names |= set(copies)
        assert {(a.alert_id, a.n, a.tier, a.unit, a.reason) for a in copies.values()} == {
            (alert.alert_id, 7, "A", "huangpu", "response deadline passed")}, PLACE[:depth]
    assert names == {topics.alert_topic(PLACE[:d], alert.alert_id) for d in (4, 3, 2)}


async def test_a_deadline_that_passed_while_the_hub_was_down_fires_at_start(
        cfg: ConfigSet, mqtt_url: str, tmp_path: Path) -> None:
    t0 = 1_900_000_000_000_000_000 + random.randrange(10**15)
    clock = Clock(t0)
    path = tmp_path / "hub.sqlite"
    async with Store(path) as store, running(cfg, mqtt_url, store, clock) as hub:
        await send(mqtt_url, noise_event(random.randrange(10**9), t0))
        assert await wait_until(lambda: hub.counters.alerts_opened == 1)
        (state,) = hub.desk.alerts()
        await hub.desk.act(state.alert_id, "acknowledge", "dasha-dong-g1", now=t0 + 5 * MIN)
    clock.now = t0 + 125 * MIN  # down for two hours: the arrival deadline (2 h) passed
    names: set[str] = set()
    try:
        async with Store(path) as store, running(cfg, mqtt_url, store, clock) as hub:
            assert await wait_until(lambda: hub.desk.get(state.alert_id).tier == "C")
            steps = await hub.desk.history(state.alert_id)
            assert [(t.action, t.at - t0, t.reason) for t in steps] == [
                ("open", 0, "base tier D"), ("acknowledge", 5 * MIN, ""),
                ("escalate", 120 * MIN, "arrival deadline passed")]
            assert await wait_until(lambda: hub.counters.alerts_published >= 2)
        copies = await retained(mqtt_url, PLACE, t0)
        names = set(copies)
        assert {(a.alert_id, a.n, a.unit, a.state) for a in copies.values()} == {
            (state.alert_id, 3, "dasha-dong", "opened")}
    finally:
        names |= {topics.alert_topic(PLACE[:d], state.alert_id) for d in (4, 3)}
        await clear(mqtt_url, names)


async def test_a_step_written_but_never_published_is_published_at_start(
        cfg: ConfigSet, mqtt_url: str, tmp_path: Path) -> None:
    """A crash between the ledger and the broker: the hub that starts next publishes the
    alert's current state, so no unit misses it."""
    from gridcall.hub.desk.desk import Desk
    from gridcall.hub.desk.ledger import Ledger

    t0 = 1_900_000_000_000_000_000 + random.randrange(10**15)
    path = tmp_path / "hub.sqlite"
    async with Store(path) as store:  # the desk wrote its steps; nothing reached MQTT
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        out = await desk.on_event(noise_event(1, t0), t0)
        assert out.alert is not None
        await desk.act(out.alert.alert_id, "acknowledge", "dasha-dong-g1", now=t0 + MIN)
    alert_id = out.alert.alert_id
    names = {topics.alert_topic(PLACE, alert_id)}
    try:
        async with Store(path) as store, running(cfg, mqtt_url, store, Clock(t0 + 2 * MIN)):
            pass  # started, connected, republished, stopped
        copies = await retained(mqtt_url, PLACE, t0)
        assert {(a.alert_id, a.n, a.state) for a in copies.values()} == {
            (alert_id, 2, "acknowledged")}
    finally:
        await clear(mqtt_url, names)
