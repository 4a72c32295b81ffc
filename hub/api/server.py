"""Serve the hub's API (hub/api/app.py) with uvicorn inside the hub's own event loop.

``async with ApiServer(app, "127.0.0.1", 8470) as server`` binds the port at once (an
address in use is an :class:`ApiBindError` naming it, before anything else starts), serves in
a task, and stops serving on leaving; with ``tls=(certfile, keyfile)`` it serves HTTPS (a
file it cannot use is an :class:`ApiTlsError`, also before anything starts). The hub
process owns SIGINT/SIGTERM, so uvicorn's own signal capture is switched off: a Ctrl-C
stops the hub, which stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Generator
from pathlib import Path
from typing import Self

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)


class ApiBindError(OSError):
    """The API's address cannot be listened on (in use, not this machine's, no rights)."""


class ApiTlsError(ValueError):
    """The API's certificate or key cannot be used: names the files and why."""


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn would install its own SIGINT/SIGTERM handlers and re-raise the signal
        # afterwards; inside the hub, the hub's stop event decides when to stop.
        yield


def parse_address(text: str) -> tuple[str, int] | None:
    """``host:port`` (``[::1]:8470`` for IPv6), or None for ``off``; ValueError else."""
    if text.strip().lower() == "off":
        return None
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--api {text!r}: give host:port (e.g. 127.0.0.1:8470) or off")
    return host, int(port)


class ApiServer:
    """``tls``: the certificate (chain) and key files (PEM; key None when the certificate
    file holds it): the API then speaks HTTPS only, with TLS 1.2 at least."""

    def __init__(self, app: FastAPI, host: str, port: int, *,
                 tls: tuple[Path, Path | None] | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.tls = tls
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def _config(self) -> uvicorn.Config:
        # timeout_graceful_shutdown: a response that still runs then is cancelled, so a
        # client that never finishes reading cannot keep the hub from stopping.
        certfile, keyfile = self.tls or (None, None)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off",
                                access_log=False, timeout_graceful_shutdown=5,
                                ssl_certfile=certfile, ssl_keyfile=keyfile)
        try:
            config.load()  # reads the certificate and key now, not in the serving task
        except (OSError, ssl.SSLError) as exc:
            what = f"certificate {certfile}" + (f" and key {keyfile}" if keyfile else "")
            raise ApiTlsError(f"the API cannot serve TLS with the {what}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        if config.ssl is not None:
            config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        return config

    async def __aenter__(self) -> Self:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ApiBindError(exc.errno, f"the API cannot listen on {self.host}:{self.port}: "
                                     f"{exc.strerror}") from None
        self.port = sock.getsockname()[1]
        try:
            config = self._config()
        except ApiTlsError:
            sock.close()
            raise
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="hub-api")
        return self

    @property
    def started(self) -> bool:
        return self._server is not None and self._server.started

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None and self._task is not None:
            # Long-lived responses (the board's event streams) end first: uvicorn waits
            # for every response in progress before it stops.
            for close in getattr(self.app.state, "closing", ()):
                close()
            self._server.should_exit = True
            try:
                await self._task
            except Exception:  # the API going down must not hide why the hub stopped
                log.exception("hub API server ended with an error")
        self._server = self._task = None
