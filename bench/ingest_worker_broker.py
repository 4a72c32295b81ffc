"""CPU per reading of one ingest worker, from a real broker into a real InfluxDB.

``nice -n 10 python bench/ingest_worker_broker.py --influx http://127.0.0.1:18086
[--readings 300000] [--rounds 3]``

Starts a private mosquitto on a free loopback port (its defaults, so the broker's own
in-flight window; the worker brings MQTT v5 Receive Maximum 1000 as ``gridcall hub
ingest`` does), queues the peer harness's workload (50 agents x 50 readings per message,
QoS 1) for the worker's persistent session, then runs the hub's ``ReadingsConsumer`` and
``Ingest`` into ``InfluxV1Sink`` (a fresh database per round, dropped after) until every
message is acknowledged. It prints the process CPU (the worker reads MQTT and writes in
one asyncio loop) per reading, from the first message to the last acknowledgement, for
each round, as JSON on one line. Without ``--influx`` the sink encodes the requests and
sends nothing.

Queued first, so the publisher's CPU and the broker's pace are not part of the figure;
the shared harness (../shared/bench/peer_ingest_bench.py) measures the open-loop rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from ingest_worker_cpu import EncodeOnlySink, encoder_for, payloads, sensor_ids
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridcall.hub.ingest.consumer import SESSION_NEVER_EXPIRES, ReadingsConsumer
from gridcall.hub.ingest.runner import Ingest
from gridcall.hub.ingest.sinks import InfluxV1Sink, ReadingSink
from gridcall.wire import Decoder
from gridcall.wire.broker import BrokerAddress
from gridcall.wire.codec import TsWindow
from gridcall.wire.provenance import Owners, Screen


def unused_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def queue_for(port: int, client_id: str, messages: Sequence[tuple[str, bytes]]) -> None:
    """Make ``client_id``'s persistent session and subscription, then publish into it."""
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                      protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
    sub.connect("127.0.0.1", port, clean_start=False, properties=props)
    sub.loop_start()
    sub.subscribe("gridcall/v1/readings/+", qos=1)
    time.sleep(0.5)
    sub.disconnect()
    sub.loop_stop()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{client_id}-pub")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos = [pub.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(60)
    pub.disconnect()
    pub.loop_stop()


async def consume(port: int, client_id: str, messages: int, sink: ReadingSink,
                  ids: Sequence[tuple[str, str]]) -> tuple[float, int]:
    ingest = Ingest(sink, max_points=5000, flush_interval=1.0,
                    screen=Screen(Owners.of(ids), max_readings=10_000))
    window = TsWindow(past=30 * 86_400 * 10**9, future=3600 * 10**9)  # hub.yaml's defaults
    consumer = ReadingsConsumer(ingest, client_id=client_id, decoder=Decoder(window=window),
                                address=BrokerAddress.parse(f"mqtt://127.0.0.1:{port}"))
    stop, acked = asyncio.Event(), asyncio.Event()
    settle = consumer.acks.settle

    def settled(tokens: list[object]) -> None:  # on the asyncio side, as every settle is
        settle(tokens)
        if consumer.acks.acked >= messages:
            acked.set()

    ingest.on_settled = settled

    async def until_acked() -> None:
        await acked.wait()
        stop.set()

    watcher = asyncio.create_task(until_acked())
    async with sink:
        await ingest.serve(consumer.run(stop), stop, 10.0)
    await watcher
    cpu = time.process_time() - (consumer.cpu_at_first_message or 0.0)
    await consumer.close()
    return cpu, ingest.counters.readings_stored


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--influx", help="InfluxDB 1.x URL (default: encode only, send nothing)")
    p.add_argument("--readings", type=int, default=300_000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    ids = sensor_ids(50, 50)
    encoder = encoder_for(ids)
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        port = unused_tcp_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                        "max_queued_messages 1000000\npersistence false\n", encoding="ascii")
        broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            for _ in range(a.rounds):
                client_id = f"bench-{uuid.uuid4().hex[:8]}"
                messages = payloads(50, 50, 50, a.readings, time.time_ns())
                queue_for(port, client_id, messages)
                database = f"bench_{client_id.replace('-', '_')}"
                sink: ReadingSink = (
                    InfluxV1Sink(a.influx, database=database, encoder=encoder)
                    if a.influx else
                    EncodeOnlySink("http://127.0.0.1:1", database="x", encoder=encoder))
                cpu, stored = asyncio.run(consume(port, client_id, len(messages), sink, ids))
                if a.influx:
                    httpx.post(f"{a.influx}/query", data={"q": f"DROP DATABASE {database}"})
                figures.append(round(cpu / stored * 1e6, 3))
        finally:
            broker.terminate()
            broker.wait(10)
    print(json.dumps({"readings": a.readings, "sink": "influxdb v1" if a.influx else
                      "encode only", "cpu_us_per_reading": figures,
                      "best": min(figures)}))


if __name__ == "__main__":
    main()
