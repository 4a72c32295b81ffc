"""The hub's composition: what runs beside the hub's own loop, wired in one place.

:class:`gridcall.hub.service.Hub` is the desk in service with its ingest and its board
writers; :func:`services` adds the notifier (``notify.yaml``, a desk hook, with the
steps a crash left un-notified sent again first) and the HTTP API with its built-in
board (:func:`serve_api`). The CLI (``gridcall hub run``) and the demo call these; no one
else wires the wings together.

May import every wing; nothing in the hub imports it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from gridcall.hub.api.app import create_app
from gridcall.hub.api.server import ApiServer
from gridcall.hub.api.tokens import TokenFile
from gridcall.hub.desk.photos import PhotoStore
from gridcall.hub.metrics import exposition, hub_registry
from gridcall.hub.notify.incident import incident_hook
from gridcall.hub.notify.notifier import (
    NOTIFIED_ACTIONS,
    Notifier,
    arrival_reminder_hook,
    desk_hook,
    reminder_hook,
)
from gridcall.hub.notify.outbox import NotifyOutbox, changes_to_replay
from gridcall.hub.service import Hub

Say = Callable[[str], None]

SUGGESTED_API = "127.0.0.1:8470"
"""``hub run`` serves the API only when asked (``--api HOST:PORT``): a listening socket is
the operator's decision (which interface, behind which TLS proxy), and two hubs or test
runs on one machine must not fight over a default port."""


def add_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    """``GET /metrics`` on ``app``: the registry in Prometheus' text format, without a
    token (a scraper has none; it tells counts, never readings or alert contents) and
    out of the OpenAPI spec (it is not part of the API)."""
    async def metrics(request: Request) -> Response:
        return Response(exposition(registry), media_type=CONTENT_TYPE_LATEST)
    app.add_route("/metrics", metrics, methods=["GET"], include_in_schema=False)


@contextlib.asynccontextmanager
async def serve_api(hub: Hub, address: tuple[str, int], tokens: TokenFile,
                    metrics: CollectorRegistry | None = None) -> AsyncIterator[ApiServer]:
    """The HTTP API and the built-in board over the hub's desk, roster and clock (and
    ``/metrics`` if given a registry), served in this loop until the block ends."""
    settings = hub.config.hub.api
    app = create_app(hub.desk, tokens, clock=hub.clock, roster=hub.roster,
                     agent_clock=hub.agent_clock, max_body_bytes=settings.max_body_bytes)
    if metrics is not None:
        add_metrics(app, metrics)
    tls = (settings.tls.certfile, settings.tls.keyfile) if settings.tls is not None else None
    async with ApiServer(app, *address, tls=tls) as server:
        yield server


@contextlib.asynccontextmanager
async def serve_metrics(registry: CollectorRegistry, address: tuple[str, int]
                        ) -> AsyncIterator[ApiServer]:
    """``/metrics`` alone on ``address``, for a hub that serves no API."""
    app = FastAPI(title="gridcall hub metrics", openapi_url=None, docs_url=None,
                  redoc_url=None)
    add_metrics(app, registry)
    async with ApiServer(app, *address) as server:
        yield server


@contextlib.asynccontextmanager
async def notifier(hub: Hub, say: Say) -> AsyncIterator[Notifier]:
    """The notifier as a desk hook. Steps a crash (or a stop mid-retry) left un-notified
    are sent again first; a summary is said at the end, after the drain."""
    # Deliveries under way get at most 2 s at shutdown: the readings' drain comes first
    # within the supervisor's stop timeout; what is left is counted as unsent.
    notify = Notifier(hub.config.notify, drain_timeout=min(2.0, hub.drain_timeout),
                      duty=hub.config.duty)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(_notify_summary, notify, say)  # runs last: after the drain
        await stack.enter_async_context(notify)
        outbox = NotifyOutbox(hub.store)
        await outbox.setup()
        await hub.start_desk()
        hook = desk_hook(notify, outbox, hub.clock)
        late = await changes_to_replay(hub.desk, await outbox.pending(NOTIFIED_ACTIONS))
        if late:
            say(f"notifying {len(late)} step(s) again that the last run did not finish "
                "notifying")
        for change in late:
            await hook(change)
        hub.desk.add_hook(hook)
        hub.desk.add_reminder_hook(reminder_hook(notify))
        hub.desk.arrival_reminders.add_hook(arrival_reminder_hook(notify))
        async def units_now(alert_ids: list[str]) -> dict[str, str]:
            return {a: s.unit for a, s in (await hub.desk.states_of(alert_ids)).items()}
        hub.desk.add_batch_hook(incident_hook(notify, lambda a: hub.desk.get(a).unit,
                                              outbox, hub.clock, prefetch=units_now))
        yield notify


@contextlib.asynccontextmanager
async def services(hub: Hub, *, api: tuple[str, int] | None, tokens: Path,
                   say: Say, metrics: tuple[str, int] | None = None
                   ) -> AsyncIterator[ApiServer | None]:
    """What runs beside the hub's loop (:meth:`Hub.run`): the notifier and, if ``api`` is
    an address, the HTTP API with the board (tokens in ``tokens``) and ``/metrics``;
    without the API, ``/metrics`` alone on ``metrics`` if given. Yields the API server
    (None when off)."""
    async with contextlib.AsyncExitStack() as stack:
        notify = await stack.enter_async_context(notifier(hub, say))
        await import_photos(hub, say)
        registry = hub_registry(hub, notify)
        server = None
        if api is None and metrics is not None:
            alone = await stack.enter_async_context(serve_metrics(registry, metrics))
            say(f"metrics {alone.url}/metrics")
        if api is not None:
            token_file = TokenFile(tokens)
            server = await stack.enter_async_context(serve_api(hub, api, token_file,
                                                               registry))
            say(f"API {server.url} (docs {server.url}/docs; tokens in {tokens}); "
                f"board {server.url}/board; metrics {server.url}/metrics")
            if token_file.error:
                say(f"API tokens file unusable: {token_file.error}")
            elif not len(token_file):
                say(f"no API tokens in {tokens} yet: every request gets 401 until one is "
                    "issued (gridcall hub token issue UNIT; no restart needed)")
        else:
            say(f"API off (--api {SUGGESTED_API} to serve it)")
        yield server


async def import_photos(hub: Hub, say: Say) -> None:
    """Photos an earlier version kept on this hub's disk (``hub.reports.photo_dir``) into
    the desk store, where both hubs of a pair serve them (:mod:`gridcall.hub.desk.photos`);
    each once, so a later start writes none again. The files stay for the operator."""
    folder = hub.config.hub.reports.photo_dir
    written, skipped = await PhotoStore(hub.desk.ledger.store, legacy=folder).import_folder()
    if written:
        say(f"{written} photo(s) imported from {folder} into the desk store (the files "
            "may be removed)")
    for why in skipped:
        say(f"a file in {folder} is not imported: {why}")


def _notify_summary(notify: Notifier, say: Say) -> None:
    c = notify.counters
    if c.queued:
        say(f"notifications: {c.sent} sent, {c.given_up} given up, "
            f"{c.unsent_at_shutdown} unsent at stop ({c.failed_attempts} failed attempts)")


__all__ = ["SUGGESTED_API", "add_metrics", "notifier", "serve_api", "serve_metrics", "services"]
