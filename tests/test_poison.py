"""Poison cannot hurt (issue 16, item 2), on both stores, against real mosquitto and InfluxDB.

The issue's cases exactly: an event with ``seq = 2**64``; two reading batches with
``seq = 2**64`` and then 10 good ones, all good ones stored, also after a restart. And the
messages that decode but fail later: a batch the store refuses and an event the desk
fails on are set aside in the dead-letter store, acknowledged (a restarted hub does not
get them again), and replayed by ``gridcall hub deadletter replay`` once fixed; a batch
stamped outside the hub's window is kept the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from typer.testing import CliRunner

from gridcall.cli import app
from gridcall.config import ConfigSet
from gridcall.config.models import TsWindowSettings
from gridcall.hub.deadletter import DeadLetters
from gridcall.hub.ingest.sinks import ReadingSink
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.sinks import influx_sink
from gridcall.wire import (
    AnomalyEvent,
    Decoder,
    MalformedMessage,
    Reading,
    ReadingBatch,
    encode,
    topics,
)
from gridcall.wire.broker import BrokerAddress
from gridcall.wire.clock import DAY_NS, from_iso
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto
from tests.servers import influxql_async, quote_ident, unique_name

pytestmark = pytest.mark.servers

AGENT = "edge-dongyuan"
POISON_SEQ = 2**64


@dataclass
class Rig:
    """One hub's world: a broker, a store, a readings sink (the store or InfluxDB) and a
    dead-letter store; each :meth:`hub` run is one hub process's life on one session."""

    cfg: ConfigSet
    mqtt_url: str
    store: Store
    sink: ReadingSink
    letters: DeadLetters
    client_id: str
    influx: tuple[str, str] | None

    @contextlib.asynccontextmanager
    async def hub(self, cfg: ConfigSet | None = None) -> AsyncIterator[Hub]:
        hub = Hub(cfg or self.cfg, sink=self.sink, store=self.store,
                  broker_url=self.mqtt_url, client_id=self.client_id, flush_interval=0.05,
                  dead_letters=self.letters, replay_interval=0.1, boards=False)
        stop = asyncio.Event()
        task = asyncio.create_task(hub.run(stop))
        try:
            assert await wait_until(hub.subscribed.is_set)
            yield hub
        finally:
            stop.set()
            await task  # a hub that died would raise here

    async def publish(self, *messages: tuple[str, bytes]) -> None:
        address = BrokerAddress.parse(self.mqtt_url)
        async with aiomqtt.Client(address.host, address.port) as client:
            for topic, payload in messages:
                await client.publish(topic, payload, qos=1)

    async def stored_seqs(self, agent: str) -> list[int]:
        """The batch seq of every stored reading of ``agent``, sorted."""
        if self.influx is None:
            return sorted(r[0] for r in await self.store.readings_of(agent))
        url, database = self.influx
        rows = await influxql_async(url, f"SELECT seq FROM reading WHERE agent='{agent}'",
                                    database=database)
        return sorted(int(r["seq"]) for r in rows)


@pytest.fixture(params=["embedded", "influxdb"])
async def rig(request: pytest.FixtureRequest, cfg: ConfigSet, influx_v1_url: str,
              tmp_path: Path) -> AsyncIterator[Rig]:
    """A private mosquitto (no other test's agents on it), with persistence: a restarted
    hub finds its session and what the broker still holds for it."""
    client_id = f"poison-{uuid.uuid4().hex[:8]}"
    async with Store(tmp_path / "hub.sqlite") as store, contextlib.AsyncExitStack() as stack:
        mqtt_url = stack.enter_context(PrivateMosquitto(tmp_path / "broker")).url
        letters = stack.enter_context(DeadLetters(tmp_path / "dead.sqlite", source=client_id))
        influx: tuple[str, str] | None = None
        sink: ReadingSink = store
        if request.param == "influxdb":
            url, database = influx_v1_url, unique_name("poison")
            await influxql_async(url, f"CREATE DATABASE {quote_ident(database)}")
            stack.push_async_callback(influxql_async, url,
                                      f"DROP DATABASE {quote_ident(database)}")
            # rich points: each stored reading carries its batch's seq, which is what
            # these cases count (which batches got through)
            sink = await stack.enter_async_context(influx_sink(cfg, url=url,
                                                               database=database,
                                                               points="rich"))
            influx = (url, database)
        yield Rig(cfg, mqtt_url, store, sink, letters, client_id, influx)


def batch(seq: int, *, sensor: str, t0: int, n: int = 5, agent: str = AGENT) -> bytes:
    return encode(ReadingBatch(agent=agent, seq=seq, sent_at=t0, readings=[
        Reading(sensor, t0 + seq * 1000 + i, float(i)) for i in range(n)]))


