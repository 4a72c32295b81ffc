"""An in-process district: simulated sensors, the edge agents, the hub and a command-centre
listener on the alert topics, wired to one broker. The demo and the tests both run it.

Usage::

    async with InProcessDistrict(cfg, broker_url=url, store=store) as district:
        await asyncio.sleep(10)
    district.summary()   # after the block: agents flushed, hub drained, listener stopped
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiomqtt

from config import ConfigSet
from edge_agent.agent import EdgeAgent
from edge_agent.sources import Sample
from hub.service import Hub
from hub.sinks import ReadingSink
from hub.store import Store
from simulators.streams import Injection
from simulators.town import SimulatedSource, SimulatedTown
from wire import Decoder, MalformedMessage, RiskAlert, topics
from wire.broker import BrokerAddress


@dataclass
class Delivery:
    """What the command-centre listener received on the alert topics."""

    alerts: dict[str, RiskAlert] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    delivered: set[str] = field(default_factory=set)
    malformed: int = 0

    def take(self, topic: str, alert: RiskAlert) -> None:
        self.alerts[alert.alert_id] = alert
        self.topics[alert.alert_id] = topic
        if alert.unit in topic.split("/")[3:7]:
            self.delivered.add(alert.alert_id)


class RecordingSource:
    """Wraps a source and keeps every sample it yields (for exactly-once checks)."""

    def __init__(self, inner: SimulatedSource) -> None:
        self.inner = inner
        self.samples_seen: list[Sample] = []

    async def samples(self) -> AsyncIterator[Sample]:
        async for s in self.inner.samples():
            self.samples_seen.append(s)
            yield s


async def listen(address: BrokerAddress, district: str, delivery: Delivery,
                 ready: asyncio.Event) -> None:
    decoder = Decoder()
    async with aiomqtt.Client(address.host, address.port,
                              identifier=f"gridcall-board-{time.time_ns()}") as client:
        await client.subscribe(topics.unit_subscription([district]), qos=1)
        ready.set()
        async for msg in client.messages:
            payload = msg.payload if isinstance(msg.payload, bytes) else b""
            try:
                delivery.take(str(msg.topic), decoder.alert(str(msg.topic), payload))
            except MalformedMessage:
                delivery.malformed += 1


class InProcessDistrict:
    def __init__(self, config: ConfigSet, *, broker_url: str, store: Store,
                 sink: ReadingSink | None = None, injections: tuple[Injection, ...] = (),
                 agents: Sequence[str] | None = None, seed: int = 0,
                 interval_scale: float = 1.0, hub_client_id: str | None = None) -> None:
        self.config = config
        self.broker_url = broker_url
        self.store = store
        self.sink: ReadingSink = store if sink is None else sink
        self.town = SimulatedTown(config, injections, seed=seed, interval_scale=interval_scale)
        self.hub = Hub(config, sink=self.sink, store=store, broker_url=broker_url,
                       client_id=hub_client_id or f"gridcall-hub-{time.time_ns()}")
        self.sources = {a: RecordingSource(self.town.source(a))
                        for a in (agents or list(config.agents))}
        self.agents = [EdgeAgent(config.agents[a], src, broker_url=broker_url, seed=seed)
                       for a, src in self.sources.items()]
        self.delivery = Delivery()
        self._stop_agents = asyncio.Event()
        self._stop_hub = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._hub_task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.started = 0.0

    async def __aenter__(self) -> Self:
        ready = asyncio.Event()
        self._listener = asyncio.create_task(
            listen(BrokerAddress.parse(self.broker_url), self.config.district.id,
                   self.delivery, ready))
        self._hub_task = asyncio.create_task(self.hub.run(self._stop_hub))
        deadline = time.monotonic() + 20
        while not (ready.is_set() and self.hub.subscribed.is_set()):
            for task in (self._listener, self._hub_task):
                if task.done():
                    task.result()
                    raise RuntimeError("hub or alert listener stopped before subscribing")
            if time.monotonic() > deadline:
                raise TimeoutError(f"hub or listener did not subscribe at {self.broker_url}")
            await asyncio.sleep(0.02)
        self.started = time.monotonic()
        self._tasks = [asyncio.create_task(a.run(self._stop_agents)) for a in self.agents]
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def stop(self, settle_timeout: float = 30.0) -> None:
        """Stop the agents (they flush), let the hub take everything, then stop it."""
        self._stop_agents.set()
        await asyncio.gather(*self._tasks)
        sent = self.readings_published
        events = sum(a.counters.events_sent for a in self.agents)
        c = self.hub.counters
        for _ in range(int(settle_timeout / 0.05)):  # poll the two runtimes' counters
            taken = c.events + c.duplicate_events + sum(c.rejected.values())
            if self.hub.ingest.counters.readings_received >= sent and taken >= events:
                break
            await asyncio.sleep(0.05)
        self._stop_hub.set()
        if self._hub_task is not None:
            await self._hub_task
        for _ in range(40):  # let the last alerts reach the listener
            if set(self.delivery.alerts) >= self.opened_alert_ids:
                break
            await asyncio.sleep(0.05)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._listener

    @property
    def opened_alert_ids(self) -> set[str]:
        return set(self.hub.opened)

    @property
    def readings_published(self) -> int:
        return sum(a.counters.readings_sent for a in self.agents)

    async def readings_stored(self) -> int:
        if self.sink is self.store:
            return await self.store.count_readings()
        return self.hub.ingest.counters.readings_stored

    async def summary(self) -> dict[str, Any]:
        c = self.hub.counters
        return {
            "readings_published": self.readings_published,
            "readings_stored": await self.readings_stored(),
            "anomaly_events": c.anomaly_starts,
            "alerts_by_tier": {t: c.alerts_by_tier.get(t, 0) for t in "ABCD"},
            "alerts_opened": c.alerts_opened,
            "alerts_delivered": len(self.delivery.delivered),
            "alerts_by_unit": dict(Counter(c.alerts_by_unit).most_common()),
            "malformed_messages": self.hub.malformed + self.delivery.malformed,
            "duplicate_batches": self.hub.ingest.counters.duplicate_batches,
            "injected_anomalies": [
                {"sensor": i.sensor, "shape": i.shape, "label": i.label}
                for i in self.town.injections],
        }
