"""The readings consumer: MQTT readings in, acknowledged only once written or spooled.

Why its own MQTT link (:mod:`gridcall.hub.ingest.mqttlink`, read in the asyncio loop) and
not aiomqtt (which the alert desk uses) or paho's thread (which it used before):

- **Acknowledge after the write.** A QoS 1 message may only be acknowledged once its
  readings are in the sink or the spool, or a crash loses what the broker already
  forgot. aiomqtt 2 has no manual acks.
- **Speed.** At thousands of 50-reading messages a second, paho's per-packet reading
  (four ``recv`` calls, a ``select``, an ``MQTTMessage`` and v5 ``Properties`` per
  packet, locks, a hand-off to the asyncio side) cost about half a worker's CPU. The link
  reads the socket in large chunks in the loop, and :meth:`ReadingsConsumer._take`
  decodes each payload with msgspec (one call per message), deduplicates and buffers;
  the PUBACKs a settle releases go out in one write.

Back-pressure is the broker's: it sends a client at most its in-flight window of
unacknowledged QoS 1 messages (the worker's MQTT v5 Receive Maximum, or mosquitto's
``max_inflight_messages`` for a 3.1.1 session; see docs/architecture.md), so a slow sink
slows delivery instead of filling the hub's memory, and what the hub has not
acknowledged stays in its persistent session.

Acknowledgements go out in the order the messages came (MQTT 3.1.1 §4.6.0-2), whatever
order their batches settle in. A reconnect starts a new *generation*: a message of the
old connection is never acknowledged on the new one (its id may be reused there); the
broker redelivers it and the (agent, seq) dedup makes that harmless.

Scale-out: several consumers (processes, machines) join one MQTT shared subscription
(``$share/<group>/gridcall/v1/readings/+``); the broker gives each message to one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from gridcall.hub.ingest.mqttlink import Connect, ConnectRefused, Link, LinkError, open_link
from gridcall.hub.ingest.runner import Ingest, Token
from gridcall.wire import Decoder, MalformedMessage, topics
from gridcall.wire.backoff import Backoff
from gridcall.wire.broker import BrokerAddress, refuses_credentials

log = logging.getLogger(__name__)

RECONNECT = Backoff(initial=1.0, cap=30.0)
"""Waits between the readings connection's attempts."""

CONNECT_TIMEOUT_S = 10.0
"""How long one attempt may take, from the TCP connect to the CONNACK."""

RECEIVE_MAXIMUM = 1000
"""Unacknowledged QoS 1 messages the broker may have in flight to one worker (MQTT v5
Receive Maximum). Acknowledging only after the write means a message's ack waits for the
batch it joined (5,000 readings = 100 messages of 50) to be written; with mosquitto's
default window for v3.1.1 clients (``max_inflight_messages 20``, 1,000 readings) the worker
waits for the broker most of the time. A v5 client's Receive Maximum replaces that window
for its own connection, so the room comes with the worker and not with a broker setting.
The hub's memory stays bounded by ``Ingest.max_buffered_points`` either way.

``None`` (``hub.ingest_receive_maximum: null``) speaks MQTT 3.1.1 and takes the broker's
window: for a broker without v5, such as the demo's embedded amqtt (which does not even
answer a v5 CONNECT; it says so through :func:`gridcall.wire.broker.without_mqtt5`)."""

TAKE_BEFORE_YIELD = 64
"""Messages (3,200 readings of 50) decoded and buffered before the loop is given back: the
link reads up to 256 KiB at once, and in ``gridcall hub run`` the desk shares the loop,
so an event waits behind at most this many messages of readings, not a whole burst."""

SESSION_NEVER_EXPIRES = 0xFFFFFFFF
"""MQTT v5 Session Expiry Interval for "keep the session until I say" (v3.1.1's
clean_session=False); ``--retire`` ends it with 0 at DISCONNECT."""


def readings_filter(share_group: str | None) -> str:
    """The topic filter for readings: plain, or a member of shared group ``share_group``."""
    if share_group is None:
        return topics.READINGS
    if not share_group or set(share_group) & {"/", "+", "#"}:
        raise ValueError(f"shared subscription group {share_group!r} must be a non-empty "
                         "name without '/', '+' or '#'")
    return f"$share/{share_group}/{topics.READINGS}"


@dataclass(frozen=True, slots=True)
class MessageToken:
    generation: int
    mid: int


class Acknowledger(Protocol):
    def puback(self, mids: list[int]) -> None: ...


