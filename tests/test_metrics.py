"""The hub's Prometheus /metrics (issue 16, item 5), scraped from a running hub on a real
mosquitto: its figures are the hub's own counters read at scrape time, on its own port
and on the API's, and every number of Hub.stats() is there under gridcall_stat."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gridcall.config import ConfigSet
from gridcall.hub.compose import services
from gridcall.hub.deadletter import DeadLetters
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent, Reading, ReadingBatch, encode, topics
from gridcall.wire.broker import BrokerAddress
from gridcall.wire.clock import DAY_NS
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto
from tests.servers import unused_tcp_port

pytestmark = pytest.mark.servers

AGENT = "edge-dongyuan"
GAS = "dongyuan-g3-gas-1"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(text: str) -> Samples:
    """Every sample as {(name, sorted labels): value}."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def batch(seq: int, ts: int) -> bytes:
    return encode(ReadingBatch(agent=AGENT, seq=seq, sent_at=ts, readings=[
        Reading(GAS, ts + i, float(i)) for i in range(5)]))


@contextlib.asynccontextmanager
async def running_hub(cfg: ConfigSet, tmp_path: Path, *, api: tuple[str, int] | None,
                      metrics: tuple[str, int] | None) -> AsyncIterator[tuple[Hub, str]]:
    with PrivateMosquitto(tmp_path / "broker") as broker, \
            DeadLetters(tmp_path / "dead.sqlite") as letters:
        async with Store(tmp_path / "hub.sqlite") as store:
            hub = Hub(cfg, sink=store, store=store, broker_url=broker.url,
                      client_id="metrics-hub", flush_interval=0.05, boards=False,
                      dead_letters=letters)
            stop = asyncio.Event()
            async with services(hub, api=api, tokens=tmp_path / "tokens.json",
                                say=lambda _: None, metrics=metrics):
                task = asyncio.create_task(hub.run(stop))
                assert await wait_until(hub.subscribed.is_set)
                try:
                    yield hub, broker.url
                finally:
                    stop.set()
                    await task


async def publish(url: str, *messages: tuple[str, bytes]) -> None:
    address = BrokerAddress.parse(url)
    async with aiomqtt.Client(address.host, address.port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def test_metrics_are_the_hubs_counters_read_at_scrape_time(
    cfg: ConfigSet, tmp_path: Path,
) -> None:
    port = unused_tcp_port()
    now = time.time_ns()
    poison = (b'{"v":1,"agent":"%s","seq":%d,"sent_at":1,"readings":[]}'
              % (AGENT.encode(), 2**64))
    event = AnomalyEvent(agent=AGENT, seq=1, sensor=GAS, kind="out_of_limits",
                         severity="critical", score=1.0, value=45.0, ts=now)
    async with running_hub(cfg, tmp_path, api=None, metrics=("127.0.0.1", port)) as (hub, url):
        readings = topics.readings_topic(AGENT)
        await publish(url, *[(readings, batch(seq, now)) for seq in (1, 2, 3)],
                      (readings, poison), (readings, batch(4, now - 40 * DAY_NS)),
                      (topics.events_topic(AGENT), encode(event)))
        assert await wait_until(lambda: hub.ingest.counters.readings_stored == 15
                                and len(hub.opened) == 1
                                and hub.decoder.malformed.total() == 2)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            first = await http.get("/metrics")
            assert first.status_code == 200
            assert first.headers["content-type"].startswith("text/plain")
            got = scrape(first.text)
            assert got[("gridcall_readings_received_total", ())] == 15
            assert got[("gridcall_readings_stored_total", ())] == 15
            assert got[("gridcall_messages_refused_total", (("reason", "invalid"),))] == 1
            assert got[("gridcall_messages_refused_total", (("reason", "ts_window"),))] == 1
            assert got[("gridcall_dead_letters_total", (("reason", "ts_window"),))] == 1
            assert got[("gridcall_deadletter_entries", (("reason", "ts_window"),))] == 1
            # at tier B or A the plan's departments were dispatched at once
            assert sum(got.get(("gridcall_alerts", (("state", s),)), 0)
                       for s in ("opened", "dispatched")) == 1
            assert got[("gridcall_alerts", (("state", "resolved"),))] == 0
            assert got[("gridcall_task_restarts_total", (("task", "desk"),))] == 0
            assert got[("gridcall_task_alarm", (("task", "ingest-writers"),))] == 0
            assert got[("gridcall_spool_readings", ())] == 0
            assert got[("gridcall_notifications_failed_total", ())] == 0
            # every number of Hub.stats(), by name: a part's new counter appears by itself
            numeric = {k for k, v in hub.stats().items()
                       if isinstance(v, int | float) and not isinstance(v, bool)}
            generic = {dict(labels)["name"] for (name, labels) in got
                       if name == "gridcall_stat"}
            assert numeric <= generic
            assert got[("gridcall_stat", (("name", "ingest.readings_stored"),))] == 15

            await publish(url, *[(readings, batch(seq, now)) for seq in (5, 6)])
            assert await wait_until(lambda: hub.ingest.counters.readings_stored == 25)
            again = scrape((await http.get("/metrics")).text)
            assert again[("gridcall_readings_stored_total", ())] == 25

            # readings the hub refuses before storing are rejected readings, by reason
            others = next(s.id for s in cfg.sensors.values() if s.agent != AGENT)
            mixed = ReadingBatch(agent=AGENT, seq=7, sent_at=now, readings=[
                Reading(GAS, now + 7, 1.0), Reading(others, now + 7, 1.0),
                Reading("no-such-sensor-1", now + 7, 1.0), Reading("no-such-sensor-2", now, 1.0)])
            await publish(url, (readings, encode(mixed)))
            assert await wait_until(lambda: hub.ingest.counters.readings_stored == 26)
            third = scrape((await http.get("/metrics")).text)
            rejected = {dict(labels)["reason"]: v for (name, labels), v in third.items()
                        if name == "gridcall_readings_rejected_total"}
            assert rejected == {"forged": 1, "unknown_sensor": 2, "too_many_readings": 0,
                                "sink": 0, "unwritten_at_stop": 0}
            assert third[("gridcall_readings_received_total", ())] == 29


async def test_with_the_api_metrics_are_its_metrics_path_without_a_token(
    cfg: ConfigSet, tmp_path: Path,
) -> None:
    port = unused_tcp_port()
    async with (running_hub(cfg, tmp_path, api=("127.0.0.1", port), metrics=None),
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http):
        assert (await http.get("/v1/alerts")).status_code == 401
        resp = await http.get("/metrics")
        assert resp.status_code == 200
        assert ("gridcall_readings_stored_total", ()) in scrape(resp.text)
        spec = (await http.get("/openapi.json")).json()
        assert "/metrics" not in spec["paths"]
