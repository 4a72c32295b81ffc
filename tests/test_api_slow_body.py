"""A request body that does not come (issue 16's attacker, "slow bodies"): the API's body
guard (hub/api/guard.py) answers 408 and closes once the body is late, instead of holding
the connection, a socket and a task for as long as the client trickles. Driven as uvicorn
drives it, through the ASGI interface; the deadline is shortened for the test."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI

from gridcall.hub.api.guard import MIN_BODY_RATE, BodyGuard
from gridcall.hub.api.server import ApiServer
from tests.polling import wait_until


class Inner:
    """The app behind the guard: records the body it was handed."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def scope(length: int, path: str = "/v1/alerts/AL000001/acknowledge") -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(length).encode())]}


async def serve(guard: BodyGuard, chunks: list[bytes], *, then_wait: bool,
                path: str = "/v1/alerts/AL000001/acknowledge") -> list[dict[str, Any]]:
    """The guard's answer to a client sending ``chunks`` (and then nothing more, if
    ``then_wait``)."""
    queue = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if queue:
            body = queue.pop(0)
            return {"type": "http.request", "body": body,
                    "more_body": bool(queue) or then_wait}
        await asyncio.Event().wait()  # a client that sends nothing more
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    await guard(scope(sum(map(len, chunks)) + (100 if then_wait else 0), path), receive, send)
    return sent


async def test_a_body_that_stops_coming_is_a_408_and_the_route_never_runs() -> None:
    inner = Inner()
    guard = BodyGuard(inner, max_bytes=1024, body_timeout=0.2)
    sent = await serve(guard, [b'{"note": "on my w'], then_wait=True)
    start, body = sent
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
    assert json.loads(body["body"]) == {
        "detail": "the request body did not arrive within 0.2 s (17 bytes came)"}
    assert inner.bodies == []


async def test_a_body_that_comes_in_time_reaches_the_route_whole() -> None:
    inner = Inner()
    guard = BodyGuard(inner, body_timeout=5)
    sent = await serve(guard, [b'{"note": ', b'"on my way"}'], then_wait=False)
    assert sent[0]["status"] == 200
    assert inner.bodies == [b'{"note": "on my way"}']


def test_a_route_taking_photos_gets_time_for_its_limit_at_the_slowest_rate() -> None:
    guard = BodyGuard(Inner(), max_bytes=64 * 1024, larger=("/v1/reports$", 14 * 2**20))
    assert guard.deadline(scope(10)) == 30
    assert guard.deadline(scope(10, "/v1/reports")) == 14 * 2**20 / MIN_BODY_RATE


async def test_a_connection_that_never_finishes_its_headers_is_closed() -> None:
    """On a real uvicorn (the hub's ApiServer): a connection that sends nothing, or half a
    request line, was held for as long as the client kept it open; a whole request is
    answered, and the connection kept alive for the next."""
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    async with ApiServer(app, "127.0.0.1", 0, header_timeout=0.3) as server:
        assert await wait_until(lambda: server.started)
        async def closed_by_the_server(first: bytes) -> bool:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(first)
            try:
                return await asyncio.wait_for(reader.read(), timeout=10) == b""
            finally:
                writer.close()

        assert await closed_by_the_server(b"")
        assert await closed_by_the_server(b"GET /pi")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            for _ in range(2):  # keep-alive: the second request on the same connection
                writer.write(b"GET /ping HTTP/1.1\r\nHost: hub\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
                assert head.startswith(b"HTTP/1.1 200 ")
                assert await reader.readexactly(11) == b'{"ok":true}'
        finally:
            writer.close()
