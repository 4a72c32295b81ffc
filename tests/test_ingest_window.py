"""An ingest worker is not starved by the broker's default in-flight window.

The hub acknowledges a readings message only once its readings are written, and a write
waits for a full request (5,000 readings = 100 messages of 50). mosquitto sends a
v3.1.1 client at most ``max_inflight_messages`` (default 20) unacknowledged messages, so
with the broker's defaults a worker would wait for the broker most of the time. The
worker speaks MQTT v5 and asks for its own window (Receive Maximum), which the broker
honours per connection: the room comes with the worker, not with a broker setting.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gridcall.hub.ingest.consumer import RECEIVE_MAXIMUM, ReadingsConsumer
from gridcall.hub.ingest.runner import Ingest
from gridcall.hub.store import Store
from gridcall.wire import Reading, ReadingBatch, encode, topics
from gridcall.wire.broker import BrokerAddress
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto, publish_all

MESSAGES = 200  # 10 x the default window, well under the worker's own
NOW = time.time_ns()


def batch(seq: int) -> tuple[str, bytes]:
    ts = NOW + seq * 50
    readings = [Reading(sensor=f"s{j:02d}", ts=ts + j, value=float(j)) for j in range(50)]
    message = ReadingBatch(agent="edge-w", seq=seq, sent_at=ts + 50, readings=readings)
    return topics.readings_topic("edge-w"), encode(message)


async def test_a_worker_holds_more_than_the_brokers_default_window_unacknowledged(
        tmp_path: Path) -> None:
    with PrivateMosquitto(tmp_path / "mosquitto", persistence=False, max_inflight=20) as broker:
        async with Store(":memory:") as store:
            # nothing is written before the buffer holds 100,000 readings or an hour
            # passes, so nothing is acknowledged: what arrives is what the broker lets fly
            ingest = Ingest(store, max_points=100_000, flush_interval=3600)
            consumer = ReadingsConsumer(ingest, address=BrokerAddress.parse(broker.url),
                                        client_id="window-probe")
            stop = asyncio.Event()
            task = asyncio.create_task(consumer.run(stop))
            try:
                assert await wait_until(consumer.subscribed.is_set)
                await asyncio.to_thread(publish_all, broker.url,
                                        [batch(s) for s in range(MESSAGES)])
                assert await wait_until(lambda: consumer.messages >= MESSAGES)
                assert consumer.acks.unacked == MESSAGES
                assert MESSAGES <= RECEIVE_MAXIMUM
            finally:
                stop.set()
                await task
                await consumer.close()
