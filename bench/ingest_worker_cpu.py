"""CPU per reading of one ingest worker's own path, network-free.

``nice -n 10 python bench/ingest_worker_cpu.py [--readings 500000] [--rounds 5]``

What ``gridcall hub ingest`` does with each MQTT message after its MQTT link hands it
over, with the hub's real pieces: the consumer's hand-off and ``_take`` (decode with the
ts window, the provenance screen, dedup, buffering through ``Ingest.put``), the writers'
chunking (``Ingest.flush``) and the InfluxDB v1 sink's line-protocol encoding of each
5,000-point request (the sink's ``write`` with its HTTP post replaced by nothing). Not
measured: the link's packet parsing and PUBACKs (hub/ingest/mqttlink.py), HTTP, the
broker and the database. The workload is the peer harness's (``--wire gridcall``): 50
agents x 50 readings per message, sensors ``s<agent><n>``, all in the config. CPU is
``time.process_time`` (this process only), so load from elsewhere on the machine changes
it less than wall time; the best round is reported, as JSON on one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Sequence

from gridcall.hub.ingest.consumer import MessageToken, ReadingsConsumer
from gridcall.hub.ingest.runner import Ingest
from gridcall.hub.ingest.sinks import InfluxV1Sink, LineEncoder
from gridcall.wire import Decoder
from gridcall.wire.broker import BrokerAddress
from gridcall.wire.codec import TsWindow
from gridcall.wire.provenance import Owners, Screen


def payloads(agents: int, sensors: int, per_batch: int, readings: int, t0: int
             ) -> list[tuple[str, bytes]]:
    """The harness's messages, round robin over agents, as (topic, payload)."""
    rnd = random.Random(7)
    out = []
    per_agent = readings // (agents * per_batch)
    for seq in range(per_agent):
        for a in range(agents):
            rs = []
            for j in range(per_batch):
                k = seq * per_batch + j
                rs.append([f"s{a:02d}{k % sensors:02d}", t0 + k * 1000 + a,
                           round(rnd.uniform(-20.0, 80.0), 3)])
            body = {"v": 1, "agent": f"a{a:02d}", "seq": seq, "sent_at": rs[-1][1],
                    "readings": rs}
            out.append((f"gridcall/v1/readings/a{a:02d}",
                        json.dumps(body, separators=(",", ":")).encode()))
    return out


class EncodeOnlySink(InfluxV1Sink):
    """The v1 sink as the hub has it, but the request is not sent."""

    bytes_out = 0

    async def write_lines(self, body: bytes) -> None:
        self.bytes_out += len(body)


def sensor_ids(agents: int, sensors: int) -> list[tuple[str, str]]:
    """(sensor, agent) pairs as the bench config has them."""
    return [(f"s{a:02d}{s:02d}", f"a{a:02d}") for a in range(agents) for s in range(sensors)]


def encoder_for(ids: Sequence[tuple[str, str]]) -> LineEncoder:
    """As gridcall.sinks.encoder_for gives it by default (``influx.points: lean``:
    agent and sensor tags only, no seq)."""
    del ids  # the lean layout needs no per-sensor tags
    return LineEncoder()


async def one_round(messages: Sequence[tuple[str, bytes]], ids: Sequence[tuple[str, str]],
                    encoder: LineEncoder) -> tuple[float, int]:
    """One pass over ``messages`` with a fresh worker (dedup, buffers) around ``encoder``
    (kept across rounds, as its prefix cache is in a running hub)."""
    sink = EncodeOnlySink("http://127.0.0.1:1", database="bench", encoder=encoder)
    ingest = Ingest(sink, max_points=5000, flush_interval=1.0,
                    screen=Screen(Owners.of(ids), max_readings=10_000))
    window = TsWindow(past=30 * 86_400 * 10**9, future=3600 * 10**9)  # hub.yaml's defaults
    consumer = ReadingsConsumer(ingest, address=BrokerAddress.parse("mqtt://127.0.0.1:1"),
                                client_id="bench", decoder=Decoder(window=window))
    settled = 0

    def count(tokens: list[object]) -> None:
        nonlocal settled
        settled += len(tokens)

    ingest.on_settled = count
    pending = consumer._pending
    start = time.process_time()
    step = 100  # messages per _take (the link delivers bursts)
    for i in range(0, len(messages), step):
        for j, (topic, payload) in enumerate(messages[i:i + step]):
            pending.append((MessageToken(0, i + j), topic, payload))
        await consumer._take()
        if ingest._queued_points >= ingest.max_points:
            await ingest.flush(full_only=True)
    await ingest.flush()
    cpu = time.process_time() - start
    stored = ingest.counters.readings_stored
    if settled != len(messages):
        raise SystemExit(f"settled {settled} of {len(messages)} messages")
    return cpu, stored


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--readings", type=int, default=500_000)
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--sensors", type=int, default=50)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    messages = payloads(a.agents, a.sensors, a.batch, a.readings, time.time_ns())
    ids = sensor_ids(a.agents, a.sensors)
    encoder = encoder_for(ids)
    best = float("inf")
    stored = 0
    for _ in range(a.rounds):
        cpu, stored = asyncio.run(one_round(messages, ids, encoder))
        best = min(best, cpu)
    print(json.dumps({"readings": stored, "messages": len(messages),
                      "cpu_us_per_reading": round(best / stored * 1e6, 3),
                      "readings_per_cpu_s": round(stored / best)}))


if __name__ == "__main__":
    main()
