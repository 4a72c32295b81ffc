"""A standby hub's API is read only (docs/operations.md, "Active and standby"): every
request that would change something (any method but GET, HEAD and OPTIONS) is answered
``503 Service Unavailable`` with a ``Retry-After`` and a :class:`~gridcall.hub.api.models.Problem`
naming the hub that holds the desk, before anything else reads it (no token is checked,
no body read): the standby cannot write the ledger, and a client should send the change
to the active hub, or again here after a takeover."""

from __future__ import annotations

from collections.abc import Callable

from gridcall.hub.api.guard import Asgi, Receive, Scope, Send, problem

READS = frozenset({"GET", "HEAD", "OPTIONS"})

RETRY_AFTER_S = 5
"""What the 503 asks a client to wait: about a takeover's time (bench/failover.py)."""


def refusal(client_id: str, holder: str) -> str:
    """The 503's detail: what this hub is and which one holds the desk."""
    return (f"this hub is a standby of desk {client_id!r} and serves reads only; the desk "
            f"is held by {holder}: send changes to that hub, or here again after a "
            "takeover")


class ReadOnlyGuard:
    """ASGI middleware: reads pass, every other method is a 503 naming ``holder()``."""

    def __init__(self, app: Asgi, *, client_id: str, holder: Callable[[], str],
                 retry_after: int = RETRY_AFTER_S) -> None:
        self.app = app
        self.client_id = client_id
        self.holder = holder
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in READS:
            await self.app(scope, receive, send)
            return
        await problem(503, refusal(self.client_id, self.holder()),
                      {"Retry-After": str(self.retry_after)})(scope, receive, send)


__all__ = ["READS", "RETRY_AFTER_S", "ReadOnlyGuard", "refusal"]
