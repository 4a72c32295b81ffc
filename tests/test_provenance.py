"""Only an agent speaks for its sensors (issue 16, item 1): the pure check, and the hub
taking readings and events through it over a real broker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from gridcall.config import ConfigSet
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent, Reading, ReadingBatch, encode, topics
from gridcall.wire.broker import BrokerAddress
from gridcall.wire.provenance import Owners, Refusals, Screen
from tests.private_servers import PrivateMosquitto

NOW = time.time_ns()
"""Readings and events are stamped near the hub's clock: it refuses ts outside its window."""
OWNERS = Owners.of([("a-1", "edge-a"), ("a-2", "edge-a"), ("b-1", "edge-b")])


def readings(agent: str, *sensors: str, seq: int = 1) -> ReadingBatch:
    return ReadingBatch(agent=agent, seq=seq, sent_at=1,
                        readings=[Reading(s, NOW + i, float(i)) for i, s in enumerate(sensors)])


def test_an_agent_speaks_only_for_its_own_configured_sensors() -> None:
    assert OWNERS.verdict("edge-a", "a-1") is None
    assert OWNERS.verdict("edge-a", "b-1") == "forged"
    assert OWNERS.verdict("edge-a", "ghost") == "unknown_sensor"
    assert OWNERS.verdict("edge-x", "a-1") == "forged"  # an agent the config lacks
    assert OWNERS.sensors_of("edge-a") == {"a-1", "a-2"}


def test_a_batch_keeps_its_agents_readings_and_refuses_the_rest_by_reason() -> None:
    screen = Screen(OWNERS, max_readings=10)
    mine = readings("edge-a", "a-1", "a-2")
    assert screen.batch("edge-a", mine).batch is mine  # nothing to refuse: the batch itself
    mixed = screen.batch("edge-a", readings("edge-a", "a-1", "b-1", "ghost", "ghost", "a-2"))
    assert mixed.batch is not None
    assert [r.sensor for r in mixed.batch.readings] == ["a-1", "a-2"]
    assert mixed.refused == {"forged": 1, "unknown_sensor": 2}
    # each reason's log line names a reading refused for that reason
    assert mixed.examples == {"forged": "sensor 'b-1' is edge-b's",
                              "unknown_sensor": "sensor 'ghost' is not in the config"}
    none = screen.batch("edge-a", readings("edge-a", "b-1", "ghost"))
    assert none.batch is None
    assert none.refused == {"forged": 1, "unknown_sensor": 1}


def test_a_batch_on_another_agents_topic_is_forged_whole() -> None:
    out = Screen(OWNERS, max_readings=10).batch("edge-b", readings("edge-a", "a-1", "a-2"))
    assert out.batch is None
    assert out.refused == {"forged": 2}


def test_an_over_long_batch_is_refused_whole_with_its_reason() -> None:
    screen = Screen(OWNERS, max_readings=3)
    out = screen.batch("edge-a", readings("edge-a", *["a-1"] * 4))
    assert out.batch is None
    assert out.refused == {"too_many_readings": 4}
    assert "at most 3" in out.examples["too_many_readings"]
    assert screen.batch("edge-a", readings("edge-a", *["a-1"] * 3)).refused == {}
    with pytest.raises(ValueError, match="max_readings"):
        Screen(OWNERS, max_readings=0)


def test_refusals_are_logged_once_per_agent_and_reason_per_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    refusals = Refusals("readings", every=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="gridcall.wire.provenance"):
        assert refusals.note("edge-a", "forged", "sensor 'b-1' is edge-b's", 3)
        assert not refusals.note("edge-a", "forged", "again", 5)
        assert refusals.note("edge-a", "unknown_sensor", "ghost")  # another reason
        assert refusals.note("edge-b", "forged", "x")  # another agent
        now[0] = 61.0
        assert refusals.note("edge-a", "forged", "later", 2)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert lines[0].startswith("3 readings refused from edge-a (forged): sensor 'b-1'")
    assert lines[3].startswith("7 readings refused from edge-a (forged): later (61s since")


