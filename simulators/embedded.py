"""The embedded broker for the no-server default: amqtt on a loopback port.

amqtt is pure Python and slow, and has no MQTT v5 or ``$share``; it is here so that
``gridcall demo`` runs with nothing installed. The same agent and hub code talks to
mosquitto or a clustered broker when given ``--broker``.
"""

from __future__ import annotations

import logging
import socket
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)

_RUNNING: set[str] = set()  # URLs of the embedded brokers running in this process


def speaks_mqtt5(url: str) -> bool:
    """False for an embedded broker running in this process (amqtt has no MQTT v5 and does
    not even answer a v5 CONNECT), True for any other: the hub's ingest then connects with
    3.1.1 (``Hub(mqtt5=...)``)."""
    return url not in _RUNNING


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedBroker:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._broker: Any = None

    async def __aenter__(self) -> Self:
        from amqtt.broker import Broker

        # Only the anonymous-auth plugin: no packet logging, no $SYS, no topic checks.
        self._broker = Broker({
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}",
                                      "max_connections": 1000}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        })
        await self._broker.start()
        _RUNNING.add(self.url)
        log.info("embedded broker on %s", self.url)
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        _RUNNING.discard(self.url)
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
