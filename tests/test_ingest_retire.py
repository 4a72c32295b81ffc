"""Retiring an ingest worker: its share is written, then the group stops keeping one.

mosquitto keeps handing an offline member of a shared group its share of the messages,
queued in its persistent session. ``gridcall hub ingest --retire NAME`` takes what was
queued for NAME, writes it, leaves the group and ends the session (MQTT v5 Session
Expiry 0 at DISCONNECT), so nothing is stranded and nothing more is queued for it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gridcall.hub.ingest.worker import IngestWorker
from gridcall.hub.store import Store
from gridcall.wire import Reading, ReadingBatch, encode, topics
from gridcall.wire.broker import BrokerAddress
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto, publish_all

NOW = time.time_ns()
GROUP = "retire-test"


def messages(first: int, n: int) -> list[tuple[str, bytes]]:
    out = []
    for seq in range(first, first + n):
        ts = NOW + seq * 10
        batch = ReadingBatch(agent="edge-r", seq=seq, sent_at=ts + 10, readings=[
            Reading(sensor=f"s{j}", ts=ts + j, value=float(seq)) for j in range(10)])
        out.append((topics.readings_topic("edge-r"), encode(batch)))
    return out


def session_present(url: str, client_id: str) -> bool:
    """Does the broker still keep a session for ``client_id``? (CONNACK's flag, asked
    with clean start off; the probe's own session ends with it.)"""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    answer: list[bool] = []
    connected = threading.Event()

    def on_connect(client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                   rc: object, props: object = None) -> None:
        answer.append(flags.session_present)
        connected.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.connect("127.0.0.1", int(url.rsplit(":", 1)[1]), clean_start=False,
                   properties=props)
    client.loop_start()
    try:
        if not connected.wait(20):
            raise RuntimeError(f"no CONNACK for {client_id}")
    finally:
        client.disconnect()
        client.loop_stop()
    return answer[0]


def worker(store: Store, url: str, name: str, *, retire: bool = False) -> IngestWorker:
    return IngestWorker(store, address=BrokerAddress.parse(url),
                        client_id=f"hub-ingest-{name}", share_group=GROUP,
                        flush_interval=0.05, retire=retire)


async def test_a_retired_worker_leaves_nothing_stranded_and_gets_no_more_share(
        tmp_path: Path) -> None:
    with PrivateMosquitto(tmp_path / "mosquitto", persistence=False, max_inflight=1000) as broker:
        async with Store(":memory:") as store:
            # worker 2 joins the group once, then goes away: a member for good
            w2 = worker(store, broker.url, "2")
            stop2 = asyncio.Event()
            run2 = asyncio.create_task(w2.run(stop2))
            assert await wait_until(w2.consumer.subscribed.is_set)
            stop2.set()
            await run2

            w1 = worker(store, broker.url, "1")
            stop1 = asyncio.Event()
            run1 = asyncio.create_task(w1.run(stop1))
            try:
                assert await wait_until(w1.consumer.subscribed.is_set)
                await asyncio.to_thread(publish_all, broker.url, messages(0, 100))
                # worker 1 takes only its share; the rest waits in worker 2's session
                assert await wait_until(lambda: w1.consumer.acks.acked > 0
                                        and w1.consumer.acks.unacked == 0)
                stranded = 100 - w1.consumer.messages
                assert stranded > 0

                retiring = worker(store, broker.url, "2", retire=True)
                await retiring.retire(asyncio.Event(), quiet=0.5)
                assert retiring.retired
                assert retiring.consumer.messages == stranded
                assert not await asyncio.to_thread(session_present, broker.url,
                                                   "hub-ingest-2")
                assert await store.count_readings() == 100 * 10

                before = w1.consumer.messages
                await asyncio.to_thread(publish_all, broker.url, messages(100, 50))
                assert await wait_until(lambda: w1.consumer.messages == before + 50)
                assert await wait_until(lambda: w1.consumer.acks.unacked == 0)
            finally:
                stop1.set()
                await run1
            assert await store.count_readings() == 150 * 10


async def test_a_retire_stopped_early_keeps_the_session(tmp_path: Path) -> None:
    with PrivateMosquitto(tmp_path / "mosquitto", persistence=False, max_inflight=1000) as broker:
        async with Store(":memory:") as store:
            stop = asyncio.Event()
            stop.set()  # Ctrl-C before it could drain: the session must stay
            retiring = worker(store, broker.url, "3", retire=True)
            await retiring.retire(stop, quiet=0.5)
            assert not retiring.retired
            assert await asyncio.to_thread(session_present, broker.url, "hub-ingest-3")
