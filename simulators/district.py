"""An in-process district: simulated sensors, the edge agents, the hub and a command-centre
listener on the alert topics, wired to one broker. The demo and the tests both run it.

Usage::

    async with InProcessDistrict(cfg, broker_url=url, store=store) as district:
        await asyncio.sleep(10)
    district.summary()   # after the block: agents flushed, hub drained, listener stopped

Entering raises :class:`BrokerUnreachable` if the broker cannot be reached; leaving takes
at most ``drain_timeout`` seconds for the hub's last writes, whatever the sink's state.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiomqtt

from gridcall.config import ConfigSet
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.sources import Sample
from gridcall.hub.desk.lifecycle import AlertState
from gridcall.hub.ingest.runner import sink_label
from gridcall.hub.ingest.sinks import ReadingSink
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.simulators.responders import Responders
from gridcall.simulators.streams import Injection
from gridcall.simulators.town import SimulatedSource, SimulatedTown
from gridcall.simulators.uplink import Uplink
from gridcall.wire import Decoder, MalformedMessage, RiskAlert, topics
from gridcall.wire.broker import BrokerAddress, describe_failure
from gridcall.wire.cancelsafe import stop_tasks
from gridcall.wire.clock import Clock, wall_clock
from gridcall.wire.ladder import TIERS

STOP_S = 10.0
"""Seconds a stopping district waits for each of its tasks once cancelled."""


class BrokerUnreachable(ConnectionError):
    """The district could not connect to its broker at start (nothing listening, refused
    credentials, or no answer in time); the message says which broker and why."""

    def __init__(self, address: BrokerAddress, reason: str) -> None:
        super().__init__(reason)
        self.address = address


@dataclass
class Delivery:
    """What the command-centre listener received on the alert topics."""

    alerts: dict[str, RiskAlert] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    delivered: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    """Every topic an alert arrived on (after an escalation it is kept at each address)."""
    malformed: int = 0
    foreign: int = 0
    """Alerts of another hub on the same broker (tests share one mosquitto)."""
    accept: Callable[[RiskAlert], bool] = lambda alert: True

    def take(self, topic: str, alert: RiskAlert) -> None:
        if not self.accept(alert):
            self.foreign += 1
            return
        self.seen.add(topic)
        known = self.alerts.get(alert.alert_id)
        if known is not None and known.n > alert.n:
            return  # an older step's copy arriving late: the newest state wins
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
            if msg.retain:
                # a copy the broker kept from before we subscribed (alerts are retained):
                # on a shared broker it may be another run's alert with the same id
                continue
            payload = msg.payload if isinstance(msg.payload, bytes) else b""
            try:
                delivery.take(str(msg.topic), decoder.alert(str(msg.topic), payload))
            except MalformedMessage:
                delivery.malformed += 1


def tiers_now(alerts: Iterable[AlertState]) -> dict[str, int]:
    """The alerts by the tier each stands at now (open or closed); the summary's
    ``tiers_at_opening`` counts the same alerts by the tier they opened at."""
    counts = Counter(str(s.tier) for s in alerts)
    return {t: counts.get(t, 0) for t in TIERS}


class InProcessDistrict:
    def __init__(self, config: ConfigSet, *, broker_url: str, store: Store,
                 sink: ReadingSink | None = None, injections: tuple[Injection, ...] = (),
                 agents: Sequence[str] | None = None, seed: int = 0,
                 interval_scale: float = 1.0, hub_client_id: str | None = None,
                 drain_timeout: float = 10.0, connect_timeout: float = 20.0,
                 clock: Clock = wall_clock, tick_interval: float = 1.0,
                 duty_staff: bool = False, cuttable: Sequence[str] = ()) -> None:
        self.config = config
        self.broker_url = broker_url
        self.store = store
        self.sink: ReadingSink = store if sink is None else sink
        self.town = SimulatedTown(config, injections, seed=seed, interval_scale=interval_scale)
        self.address = BrokerAddress.parse(broker_url)
        self.connect_timeout = connect_timeout
        self.hub = Hub(config, sink=self.sink, store=store, broker_url=broker_url,
                       client_id=hub_client_id or f"gridcall-hub-{time.time_ns()}",
                       drain_timeout=drain_timeout, clock=clock, tick_interval=tick_interval,
                       # the agents below run on the wall clock, whatever the desk's
                       agent_clock=wall_clock)
        # the run's summary reads every alert at once: a simulated district is small
        # and short, so its desk holds the closed ones too (Desk.keep_closed)
        self.hub.desk.keep_closed = None
        self.responders = (Responders(self.hub.desk, clock, seed=seed) if duty_staff
                           else None)
        """Simulated duty staff answering (or not) the alerts, on the hub's clock."""
        self._responders_task: asyncio.Task[None] | None = None
        self.sources = {a: RecordingSource(self.town.source(a))
                        for a in (agents or list(config.agents))}
        self.uplinks = {a: Uplink(self.address) for a in cuttable}
        """The agents (``cuttable``) that reach the broker through a relay that
        :meth:`take_offline` cuts (a real last will, as a dead uplink gives)."""
        self.agents = [EdgeAgent(config.agents[a], src, seed=seed,
                                 broker_url=self.uplinks[a].url if a in self.uplinks
                                 else broker_url)
                       for a, src in self.sources.items()]
        self.taken_offline: list[str] = []
        """The agents :meth:`take_offline` cut, in order."""
        self.delivery = Delivery(accept=self._ours)
        self._stop_agents = asyncio.Event()
        self._stop_hub = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._hub_task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.started = 0.0

    async def __aenter__(self) -> Self:
        # The listener connects first: a broker that is not there is then reported once,
        # as BrokerUnreachable, before the hub starts retrying it in the background.
        ready = asyncio.Event()
        self._listener = asyncio.create_task(
            listen(self.address, self.config.district.id, self.delivery, ready))
        try:
            await self._until(ready, self._listener, "the alert listener")
            self._hub_task = asyncio.create_task(self.hub.run(self._stop_hub))
            if self.responders is not None:
                self._responders_task = asyncio.create_task(
                    self.responders.run(self._stop_hub))
            await self._until(self.hub.subscribed, self._hub_task, "the hub")
        except BaseException:
            await self._abort()
            raise
        for uplink in self.uplinks.values():
            await uplink.start()
        self.started = time.monotonic()
        self._tasks = [asyncio.create_task(a.run(self._stop_agents)) for a in self.agents]
        return self

    def take_offline(self, agent: str) -> None:
        """Cut ``agent``'s uplink (it must be ``cuttable``): the broker publishes its last
        will, and the agent keeps its readings in its outbox until :meth:`bring_back`."""
        self.uplinks[agent].cut()
        self.taken_offline.append(agent)

    def bring_back(self, agent: str) -> None:
        """Restore ``agent``'s uplink: it reconnects and sends what it kept."""
        self.uplinks[agent].restore()

    async def _until(self, ready: asyncio.Event, task: asyncio.Task[None], who: str) -> None:
        """Wait for ``who`` to subscribe; BrokerUnreachable if it fails or takes too long."""
        waiter = asyncio.create_task(ready.wait())
        try:
            done, _ = await asyncio.wait({waiter, task}, timeout=self.connect_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if ready.is_set():
            return
        if task in done:
            try:
                task.result()
            except aiomqtt.MqttError as exc:
                raise BrokerUnreachable(self.address,
                                        describe_failure(self.address, exc)) from exc
            raise RuntimeError(f"{who} stopped before subscribing at {self.address}")
        raise BrokerUnreachable(self.address, f"broker {self.address} unreachable ({who} "
                                f"could not subscribe within {self.connect_timeout:.0f}s)")

    async def _abort(self) -> None:
        """Undo a start that failed: stop the hub (nothing to drain) and the listener."""
        self._stop_hub.set()
        for uplink in self.uplinks.values():
            await uplink.close()
        await stop_tasks([t for t in (self._hub_task, self._listener, self._responders_task)
                          if t is not None], STOP_S, what="simulated district")

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def stop(self, settle_timeout: float = 30.0) -> None:
        """Stop the agents (they flush), let the hub take everything, then stop it."""
        for uplink in self.uplinks.values():
            uplink.restore()  # an agent still cut off could not flush
        self._stop_agents.set()
        await asyncio.gather(*self._tasks)
        for uplink in self.uplinks.values():
            await uplink.close()
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
        if self._responders_task is not None:
            await self._responders_task
        for _ in range(40):  # let the last alerts reach the listener
            if set(self.delivery.alerts) >= self.opened_alert_ids:
                break
            await asyncio.sleep(0.05)
        if self._listener is not None:
            await stop_tasks([self._listener], STOP_S, what="simulated district's listener",
                             raise_errors=True, ignore=(aiomqtt.MqttError,))

    def _ours(self, alert: RiskAlert) -> bool:
        """An alert our hub opened (alert ids are per hub: a concurrent run on a shared
        broker has its own AL000001)."""
        try:
            return self.hub.desk.get(alert.alert_id).opened_at == alert.opened_at
        except LookupError:
            return False

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
        """The run's figures; ``readings_stored`` counts only what the sink confirmed
        (the rows in the store, or InfluxDB's answers), never what was merely sent."""
        c = self.hub.counters
        ic = self.hub.ingest.counters
        return {
            "readings_published": self.readings_published,
            "readings_received": ic.readings_received,
            "readings_stored": await self.readings_stored(),
            "readings_rejected": ic.rejected_readings,
            "readings_unwritten": ic.unwritten_readings,
            "sink": sink_label(self.sink),
            "anomaly_events": c.anomaly_starts,
            "alerts_by_tier": {t: c.alerts_by_tier.get(t, 0) for t in TIERS},
            "tiers_at_opening": {t: c.alerts_by_tier.get(t, 0) for t in TIERS},
            "tiers_now": tiers_now(self.hub.desk.alerts()),
            "alerts_opened": c.alerts_opened,
            "alerts_by_matter": dict(c.alerts_by_matter.most_common()),
            "alerts_delivered": len(self.delivery.delivered),
            "alerts_by_unit": dict(Counter(c.alerts_by_unit).most_common()),
            "alerts_by_state": dict(Counter(a.state for a in self.hub.desk.alerts())),
            "escalations": self.hub.desk.counters.escalations,
            "escalations_by_matter": dict(c.escalations_by_matter.most_common()),
            "alerts_overdue": sum(1 for s in self.hub.desk.alerts(open_only=True)
                                  if s.alert.overdue),
            "overdue_pages": self.hub.desk.counters.overdue_pages,
            "agent_outages": c.agent_outages,
            "agents_taken_offline": len(self.taken_offline),
            "malformed_messages": self.hub.malformed + self.delivery.malformed,
            "duplicate_batches": self.hub.ingest.counters.duplicate_batches,
            "injected_anomalies": [
                {"sensor": i.sensor, "shape": i.shape, "label": i.label}
                for i in self.town.injections],
        }
