"""The embedded broker for the no-server default: amqtt on a loopback port.

amqtt is pure Python and slow, and has no MQTT v5 or ``$share``; it is here so that
``gridcall demo`` runs with nothing installed. The same agent and hub code talks to
mosquitto or a clustered broker when given ``--broker``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from types import TracebackType
from typing import Any, Self

from gridcall.wire.broker import BrokerAddress, without_mqtt5

log = logging.getLogger(__name__)


def speaks_mqtt5(url: str) -> bool:
    """False for an embedded broker running in this process (amqtt has no MQTT v5 and does
    not even answer a v5 CONNECT), True for any other (``Hub(mqtt5=...)``; the hub asks
    :attr:`gridcall.wire.broker.BrokerAddress.speaks_mqtt5` itself when not told)."""
    return BrokerAddress.parse(url).speaks_mqtt5



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
        self._no_v5: contextlib.AbstractContextManager[None] | None = None

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
        # amqtt has no MQTT v5 (it does not even answer a v5 CONNECT): the hub's ingest
        # asks BrokerAddress.speaks_mqtt5 and connects to this one with 3.1.1
        self._no_v5 = without_mqtt5("127.0.0.1", self.port)
        self._no_v5.__enter__()
        log.info("embedded broker on %s", self.url)
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._no_v5 is not None:
            self._no_v5.__exit__(None, None, None)
            self._no_v5 = None
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
