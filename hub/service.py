"""The hub runtime: subscribe, decode, ingest readings, turn events into routed alerts.

Anomaly events go to the alert desk (:class:`hub.desk.Desk`), which writes every step to
the ledger; after each step the hub publishes the alert's current state *retained* at
every address the alert has had (so after an escalation the grid's copy says who holds
it now, instead of going stale). A step whose publication failed (broker down) is
published again on reconnect, and at start every open or recently closed alert is
published again (a crash between the ledger and the broker loses nothing). A timer task
fires breached deadlines every ``tick_interval`` seconds of real time, on ``clock``.

Two MQTT connections, each with a persistent session (fixed client id,
``clean_session=False``, QoS 1), so the broker keeps what arrives while the hub restarts:

- the alert desk's (aiomqtt, ``client_id``): events and status, one reconnect loop;
- readings (:class:`hub.readings.ReadingsConsumer`, paho, ``<client_id>-readings``),
  acknowledged only once written or spooled. With ``readings=False`` the hub is the alert
  desk alone and readings are taken by ``gridcall hub ingest`` workers.

Stopping is bounded: once ``stop`` is set the hub stops taking messages, then writes out
what it buffered for at most ``drain_timeout`` seconds; what the sink did not take by
then is logged as an error and counted (``hub.ingest.counters.unwritten_readings``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from config import ConfigSet
from hub.alerts import UnknownSensor
from hub.desk import Change, Desk
from hub.ingest import Ingest, Unwritten
from hub.ledger import Ledger
from hub.lifecycle import AlertState
from hub.readings import ReadingsConsumer
from hub.sinks import ReadingSink
from hub.spool import Spool
from hub.store import Store
from wire import AgentStatus, Decoder, MalformedMessage, encode, topics
from wire.broker import BrokerAddress, credentials_refused, describe_failure

log = logging.getLogger(__name__)

Clock = Callable[[], int]


@dataclass
class HubCounters:
    messages: int = 0
    events: int = 0
    duplicate_events: int = 0
    anomaly_starts: int = 0
    alerts_opened: int = 0
    alerts_published: int = 0
    alert_publish_failures: int = 0
    escalations: int = 0
    connects: int = 0
    credentials_refused: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    alerts_by_tier: Counter[str] = field(default_factory=Counter)
    alerts_by_unit: Counter[str] = field(default_factory=Counter)


class Hub:
    def __init__(self, config: ConfigSet, *, sink: ReadingSink, store: Store,
                 broker_url: str | None = None, client_id: str | None = None,
                 clock: Clock = time.time_ns, flush_interval: float | None = None,
                 drain_timeout: float = 10.0, tick_interval: float = 1.0,
                 readings: bool = True, share_group: str | None = None,
                 spool_dir: Path | str | None = None) -> None:
        if drain_timeout < 0:
            raise ValueError(f"hub drain_timeout must be >= 0 seconds, got {drain_timeout}")
        settings = config.hub
        self.drain_timeout = drain_timeout
        self.config = config
        self.store = store
        self.clock = clock
        self.address = BrokerAddress.parse(broker_url or settings.broker.url)
        self.client_id = client_id or settings.client_id
        influx = settings.influx
        self.decoder = Decoder()
        self.ingest = Ingest(
            sink,
            max_points=influx.batch_max_points if influx else 5000,
            flush_interval=flush_interval if flush_interval is not None else (
                influx.flush_interval.total_seconds() if influx else 0.5),
            spool=Spool(spool_dir) if spool_dir is not None else None,
        )
        self.readings: ReadingsConsumer | None = None
        if readings:
            user, password = settings.broker.credentials()
            self.readings = ReadingsConsumer(
                self.ingest, address=self.address, client_id=f"{self.client_id}-readings",
                share_group=share_group, username=user, password=password,
                keepalive=int(settings.broker.keepalive.total_seconds()),
                decoder=self.decoder)
        self.desk = Desk(config, Ledger(store))
        """The alert desk: the API and the notifier use it (``desk.add_hook``)."""
        self.desk.add_hook(self._on_change)
        self.tick_interval = tick_interval
        self._mqtt: aiomqtt.Client | None = None
        self._unpublished: set[str] = set()
        self.counters = HubCounters()
        self.agents: dict[str, AgentStatus] = {}
        self.opened: list[str] = []
        self.subscribed = asyncio.Event()
        self.unwritten = Unwritten()
        """What the last :meth:`run` could not write to the sink before its drain timeout."""
        self._warned = 0

    @property
    def malformed(self) -> int:
        return self.decoder.malformed_total + sum(self.counters.rejected.values())

    def _bad(self, exc: Exception) -> None:
        self._warned += 1
        if self._warned <= 10 or self._warned % 1000 == 0:
            log.warning("%s (%d rejected so far)", exc, self._warned)

    async def handle(self, topic: str, payload: bytes, client: aiomqtt.Client) -> None:
        self.counters.messages += 1
        try:
            if topic.startswith(f"{topics.PREFIX}/readings/"):
                await self.ingest.put(self.decoder.readings(topic, payload))
            elif topic.startswith(f"{topics.PREFIX}/events/"):
                await self._event(topic, payload, client)
            elif topic.startswith(f"{topics.PREFIX}/status/"):
                status = self.decoder.status(topic, payload)
                self.agents[status.agent] = status
            else:
                self.counters.rejected["unexpected_topic"] += 1
        except MalformedMessage as exc:
            self._bad(exc)

    async def _event(self, topic: str, payload: bytes, client: aiomqtt.Client) -> None:
        event = self.decoder.event(topic, payload)
        if event.sensor not in self.config.sensors:
            self.counters.rejected["unknown_sensor"] += 1
            self._bad(UnknownSensor(event.sensor, event.agent))
            return
        fresh = await self.store.record_event(event, payload)
        if fresh:
            self.counters.events += 1
            if event.phase == "start":
                self.counters.anomaly_starts += 1
        else:
            self.counters.duplicate_events += 1
        outcome = await self.desk.on_event(event, self.clock())
        if outcome.duplicate and outcome.alert is not None:
            # At least once: a redelivered event republishes its alert's current state,
            # so a crash between the ledger and the broker cannot leave it unpublished.
            await self._publish(outcome.alert)

    async def _on_change(self, change: Change) -> None:
        t = change.transition
        if t.action == "open":
            self.counters.alerts_opened += 1
            self.opened.append(t.alert_id)
            self.counters.alerts_by_tier[t.tier] += 1
            self.counters.alerts_by_unit[t.unit] += 1
        elif t.action == "escalate":
            self.counters.escalations += 1
        await self._publish(change.alert)

    async def _publish(self, state: AlertState) -> None:
        """The alert's current state, retained, at each address it has had; if the broker
        is not there it is remembered and published on reconnect."""
        self._unpublished.add(state.alert_id)
        client = self._mqtt
        if client is None:
            return
        payload = encode(state.alert)
        try:
            for address in state.addresses:
                await client.publish(topics.alert_topic(address, state.alert_id), payload,
                                     qos=1, retain=True)
                self.counters.alerts_published += 1
        except aiomqtt.MqttError as exc:
            self.counters.alert_publish_failures += 1
            log.warning("hub: alert %s not published (%s); again on reconnect",
                        state.alert_id, exc)
            return
        self._unpublished.discard(state.alert_id)

    async def start_desk(self) -> None:
        """Rebuild the alerts from the ledger (once; :meth:`run` does it if not done)."""
        if self.desk.started:
            return
        await self.desk.start()
        window = int(self.config.matters.grouping.reopen_window.total_seconds() * 1e9)
        now = self.clock()
        self._unpublished.update(
            s.alert_id for s in self.desk.alerts()
            if s.is_open or (s.closed_at is not None and now - s.closed_at <= window))

    async def _republish(self) -> None:
        for alert_id in sorted(self._unpublished):
            await self._publish(self.desk.get(alert_id))

    async def _timers(self, stop: asyncio.Event) -> None:
        """Fire breached deadlines every ``tick_interval`` seconds (each escalation is
        stamped with its deadline, however late the tick)."""
        while not stop.is_set():
            try:
                await self.desk.tick(self.clock())
            except Exception:  # a failed tick (disk full?) must not stop the timers
                log.exception("hub: deadline tick failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick_interval)

    def _client(self) -> aiomqtt.Client:
        user, password = self.config.hub.broker.credentials()
        return aiomqtt.Client(
            self.address.host, self.address.port, username=user, password=password,
            identifier=self.client_id, clean_session=False,
            tls_context=self.address.tls_context(),
            keepalive=int(self.config.hub.broker.keepalive.total_seconds()),
            # Without it an alert published right after the event's PUBACK waits ~40 ms
            # for the broker's delayed TCP ACK (Nagle); p50 reading→alert was 42 ms.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then write out what is buffered, for at most
        ``drain_timeout`` seconds, and return; :attr:`unwritten` says what was not."""
        await self.start_desk()
        self.unwritten = await self.ingest.serve(self._work(stop), stop, self.drain_timeout)
        if self.readings is not None:  # after the drain: its acks go out first
            await self.readings.close()

    async def _work(self, stop: asyncio.Event) -> None:
        """The desk's connection, the deadline timers and the readings consumer, until
        ``stop``."""
        timers = asyncio.create_task(self._timers(stop), name="hub-timers")
        readings = (asyncio.create_task(self.readings.run(stop), name="hub-readings")
                    if self.readings is not None else None)
        try:
            await self._consume(stop)
        finally:
            if readings is not None:
                if not stop.is_set():
                    readings.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await readings
            timers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timers

    async def _consume(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                async with self._client() as client:
                    self.counters.connects += 1
                    backoff = 0.5
                    await client.subscribe([(topics.EVENTS, 1), (topics.STATUS, 1)])
                    # Readings have their own connection (acknowledged after the write);
                    # a session from before that still delivers them here until this
                    # unsubscribe, and handle() still takes those.
                    await client.unsubscribe(topics.READINGS)
                    self._mqtt = client
                    await self._republish()
                    stopper = asyncio.create_task(stop.wait())
                    if self.readings is not None:  # subscribed = both connections are
                        ready = asyncio.create_task(self.readings.subscribed.wait())
                        await asyncio.wait({ready, stopper},
                                           return_when=asyncio.FIRST_COMPLETED)
                        ready.cancel()
                    self.subscribed.set()
                    try:
                        while not stop.is_set():
                            getter = asyncio.ensure_future(anext(client.messages))
                            done, _ = await asyncio.wait({getter, stopper},
                                                         return_when=asyncio.FIRST_COMPLETED)
                            if getter not in done:
                                getter.cancel()
                                break
                            msg = getter.result()
                            payload = msg.payload
                            if not isinstance(payload, bytes | bytearray):
                                payload = str(payload).encode()
                            await self.handle(str(msg.topic), bytes(payload), client)
                    finally:
                        stopper.cancel()
                        self._mqtt = None
            except aiomqtt.MqttError as exc:
                self._mqtt = None
                self.subscribed.clear()
                if credentials_refused(exc):
                    self.counters.credentials_refused += 1
                if stop.is_set():
                    return
                log.warning("hub: %s; retrying in %.1fs", describe_failure(self.address, exc),
                            backoff)
                with contextlib.suppress(TimeoutError):  # a stop cuts the wait short
                    await asyncio.wait_for(stop.wait(), backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, 30.0)
