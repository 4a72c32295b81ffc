"""The desk in service: its MQTT connection, the roster and outages, retained publishing
and the deadline timers around one :class:`~gridcall.hub.desk.desk.Desk`.

- **Connection**: one MQTT client (:class:`~gridcall.wire.mqttclient.MqttClient`,
  aiomqtt's) with a persistent session (fixed client id; MQTT v5 with ``clean_start``
  off and a session that never expires, or 3.1.1 ``clean_session=False`` on a broker
  without v5; QoS 1) on the events and status topics, reconnecting through the one
  :class:`~gridcall.wire.backoff.Reconnect`. Readings that an older session still
  delivers here are handed to ``readings`` (the hub's ingest).
- **Events**: each anomaly event is recorded in the store (``record_event``, once per
  ``(agent, seq)``) and given to the desk; fresh ones also go to ``anomaly_hooks`` (the
  board writer).
- **Roster and outages**: status messages feed the :class:`~gridcall.hub.desk.roster.Roster`;
  an agent that loses its connection (last will) or falls silent raises the offline matter
  (``EDGE-OFFLINE``): one alert per outage, listing every grid its sensors are in
  (``RiskAlert.grids``), through the desk like any other alert; its return is noted on it.
- **Publishing**: after each desk step the alert's current state is published *retained*
  at every address it has had; a step whose publication failed (broker down) is published
  again on reconnect, and at start every open or recently closed alert is published again.
  Under MQTT v5 a publish the broker refuses (PUBACK 0x87: the hub's login may not write
  alerts) is counted (``alert_publish_refused`` by reason), logged by reason name (WARNING,
  at most one a minute per reason) and kept for the next reconnect, like a failed one.
- **Timers**: :meth:`DeskRuntime.tick` fires breached deadlines and silent agents;
  :meth:`DeskRuntime.run` calls it every ``tick_interval`` seconds of real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiomqtt
import pydantic
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridcall.config import ConfigSet
from gridcall.hub.deadletter import DeadLetters
from gridcall.hub.desk.desk import Change, Desk
from gridcall.hub.desk.external import ExternalEvent, Unmappable
from gridcall.hub.desk.external_intake import ExternalIntake
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import AlertState
from gridcall.hub.desk.reporting import Reporting
from gridcall.hub.desk.roster import MissingSensor, Roster, RosterEvent, UnknownAgent
from gridcall.hub.store import DeskStore
from gridcall.wire import (
    AgentStatus,
    AnomalyEvent,
    Decoder,
    MalformedMessage,
    ReadingBatch,
    encode,
    topics,
)
from gridcall.wire.backoff import Reconnect
from gridcall.wire.broker import (
    MQTT_RECONNECT,
    BrokerAddress,
    describe_failure,
    mqtt_outcome,
)
from gridcall.wire.cancelsafe import STOP_BOUND, cancel_safe, stop_tasks
from gridcall.wire.clock import Clock, ns, utc_text
from gridcall.wire.errors import RetryableError
from gridcall.wire.mqttclient import (
    SESSION_NEVER_EXPIRES,
    MqttClient,
    PublishRefused,
    protocol_for,
)
from gridcall.wire.provenance import Refusals

log = logging.getLogger(__name__)

OUTAGE_SEQ = 2**62
"""Base of the event sequence numbers the hub gives agent outages (see _raise_offline)."""

Readings = Callable[[ReadingBatch], Awaitable[object]]


class Handler(Protocol):
    async def __call__(self, topic: str, payload: bytes, *, retained: bool = False
                       ) -> None: ...


@dataclass
class HubCounters:
    messages: int = 0
    events: int = 0
    duplicate_events: int = 0
    anomaly_starts: int = 0
    alerts_opened: int = 0
    alerts_published: int = 0
    alert_publish_failures: int = 0
    alert_publish_refused: Counter[str] = field(default_factory=Counter)
    """Alert publishes the broker refused (MQTT v5 PUBACK), by reason (``not_authorized``)."""
    escalations: int = 0
    connects: int = 0
    credentials_refused: int = 0
    agent_outages: int = 0
    """Outages (last will or silence) of configured agents, each raising EDGE-OFFLINE."""
    offline_alert_failures: int = 0
    dead_lettered: int = 0
    """Messages that decoded but failed at the desk (kept in the dead-letter store)."""
    external_events: int = 0
    """Events of departments' systems (``gridcall/v1/external/<system>``) the desk took,
    repeats included."""
    external_refused: int = 0
    """Of those, malformed or unmappable ones: dead-lettered (``malformed_external``,
    ``unmappable``), never dropped."""
    sensors_missing: int = 0
    """Sensors reported missing long enough to raise a fault (maintenance section)."""
    rejected: Counter[str] = field(default_factory=Counter)
    """Messages refused after decoding, by reason: ``forged`` (an event for another
    agent's sensor), ``unknown_sensor`` (for a sensor not in the config),
    ``unexpected_topic``. A payload naming another agent than its topic is the
    decoder's ``forged`` (``Decoder.malformed``)."""
    alerts_by_tier: Counter[str] = field(default_factory=Counter)
    """Alerts opened, by the tier they opened at."""
    alerts_by_unit: Counter[str] = field(default_factory=Counter)
    alerts_by_matter: Counter[str] = field(default_factory=Counter)
    escalations_by_matter: Counter[str] = field(default_factory=Counter)
    """Escalation steps (deadline breaches, calls upward, tier raises) by matter."""


class DeskRuntime:
    def __init__(self, config: ConfigSet, store: DeskStore, *, address: BrokerAddress,
                 client_id: str, clock: Clock, tick_interval: float = 1.0,
                 decoder: Decoder | None = None, readings: Readings | None = None,
                 agent_clock: Clock | None = None,
                 dead_letters: DeadLetters | None = None, mqtt5: bool | None = None) -> None:
        """``mqtt5``: None asks the config (``hub.broker.mqtt_version``) and the address
        (:func:`gridcall.wire.mqttclient.protocol_for`)."""
        settings = config.hub
        self.config = config
        self.store = store
        self.clock = clock
        self.agent_clock: Clock = agent_clock or clock
        """The agents' time base, on which the roster judges silence (their heartbeats
        are real seconds when the desk's clock is accelerated, as in a fast demo); the
        desk's ``clock`` by default."""
        self.address = address
        self.protocol = (protocol_for(address, settings.broker.mqtt_version) if mqtt5 is None
                         else aiomqtt.ProtocolVersion.V5 if mqtt5
                         else aiomqtt.ProtocolVersion.V311)
        self._publish_refusals = Refusals("alert publishes", where="by login")
        self.client_id = client_id
        self.tick_interval = tick_interval
        self.decoder = decoder or Decoder()
        self._readings = readings
        self.dead_letters = dead_letters
        """Where a message that decoded but failed is kept (None: logged, then acked)."""
        self.desk = Desk(config, Ledger(store))
        """The alert desk: the API and the notifier use it (``desk.add_hook``)."""
        self.desk.add_hook(self._on_change)
        self.external = ExternalIntake(self.desk)
        """Events of departments' systems (external.yaml), from MQTT and the API."""
        self.roster = Roster(config, silent_after=settings.boards.silent_after)
        """The agents the hub hears from (status topics), their outages and sensors."""
        self.desk.inhibitor.offline = self.roster.is_down
        """An agent in an outage holds back its sensors' faults (hub/desk/inhibit.py)."""
        self.anomaly_hooks: list[Callable[[AnomalyEvent], None]] = []
        """Called with each anomaly event the store had not seen (the board writer)."""
        self.on_message: Handler = self.handle
        """What the connection calls with each message (a wrapper may count them: the
        simulator does); :meth:`handle` by default."""
        self.also_subscribed: asyncio.Event | None = None
        """Another connection :attr:`subscribed` waits for (the readings consumer's)."""
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
        self._warned = 0
        self._unknown_agents: set[str] = set()
        self.owners = config.owners()
        """Which agent speaks for each sensor: an event is taken only from its owner."""
        self.refusals = Refusals("events")

    @property
    def malformed(self) -> int:
        return self.decoder.malformed_total + sum(self.counters.rejected.values())

    def _bad(self, exc: Exception) -> None:
        self._warned += 1
        if self._warned <= 10 or self._warned % 1000 == 0:
            log.warning("%s (%d rejected so far)", exc, self._warned)

    # ------------------------------------------------------------------ messages

    async def handle(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        """One message, handled or set aside when this returns (then it may be
        acknowledged). Malformed: counted (one refused for the ts window only is kept as
        a dead letter). Decoded but failed on: dead-lettered. Raises only when the store
        is failing (``sqlite3.OperationalError``: locked, full, I/O; or a
        ``RetryableError``, such as the PostgreSQL desk store unreachable), which is not
        the message's fault: it is then not acknowledged, the connection restarts and the
        broker delivers it again."""
        self.counters.messages += 1
        try:
            if topic.startswith(f"{topics.PREFIX}/readings/") and self._readings is not None:
                await self._readings(self.decoder.readings(topic, payload))
            elif topic.startswith(f"{topics.PREFIX}/events/"):
                await self._event(topic, payload)
            elif topic.startswith(f"{topics.PREFIX}/status/"):
                await self._status(topic, payload, retained)
            elif topic.startswith(f"{topics.PREFIX}/external/"):
                await self._external(topic, payload)
            else:
                self.counters.rejected["unexpected_topic"] += 1
        except MalformedMessage as exc:
            if exc.reason == "ts_window" and self.dead_letters is not None:
                await self.dead_letters.keep(topic, payload, exc.reason, exc.detail)
            self._bad(exc)
        except (sqlite3.OperationalError, RetryableError):
            raise
        except Exception as exc:  # this message, not the store: never again as it is
            self.counters.dead_lettered += 1
            detail = f"{type(exc).__name__}: {exc}"
            if self.dead_letters is None:
                log.exception("hub: message on %s failed and is dropped (no dead-letter "
                              "store): %s", topic, detail)
            elif not await self.dead_letters.keep(topic, payload, "desk_error", detail):
                raise  # not kept: not acknowledged either; the broker delivers it again

    async def _external(self, topic: str, payload: bytes) -> None:
        """An event of a department's system on its own topic (the broker lets only the
        system's login publish there). One that does not parse or that the system's
        mapping cannot place is dead-lettered with the reason: ``gridcall hub deadletter
        replay`` takes it again once external.yaml is fixed."""
        try:
            system = topics.agent_of(topic, "external")
        except ValueError:
            self.counters.rejected["unexpected_topic"] += 1
            return
        why: tuple[str, str] | None = None
        try:
            event = ExternalEvent.model_validate_json(payload)
        except pydantic.ValidationError as exc:
            why = ("malformed_external", f"not an external event: {exc}")
        else:
            try:
                taken = await self.external.take(system, event, body=payload,
                                                 now=self.clock())
            except Unmappable as exc:
                why = ("unmappable", str(exc))
            else:
                self.counters.external_events += 1
                if taken.outcome == "duplicate" and taken.result.alert is not None:
                    await self._publish(taken.result.alert)  # at least once, as events
                return
        self.counters.external_refused += 1
        self._bad(ValueError(f"{topic}: {why[1]}"))
        if self.dead_letters is None:
            log.error("hub: %s refused and dropped (no dead-letter store): %s", topic, why[1])
        elif not await self.dead_letters.keep(topic, payload, *why):
            raise RuntimeError(f"{topic}: {why[1]}; not kept as a dead letter either")

    async def _status(self, topic: str, payload: bytes, retained: bool) -> None:
        status = self.decoder.status(topic, payload)
        try:
            changes = self.roster.observe(status, self.agent_clock(), retained=retained)
        except UnknownAgent as exc:
            # Not malformed, and maybe not news: a decommissioned agent's retained status,
            # or another installation's on a shared broker. Counted by the roster; said
            # once per agent id (a warning if it speaks live to this hub now).
            if exc.agent not in self._unknown_agents:
                self._unknown_agents.add(exc.agent)
                log.log(logging.INFO if retained else logging.WARNING, "hub: %s%s", exc,
                        " (a retained status)" if retained else "")
            return
        # Only the config's agents: an id anyone can invent must not grow this map, nor
        # the series /metrics labels with it (gridcall_agent_outbox_messages{agent=...}).
        self.agents[status.agent] = status
        await self._on_roster(changes, self.clock())
        if not retained:
            await self._on_missing(self.roster.missing(status.agent), self.clock())

    async def _on_roster(self, changes: list[RosterEvent], now: int) -> None:
        """An outage raises the offline matter once, listing the grids the agent's sensors
        are in (an outage of the agent still open gets it as evidence); a recovery is
        noted on that alert, which stays open until people close it. ``now`` is the desk's
        time (the roster's ``at`` is on the agents' time base)."""
        for change in changes:
            if change.kind == "down" and change.retained and self._outage_open(change.agent):
                log.info("hub: edge agent %s is still offline (its outage alert is open)",
                         change.agent)
                continue
            if change.kind == "down":
                self.counters.agent_outages += 1
                log.warning("hub: edge agent %s %s", change.agent, change.reason)
            else:
                log.info("hub: edge agent %s is back online", change.agent)
            if self._offline_matter is None:
                continue
            try:
                if change.kind == "down":
                    await self._raise_offline(change, self._offline_matter, now)
                else:
                    await self._note_back(change, self._offline_matter, now)
            except Exception:  # the desk failed (disk full?): the MQTT loop must go on
                self.counters.offline_alert_failures += 1
                log.exception("hub: could not record %s of edge agent %s at the desk",
                              change.kind, change.agent)

    async def _raise_offline(self, change: RosterEvent, matter: str, now: int) -> None:
        """One alert per outage, listing every grid the agent's sensors are in: it sits in
        the agent's own grid (the first of them if it has no sensor there), named by a
        sensor of the agent's there."""
        grids = self.roster.grids_of(change.agent)
        if not grids:
            return
        home = self.config.agents[change.agent].grid
        grid = home if home in grids else next(iter(grids))
        # Sequence numbers of the agent's own events count up from 0; this sits far above
        # them (2**62 + the agents' time; below 2**63, SQLite's limit), so an outage never
        # takes the (agent, seq) of a real event.
        seq = OUTAGE_SEQ + change.at % OUTAGE_SEQ
        event = AnomalyEvent(agent=change.agent, seq=seq, sensor=grids[grid], kind="dropout",
                             severity="major", score=1.0, value=None, ts=change.at,
                             detector="hub.roster")
        names = ", ".join(self.config.units[g].name for g in grids)
        await self.desk.on_event(event, now, matter=matter, grids=tuple(grids),
                                 note=f"edge agent {change.agent} {change.reason}; no data "
                                      f"from its sensors in {names}")

    async def _on_missing(self, missing: list[MissingSensor], now: int) -> None:
        """A sensor missing long enough (``maintenance.sensor_missing_after``) is a
        ``dropout`` anomaly of that sensor: the catalog makes it a SENSOR-FAULT, grouped,
        tiered and routed like any other (to maintenance)."""
        for i, gone in enumerate(missing):
            self.counters.sensors_missing += 1
            at = self.agent_clock()
            seq = OUTAGE_SEQ + (at + 1 + i) % OUTAGE_SEQ  # as an outage's (_raise_offline)
            last = ("it never gave one" if gone.last_ts is None
                    else f"the last at {utc_text(gone.last_ts)}")
            event = AnomalyEvent(agent=gone.agent, seq=seq, sensor=gone.sensor,
                                 kind="dropout", severity="minor", score=1.0, value=None,
                                 ts=at, detector="hub.roster")
            try:
                await self.desk.on_event(event, now, note=(
                    f"sensor {gone.sensor} has given no usable value for "
                    f"{gone.intervals:.0f} of its intervals ({last}), says edge agent "
                    f"{gone.agent}"))
            except Exception:  # the desk failed (disk full?): the MQTT loop must go on
                self.counters.offline_alert_failures += 1
                log.exception("hub: could not record missing sensor %s at the desk",
                              gone.sensor)

    def _outage_open(self, agent: str) -> bool:
        return self._offline_matter is not None and any(
            s.alert.matter == self._offline_matter and s.alert.agent == agent
            for s in self.desk.alerts(open_only=True))

    async def _note_back(self, change: RosterEvent, matter: str, now: int) -> None:
        for state in self.desk.alerts(open_only=True):
            if state.alert.matter == matter and state.alert.agent == change.agent:
                await self.desk.note(state.alert_id, f"edge agent {change.agent} back "
                                     "online; close the alert once the cause is known",
                                     now)

    async def _event(self, topic: str, payload: bytes) -> None:
        # The decoder refuses a payload naming another agent than its topic (``forged``),
        # so event.agent is the topic's: the login the broker let publish there. Only
        # then is the event recorded, and its (agent, seq) dedup key is that agent's, so
        # a forgery cannot take the seq of another agent's genuine event.
        event = self.decoder.event(topic, payload)
        why = self.owners.verdict(event.agent, event.sensor)
        if why is not None:  # another agent's sensor, or none of the config's
            self.counters.rejected[why] += 1
            self.refusals.note(event.agent, why, f"event seq {event.seq} for sensor "
                               f"{event.sensor!r} (" + ("not in the config" if why ==
                               "unknown_sensor" else f"{self.owners.agent_of[event.sensor]}'s")
                               + ")")
            return
        fresh = await self.store.record_event(event, payload)
        if fresh:
            for hook in self.anomaly_hooks:
                hook(event)
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

    # ------------------------------------------------------------------ publishing

    async def _on_change(self, change: Change) -> None:
        t = change.transition
        if t.action == "open":
            self.counters.alerts_opened += 1
            self.opened.append(t.alert_id)
            self.counters.alerts_by_tier[t.tier] += 1
            self.counters.alerts_by_unit[t.unit] += 1
            self.counters.alerts_by_matter[change.alert.alert.matter] += 1
        elif t.action == "escalate":
            self.counters.escalations += 1
            self.counters.escalations_by_matter[change.alert.alert.matter] += 1
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
            for address in state.addresses:  # cancel_safe: as connect, below
                await cancel_safe(client.publish(topics.alert_topic(address, state.alert_id),
                                                 payload, qos=1, retain=True),
                                  what="hub desk: publish")
                self.counters.alerts_published += 1
        except PublishRefused as exc:
            self.counters.alert_publish_refused[exc.key] += 1
            user = self.config.hub.broker.credentials()[0] or "(anonymous)"
            self._publish_refusals.note(user, exc.key, (
                f"broker {self.address} answered PUBACK {exc.code:#04x} {exc.name!r} on "
                f"{exc.topic} (alert {state.alert_id}); the broker's ACL does not let the "
                "hub's login write alerts (`gridcall broker acl`, docs/security.md); "
                "published again on reconnect"))
            return
        except aiomqtt.MqttError as exc:
            self.counters.alert_publish_failures += 1
            log.warning("hub: alert %s not published (%s); again on reconnect",
                        state.alert_id, exc)
            return
        self._unpublished.discard(state.alert_id)

    async def start(self) -> None:
        """Rebuild the alerts from the ledger (once; :meth:`run` does it if not done)."""
        if self.desk.started:
            return
        await self.desk.start()
        window = ns(self.config.matters.grouping.reopen_window)
        now = self.clock()
        # reports filed but not yet taken by the desk when the hub stopped are taken now,
        # not at the API's first request (hub/desk/reporting.py)
        await Reporting.of(self.desk).start(now)
        self._unpublished.update(
            s.alert_id for s in self.desk.alerts()
            if s.is_open or (s.closed_at is not None and now - s.closed_at <= window))

    async def _republish(self) -> None:
        for alert_id in sorted(self._unpublished):
            await self._publish(await self.desk.find(alert_id))

    # ------------------------------------------------------------------ timers

    async def tick(self, now: int | None = None) -> None:
        """One tick of the timers at ``now`` (default: the clock): breached deadlines
        fire, agents fallen silent raise their outage. :meth:`run` calls it every
        ``tick_interval``; a simulation (simulators/sim.py) as its clock moves."""
        agents_now = self.agent_clock() if now is None or self.agent_clock is not self.clock \
            else now
        now = self.clock() if now is None else now
        try:
            await self.desk.tick(now)
        except Exception:  # a failed tick (disk full?) must not stop the timers
            log.exception("hub: deadline tick failed; trying again")
        await self._on_roster(self.roster.check(agents_now), now)

    async def _timers(self, stop: asyncio.Event) -> None:
        """Fire breached deadlines every ``tick_interval`` seconds (each escalation is
        stamped with its deadline, however late the tick)."""
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick_interval)

    # ------------------------------------------------------------------ connection

    def _client(self) -> MqttClient:
        user, password = self.config.hub.broker.credentials()
        if self.protocol is aiomqtt.ProtocolVersion.V5:
            # the persistent session of 3.1.1's clean_session=False, in v5's terms
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
            session: dict[str, Any] = {"clean_start": False, "properties": props}
        else:
            session = {"clean_session": False}
        client = MqttClient(
            self.address, protocol=self.protocol, username=user, password=password,
            identifier=self.client_id, **session,
            keepalive=int(self.config.hub.broker.keepalive.total_seconds()),
            # Without it an alert published right after the event's PUBACK waits ~40 ms
            # for the broker's delayed TCP ACK (Nagle); p50 reading→alert was 42 ms.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        # Acknowledge a message only once handle() has handled or dead-lettered it:
        # aiomqtt does not offer it, its paho client does (a crash before then leaves
        # the message in the session, and the broker delivers it again).
        client._client.manual_ack_set(True)
        return client

    async def run(self, stop: asyncio.Event) -> None:
        """The connection and the deadline timers until ``stop``."""
        await self.start()
        timers = asyncio.create_task(self._timers(stop), name="hub-timers")
        try:
            await self._consume(stop)
        finally:
            await stop_tasks([timers], STOP_BOUND, what="hub desk", raise_errors=True)

    async def _consume(self, stop: asyncio.Event) -> None:
        # the probe: back within about 0.5 s of the broker's return, as the agents are,
        # rather than at the end of a backoff grown while it was away (wire/backoff.py)
        retry = Reconnect(MQTT_RECONNECT, mqtt_outcome, stop=stop,
                          config=self.config.hub.broker.credentials,
                          probe=self.address.port_open)
        while not stop.is_set():
            try:
                async with contextlib.AsyncExitStack() as session:
                    # cancel_safe: aiomqtt's connect, subscribe and unsubscribe wait through
                    # asyncio.wait_for, which on Python 3.11 may swallow a cancel that
                    # lands with the broker's answer, and this loop would never end
                    client = await cancel_safe(session.enter_async_context(self._client()),
                                               what="hub desk: connect")
                    self.counters.connects += 1
                    retry.connected()
                    wanted = [(topics.EVENTS, 1), (topics.STATUS, 1)]
                    if self.config.external.systems:  # departments' systems' events
                        wanted.append((topics.EXTERNAL, 1))
                    await cancel_safe(client.subscribe(wanted),
                                      what="hub desk: subscribe")
                    # Readings have their own connection (acknowledged after the write);
                    # a session from before that still delivers them here until this
                    # unsubscribe, and handle() still takes those.
                    await cancel_safe(client.unsubscribe(topics.READINGS),
                                      what="hub desk: unsubscribe")
                    self._mqtt = client
                    await self._republish()
                    stopper = asyncio.create_task(stop.wait())
                    if self.also_subscribed is not None:  # subscribed = both connections
                        ready = asyncio.create_task(self.also_subscribed.wait())
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
                            await self.on_message(str(msg.topic), bytes(payload),
                                                  retained=bool(msg.retain))
                            if msg.qos > 0:
                                client._client.ack(msg.mid, msg.qos)
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


__all__ = ["OUTAGE_SEQ", "DeskRuntime", "HubCounters"]
