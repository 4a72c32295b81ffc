"""The readings link: one MQTT connection read in the asyncio loop, for the ingest consumer.

Why not paho (which the consumer used before, in its own thread): at the hub's rates the
readings path is thousands of 2.5 KB PUBLISH packets a second, and paho spends more CPU
on each than the hub spends decoding, screening and encoding its 50 readings. Its
thread makes one ``select`` and four ``recv`` calls per packet (command byte, each byte
of the remaining length, the body), builds an ``MQTTMessage`` and, for MQTT v5, a
``Properties`` object per packet, takes its locks, and hands each message to the asyncio
side through a lock and a wake-up; every PUBACK is its own ``send`` plus a wake-up byte
to its thread. None of that is reachable through paho's public API (its external-loop
``loop_read`` reads one packet per call, whatever ``max_packets`` says).

Here the asyncio transport reads up to 256 KiB per ``recv`` and :class:`Link` cuts it
into packets in one pass, handing each PUBLISH's topic and payload on at once; the
PUBACKs of one settle go out in one write (docs/benchmarks.md, "CPU per reading").

Only what the readings consumer needs, for MQTT v5 and 3.1.1: CONNECT (credentials,
persistent session, v5 Receive Maximum and Session Expiry Interval), SUBSCRIBE and
UNSUBSCRIBE, PUBLISH received at QoS 0 or 1, PUBACK, keep-alive, DISCONNECT (v5: with a
Session Expiry Interval). No publishing, no QoS 2 (the subscription asks for QoS 1, so
the broker never sends 2), no topic aliases (the CONNECT allows none), no AUTH. paho's
public ``Properties`` and ``ReasonCode`` encode and name what v5 carries.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

PublishHandler = Callable[[int, int, str, bytes], None]
"""Called for each PUBLISH received, in order: (qos, packet id, topic, payload)."""
ConnackHandler = Callable[["Link"], None]
"""Called with the link when the broker accepts it, before any PUBLISH that follows the
CONNACK (a persistent session's queue comes in the same read) is handed on."""

_CONNACK, _PUBLISH, _SUBACK, _UNSUBACK, _PINGRESP, _DISCONNECT = 2, 3, 9, 11, 13, 14
PINGREQ = b"\xc0\x00"
_MAX_LENGTH = 268_435_455  # the largest remaining length MQTT can say (4 bytes)


class LinkError(Exception):
    """The connection broke the protocol, or was lost."""


class ConnectRefused(LinkError):
    """The broker answered CONNECT with a failure. ``rc``: paho's ReasonCode (v5) or the
    3.1.1 return code, as :func:`gridcall.wire.broker.refuses_credentials` takes it."""

    def __init__(self, rc: ReasonCode | int) -> None:
        super().__init__(f"CONNACK {rc}")
        self.rc = rc


@dataclass(frozen=True, slots=True)
class Connect:
    """What one CONNECT says. ``receive_maximum`` None speaks MQTT 3.1.1."""

    client_id: str
    keepalive: int = 30
    username: str | None = None
    password: str | None = None
    receive_maximum: int | None = None
    session_expiry: int = 0
    """v5 Session Expiry Interval (s); 3.1.1 has clean_session=False instead."""

    @property
    def v5(self) -> bool:
        return self.receive_maximum is not None


def varint(n: int) -> bytes:
    """MQTT's variable byte integer."""
    if not 0 <= n <= _MAX_LENGTH:
        raise ValueError(f"MQTT length {n} out of range 0..{_MAX_LENGTH}")
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > 65_535:
        raise ValueError(f"MQTT string of {len(raw)} bytes is over 65,535")
    return len(raw).to_bytes(2, "big") + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def _props(packet_type: int, **values: int) -> bytes:
    props = Properties(packet_type)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    packed: bytes = props.pack()  # type: ignore[no-untyped-call]
    return packed


def connect_packet(c: Connect) -> bytes:
    flags = 0  # clean start / clean session off: the session persists
    payload = _string(c.client_id)
    if c.username is not None:
        flags |= 0x80
        payload += _string(c.username)
        if c.password is not None:
            flags |= 0x40
            payload += _string(c.password)
    head = _string("MQTT") + bytes((5 if c.v5 else 4, flags)) + c.keepalive.to_bytes(2, "big")
    if c.receive_maximum is not None:
        head += _props(PacketTypes.CONNECT, ReceiveMaximum=c.receive_maximum,
                       SessionExpiryInterval=c.session_expiry)
    return _packet(0x10, head + payload)


def subscribe_packet(mid: int, topic_filter: str, qos: int, *, v5: bool) -> bytes:
    body = mid.to_bytes(2, "big") + (b"\x00" if v5 else b"")
    return _packet(0x82, body + _string(topic_filter) + bytes((qos,)))


def unsubscribe_packet(mid: int, filters: Sequence[str], *, v5: bool) -> bytes:
    body = mid.to_bytes(2, "big") + (b"\x00" if v5 else b"")
    return _packet(0xA2, body + b"".join(_string(f) for f in filters))


def disconnect_packet(*, v5: bool, session_expiry: int | None = None) -> bytes:
    if not v5 or session_expiry is None:
        return b"\xe0\x00"
    return _packet(0xE0, b"\x00" + _props(PacketTypes.DISCONNECT,
                                          SessionExpiryInterval=session_expiry))


def _skip_props(data: bytes, j: int) -> int:
    """The position after the v5 properties starting at ``j``."""
    length, mult = 0, 1
    while True:
        byte = data[j]
        j += 1
        length += (byte & 127) * mult
        if byte < 128:
            return j + length
        mult *= 128


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class Link(asyncio.Protocol):
    """One MQTT connection, as an asyncio protocol. Open it with :func:`open_link`."""

    def __init__(self, on_publish: PublishHandler, connect: Connect,
                 on_connack: ConnackHandler | None = None) -> None:
        self.on_publish = on_publish
        self.on_connack = on_connack
        self.connect = connect
        self.v5 = connect.v5
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done when the connection is gone (with LinkError if it was lost)."""
        self.connack: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        """The CONNACK: session present, or ConnectRefused."""
        for future in (self.closed, self.connack):  # seen, whether awaited or not
            future.add_done_callback(_retrieve)
        self._rest: list[bytes] = []  # the start of a packet not all read yet, in pieces
        self._rest_bytes = 0
        self._rest_need = 0  # its whole length, once known (0: not yet)
        self._next_mid = 0
        self._waiting: dict[int, asyncio.Future[list[int]]] = {}
        self._last_sent = self._last_received = time.monotonic()
        self._pinger: asyncio.TimerHandle | None = None
        self._disconnecting = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._write(connect_packet(self.connect))
        if self.connect.keepalive > 0:
            self._pinger = asyncio.get_running_loop().call_later(
                self.connect.keepalive / 2, self._ping)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
        lost = LinkError(f"connection lost: {exc}" if exc else "connection closed by the "
                         "broker")
        waiters: list[asyncio.Future[Any]] = [self.connack, *self._waiting.values()]
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(lost)
        self._waiting.clear()
        if not self.closed.done():
            if self._disconnecting:
                self.closed.set_result(None)
            else:
                self.closed.set_exception(lost)

    def data_received(self, data: bytes) -> None:
        self._last_received = time.monotonic()
        if self._rest:  # gathered, not re-joined per read: a large packet stays linear
            self._rest.append(data)
            self._rest_bytes += len(data)
            if self._rest_bytes < self._rest_need:
                return
            data = b"".join(self._rest)
            self._rest = []
        n = len(data)
        pos = 0
        on_publish, v5 = self.on_publish, self.v5
        while n - pos >= 2:
            first = data[pos]
            i = pos + 1
            byte = data[i]
            i += 1
            length = byte & 127
            if byte >= 128:  # a longer remaining length (2 bytes for a PUBLISH of 2.5 KB)
                mult = 128
                while byte >= 128:
                    if i >= n:
                        break
                    byte = data[i]
                    i += 1
                    length += (byte & 127) * mult
                    mult *= 128
                    if mult > 128**3 and byte >= 128:
                        self._fail("remaining length over 4 bytes")
                        return
                if byte >= 128:  # the length itself is not all here yet
                    self._rest_need = 0
                    break
            end = i + length
            if end > n:
                self._rest_need = end - pos
                break
            if first >> 4 == _PUBLISH:
                qos = (first >> 1) & 3
                j = i + 2 + (data[i] << 8 | data[i + 1])
                topic = data[i + 2:j].decode()
                mid = 0
                if qos:
                    if qos > 1:
                        self._fail(f"PUBLISH at QoS {qos} on a QoS 1 subscription")
                        return
                    mid = data[j] << 8 | data[j + 1]
                    j += 2
                if v5:
                    j = _skip_props(data, j)
                on_publish(qos, mid, topic, data[j:end])
            else:
                self._control(first, data[i:end])
            pos = end
        if pos < n:
            if n - pos < 2:
                self._rest_need = 0
            self._rest = [data[pos:]]
            self._rest_bytes = n - pos

    # ------------------------------------------------------------------ control packets

    def _control(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == _CONNACK:
            code = body[1]
            if self.v5:
                rc: ReasonCode | int = ReasonCode(PacketTypes.CONNACK, identifier=code)
            else:
                rc = code
            if code:
                if not self.connack.done():
                    self.connack.set_exception(ConnectRefused(rc))
                return
            if self.on_connack is not None:
                self.on_connack(self)
            if not self.connack.done():
                self.connack.set_result(bool(body[0] & 1))
        elif kind in (_SUBACK, _UNSUBACK):
            mid = body[0] << 8 | body[1]
            j = _skip_props(body, 2) if self.v5 else 2
            waiter = self._waiting.pop(mid, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(list(body[j:]))
        elif kind == _PINGRESP:
            pass
        elif kind == _DISCONNECT:
            code = body[0] if body else 0
            reason = (ReasonCode(PacketTypes.DISCONNECT, identifier=code) if self.v5
                      else code)
            self._fail(f"the broker disconnected us: {reason}")
        else:
            self._fail(f"unexpected MQTT packet type {kind} (first byte {first:#04x})")

    def _fail(self, why: str) -> None:
        if not self.closed.done():
            self.closed.set_exception(LinkError(why))
        if self.transport is not None:
            self.transport.abort()

    def _ping(self) -> None:
        keepalive = self.connect.keepalive
        now = time.monotonic()
        if now - self._last_received > keepalive * 1.5:
            self._fail(f"no answer from the broker for {now - self._last_received:.0f}s "
                       f"(keep-alive {keepalive}s)")
            return
        self._write(PINGREQ)
        self._pinger = asyncio.get_running_loop().call_later(keepalive / 2, self._ping)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self._last_sent = time.monotonic()

    # ------------------------------------------------------------------ requests

    def _mid(self) -> int:
        self._next_mid = self._next_mid % 65_535 + 1
        return self._next_mid

    async def _request(self, packet: Callable[[int], bytes]) -> list[int]:
        mid = self._mid()
        waiter: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._waiting[mid] = waiter
        self._write(packet(mid))
        return await waiter

    async def subscribe(self, topic_filter: str, qos: int = 1) -> list[int]:
        """SUBSCRIBE; the SUBACK's reason codes (0x80 and above: refused)."""
        return await self._request(
            lambda mid: subscribe_packet(mid, topic_filter, qos, v5=self.v5))

    async def unsubscribe(self, filters: Sequence[str]) -> list[int]:
        """UNSUBSCRIBE; the UNSUBACK's reason codes (v5; none for 3.1.1)."""
        return await self._request(
            lambda mid: unsubscribe_packet(mid, filters, v5=self.v5))

    def puback(self, mids: Sequence[int]) -> None:
        """Acknowledge QoS 1 messages, all in one write."""
        if mids:
            self._write(b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids))

    def disconnect(self, *, session_expiry: int | None = None) -> None:
        """DISCONNECT (v5: with ``session_expiry``, 0 ends the session) and close."""
        self._disconnecting = True
        self._write(disconnect_packet(v5=self.v5, session_expiry=session_expiry))
        if self.transport is not None:
            self.transport.close()


async def open_link(host: str, port: int, connect: Connect, on_publish: PublishHandler, *,
                    on_connack: ConnackHandler | None = None,
                    tls: ssl.SSLContext | None = None) -> Link:
    """Connect, send CONNECT and wait for the CONNACK: the open link, or
    :class:`ConnectRefused`, :class:`LinkError`, OSError (bound it with
    ``asyncio.timeout``: a cancelled attempt closes its connection)."""
    loop = asyncio.get_running_loop()
    _, link = await loop.create_connection(
        lambda: Link(on_publish, connect, on_connack), host, port, ssl=tls,
        server_hostname=host if tls is not None else None)
    try:
        await link.connack
    except BaseException:
        if link.transport is not None:
            link.transport.abort()
        raise
    return link
