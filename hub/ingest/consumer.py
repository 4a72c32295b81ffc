"""The readings consumer: MQTT readings in, acknowledged only once written or spooled.

Why paho-mqtt directly, in its own thread, and not aiomqtt (which the alert desk uses):

- **Acknowledge after the write.** A QoS 1 message may only be acknowledged once its
  readings are in the sink or the spool, or a crash loses what the broker already
  forgot. paho 2 has manual acks (``Client(manual_ack=True)``, ``client.ack(mid, 1)``);
  aiomqtt 2 does not expose them.
- **Speed.** aiomqtt hands every message through an asyncio queue and an async iterator;
  at thousands of messages a second that costs more than decoding them. Here paho's own
  network loop runs in a thread and ``on_message`` only appends to a deque and, when the
  list was empty, wakes the asyncio side once; the asyncio side takes the whole list,
  decodes each payload with msgspec (one call per message), deduplicates and buffers.

Back-pressure is the broker's: it sends a client at most ``max_inflight_messages``
unacknowledged QoS 1 messages (mosquitto's setting; see docs/architecture.md for what to
set), so a slow sink slows delivery instead of filling the hub's memory, and what the hub
has not acknowledged stays in its persistent session.

Acknowledgements go out in the order the messages came (MQTT 3.1.1 §4.6.0-2), whatever
order their batches settle in. A reconnect starts a new *generation*: a message of the
old connection is never acknowledged on the new one (its id may be reused there); the
broker redelivers it and the (agent, seq) dedup makes that harmless.

Scale-out: several consumers (processes, machines) join one MQTT shared subscription
(``$share/<group>/gridcall/v1/readings/+``); the broker gives each message to one of them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gridcall.hub.ingest.runner import Ingest, Token
from gridcall.wire import Decoder, MalformedMessage, topics
from gridcall.wire.backoff import Backoff
from gridcall.wire.broker import BrokerAddress, refuses_credentials

log = logging.getLogger(__name__)

RECONNECT = Backoff(initial=1.0, cap=30.0)
"""Waits between the readings connection's attempts (paho's thread does the waiting)."""

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


class AckWindow:
    """Acknowledges QoS 1 messages in arrival order once each is settled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.generation = 0
        self._order: deque[int] = deque()
        self._done: set[int] = set()
        self.client: mqtt.Client | None = None
        self.acked = 0

    def new_generation(self, client: mqtt.Client) -> int:
        """A new connection: forget what the old one had not acknowledged."""
        with self._lock:
            self.generation += 1
            self._order.clear()
            self._done.clear()
            self.client = client
            return self.generation

    def received(self, mid: int) -> MessageToken:
        """Called on paho's thread for each message, in arrival order."""
        with self._lock:
            self._order.append(mid)
            return MessageToken(self.generation, mid)

    def settle(self, tokens: list[Token]) -> None:
        with self._lock:
            gen = self.generation
            done = self._done
            for t in tokens:
                if isinstance(t, MessageToken) and t.generation == gen:
                    done.add(t.mid)
            order, client = self._order, self.client
            while order and order[0] in done:
                mid = order.popleft()
                done.discard(mid)
                if client is not None:
                    client.ack(mid, 1)
                    self.acked += 1

    @property
    def unacked(self) -> int:
        return len(self._order)


