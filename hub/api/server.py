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
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class ApiBindError(OSError):
    """The API's address cannot be listened on (in use, not this machine's, no rights)."""


class ApiTlsError(ValueError):
    """The API's certificate or key cannot be used: names the files and why."""


HEADER_TIMEOUT_S = 30.0
"""Seconds a connection may take to send a request's headers: at its opening, and after
each answer (uvicorn's own keep-alive timer ends an idle connection sooner, but not one
that sent a few bytes of headers and stopped)."""


class _HeadersInTime(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11) with a deadline for a request's headers: a client
    that connects and sends nothing, or half a request line, was held for as long as it
    kept the socket open (one per file descriptor the hub has). The body has its own
    deadline (:class:`~gridcall.hub.api.guard.BodyGuard`)."""

    header_timeout = HEADER_TIMEOUT_S
    _headers_due: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def handle_events(self) -> None:
        super().handle_events()
        if self._in_request():  # its headers are in: the body guard and the route go on
            self._cancel_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._in_request():
            self._await_headers()  # the next request's

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_headers()
        super().connection_lost(exc)

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _await_headers(self) -> None:
        self._cancel_headers()
        self._headers_due = self.loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_headers(self) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
            self._headers_due = None

    def _headers_late(self) -> None:
        self._headers_due = None
        if not self.transport.is_closing() and not self._in_request():
            self.transport.close()


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
                 tls: tuple[Path, Path | None] | None = None,
                 header_timeout: float = HEADER_TIMEOUT_S) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.tls = tls
        self.header_timeout = header_timeout
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
        protocol = type("_HeadersInTime", (_HeadersInTime,),
                        {"header_timeout": self.header_timeout})
        # log_config=None: uvicorn's lines go to the root logger's handler, as ours do
        # (setup_logging's PrintableFormatter: a client's bytes cannot forge a line),
        # not to a handler of its own that writes them as they are.
        # log_config=None leaves uvicorn's loggers as they are, so a uvicorn started
        # earlier in the process with its own dictConfig (an embedding application, a
        # test) would have left them with that handler and propagate off: undo that here.
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
        config = uvicorn.Config(self.app, log_level="warning", log_config=None, lifespan="off",
                                access_log=False, timeout_graceful_shutdown=5,
                                ssl_certfile=certfile, ssl_keyfile=keyfile, http=protocol)
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
