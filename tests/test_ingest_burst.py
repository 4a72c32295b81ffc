"""Ingest under a burst, against real servers: InfluxDB down for 30 s in the middle,
two workers sharing one subscription, a malformed message among good ones, and a worker
stopped before it could write. Every reading published is stored exactly once, with its
exact nanosecond timestamp.

The brokers here (and the InfluxDB that is stopped) are private instances on free ports,
so nothing else publishing readings on the shared broker gets in, and stopping InfluxDB
disturbs nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.hub.ingest.sinks import InfluxV1Sink, LineEncoder
from gridcall.hub.ingest.worker import IngestWorker
from gridcall.wire import Reading, ReadingBatch, encode, topics
from gridcall.wire.broker import BrokerAddress
from tests.polling import wait_until
from tests.private_servers import PrivateInflux, PrivateMosquitto, publish_all
from tests.servers import influxql_async

T0 = 1_795_000_000_000_000_000


def burst(agents: int, batches: int, per_batch: int = 50, *, first_seq: int = 0,
          prefix: str = "burst") -> list[ReadingBatch]:
    """Batches with distinct nanosecond timestamps (not round: any rounding would show)."""
    return [ReadingBatch(agent=f"{prefix}-{a}", seq=seq, sent_at=T0, readings=[
        Reading(f"s{k}", T0 + seq * 1_000_003_007 + a * 10_007 + k, seq + k / 100)
        for k in range(per_batch)])
        for seq in range(first_seq, first_seq + batches) for a in range(agents)]


def owned_burst(batches: int, per_batch: int = 50) -> list[ReadingBatch]:
    """Like :func:`burst`, from the sample district's agents, each speaking for its own
    sensors only (what a hub run on that config takes)."""
    agents = load_config(SAMPLE_DISTRICT).agents.values()
    owned = [(a.id, [s.id for s in a.sensors]) for a in agents]
    return [ReadingBatch(agent=agent, seq=seq, sent_at=T0, readings=[
        Reading(sensors[k % len(sensors)], T0 + seq * 1_000_003_007 + a * 10_007 + k,
                seq + k / 100)
        for k in range(per_batch)])
        for seq in range(batches) for a, (agent, sensors) in enumerate(owned)]


def messages(batches: Sequence[ReadingBatch]) -> list[tuple[str, bytes]]:
    return [(topics.readings_topic(b.agent), encode(b)) for b in batches]


def points(batches: Sequence[ReadingBatch]) -> set[tuple[str, str, int, float]]:
    return {(b.agent, r.sensor, r.ts, r.value) for b in batches for r in b.readings}


async def stored_points(url: str, database: str) -> list[tuple[str, str, int, float]]:
    rows = await influxql_async(url, "SELECT agent, sensor, value FROM reading",
                                database=database)
    return [(r["agent"], r["sensor"], r["time"], r["value"]) for r in rows]


async def count_stored(url: str, database: str) -> int:
    rows = await influxql_async(url, "SELECT count(value) FROM reading", database=database)
    return int(rows[0]["count"]) if rows else 0


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    with PrivateMosquitto(tmp_path / "mosquitto", persistence=False, max_inflight=1000) as broker:
        yield broker


@contextlib.asynccontextmanager
async def running(worker: IngestWorker) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        assert await wait_until(lambda: worker.consumer.subscribed.is_set() or task.done())
        assert not task.done(), task
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 120)  # guard against a hang, not a timing claim


def in_thread(fn: object, *args: object) -> threading.Thread:
    assert callable(fn)
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


async def test_a_burst_with_influxdb_down_for_30s_in_the_middle_is_stored_exactly_once(
    mosquitto: PrivateMosquitto, tmp_path: Path
) -> None:
    first, during = burst(20, 20), burst(20, 20, first_seq=20)
    after = burst(20, 20, first_seq=40)
    with PrivateInflux(tmp_path / "influx") as influx:
        await influxql_async(influx.url, "CREATE DATABASE burst")
        async with InfluxV1Sink(influx.url, database="burst", encoder=LineEncoder(),
                                timeout=2) as sink:
            worker = IngestWorker(sink, address=BrokerAddress.parse(mosquitto.url),
                                  client_id="ingest-burst", spool_dir=tmp_path / "spool",
                                  flush_interval=0.1)
            async with running(worker):
                await asyncio.to_thread(publish_all, mosquitto.url, messages(first))
                influx.stop()  # while the first part may still be in flight
                flood = in_thread(publish_all, mosquitto.url, messages(during))
                await asyncio.sleep(30)  # the outage the issue asks for, not a timing claim
                assert worker.ingest.counters.spooled_readings > 0
                influx.start()
                await asyncio.to_thread(flood.join)
                await asyncio.to_thread(publish_all, mosquitto.url, messages(after))
                total = len(points(first + during + after))
                assert await wait_until(
                    lambda: worker.ingest.counters.readings_stored >= total
                    and worker.ingest.spooled_pending == 0, polls=2400)
            stored = await stored_points(influx.url, "burst")
    assert len(stored) == len(set(stored)) == total
    assert set(stored) == points(first + during + after)
    c = worker.ingest.counters
    assert c.spooled_readings > 0
    assert c.unspooled_readings == c.spooled_readings
    assert (c.rejected_readings, c.unwritten_readings) == (0, 0)
    assert not list((tmp_path / "spool").glob("*.spool"))
    assert worker.consumer.acks.unacked == 0


async def test_two_workers_in_a_shared_subscription_store_everything_once(
    mosquitto: PrivateMosquitto, influx_v1_url: str, influx_database: str, tmp_path: Path
) -> None:
    batches = burst(10, 60, prefix="shared")
    address = BrokerAddress.parse(mosquitto.url)
    group = f"g{uuid.uuid4().hex[:6]}"
    async with contextlib.AsyncExitStack() as stack:
        workers = []
        for i in (1, 2):
            sink = await stack.enter_async_context(InfluxV1Sink(
                influx_v1_url, database=influx_database, encoder=LineEncoder()))
            worker = IngestWorker(sink, address=address, client_id=f"ingest-{group}-{i}",
                                  share_group=group, spool_dir=tmp_path / f"spool{i}",
                                  flush_interval=0.1)
            await stack.enter_async_context(running(worker))
            workers.append(worker)
        await asyncio.to_thread(publish_all, mosquitto.url, messages(batches))
        total = len(points(batches))
        assert await wait_until(
            lambda: sum(w.ingest.counters.readings_stored for w in workers) >= total)
    stored = await stored_points(influx_v1_url, influx_database)
    assert len(stored) == len(set(stored)) == total
    assert set(stored) == points(batches)
    taken = [w.ingest.counters.batches_received for w in workers]
    assert sum(taken) == len(batches)  # each message went to exactly one worker
    assert all(n > 0 for n in taken), taken  # and both took a share


async def test_a_malformed_message_in_a_burst_is_counted_and_rejected_and_the_rest_stored(
    mosquitto: PrivateMosquitto, influx_v1_url: str, influx_database: str, tmp_path: Path
) -> None:
    good = burst(5, 40, prefix="mixed")
    flood = messages(good)
    bad = [(topics.readings_topic("mixed-0"), b'{"v":1,"agent":"mixed-0","seq":'),
           (topics.readings_topic("mixed-1"), encode(ReadingBatch(
               agent="mixed-1", seq=999, sent_at=T0, readings=[Reading("bad id", T0, 1.0)])))]
    flood[len(flood) // 2:len(flood) // 2] = bad
    async with InfluxV1Sink(influx_v1_url, database=influx_database,
                            encoder=LineEncoder()) as sink:
        worker = IngestWorker(sink, address=BrokerAddress.parse(mosquitto.url),
                              client_id=f"ingest-{uuid.uuid4().hex[:6]}",
                              spool_dir=tmp_path / "spool", flush_interval=0.1)
        async with running(worker):
            await asyncio.to_thread(publish_all, mosquitto.url, flood)
            total = len(points(good))
            assert await wait_until(lambda: worker.ingest.counters.readings_stored >= total)
            # the bad ones are acknowledged too: redelivering them would not help
            assert await wait_until(lambda: worker.consumer.acks.unacked == 0)
    assert worker.consumer.decoder.malformed == {"not_json": 1, "invalid": 1}
    assert worker.consumer.messages == len(flood)
    stored = await stored_points(influx_v1_url, influx_database)
    assert len(stored) == len(set(stored)) == total
    assert set(stored) == points(good)


async def test_what_a_worker_took_but_did_not_write_is_redelivered_after_a_restart(
    mosquitto: PrivateMosquitto, influx_v1_url: str, influx_database: str
) -> None:
    """Acknowledge-after-write: with the sink unreachable and no spool, the worker holds
    the messages unacknowledged; stopped, it writes nothing (and says so); the broker
    gives them to it again when it comes back with a sink that works."""
    batches = burst(3, 10, prefix="held")
    address = BrokerAddress.parse(mosquitto.url)
    client_id = f"ingest-{uuid.uuid4().hex[:6]}"
    async with InfluxV1Sink(f"http://127.0.0.1:{_free_port()}", database="x",
                            encoder=LineEncoder()) as dead:
        first = IngestWorker(dead, address=address, client_id=client_id, flush_interval=0.1,
                             drain_timeout=0.5)
        async with running(first):
            await asyncio.to_thread(publish_all, mosquitto.url, messages(batches))
            assert await wait_until(
                lambda: first.ingest.counters.readings_received == len(points(batches)))
            assert first.consumer.acks.acked == 0
    assert first.unwritten.batches == len(batches)
    async with InfluxV1Sink(influx_v1_url, database=influx_database,
                            encoder=LineEncoder()) as sink:
        second = IngestWorker(sink, address=address, client_id=client_id,
                              flush_interval=0.1)
        async with running(second):
            assert await wait_until(
                lambda: second.ingest.counters.readings_stored == len(points(batches)))
            assert await wait_until(lambda: second.consumer.acks.acked == len(batches))
    assert set(await stored_points(influx_v1_url, influx_database)) == points(batches)


def _free_port() -> int:
    from tests.servers import unused_tcp_port
    return unused_tcp_port()


async def test_hub_run_with_two_ingest_worker_processes_stores_a_burst_exactly_once(
    mosquitto: PrivateMosquitto, influx_v1_url: str, influx_database: str, tmp_path: Path
) -> None:
    """`gridcall hub run --ingest-workers 2`: the alert desk in one process, two `hub
    ingest` processes in one shared subscription; SIGTERM stops them all cleanly."""
    config_dir = tmp_path / "district"
    config_dir.mkdir()
    for f in SAMPLE_DISTRICT.glob("*.yaml"):
        (config_dir / f.name).write_bytes(f.read_bytes())
    (config_dir / "hub.yaml").write_text(yaml.safe_dump({"hub": {
        "broker": {"url": mosquitto.url}, "client_id": "test-workers",
        "store_path": str(tmp_path / "hub.sqlite"), "spool_dir": str(tmp_path / "spool"),
        "influx": {"url": influx_v1_url, "database": influx_database}}}), encoding="utf-8")
    log = tmp_path / "hub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 -- returns at once; polled below
            [sys.executable, "-c", "from gridcall.cli import main; main()", "hub", "run",
             "--config", str(config_dir), "--ingest-workers", "2"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        # each worker says when it has joined the group: only then is a message kept for it
        assert await wait_until(lambda: log.read_bytes().count(b"subscribed to $share/") >= 2
                                or proc.poll() is not None, polls=1200), log.read_text()
        batches = owned_burst(40)
        await asyncio.to_thread(publish_all, mosquitto.url, messages(batches))
        total = len(points(batches))

        async def stored() -> int:
            return await count_stored(influx_v1_url, influx_database)

        for _ in range(1200):  # bounded polling, not a timing claim
            if await stored() >= total or proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 120)  # guard against a hang
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    said = log.read_text(encoding="utf-8")
    assert proc.returncode == 0, said
    assert "Traceback" not in said
    got = await stored_points(influx_v1_url, influx_database)
    assert len(got) == len(set(got)) == total
    assert set(got) == points(batches)
    # each worker said what it stored at its stop; together, every reading, once
    per_worker = [int(n) for n in re.findall(r"ingest worker stopped: (\d+) of", said)]
    assert len(per_worker) == 2
    assert sum(per_worker) == total
    assert all(n > 0 for n in per_worker), per_worker



async def test_readings_influxdb_answers_500_for_are_spooled_and_written_once_it_is_fixed(
    mosquitto: PrivateMosquitto, influx_v1_url: str, influx_database: str, tmp_path: Path
) -> None:
    """A real HTTP 500 (InfluxDB 1.x answers 500 for a retention policy that does not
    exist): classified retryable, so the readings go to the spool, their messages are
    acknowledged, and once an operator creates the policy they are written, once."""
    batches = burst(4, 10, prefix="http500")
    async with InfluxV1Sink(influx_v1_url, database=influx_database,
                            retention_policy="later", encoder=LineEncoder()) as sink:
        worker = IngestWorker(sink, address=BrokerAddress.parse(mosquitto.url),
                              client_id=f"ingest-{uuid.uuid4().hex[:6]}",
                              spool_dir=tmp_path / "spool", flush_interval=0.1)
        async with running(worker):
            await asyncio.to_thread(publish_all, mosquitto.url, messages(batches))
            total = len(points(batches))
            assert await wait_until(lambda: worker.ingest.counters.spooled_readings == total)
            assert await wait_until(lambda: worker.consumer.acks.acked == len(batches))
            assert worker.ingest.counters.readings_stored == 0
            assert "HTTP 500" in (worker.ingest.last_error or "")
            await influxql_async(influx_v1_url, f'CREATE RETENTION POLICY "later" ON '
                                 f'"{influx_database}" DURATION INF REPLICATION 1')
            assert await wait_until(lambda: worker.ingest.spooled_pending == 0, polls=1200)
    rows = await influxql_async(influx_v1_url, 'SELECT agent, sensor, value FROM '
                                '"later".reading', database=influx_database)
    got = [(r["agent"], r["sensor"], r["time"], r["value"]) for r in rows]
    assert len(got) == len(set(got)) == total
    assert set(got) == points(batches)
    c = worker.ingest.counters
    assert (c.readings_stored, c.rejected_readings, c.unwritten_readings) == (total, 0, 0)