def poison_batch(sensor: str, t0: int) -> bytes:
    """Well-formed JSON, every field right but ``seq``, which no store can hold."""
    return (b'{"v":1,"agent":"%s","seq":%d,"sent_at":%d,"readings":[["%s",%d,1.0]]}'
            % (AGENT.encode(), POISON_SEQ, t0, sensor.encode(), t0))


def event(seq: int, sensor: str, ts: int) -> AnomalyEvent:
    return AnomalyEvent(agent=AGENT, seq=seq, sensor=sensor, kind="out_of_limits",
                        severity="critical", score=1.0, value=45.0, ts=ts)


def sensor_of(cfg: ConfigSet, kind: str) -> str:
    return next(s.id for s in cfg.sensors.values() if s.agent == AGENT and s.kind == kind)


async def test_an_event_with_seq_2_64_is_refused_and_the_hub_goes_on(rig: Rig) -> None:
    gas = sensor_of(rig.cfg, "gas")
    now = time.time_ns()
    bad = (b'{"v":1,"agent":"%s","seq":%d,"sensor":"%s","kind":"out_of_limits",'
           b'"severity":"critical","score":1.0,"value":45.0,"ts":%d}'
           % (AGENT.encode(), POISON_SEQ, gas.encode(), now))
    async with rig.hub() as hub:
        await rig.publish((topics.events_topic(AGENT), bad),
                          (topics.events_topic(AGENT), encode(event(7, gas, now + 1))))
        assert await wait_until(lambda: len(hub.opened) == 1)
        assert hub.decoder.malformed["invalid"] == 1
        assert hub.supervisor.restarts == {}
    async with rig.hub() as again:  # neither message comes back: both were acknowledged
        await rig.publish((topics.events_topic(AGENT), encode(event(8, gas, now + 2))))
        assert await wait_until(lambda: again.counters.events == 1)
        assert (again.decoder.malformed_total, again.counters.duplicate_events) == (0, 0)


async def test_two_batches_with_seq_2_64_then_ten_good_ones_all_good_ones_stored(
    rig: Rig,
) -> None:
    sensor = sensor_of(rig.cfg, "gas")
    t0 = time.time_ns()
    async with rig.hub() as hub:
        await rig.publish(*[(topics.readings_topic(AGENT), poison_batch(sensor, t0))] * 2,
                          *[(topics.readings_topic(AGENT), batch(seq, sensor=sensor, t0=t0))
                            for seq in range(1, 11)])
        assert await wait_until(lambda: hub.ingest.counters.readings_stored == 50)
        assert hub.decoder.malformed["invalid"] == 2
        assert hub.supervisor.restarts == {}
    assert await rig.stored_seqs(AGENT) == [s for s in range(1, 11) for _ in range(5)]
    async with rig.hub() as again:  # after a restart: nothing redelivered, new ones stored
        await rig.publish(*[(topics.readings_topic(AGENT), batch(seq, sensor=sensor, t0=t0))
                            for seq in range(11, 21)])
        assert await wait_until(lambda: again.ingest.counters.readings_stored == 50)
        assert again.decoder.malformed_total == 0
    assert await rig.stored_seqs(AGENT) == [s for s in range(1, 21) for _ in range(5)]


async def test_json_nested_past_the_decoders_depth_is_refused_and_the_hub_goes_on(
    rig: Rig,
) -> None:
    """msgspec raises RecursionError there, not a DecodeError: a readings batch of 100,000
    nested arrays stopped ingest without a word (nothing after it was stored, no task
    restarted), and an event or status was dead-lettered as a desk_error."""
    sensor = sensor_of(rig.cfg, "gas")
    t0 = time.time_ns()
    deep = b'{"v":1,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    async with rig.hub() as hub:
        await rig.publish((topics.readings_topic(AGENT), deep),
                          (topics.events_topic(AGENT), deep),
                          (topics.status_topic(AGENT), deep),
                          *[(topics.readings_topic(AGENT), batch(seq, sensor=sensor, t0=t0))
                            for seq in range(1, 4)],
                          (topics.events_topic(AGENT), encode(event(9, sensor, t0))))
        assert await wait_until(lambda: hub.ingest.counters.readings_stored == 15
                                and len(hub.opened) == 1)
        assert hub.decoder.malformed["not_json"] >= 2  # the desk's (event, status)
        assert hub.supervisor.restarts == {}
    assert rig.letters.entries() == []
    assert await rig.stored_seqs(AGENT) == [s for s in range(1, 4) for _ in range(5)]