# --------------------------------------------------------------------------- the hub


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """A mosquitto of this test's own: nothing else publishes readings on it."""
    with PrivateMosquitto(tmp_path / "mosquitto") as b:
        yield b.url


async def run_hub(cfg: ConfigSet, broker: str, store: Store,
                  messages: list[tuple[str, bytes]]) -> Hub:
    hub = Hub(cfg, sink=store, store=store, broker_url=broker, client_id="provenance-hub",
              flush_interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop))
    await asyncio.wait_for(hub.subscribed.wait(), 10)
    address = BrokerAddress.parse(broker)
    async with aiomqtt.Client(address.host, address.port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)
    for _ in range(400):  # bounded polling, not a timing claim
        if hub.counters.messages + (hub.readings.messages if hub.readings else 0) >= len(
                messages) and hub.ingest.pending_points == 0:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    return hub


def sensor_of(cfg: ConfigSet, agent: str, kind: str | None = None) -> str:
    return next(s.id for s in cfg.sensors.values()
                if s.agent == agent and kind in (None, s.kind))


async def test_the_hub_stores_no_reading_an_agent_may_not_speak_for(
    cfg: ConfigSet, broker: str
) -> None:
    own, theirs = sensor_of(cfg, "edge-anle"), sensor_of(cfg, "edge-dongyuan")
    t = topics.readings_topic("edge-anle")
    invented = ReadingBatch(agent="edge-anle", seq=2, sent_at=1, readings=[
        Reading(f"ghost-{i}", NOW + i, 1.0) for i in range(500)])
    too_long = readings("edge-anle", *[own] * (cfg.hub.max_batch_readings + 1), seq=3)
    messages = [(t, encode(readings("edge-anle", own, theirs, own, seq=1))),
                (t, encode(invented)), (t, encode(too_long))]
    async with Store(":memory:") as store:
        hub = await run_hub(cfg, broker, store, messages)
        stored = await store.readings_of("edge-anle")
        assert await store.count_readings() == len(stored) == 2
        assert await store.readings_of("edge-dongyuan") == []
    assert hub.ingest.counters.refused == {"forged": 1, "unknown_sensor": 500,
                                           "too_many_readings": 10_001}
    stats = hub.stats()
    assert stats["ingest.refused.forged"] == 1
    assert stats["ingest.refused.unknown_sensor"] == 500
    assert hub.readings is not None
    assert hub.readings.acks.acked == 3


async def test_a_forged_event_opens_no_alert_and_cannot_take_a_genuine_events_seq(
    cfg: ConfigSet, broker: str
) -> None:
    """edge-anle's login on its own topic: an event for edge-dongyuan's smoke sensor, in
    its own name and in edge-dongyuan's, with the seq edge-dongyuan's next real event has.
    Neither opens anything; the genuine event, arriving after, opens its alert."""
    theirs = sensor_of(cfg, "edge-dongyuan", "smoke")

    def event(agent: str, sensor: str, seq: int = 41) -> AnomalyEvent:
        return AnomalyEvent(agent=agent, seq=seq, sensor=sensor, kind="out_of_limits",
                            severity="critical", score=1.0, value=9.0, ts=NOW)

    anle = topics.events_topic("edge-anle")
    messages = [(anle, encode(event("edge-anle", theirs))),
                (anle, encode(event("edge-dongyuan", theirs))),
                (anle, encode(event("edge-anle", "ghost", seq=42))),
                (topics.events_topic("edge-dongyuan"), encode(event("edge-dongyuan", theirs)))]
    async with Store(":memory:") as store:
        hub = await run_hub(cfg, broker, store, messages)
        (state,) = hub.desk.alerts()
        assert (state.alert.agent, state.alert.event_seq) == ("edge-dongyuan", 41)
        assert state.alert.matter == "FIRE-SMOKE"
    assert hub.counters.rejected == {"forged": 1, "unknown_sensor": 1}
    assert hub.decoder.malformed == {"forged": 1}
    assert hub.counters.events == 1
    assert hub.stats()["rejected.forged"] == 1
    assert hub.stats()["decoder.malformed.forged"] == 1
