"""A request body that does not come (issue 16's attacker, "slow bodies"): the API's body
guard (hub/api/guard.py) answers 408 and closes once the body is late, instead of holding
the connection, a socket and a task for as long as the client trickles. Driven as uvicorn
drives it, through the ASGI interface; the deadline is shortened for the test."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gridcall.hub.api.guard import MIN_BODY_RATE, BodyGuard


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