class FailsOnce:
    """The hub's decoder with a bug: the first message reading ``b"bug"`` raises what no
    handler expects. Stands in for the failures nobody has found yet."""

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self.failed = False

    def readings(self, topic: str, payload: bytes) -> ReadingBatch:
        if payload == b"bug" and not self.failed:
            self.failed = True
            raise RuntimeError("an unforeseen bug taking a message")
        return self.decoder.readings(topic, payload)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.decoder, name)


async def test_a_failure_taking_messages_is_restarted_and_ingest_goes_on(rig: Rig) -> None:
    """Beside the desk, the task taking readings from the broker was not supervised: its
    failure stopped ingest without a word (no restart counted, nothing stored after it)
    while the desk ran on."""
    sensor = sensor_of(rig.cfg, "gas")
    t0 = time.time_ns()
    async with rig.hub() as hub:
        assert hub.worker is not None
        hub.worker.consumer.decoder = FailsOnce(hub.worker.consumer.decoder)  # type: ignore[assignment]
        await rig.publish((topics.readings_topic(AGENT), b"bug"),
                          *[(topics.readings_topic(AGENT), batch(seq, sensor=sensor, t0=t0))
                            for seq in range(1, 4)])
        assert await wait_until(lambda: hub.ingest.counters.readings_stored == 15)
        assert hub.supervisor.restarts == {"ingest-readings": 1}
    assert await rig.stored_seqs(AGENT) == [s for s in range(1, 4) for _ in range(5)]


async def refuse_sensor(rig: Rig, sensor: str, t_bad: int) -> Callable[[], Awaitable[None]]:
    """Make the store refuse ``sensor``'s readings for real; returns what lifts it.

    Embedded: a trigger, as a CHECK constraint would. InfluxDB: a string ``value`` in the
    shard of ``t_bad`` (weeks back), so float values there are a field type conflict;
    lifted by dropping that shard (the good readings are in today's)."""
    if rig.influx is None:
        await rig.store.run(lambda: rig.store.db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON readings WHEN NEW.sensor = "
            f"'{sensor}' BEGIN SELECT RAISE(ABORT, 'sensor refused'); END"))

        async def drop_trigger() -> None:
            await rig.store.run(lambda: rig.store.db.execute("DROP TRIGGER refuse"))
        return drop_trigger
    url, database = rig.influx
    async with httpx.AsyncClient(base_url=url) as http:
        resp = await http.post("/write", params={"db": database}, content=(
            f'reading,agent=other,sensor=x value="text" {t_bad}').encode())
        assert resp.status_code == 204

    async def drop_shard() -> None:
        shards = [r for r in await influxql_async(url, "SHOW SHARDS")
                  if r.get("database") == database
                  and from_iso(r["start_time"]) <= t_bad < from_iso(r["end_time"])]
        assert len(shards) == 1
        await influxql_async(url, f"DROP SHARD {shards[0]['id']}")
    return drop_shard


async def test_a_batch_the_store_refuses_is_dead_lettered_acknowledged_and_replayed(
    rig: Rig, tmp_path: Path,
) -> None:
    good, refused = sensor_of(rig.cfg, "gas"), sensor_of(rig.cfg, "smoke")
    t_bad = time.time_ns() - 14 * DAY_NS  # InfluxDB: a shard (a week) of its own
    lift = await refuse_sensor(rig, refused, t_bad)
    t0 = time.time_ns()
    async with rig.hub() as hub:
        await rig.publish(
            (topics.readings_topic(AGENT), batch(1, sensor=good, t0=t0)),
            (topics.readings_topic(AGENT), batch(2, sensor=refused, t0=t_bad)),
            *[(topics.readings_topic(AGENT), batch(seq, sensor=good, t0=t0))
              for seq in range(3, 13)])
        c = hub.ingest.counters
        assert await wait_until(lambda: c.readings_stored == 55 and c.dead_lettered_batches)
        assert (c.dead_lettered_batches, c.rejected_readings) == (1, 5)
        assert hub.supervisor.restarts == {}
    [letter] = rig.letters.entries()
    assert (letter.topic, letter.reason) == (topics.readings_topic(AGENT), "rejected")
    assert b'"seq":2' in letter.payload
    assert await rig.stored_seqs(AGENT) == [s for s in (1, *range(3, 13)) for _ in range(5)]

    listed = CliRunner().invoke(app, ["hub", "deadletter", "list", "--payload",
                                      "--store", str(rig.letters.path)], env={"COLUMNS": "300"})
    assert listed.exit_code == 0, listed.output
    assert "1 rejected" in listed.output
    assert f"#{letter.id} {topics.readings_topic(AGENT)}" in listed.output  # its payload
    await lift()
    result = CliRunner().invoke(app, ["hub", "deadletter", "replay", "--all",
                                      "--store", str(rig.letters.path)])
    assert result.exit_code == 0, result.output
    assert "1 dead letter(s) marked" in result.output
    async with rig.hub() as again:  # the poison is not redelivered; the replay is stored
        assert await wait_until(lambda: again.ingest.counters.readings_stored == 5)
        assert again.decoder.malformed_total == 0
    assert rig.letters.entries() == []
    assert await rig.stored_seqs(AGENT) == [s for s in range(1, 13) for _ in range(5)]