class AckWindow:
    """Acknowledges QoS 1 messages in arrival order once each is settled. Everything
    runs in the asyncio loop (the link reads there too), so nothing here is locked."""

    def __init__(self) -> None:
        self.generation = 0
        self._order: deque[int] = deque()
        self._done: set[int] = set()
        self.client: Acknowledger | None = None
        self.acked = 0

    def new_generation(self, client: Acknowledger) -> None:
        """A new connection: forget what the old one had not acknowledged."""
        self.generation += 1
        self._order.clear()
        self._done.clear()
        self.client = client

    def received(self, mid: int) -> MessageToken:
        """Called for each QoS 1 message, in arrival order."""
        self._order.append(mid)
        return MessageToken(self.generation, mid)

    def settle(self, tokens: list[Token]) -> None:
        gen = self.generation
        done = self._done
        for t in tokens:
            if isinstance(t, MessageToken) and t.generation == gen:
                done.add(t.mid)
        order = self._order
        if not order or order[0] not in done:
            return
        mids: list[int] = []
        while order and order[0] in done:
            mid = order.popleft()
            done.discard(mid)
            mids.append(mid)
        if self.client is not None:
            self.client.puback(mids)
            self.acked += len(mids)

    @property
    def unacked(self) -> int:
        return len(self._order)


