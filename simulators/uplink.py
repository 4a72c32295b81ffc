"""An edge agent's uplink that can be cut: a TCP relay between one agent and the broker.

Cutting it aborts both sides (no MQTT DISCONNECT reaches the broker, so it publishes the
agent's last will) and refuses new connections until it is restored, the way a dead uplink
does. The simulated district (:mod:`gridcall.simulators.sim`) cuts it for a scenario's
``agent_offline``; the demo (:mod:`gridcall.simulators.district`) for ``--take-offline``.

Its address is known as soon as it is made (the listening socket is bound then), so an
agent can be given ``url`` before the relay serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from gridcall.wire.broker import BrokerAddress, without_mqtt5


class Uplink:
    def __init__(self, address: BrokerAddress) -> None:
        self.address = address
        self.down = False
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        port = self._sock.getsockname()[1]
        self.url = f"mqtt://127.0.0.1:{port}"
        """Where the agent connects instead of the broker."""
        # the relay speaks whatever its broker speaks: an agent behind a relay to the
        # embedded amqtt broker must connect with 3.1.1, as one connecting to it directly
        self._no_v5 = contextlib.ExitStack()
        if not address.speaks_mqtt5:
            self._no_v5.enter_context(without_mqtt5("127.0.0.1", port))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, sock=self._sock)

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.address.host,
                                                                 self.address.port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst, pair))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in pair:  # one side gone: the other goes too, as on a real link
                w.transport.abort()
            self._pairs.discard(pair)

    def cut(self) -> None:
        self.down = True
        for pair in list(self._pairs):
            for w in pair:
                w.transport.abort()
        self._pairs.clear()

    def restore(self) -> None:
        self.down = False

    async def close(self) -> None:
        self.cut()
        self._no_v5.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        else:
            self._sock.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


__all__ = ["Uplink"]
