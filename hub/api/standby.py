"""A standby hub's API is read only (docs/operations.md, "Active and standby"): every
request that would change something (any method but GET, HEAD and OPTIONS) is answered
``503 Service Unavailable`` with a ``Retry-After`` and a :class:`~gridcall.hub.api.models.Problem`,
before the body is read or the route runs: the standby cannot write the ledger, and a
client should send the change to the active hub, or again here after a takeover. The
detail names the hub that holds the desk (its host, pid and API address) only to a
caller with a token this API knows; others are told only that this is a standby."""

from __future__ import annotations

from collections.abc import Callable

from gridcall.hub.api.guard import Asgi, Receive, Scope, Send, problem
from gridcall.hub.api.tokens import TokenFile

READS = frozenset({"GET", "HEAD", "OPTIONS"})

RETRY_AFTER_S = 5
"""What the 503 asks a client to wait: about a takeover's time (bench/failover.py)."""


def refusal(client_id: str, holder: str | None) -> str:
    """The 503's detail: what this hub is and (``holder``) which one holds the desk."""
    if holder is None:
        return ("this hub is a standby and serves reads only: send changes to the active "
                "hub, or here again after a takeover")
    return (f"this hub is a standby of desk {client_id!r} and serves reads only; the desk "
            f"is held by {holder}: send changes to that hub, or here again after a "
            "takeover")


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if kind.lower() == "bearer" and token.strip() else None
    return None


class ReadOnlyGuard:
    """ASGI middleware: reads pass, every other method is a 503, naming ``holder()`` to
    a caller whose token ``tokens`` knows."""

    def __init__(self, app: Asgi, *, client_id: str, holder: Callable[[], str],
                 tokens: TokenFile, retry_after: int = RETRY_AFTER_S) -> None:
        self.app = app
        self.client_id = client_id
        self.holder = holder
        self.tokens = tokens
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in READS:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        known = token is not None and self.tokens.entry_of(token) is not None
        await problem(503, refusal(self.client_id, self.holder() if known else None),
                      {"Retry-After": str(self.retry_after)})(scope, receive, send)


__all__ = ["READS", "RETRY_AFTER_S", "ReadOnlyGuard", "refusal"]
