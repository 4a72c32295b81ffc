"""A TCP relay between an MQTT client and a broker that can hold back what the client
sends (tests/test_local_mqtt.py): the broker's messages still reach the client, the
client's acknowledgements never reach the broker. That makes a QoS 1 redelivery happen
on purpose, not by luck of timing: the broker keeps the message unacknowledged for the
client's persistent session and sends it again, flagged DUP, when the session is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket


class HoldingRelay:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.holding = False
        """While true, bytes from the client are read and dropped."""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self.url = f"mqtt://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> HoldingRelay:
        self._server = await asyncio.start_server(self._accept, sock=self._sock)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for task in (self._pipe(reader, up_writer, upstream=True),
                     self._pipe(up_reader, writer, upstream=False)):
            t = asyncio.create_task(task)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *,
                    upstream: bool) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await src.read(65536):
                if upstream and self.holding:
                    continue
                dst.write(data)
                await dst.drain()
        dst.transport.abort()

    def cut(self) -> None:
        """Abort every connection (no DISCONNECT reaches the broker); new ones are taken,
        and no longer held."""
        self.holding = False
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()
