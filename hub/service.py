"""The hub runtime: subscribe, decode, ingest readings, turn events into routed alerts.

Anomaly events go to the alert desk (:class:`gridcall.hub.desk.desk.Desk`), which writes every step
to
the ledger; after each step the hub publishes the alert's current state *retained* at
every address the alert has had (so after an escalation the grid's copy says who holds
it now, instead of going stale). A step whose publication failed (broker down) is
published again on reconnect, and at start every open or recently closed alert is
published again (a crash between the ledger and the broker loses nothing). A timer task
fires breached deadlines every ``tick_interval`` seconds of real time, on ``clock``.

Two MQTT connections, each with a persistent session (fixed client id,
``clean_session=False``, QoS 1), so the broker keeps what arrives while the hub restarts:

- the alert desk's (aiomqtt, ``client_id``): events and status, one reconnect loop;
- readings (:class:`gridcall.hub.ingest.consumer.ReadingsConsumer`, paho, ``<client_id>-readings``),
  acknowledged only once written or spooled. With ``readings=False`` the hub is the alert
  desk alone and readings are taken by ``gridcall hub ingest`` workers.

Board data (:mod:`gridcall.hub.board.feed`, docs/boards.md): when the sink writes line protocol
(InfluxDB v1 or v2), the hub also writes the board snapshot every ``hub.boards.interval``
of its clock (and at start and stop), each anomaly event it takes and each ledger step
as they happen, and the assessment indicators every 60 s
(:mod:`gridcall.hub.board.indicator_writer`).
The agent roster (:mod:`gridcall.hub.desk.roster`) follows the agents' status topics; an agent that
loses its connection (last will) or falls silent raises an ``EDGE-OFFLINE`` alert for
each grid its sensors are in, through the desk like any other alert.

Stopping is bounded: once ``stop`` is set the hub stops taking messages, then writes out
what it buffered for at most ``drain_timeout`` seconds; what the sink did not take by
then is logged as an error and counted (``gridcall.hub.ingest.runner.counters.unwritten_readings``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import aiomqtt

from gridcall.config import ConfigSet
from gridcall.hub.board.feed import BoardFeed
from gridcall.hub.board.indicator_writer import IndicatorCounters, run_indicator_writer
from gridcall.hub.board.writer import BoardWriter, LineSink
from gridcall.hub.desk.desk import Change, Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import AlertState
from gridcall.hub.desk.policy import UnknownSensor
from gridcall.hub.desk.roster import Roster, RosterEvent, UnknownAgent
from gridcall.hub.ingest.consumer import ReadingsConsumer
from gridcall.hub.ingest.runner import Ingest, Unwritten
from gridcall.hub.ingest.sinks import ReadingSink
from gridcall.hub.ingest.spool import Spool
from gridcall.hub.store import Store
from gridcall.wire import AgentStatus, AnomalyEvent, Decoder, MalformedMessage, encode, topics
from gridcall.wire.backoff import Reconnect
from gridcall.wire.broker import (
    MQTT_RECONNECT,
    BrokerAddress,
    describe_failure,
    mqtt_outcome,
)
from gridcall.wire.clock import Clock, ns, wall_clock
from gridcall.wire.errors import InvariantError
from gridcall.wire.stats import Scalar, flatten

log = logging.getLogger(__name__)


OUTAGE_SEQ = 2**62
"""Base of the event sequence numbers the hub gives agent outages (see _raise_offline)."""


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
    agent_outages: int = 0
    """Outages (last will or silence) of configured agents, each raising EDGE-OFFLINE."""
    offline_alert_failures: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    alerts_by_tier: Counter[str] = field(default_factory=Counter)
    alerts_by_unit: Counter[str] = field(default_factory=Counter)


class Hub:
    def __init__(self, config: ConfigSet, *, sink: ReadingSink, store: Store,
                 broker_url: str | None = None, client_id: str | None = None,
                 clock: Clock = wall_clock, flush_interval: float | None = None,
                 drain_timeout: float = 10.0, tick_interval: float = 1.0,
                 readings: bool = True, share_group: str | None = None,
                 spool_dir: Path | str | None = None, boards: bool = True) -> None:
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
        self.board_settings = settings.boards
        self.roster = Roster(config, silent_after=settings.boards.silent_after)
        """The agents the hub hears from (status topics), their outages and sensors."""
        self.feed = BoardFeed(config)
        self.boards: BoardWriter | None = None
        """Board data in InfluxDB: when ``boards`` and the sink writes line protocol."""
        self.indicator_counters = IndicatorCounters()
        write_lines = getattr(sink, "write_lines", None)
        if boards and callable(write_lines):
            self.boards = BoardWriter(cast(LineSink, sink))
        self._offline_matter: str | None = settings.boards.offline_matter
        if not any(m.code == self._offline_matter for m in config.matters.matters):
            log.warning("hub: the matter catalog has no %s: agents that go offline are "
                        "shown on the boards but raise no alert", self._offline_matter)
            self._offline_matter = None
        self._mqtt: aiomqtt.Client | None = None
        self._unpublished: set[str] = set()
        self.counters = HubCounters()
        self.agents: dict[str, AgentStatus] = {}
        self.opened: list[str] = []
        self.subscribed = asyncio.Event()
        self.unwritten = Unwritten()
        """What the last :meth:`run` could not write to the sink before its drain timeout."""
        self._warned = 0
        self._unknown_agents: set[str] = set()

    def stats(self) -> dict[str, Scalar]:
        """The desk connection's counters, flat (:mod:`gridcall.wire.stats`)."""
        return flatten(self.counters)

    @property
    def malformed(self) -> int:
        return self.decoder.malformed_total + sum(self.counters.rejected.values())

    def _bad(self, exc: Exception) -> None:
        self._warned += 1
        if self._warned <= 10 or self._warned % 1000 == 0:
            log.warning("%s (%d rejected so far)", exc, self._warned)

    async def handle(self, topic: str, payload: bytes, client: aiomqtt.Client, *,
                     retained: bool = False) -> None:
        self.counters.messages += 1
        try:
            if topic.startswith(f"{topics.PREFIX}/readings/"):
                await self.ingest.put(self.decoder.readings(topic, payload))
            elif topic.startswith(f"{topics.PREFIX}/events/"):
                await self._event(topic, payload, client)
            elif topic.startswith(f"{topics.PREFIX}/status/"):
                await self._status(topic, payload, retained)
            else:
                self.counters.rejected["unexpected_topic"] += 1
        except MalformedMessage as exc:
            self._bad(exc)

    async def _status(self, topic: str, payload: bytes, retained: bool) -> None:
        status = self.decoder.status(topic, payload)
        self.agents[status.agent] = status
        try:
            changes = self.roster.observe(status, self.clock(), retained=retained)
        except UnknownAgent as exc:
            # Not malformed, and maybe not news: a decommissioned agent's retained status,
            # or another installation's on a shared broker. Counted by the roster; said
            # once per agent id (a warning if it speaks live to this hub now).
            if exc.agent not in self._unknown_agents:
                self._unknown_agents.add(exc.agent)
                log.log(logging.INFO if retained else logging.WARNING, "hub: %s%s", exc,
                        " (a retained status)" if retained else "")
            return
        await self._on_roster(changes)

    async def _on_roster(self, changes: list[RosterEvent]) -> None:
        """An outage raises the offline matter in each grid the agent's sensors are in (a
        grid where it is open already gets the outage as evidence); a recovery is noted
        on those alerts, which stay open until people close them."""
        for change in changes:
            if change.kind == "down":
                self.counters.agent_outages += 1
                log.warning("hub: edge agent %s %s", change.agent, change.reason)
            else:
                log.info("hub: edge agent %s is back online", change.agent)
            if self._offline_matter is None:
                continue
            try:
                if change.kind == "down":
                    await self._raise_offline(change, self._offline_matter)
                else:
                    await self._note_back(change, self._offline_matter)
            except Exception:  # the desk failed (disk full?): the MQTT loop must go on
                self.counters.offline_alert_failures += 1
                log.exception("hub: could not record %s of edge agent %s at the desk",
                              change.kind, change.agent)

    async def _raise_offline(self, change: RosterEvent, matter: str) -> None:
        for i, (grid, sensor) in enumerate(self.roster.grids_of(change.agent).items()):
            # Sequence numbers of the agent's own events count up from 0; these sit far
            # above them (2**62 + the hub's time, one per grid; below 2**63, SQLite's
            # limit), so an outage never takes the (agent, seq) of a real event.
            seq = OUTAGE_SEQ + (change.at + i) % OUTAGE_SEQ
            event = AnomalyEvent(agent=change.agent, seq=seq,
                                 sensor=sensor, kind="dropout", severity="major",
                                 score=1.0, value=None, ts=change.at, detector="hub.roster")
            name = self.config.units[grid].name
            await self.desk.on_event(event, change.at, matter=matter,
                                     note=f"edge agent {change.agent} {change.reason}; no "
                                          f"data from its sensors in {name}")

    async def _note_back(self, change: RosterEvent, matter: str) -> None:
        grids = set(self.roster.grids_of(change.agent))
        for state in self.desk.alerts(open_only=True):
            if state.alert.matter == matter and state.place[-1] in grids:
                await self.desk.note(state.alert_id, f"edge agent {change.agent} back "
                                     "online; close the alert once the cause is known",
                                     change.at)

    async def _event(self, topic: str, payload: bytes, client: aiomqtt.Client) -> None:
        event = self.decoder.event(topic, payload)
        if event.sensor not in self.config.sensors:
            self.counters.rejected["unknown_sensor"] += 1
            self._bad(UnknownSensor(event.sensor, event.agent))
            return
        fresh = await self.store.record_event(event, payload)
        if fresh:
            if self.boards is not None:
                self.boards.add(self.feed.anomaly(event))
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
        if self.boards is not None:
            self.boards.add(self.feed.alert_change(change.alert, t))
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
        window = ns(self.config.matters.grouping.reopen_window)
        now = self.clock()
        self._unpublished.update(
            s.alert_id for s in self.desk.alerts()
            if s.is_open or (s.closed_at is not None and now - s.closed_at <= window))

    async def _republish(self) -> None:
        for alert_id in sorted(self._unpublished):
            await self._publish(self.desk.get(alert_id))

    async def tick(self, now: int | None = None) -> None:
        """One tick of the hub's timers at ``now`` (default: its clock): breached
        deadlines fire, agents fallen silent raise their outage. The timer task calls it
        every ``tick_interval``; a simulation (simulators/sim.py) as its clock moves."""
        now = self.clock() if now is None else now
        try:
            await self.desk.tick(now)
        except Exception:  # a failed tick (disk full?) must not stop the timers
            log.exception("hub: deadline tick failed; trying again")
        await self._on_roster(self.roster.check(now))

    async def _timers(self, stop: asyncio.Event) -> None:
        """Fire breached deadlines every ``tick_interval`` seconds (each escalation is
        stamped with its deadline, however late the tick)."""
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick_interval)

    def board_snapshot(self, now: int | None = None) -> bytes:
        """The board snapshot's line protocol at ``now`` (default: the hub's clock)."""
        now = self.clock() if now is None else now
        open_alerts = self.desk.alerts(open_only=True)
        return self.feed.snapshot(
            open_alerts, now, agents=self.roster.views(now),
            evidence={s.alert_id: self.desk.sensors_of(s.alert_id) for s in open_alerts})

    async def write_boards(self, now: int | None = None) -> bool:
        """Write a board snapshot and the event points waiting; False if either failed
        (or there is no line-protocol sink). A simulation calls it as its clock moves."""
        if self.boards is None:
            return False
        written = await self.boards.snapshot(self.board_snapshot(now))
        return await self.boards.flush() and written

    async def _board_loop(self, stop: asyncio.Event) -> None:
        """A snapshot at start and every ``boards.interval`` of the hub's clock; queued
        event points at every tick. Wakes every ``tick_interval`` of real time, so a
        simulated clock that runs fast gets a snapshot per interval it passes (at most
        one per tick)."""
        if self.boards is None:
            raise InvariantError("Hub._board_loop started without boards")
        interval = ns(self.board_settings.interval)
        due: int | None = None
        while not stop.is_set():
            now = self.clock()
            if due is None or now >= due:
                await self.write_boards(now)
                due = now + interval
            else:
                await self.boards.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick_interval)

    async def _last_boards(self) -> None:
        """At stop: a last snapshot and the event points still queued, within the drain
        timeout (what is not written then is logged by the writer)."""
        if self.boards is None:
            return
        try:
            await asyncio.wait_for(self.write_boards(), max(1.0, self.drain_timeout))
        except TimeoutError:
            log.warning("hub: the last board snapshot was not written within %.0fs; %d "
                        "event point(s) not written", max(1.0, self.drain_timeout),
                        self.boards.pending)

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
        await self._last_boards()
        if self.readings is not None:  # after the drain: its acks go out first
            await self.readings.close()

    async def _work(self, stop: asyncio.Event) -> None:
        """The desk's connection, the deadline timers and the readings consumer, until
        ``stop``."""
        timers = asyncio.create_task(self._timers(stop), name="hub-timers")
        readings = (asyncio.create_task(self.readings.run(stop), name="hub-readings")
                    if self.readings is not None else None)
        side: list[asyncio.Task[object]] = []
        if self.boards is not None:
            side.append(asyncio.create_task(self._board_loop(stop), name="hub-boards"))
            side.append(asyncio.create_task(run_indicator_writer(
                self.boards.sink, self.desk.transitions, self.clock, stop,
                counters=self.indicator_counters), name="hub-indicators"))
        try:
            await self._consume(stop)
        finally:
            for task in side:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if readings is not None:
                if not stop.is_set():
                    readings.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await readings
            timers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timers

    async def _consume(self, stop: asyncio.Event) -> None:
        retry = Reconnect(MQTT_RECONNECT, mqtt_outcome, stop=stop,
                          config=self.config.hub.broker.credentials)
        while not stop.is_set():
            try:
                async with self._client() as client:
                    self.counters.connects += 1
                    retry.connected()
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
                            await self.handle(str(msg.topic), bytes(payload), client,
                                              retained=bool(msg.retain))
                    finally:
                        stopper.cancel()
                        self._mqtt = None
            except aiomqtt.MqttError as exc:
                self._mqtt = None
                self.subscribed.clear()
                failure = retry.failed(exc)
                if failure.refused:
                    self.counters.credentials_refused += 1
                if stop.is_set():
                    return
                log.warning("hub: %s; retrying in %.1fs", describe_failure(self.address, exc),
                            failure.delay)
                await retry.pause(failure)  # a stop cuts the wait short