class ReadingsConsumer:
    """Subscribes to readings with a persistent session and feeds ``ingest``.

    ``async with``-free: :meth:`run` opens the connection (and keeps it, reconnecting,
    until :meth:`close`). ``ingest.on_settled`` is taken over to acknowledge messages.
    """

    def __init__(self, ingest: Ingest, *, address: BrokerAddress, client_id: str,
                 share_group: str | None = None, username: str | None = None,
                 password: str | None = None, keepalive: int = 30,
                 decoder: Decoder | None = None,
                 receive_maximum: int | None = RECEIVE_MAXIMUM,
                 retire: bool = False) -> None:
        if receive_maximum is not None and not 1 <= receive_maximum <= 65_535:
            raise ValueError(f"receive_maximum must be 1..65535 (MQTT v5), got "
                             f"{receive_maximum}")
        if retire and receive_maximum is None:
            raise ValueError("retiring a worker ends its session with MQTT v5's session "
                             "expiry: it needs receive_maximum (v5)")
        self.ingest = ingest
        self.receive_maximum = receive_maximum
        self.retire = retire
        """Retiring this worker's session: take what the broker queued for it, but leave
        the group (unsubscribe) at connect, and end the session at :meth:`close`."""
        self.unsubscribed = asyncio.Event()
        self.last_message_at = time.monotonic()
        self.decoder = decoder or Decoder()
        self.address = address
        self.client_id = client_id
        self.filter = readings_filter(share_group)
        self.other_filter = (readings_filter(None) if share_group is not None else None)
        self.acks = AckWindow()
        ingest.on_settled = self.acks.settle
        self.subscribed = asyncio.Event()
        self.messages = 0
        self.connects = 0
        self.credentials_refused = 0
        """Connections the broker refused for our credentials (not for being unreachable)."""
        self.first_message_at: float | None = None
        self.cpu_at_first_message: float | None = None
        self._connect = Connect(
            client_id=client_id, keepalive=keepalive, username=username, password=password,
            receive_maximum=receive_maximum,
            session_expiry=SESSION_NEVER_EXPIRES if receive_maximum is not None else 0)
        # Filled by the link as packets arrive, emptied by _take: both in the loop.
        self._pending: deque[tuple[MessageToken, str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._delays = RECONNECT.delays()
        self._sleep = asyncio.sleep
        """How the connection waits between attempts (a test may watch the waits)."""
        self._link: Link | None = None
        self._connection: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ the connection

    def _on_publish(self, qos: int, mid: int, topic: str, payload: bytes) -> None:
        token = self.acks.received(mid) if qos else MessageToken(-1, 0)
        self._pending.append((token, topic, payload))
        self._wake.set()

    async def _connect_and_serve(self) -> None:
        """Connect, subscribe, and stay until the connection is lost; then wait the
        backoff's next delay (jittered) and start again. Ends only when cancelled."""
        while True:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    link = await open_link(
                        self.address.host, self.address.port, self._connect,
                        self._on_publish, on_connack=self.acks.new_generation,
                        tls=self.address.tls_context() if self.address.tls else None)
            except ConnectRefused as exc:
                if refuses_credentials(exc.rc):
                    self.credentials_refused += 1
                    log.warning("readings %s: broker %s refused our credentials (%s); check "
                                "the username_env and password_env variables",
                                self.client_id, self.address, exc.rc)
                else:
                    log.warning("readings %s: broker %s refused the connection: %s",
                                self.client_id, self.address, exc.rc)
            except (OSError, TimeoutError, LinkError) as exc:
                log.debug("readings %s: broker %s unreachable (%s)", self.client_id,
                          self.address, exc)
            except Exception:  # a bug met on the way in: said, and tried again
                log.exception("readings %s: connecting to broker %s failed", self.client_id,
                              self.address)
            else:
                self._link = link
                try:
                    await self._serve(link)
                except LinkError as exc:
                    log.warning("readings %s: lost broker %s (%s); reconnecting",
                                self.client_id, self.address, exc)
                except Exception:  # this task is not supervised: it must not end
                    log.exception("readings %s: the connection to broker %s failed; "
                                  "reconnecting", self.client_id, self.address)
                    link.disconnect()
                finally:
                    self._link = None
                    self.subscribed.clear()
            await self._sleep(self._delays.jittered(next(self._delays)))

    async def _serve(self, link: Link) -> None:
        self.connects += 1
        self._delays.reset()  # a later loss waits the first delay again
        # (the ack window's new generation started at the CONNACK: on_connack)
        # A persistent session keeps its subscriptions: drop the other form (plain vs
        # shared) in case this client id was used with it, or messages arrive twice.
        if self.retire:  # leave the group; what was queued for us still comes
            await link.unsubscribe([f for f in (self.filter, self.other_filter) if f])
            self.unsubscribed.set()
        else:
            if self.other_filter is not None:
                await link.unsubscribe([self.other_filter])
            codes = await link.subscribe(self.filter, qos=1)
            if any(code >= 0x80 for code in codes):
                log.error("readings %s: broker %s refused the subscription %s: %s",
                          self.client_id, self.address, self.filter,
                          ", ".join(f"{code:#04x}" for code in codes))
            else:
                self.subscribed.set()
        await asyncio.shield(link.closed)  # cancelling this task leaves the link to close()

    @property
    def pending(self) -> int:
        """Messages received and not yet taken by :meth:`_take`."""
        return len(self._pending)

    # ------------------------------------------------------------------ taking messages

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (and reconnect) and feed the ingest runner until ``stop`` is set; then
        stop taking messages but stay connected, so that acknowledgements of what the
        caller still writes out (``ingest.drain``) reach the broker. :meth:`close` after."""
        if self._connection is None:
            self._connection = asyncio.create_task(self._connect_and_serve(),
                                                   name=f"readings-{self.client_id}")
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                if not self._pending:
                    waker = asyncio.create_task(self._wake.wait())
                    await asyncio.wait({waker, stopper},
                                       return_when=asyncio.FIRST_COMPLETED)
                    waker.cancel()
                    if stop.is_set():
                        break
                await self._take()
        finally:
            stopper.cancel()

    async def close(self, *, end_session: bool = False) -> None:
        """Disconnect. Unacknowledged messages stay in the persistent session: the broker
        sends them again on the next connection, so nothing unwritten is lost.

        ``end_session`` (a retired worker that settled everything) asks the broker to
        drop the session with the connection (MQTT v5 Session Expiry Interval 0 at
        DISCONNECT), so the group stops keeping a share for it."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        link = self._link
        connection.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connection
        if link is not None:
            link.disconnect(session_expiry=0 if end_session else None)
            with contextlib.suppress(LinkError):
                await asyncio.wait_for(asyncio.shield(link.closed), 5.0)

    async def _take(self) -> None:
        self._wake.clear()
        pending = self._pending
        n = len(pending)
        if n and self.first_message_at is None:
            self.first_message_at = time.time()
            self.cpu_at_first_message = time.process_time()
        self.messages += n
        if n:
            self.last_message_at = time.monotonic()
        readings = self.decoder.readings
        put = self.ingest.put
        settle = self.acks.settle
        popleft = pending.popleft
        for i in range(n):
            if i % TAKE_BEFORE_YIELD == TAKE_BEFORE_YIELD - 1:
                await asyncio.sleep(0)  # let the desk's events through a long burst
            token, topic, payload = popleft()
            try:
                batch = readings(topic, payload)
            except MalformedMessage as exc:
                letters = self.ingest.dead_letters
                if exc.reason == "ts_window" and letters is not None:
                    # valid but for the hub's window: kept, for a replay once the window
                    # or the device's clock is fixed
                    await letters.keep(topic, payload, exc.reason, exc.detail)
                else:
                    bad = self.decoder.malformed_total
                    if bad <= 10 or bad % 1000 == 0:
                        log.warning("%s (%d rejected so far)", exc, bad)
                settle([token])  # counted; redelivering it would not make it valid
                continue
            await put(batch, token)