async def test_an_event_the_desk_fails_on_is_dead_lettered_and_the_next_one_opens(
    rig: Rig,
) -> None:
    gas, smoke = sensor_of(rig.cfg, "gas"), sensor_of(rig.cfg, "smoke")
    await rig.store.run(lambda: rig.store.db.execute(
        f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.sensor = '{smoke}' "
        "BEGIN SELECT RAISE(ABORT, 'event refused'); END"))
    now = time.time_ns()
    async with rig.hub() as hub:
        await rig.publish((topics.events_topic(AGENT), encode(event(1, smoke, now))),
                          (topics.events_topic(AGENT), encode(event(2, gas, now + 1))))
        assert await wait_until(lambda: len(hub.opened) == 1)
        assert hub.counters.dead_lettered == 1
        assert hub.supervisor.restarts == {}
    [letter] = rig.letters.entries()
    assert (letter.reason, letter.topic) == ("desk_error", topics.events_topic(AGENT))
    assert "event refused" in letter.detail
    await rig.store.run(lambda: rig.store.db.execute("DROP TRIGGER refuse"))
    rig.letters.mark_replay(every=True)
    async with rig.hub() as again:
        assert await wait_until(lambda: len(again.opened) == 1)  # the replayed one
        assert again.counters.dead_lettered == 0
    assert rig.letters.entries() == []


async def test_a_batch_stamped_outside_the_window_is_kept_and_replayed_once_widened(
    rig: Rig,
) -> None:
    sensor = sensor_of(rig.cfg, "gas")
    old = time.time_ns() - 40 * DAY_NS
    async with rig.hub() as hub:
        await rig.publish((topics.readings_topic(AGENT), batch(1, sensor=sensor, t0=old)))
        assert await wait_until(lambda: rig.letters.counts["ts_window"] == 1)
        assert hub.ingest.counters.readings_received == 0
    [letter] = rig.letters.entries()
    assert letter.reason == "ts_window"
    assert "outside the window" in letter.detail
    wider = replace(rig.cfg, hub=rig.cfg.hub.model_copy(update={
        "ts_window": TsWindowSettings(past=timedelta(days=60))}))
    rig.letters.mark_replay(reason="ts_window")
    async with rig.hub(wider) as again:
        assert await wait_until(lambda: again.ingest.counters.readings_stored == 5)
    assert await rig.stored_seqs(AGENT) == [1] * 5


@pytest.mark.parametrize("rig", ["embedded"], indirect=True)
async def test_an_event_is_acknowledged_only_once_handled(rig: Rig, tmp_path: Path) -> None:
    """The store locked by another writer is not the event's fault: it is not
    dead-lettered, not acknowledged; the desk's connection is restarted (counted) and the
    broker delivers the event again, which opens its alert once the lock is gone."""
    gas = sensor_of(rig.cfg, "gas")
    blocker = sqlite3.connect(tmp_path / "hub.sqlite", isolation_level=None)
    async with rig.hub() as hub:
        blocker.execute("BEGIN EXCLUSIVE")
        await rig.publish((topics.events_topic(AGENT), encode(event(1, gas, time.time_ns()))))
        assert await wait_until(lambda: hub.supervisor.restarts["desk"] >= 1, polls=1000)
        blocker.execute("ROLLBACK")
        assert await wait_until(lambda: len(hub.opened) == 1, polls=1000)
        assert hub.counters.dead_lettered == 0
    blocker.close()
    assert rig.letters.entries() == []


async def test_the_window_is_around_the_agents_clock_when_the_desk_runs_faster(
    cfg: ConfigSet,
) -> None:
    """The fast demo's desk clock runs 600x ahead of its agents: after an hour it is 25
    days ahead. The window follows the clock the agents stamp with (agent_clock)."""
    sensor = sensor_of(cfg, "gas")
    now = time.time_ns()
    ahead = now + 60 * DAY_NS
    async with Store(":memory:") as store:
        demo = Hub(cfg, sink=store, store=store, clock=lambda: ahead, agent_clock=time.time_ns)
        assert demo.decoder.readings(topics.readings_topic(AGENT),
                                     batch(1, sensor=sensor, t0=now)).seq == 1
        plain = Hub(cfg, sink=store, store=store, clock=lambda: ahead)
        with pytest.raises(MalformedMessage, match="ts_window"):
            plain.decoder.readings(topics.readings_topic(AGENT), batch(1, sensor=sensor, t0=now))
