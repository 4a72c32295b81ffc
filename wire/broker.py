"""How both runtimes reach the MQTT broker: URL parsing and aiomqtt client options."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit


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
