"""How both runtimes reach the MQTT broker: URL parsing, transport security (the TLS
settings every MQTT client of gridcall's uses, paho's and aiomqtt's; the context itself is
built by :mod:`gridcall.wire.tls`, as the HTTPS clients' is) and what a failed connection
means."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from aiomqtt.exceptions import MqttConnectError, MqttError
from paho.mqtt.reasoncodes import ReasonCode

from gridcall.wire.backoff import Backoff, Outcome
from gridcall.wire.tls import TlsFileError, TlsVersion, client_context, file_problem

# CONNACK codes for refused credentials: MQTT 3.1.1 (4 bad user name or password,
# 5 not authorised) and MQTT 5 / paho 2's ReasonCode values (134, 135).
_REFUSED_CREDENTIALS = frozenset({4, 5, 134, 135})
UNSUPPORTED_PROTOCOL_VERSION = 0x84
"""What paho makes of a v3 broker's CONNACK "unacceptable protocol version" to a v5 client."""
PROBE_TIMEOUT_S = 1.0
"""How long a reconnect probe waits for the broker's TCP port to accept."""


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How an ``mqtts://`` connection checks the broker and proves who we are.

    - ``ca_file``: the CAs (PEM) the broker's certificate must chain to; None for the
      system's CAs.
    - ``certfile`` and ``keyfile``: our client certificate and its key (PEM) for a broker
      that requires one (mutual TLS); ``keyfile`` may be left out when ``certfile`` holds
      both.
    - ``min_version``: the oldest TLS version accepted.
    - ``server_name``: the name the broker's certificate must carry (and sent as SNI), when
      it is not the URL's host (a broker reached by IP address).

    The broker's certificate is always verified, name included: there is no switch to
    turn that off for MQTT.
    """

    ca_file: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    min_version: TlsVersion = "1.2"
    server_name: str | None = None

    def context(self) -> ssl.SSLContext:
        """A client context from these settings (:func:`gridcall.wire.tls.client_context`);
        :class:`TlsFileError` naming a file that is missing or not a usable certificate or
        key."""
        return client_context(ca_file=self.ca_file, certfile=self.certfile,
                              keyfile=self.keyfile, min_version=self.min_version,
                              server_name=self.server_name)


_WITHOUT_MQTT5: set[tuple[str, int]] = set()


@contextlib.contextmanager
def without_mqtt5(host: str, port: int) -> Iterator[None]:
    """While in the block, the broker at ``host:port`` (one this process runs) is known
    not to speak MQTT v5: :attr:`BrokerAddress.speaks_mqtt5` says so, and the hub's ingest
    connects with 3.1.1 (amqtt does not even answer a v5 CONNECT)."""
    _WITHOUT_MQTT5.add((host, port))
    try:
        yield
    finally:
        _WITHOUT_MQTT5.discard((host, port))

@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    tls_settings: TlsSettings = field(default_factory=TlsSettings)
    """Used when ``tls`` (``mqtts://``); from the config's ``broker.tls``."""

    @classmethod
    def parse(cls, url: str, tls_settings: TlsSettings | None = None) -> BrokerAddress:
        """``mqtt://host[:1883]`` or ``mqtts://host[:8883]``; ValueError naming the URL."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker URL {url!r} is not mqtt://host[:port] or mqtts://...")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ValueError(f"broker URL {url!r} has a bad port") from exc
        return cls(parts.hostname, port, tls, tls_settings or TlsSettings())

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context for ``mqtts://`` (None for plain ``mqtt://``)."""
        return self.tls_settings.context() if self.tls else None

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def speaks_mqtt5(self) -> bool:
        """False for a broker this process runs without MQTT v5 (the embedded amqtt, which
        registers itself with :func:`without_mqtt5`); True for any other."""
        return (self.host, self.port) not in _WITHOUT_MQTT5

    async def port_open(self) -> bool:
        """True if a TCP connection to the broker's port opens within
        :data:`PROBE_TIMEOUT_S`: the cheap probe a reconnect wait makes
        (:class:`gridcall.wire.backoff.Reconnect`), closed at once, without TLS or a login."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                _, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True


class ClosedBeforeConnack(MqttError):
    """The TCP (or TLS) connection opened and closed before the broker's CONNACK: nothing
    answered at MQTT's level (a relay or proxy whose broker is down, a broker going
    down). Raised by :class:`gridcall.wire.mqttclient.MqttClient`'s connect."""


def credentials_refused(exc: BaseException) -> bool:
    """True if the broker answered a connection with "bad user name/password" or "not
    authorised": retrying will not help until someone fixes the credentials."""
    if not isinstance(exc, MqttConnectError):
        return False
    return refuses_credentials(exc.rc)


def refuses_credentials(rc: ReasonCode | int | None) -> bool:
    """True if a CONNACK reason code (paho's ReasonCode or a 3.1.1 return code) says the
    broker refused our credentials, as opposed to any other failure."""
    return (rc.value if isinstance(rc, ReasonCode) else rc) in _REFUSED_CREDENTIALS


def describe_failure(address: BrokerAddress, exc: BaseException) -> str:
    """A connection failure as one line for a person: refused credentials or unreachable."""
    if credentials_refused(exc):
        return (f"broker {address} refused our credentials ({exc}); check the username_env "
                "and password_env variables")
    if isinstance(exc, MqttConnectError) and isinstance(exc.rc, ReasonCode) \
            and exc.rc.value == UNSUPPORTED_PROTOCOL_VERSION:
        return (f"broker {address} does not speak MQTT v5 ({exc}); set broker.mqtt_version: "
                '"3.1.1" for it (docs/security.md)')
    return f"broker {address} unreachable ({exc})"


def mqtt_outcome(exc: BaseException) -> Outcome:
    """How a reconnect loop treats an MQTT failure: a refused login is REFUSED (wait for
    the credentials to change), a connection closed before the CONNACK UNANSWERED (keep
    probing), anything else RETRY."""
    if credentials_refused(exc):
        return Outcome.REFUSED
    return Outcome.UNANSWERED if isinstance(exc, ClosedBeforeConnack) else Outcome.RETRY


MQTT_RECONNECT = Backoff(initial=0.5, cap=30.0)
"""Between attempts to reach a broker, for the agent, its local MQTT source and the hub."""


__all__ = ["MQTT_RECONNECT", "PROBE_TIMEOUT_S", "UNSUPPORTED_PROTOCOL_VERSION",
           "BrokerAddress", "ClosedBeforeConnack", "TlsFileError", "TlsSettings",
           "TlsVersion", "credentials_refused", "describe_failure", "file_problem",
           "mqtt_outcome", "refuses_credentials", "without_mqtt5"]
