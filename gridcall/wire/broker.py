"""How both runtimes reach the MQTT broker: URL parsing and aiomqtt client options."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

from gridcall.wire.backoff import Backoff, Outcome

# CONNACK codes for refused credentials: MQTT 3.1.1 (4 bad user name or password,
# 5 not authorised) and MQTT 5 / paho 2's ReasonCode values (134, 135).
_REFUSED_CREDENTIALS = frozenset({4, 5, 134, 135})


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt://host[:1883]`` or ``mqtts://host[:8883]``; ValueError naming the URL."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker URL {url!r} is not mqtt://host[:port] or mqtts://...")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ValueError(f"broker URL {url!r} has a bad port") from exc
        return cls(parts.hostname, port, tls)

    def tls_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context() if self.tls else None

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


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
    return f"broker {address} unreachable ({exc})"


def mqtt_outcome(exc: BaseException) -> Outcome:
    """How a reconnect loop treats an MQTT failure: a refused login is REFUSED (wait for
    the credentials to change), anything else RETRY."""
    return Outcome.REFUSED if credentials_refused(exc) else Outcome.RETRY


MQTT_RECONNECT = Backoff(initial=0.5, cap=30.0)
"""Between attempts to reach a broker, for the agent, its local MQTT source and the hub."""
