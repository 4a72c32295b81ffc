"""The edge agent runtime: source → detectors → outbox → MQTT.

One agent owns one MQTT connection and one reconnect loop. Readings are sealed into
batches (by count or by time) with a per-agent sequence number; anomaly events go out
before readings. Until the broker acknowledges a message (PUBACK, QoS 1) it stays in the
outbox, so an uplink outage loses nothing that the process still holds. (A durable,
on-disk outbox that also survives power loss is the next step, see docs/architecture.md.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import aiomqtt

from config import AgentSpec
from edge_agent.sequence import Sequence
from edge_agent.sources import Source
from edge_agent.watch import SensorWatch, Verdict, detector_for
from wire import AgentStatus, AnomalyEvent, Reading, ReadingBatch, encode, topics
from wire.broker import BrokerAddress, credentials_refused, describe_failure

log = logging.getLogger(__name__)

Clock = Callable[[], int]
PUBLISH_WINDOW = 16
"""Messages in flight at once; each publish awaits its PUBACK."""


@dataclass
class AgentCounters:
    samples: int = 0
    readings_sent: int = 0
    batches_sent: int = 0
    events_sent: int = 0
    anomaly_starts: int = 0
    connects: int = 0
    publish_failures: int = 0
    credentials_refused: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


class EdgeAgent:
    """Run with ``await agent.run(stop)``; set ``stop`` to flush, say goodbye and return."""

    def __init__(self, spec: AgentSpec, source: Source, *, broker_url: str | None = None,
                 clock: Clock = time.time_ns, seed: int = 0,
                 state_dir: Path | None = None) -> None:
        """``state_dir`` keeps the sequence numbers growing across restarts even when the
        device's clock is wrong (see :mod:`edge_agent.sequence`); None: clock only."""
        self.spec = spec
        self.id = spec.id
        self.settings = spec.settings
        self.source = source
        self.clock = clock
        self.address = BrokerAddress.parse(broker_url or self.settings.broker.url)
        self.watches: dict[str, SensorWatch] = {}
        for s in spec.sensors:
            self.watches[s.id] = SensorWatch(s, detector_for(s, seed=seed))
        self.counters = AgentCounters()
        now = clock()
        self._batch_seq = Sequence(state_dir / f"{self.id}.batches.seq" if state_dir else None,
                                   now)
        self._event_seq = Sequence(state_dir / f"{self.id}.events.seq" if state_dir else None,
                                   now)
        self._pending: list[Reading] = []
        self._events: deque[tuple[str, bytes]] = deque()
        self._batches: deque[tuple[str, bytes, int]] = deque()  # topic, payload, n readings
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()

    # ------------------------------------------------------------------ pure-ish core

    def ingest(self, sensor: str, ts: int, value: float | None) -> Verdict | None:
        """Take one sample: detect, queue an event if an episode starts or ends, buffer it."""
        self.counters.samples += 1
        watch = self.watches.get(sensor)
        if watch is None:
            self.counters.skipped["unknown_sensor"] += 1
            return None
        verdict = watch.observe(ts, value)
        if value is None or not math.isfinite(value):
            self.counters.skipped["no_value" if value is None else "non_finite"] += 1
        else:
            self._pending.append(Reading(sensor, ts, value))
            if len(self._pending) >= self.settings.batch_max_readings:
                self.seal()
        if verdict is not None:
            self._queue_event(sensor, verdict)
        return verdict

    def _queue_event(self, sensor: str, v: Verdict) -> None:
        if v.phase == "start":
            self.counters.anomaly_starts += 1
        event = AnomalyEvent(agent=self.id, seq=self._event_seq.next(), sensor=sensor, kind=v.kind,
                             phase="start" if v.phase == "start" else "end",
                             severity=v.severity, score=min(1.0, max(0.0, v.score)),
                             value=v.value if v.value is None or math.isfinite(v.value) else None,
                             ts=v.ts)
        self._events.append((topics.events_topic(self.id), encode(event)))
        self._wake.set()

    def seal(self) -> None:
        """Close the pending readings into a batch with the next sequence number."""
        if not self._pending:
            return
        batch = ReadingBatch(agent=self.id, seq=self._batch_seq.next(), sent_at=self.clock(),
                             readings=self._pending)
        self._batches.append((topics.readings_topic(self.id), encode(batch), len(batch.readings)))
        self._pending = []
        self._wake.set()

    @property
    def outbox_depth(self) -> int:
        return len(self._events) + len(self._batches) + (1 if self._pending else 0)

    def status(self, state: str = "online") -> bytes:
        c = self.counters
        return encode(AgentStatus(
            agent=self.id, state="online" if state == "online" else "offline", ts=self.clock(),
            sensors=len(self.watches), batches_sent=c.batches_sent,
            readings_sent=c.readings_sent, events_sent=c.events_sent))

    # ------------------------------------------------------------------ I/O

    async def _consume(self) -> None:
        async for sample in self.source.samples():
            self.ingest(sample.sensor, sample.ts, sample.value)

    async def _sealer(self) -> None:
        interval = self.settings.batch_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            self.seal()

    def _client(self) -> aiomqtt.Client:
        user, password = self.settings.broker.credentials()
        offline = encode(AgentStatus(agent=self.id, state="offline", ts=0))
        client = aiomqtt.Client(
            self.address.host, self.address.port, username=user, password=password,
            identifier=f"gridcall-agent-{self.id}", tls_context=self.address.tls_context(),
            keepalive=int(self.settings.broker.keepalive.total_seconds()),
            will=aiomqtt.Will(topics.status_topic(self.id), offline, qos=1, retain=True),
            max_inflight_messages=PUBLISH_WINDOW * 2,
        )
        client.pending_calls_threshold = PUBLISH_WINDOW * 2  # a full window is expected
        return client

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish events first, then batches, a window at a time; pop only what was acked."""
        while self._events or self._batches:
            if self._events:
                window = list(islice(self._events, PUBLISH_WINDOW))
                await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in window))
                for _ in window:
                    self._events.popleft()
                self.counters.events_sent += len(window)
                continue
            chunk = list(islice(self._batches, PUBLISH_WINDOW))
            await asyncio.gather(*(client.publish(t, p, qos=1) for t, p, _ in chunk))
            for _ in chunk:
                self._batches.popleft()
            self.counters.batches_sent += len(chunk)
            self.counters.readings_sent += sum(n for _, _, n in chunk)

    async def _publish_loop(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        status_every = self.settings.status_interval.total_seconds()
        while True:
            try:
                async with self._client() as client:
                    self.counters.connects += 1
                    backoff = 0.5
                    await client.publish(topics.status_topic(self.id), self.status(), qos=1,
                                         retain=True)
                    self.connected.set()
                    next_status = time.monotonic() + status_every
                    while True:
                        await self._drain(client)
                        if stop.is_set():
                            await client.publish(topics.status_topic(self.id),
                                                 self.status("offline"), qos=1, retain=True)
                            return
                        if time.monotonic() >= next_status:
                            await client.publish(topics.status_topic(self.id), self.status(),
                                                 qos=1, retain=True)
                            next_status = time.monotonic() + status_every
                        self._wake.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self.counters.publish_failures += 1
                if credentials_refused(exc):
                    self.counters.credentials_refused += 1
                if stop.is_set() and not self.outbox_depth:
                    return
                log.warning("agent %s: %s; retrying in %.1fs, %d messages kept", self.id,
                            describe_failure(self.address, exc), backoff, self.outbox_depth)
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, 30.0)

    async def run(self, stop: asyncio.Event, *, drain_timeout: float = 30.0) -> None:
        """Read, detect and publish until ``stop`` is set; then flush everything and return."""
        consumer = asyncio.create_task(self._consume(), name=f"{self.id}-consume")
        sealer = asyncio.create_task(self._sealer(), name=f"{self.id}-seal")
        publisher = asyncio.create_task(self._publish_loop(stop), name=f"{self.id}-publish")
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({consumer, publisher, stopper},
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopper}:
                task.result()  # a source or publisher failure surfaces here
            stop.set()
        finally:
            for task in (consumer, sealer, stopper):
                task.cancel()
            await asyncio.gather(consumer, sealer, stopper, return_exceptions=True)
        self.seal()
        self._wake.set()
        try:
            await asyncio.wait_for(publisher, timeout=drain_timeout)
        except TimeoutError:
            log.error("agent %s: stopped with %d messages not acknowledged by %s",
                      self.id, self.outbox_depth, self.address)