class ReadingsConsumer:
    """Subscribes to readings with a persistent session and feeds ``ingest``.

    ``async with``-free: :meth:`run` starts paho's thread and stops it when ``stop`` is
    set. ``ingest.on_settled`` is taken over to acknowledge messages.
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
        # Filled on paho's thread, emptied on the loop's: deque append and popleft are
        # atomic, so neither side ever swaps the container under the other.
        self._pending: deque[tuple[MessageToken, str, bytes]] = deque()
        self._signalled = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        if receive_maximum is None:
            self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                       clean_session=False, manual_ack=True)
        else:
            self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                       protocol=mqtt.MQTTv5, manual_ack=True)
        if username is not None:
            self._client.username_pw_set(username, password)
        if address.tls:
            self._client.tls_set_context(address.tls_context())
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_unsubscribe = self._on_unsubscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.on_socket_open = self._on_socket_open
        self._client.on_connect_fail = self._on_connect_fail
        # paho's own loop reconnects this one, in its thread; the wait before each attempt
        # is the one Backoff's (1-30 s, jittered so that workers cut off together do not
        # all come back together), set after each failure: paho then waits exactly that
        self._delays = RECONNECT.delays()
        self._wait(self._delays.upcoming)
        self._keepalive = keepalive
        self._started = False

    # ------------------------------------------------------------------ paho's thread

    def _wait(self, delay: float) -> None:
        """Make paho wait ``delay`` s, jittered, before its next attempt (its hints say
        int; it adds the delay to time.time(), so a float is what it waits)."""
        wait = self._delays.jittered(delay)
        self._client.reconnect_delay_set(cast(int, wait), cast(int, wait))

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._wait(next(self._delays))  # no answer at all (unreachable, timed out)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    rc: ReasonCode, properties: object = None) -> None:
        if rc.is_failure:  # paho disconnects next: _on_disconnect takes the next wait
            if refuses_credentials(rc):
                self.credentials_refused += 1
                log.warning("readings %s: broker %s refused our credentials (%s); check the "
                            "username_env and password_env variables", self.client_id,
                            self.address, rc)
            else:
                log.warning("readings %s: broker %s refused the connection: %s",
                            self.client_id, self.address, rc)
            return
        self.connects += 1
        self._delays.reset()  # a later loss waits the first delay again
        self.acks.new_generation(client)
        # A persistent session keeps its subscriptions: drop the other form (plain vs
        # shared) in case this client id was used with it, or messages arrive twice.
        if self.retire:  # leave the group; what was queued for us still comes
            client.unsubscribe([f for f in (self.filter, self.other_filter) if f])
            return
        if self.other_filter is not None:
            client.unsubscribe(self.other_filter)
        client.subscribe(self.filter, qos=1)

    @staticmethod
    def _on_socket_open(client: mqtt.Client, userdata: object, sock: object) -> None:
        # PUBACKs are tiny and come in bursts: Nagle would hold them for the broker's
        # delayed ACK (~40 ms), stalling the broker's in-flight window.
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      rcs: list[ReasonCode], properties: object = None) -> None:
        if any(rc.is_failure for rc in rcs):
            log.error("readings %s: broker %s refused the subscription %s: %s",
                      self.client_id, self.address, self.filter, rcs)
            return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.subscribed.set)

    def _on_unsubscribe(self, client: mqtt.Client, userdata: object, mid: int,
                        rcs: list[ReasonCode], properties: object = None) -> None:
        if self.retire and self._loop is not None:
            self._loop.call_soon_threadsafe(self.unsubscribed.set)

    def _on_disconnect(self, client: mqtt.Client, userdata: object,
                       flags: mqtt.DisconnectFlags, rc: ReasonCode,
                       properties: object = None) -> None:
        self._wait(next(self._delays))  # a lost connection, or a refused CONNACK
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.subscribed.clear)
        if rc.is_failure:
            log.warning("readings %s: lost broker %s (%s); reconnecting", self.client_id,
                        self.address, rc)

    def _on_message(self, client: mqtt.Client, userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        token = self.acks.received(msg.mid) if msg.qos > 0 else MessageToken(-1, 0)
        self._pending.append((token, msg.topic, cast(bytes, msg.payload)))
        if not self._signalled:
            self._signalled = True
            loop = self._loop
            if loop is not None:
                loop.call_soon_threadsafe(self._wake.set)

    @property
    def pending(self) -> int:
        """Messages received and not yet taken by the asyncio side."""
        return len(self._pending)

    # ------------------------------------------------------------------ asyncio side

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (and reconnect) and feed the ingest runner until ``stop`` is set; then
        stop taking messages but stay connected, so that acknowledgements of what the
        caller still writes out (``ingest.drain``) reach the broker. :meth:`close` after."""
        self._loop = asyncio.get_running_loop()
        client = self._client
        if self.receive_maximum is None:
            client.connect_async(self.address.host, self.address.port,
                                 keepalive=self._keepalive)
        else:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.ReceiveMaximum = self.receive_maximum
            props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
            client.connect_async(self.address.host, self.address.port,
                                 keepalive=self._keepalive, clean_start=False,
                                 properties=props)
        client.loop_start()
        self._started = True
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                waker = asyncio.create_task(self._wake.wait())
                await asyncio.wait({waker, stopper}, return_when=asyncio.FIRST_COMPLETED)
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
        if not self._started:
            return
        self._started = False
        if end_session:
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
            self._client.disconnect(properties=props)
        else:
            self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    async def _take(self) -> None:
        self._wake.clear()
        self._signalled = False  # from here on paho wakes us again for what it adds
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
        for _ in range(n):
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
