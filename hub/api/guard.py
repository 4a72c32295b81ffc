"""How the hub's API refuses, for every route at once (a route added later inherits it):

- one error body, :class:`~gridcall.hub.api.models.Problem` (``{"detail": "..."}``), for
  the API's own refusals, FastAPI's validation errors (422; they were an array) and
  Starlette's (400 body not readable, 404 no route, 405 method), declared on every route
  of the OpenAPI document (:data:`~gridcall.hub.api.models.COMMON_ERRORS`);
- :func:`refuse_unknown_query`: a query parameter the route does not take is a 422;
- :class:`BodyGuard`, an ASGI middleware that reads a request's body before the app does:
  more than ``max_bytes`` is a 413 (a ``Content-Length`` over it is refused unread), bytes
  that are not UTF-8 or JSON text with a lone surrogate (``"\\ud800"``, which the ledger
  cannot store) a 422, naming the byte or the escape, and a body that has not arrived
  ``body_timeout`` seconds after its headers a 408 (a client trickling a body, or sending
  none after announcing one, held its connection for ever).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from gridcall.hub.api.models import ApiError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_BODY_TIMEOUT_S = 30.0
"""Seconds from a request's headers to the last byte of its body, at least; a route that
takes more (photos) gets its limit at :data:`MIN_BODY_RATE`."""

MIN_BODY_RATE = 32 * 1024
"""Bytes a second a body may come at, at the slowest (256 kbit/s, a poor mobile uplink):
a report with five 2 MiB photos (14 MB in base64) gets 7 minutes."""

DEFAULT_MAX_BODY_BYTES = 64 * 1024
"""The largest request body the API reads: its bodies are a note, a reason and a list of
departments (each text at most 2,000 characters, 4 bytes each at worst)."""


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _where(loc: tuple[int | str, ...] | list[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def validation_detail(exc: RequestValidationError) -> str:
    """FastAPI's list of validation errors as one line a person reads:
    ``body.note: String should have at most 2000 characters; query.limit: ...``."""
    parts = [f"{_where(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
    return "; ".join(parts) or "the request is not valid"


_KNOWN_QUERY: dict[int, tuple[Dependant, frozenset[str]]] = {}
"""id(dependant) -> (the dependant, its query parameters). The dependant is kept with its
names: an id is unique only while its object lives, and a test process builds many apps
(a freed route's id reused by another route's dependant would give it the wrong names)."""


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route takes, its dependencies' included."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def refuse_unknown_query(request: Request) -> None:
    """An app-wide dependency: a query parameter the route does not take is a 422 naming
    it (``?lmit=5`` would otherwise be ignored and the caller never learn why)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    cached = _KNOWN_QUERY.get(id(dependant))
    if cached is not None and cached[0] is dependant:
        known = cached[1]
    else:
        known = frozenset(_query_names(dependant))
        _KNOWN_QUERY[id(dependant)] = (dependant, known)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise ApiError(422, f"unknown query parameter(s) {', '.join(map(repr, unknown))}; "
                            f"this route takes: {takes}")


def install(app: FastAPI) -> None:
    """The exception handlers that give every refusal the one error body, and the
    OpenAPI document that says so."""
    errors_as_json(app)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {**exc.headers, **({"WWW-Authenticate": "Bearer"} if exc.status == 401
                                     else {})}
        return problem(exc.status, exc.detail, headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, validation_detail(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed(app, request))
        return problem(exc.status_code, str(exc.detail), headers)


def _allowed(app: FastAPI, request: Request) -> list[str]:
    """Every method some route takes at the request's path (Starlette's 405 names only the
    first route that matched it, though GET and POST may be two routes)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def errors_as_json(app: FastAPI) -> None:
    """Make the OpenAPI document say what the handlers above send: every 4xx/5xx response
    of every route is ``application/json`` :class:`Problem`, also on a route whose own
    responses are another type (the board's event stream)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        ref = {"$ref": "#/components/schemas/Problem"}
        for methods in spec.get("paths", {}).values():
            for op in methods.values():
                for status, response in op.get("responses", {}).items():
                    if status[:1] in ("4", "5"):
                        response["content"] = {"application/json": {"schema": ref}}
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _lone_surrogate(text: str) -> int | None:
    """The index of the first lone surrogate in ``text`` (from a JSON ``\\udXXX``
    escape), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _first_surrogate(value: object) -> str | None:
    """The first lone surrogate anywhere in a decoded JSON value (keys included), as
    ``\\udXXX``, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            at = _lone_surrogate(item)
            if at is not None:
                return f"\\u{ord(item[at]):04x}"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


class BodyGuard:
    """ASGI middleware: bounded, valid UTF-8, no lone surrogates, before any route runs."""

    def __init__(self, app: Asgi, max_bytes: int = DEFAULT_MAX_BODY_BYTES, *,
                 larger: tuple[str, int] | None = None,
                 body_timeout: float = DEFAULT_BODY_TIMEOUT_S) -> None:
        """``larger``: ``(path regex, limit)``: POSTs to those paths may be larger (the
        routes that take photos in base64)."""
        if max_bytes < 1:
            raise ValueError(f"the API's body limit must be at least 1 byte, not {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout = body_timeout
        self.larger = (re.compile(larger[0]), max(larger[1], max_bytes)) if larger else None

    def _limit(self, scope: Scope) -> int:
        if self.larger is not None and scope.get("method") == "POST" and self.larger[0].match(
                scope.get("path", "")):
            return self.larger[1]
        return self.max_bytes

    def deadline(self, scope: Scope) -> float:
        """Seconds the request's body may take after its headers."""
        return max(self.body_timeout, self._limit(scope) / MIN_BODY_RATE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        length = headers.get(b"content-length")
        if length is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return
        limit = self._limit(scope)
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._refuse(scope, receive, send, 413, self._too_large(limit))
            return
        body = bytearray()
        more = True
        deadline = self.deadline(scope)
        try:
            async with asyncio.timeout(deadline):
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > limit:
                        break
        except TimeoutError:
            await self._refuse(scope, receive, send, 408,
                               f"the request body did not arrive within {deadline:g} s "
                               f"({len(body)} bytes came)")
            return
        if len(body) > limit:
            await self._refuse(scope, receive, send, 413, self._too_large(limit))
            return
        refusal = self._check(bytes(body), headers.get(b"content-type", b""))
        if refusal is not None:
            await self._refuse(scope, receive, send, 422, refusal)
            return
        await self.app(scope, _replay(bytes(body), receive), send)

    @staticmethod
    def _too_large(limit: int) -> str:
        return f"the request body is larger than the API takes ({limit} bytes)"

    @staticmethod
    def _check(body: bytes, content_type: bytes) -> str | None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"the request body is not valid UTF-8 (byte {exc.start}: {exc.reason})"
        if b"json" not in content_type.lower() or not text:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None  # malformed JSON: the route's own 422 names where
        except RecursionError:  # the route's own parse would raise it too: a 500
            return "the request body is JSON nested deeper than the API reads"
        surrogate = _first_surrogate(value)
        if surrogate is not None:
            return (f"the request body has a lone surrogate ({surrogate}): text must be "
                    "valid Unicode")
        return None

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int,
                      detail: str) -> None:
        await problem(status, detail, {"Connection": "close"})(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay
