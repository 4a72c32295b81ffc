"""A standby hub: while another ``gridcall hub run`` holds the desk on the same PostgreSQL
(:mod:`gridcall.hub.lease`), this one serves the read-only API from the shared store.

:func:`serve_standby` rebuilds a desk from the store as a start-up does (the latest
snapshot and the ledger's tail), but writes nothing: no snapshot, no timer fires, no
broker is touched. Every ``follow_every`` seconds it folds the rows the active hub wrote
since (:meth:`gridcall.hub.desk.desk.Desk.follow`), so its alerts, incidents, indicators
and board data lag the active hub's by at most about that. The API over it
(:func:`gridcall.hub.api.app.create_app` with ``standby``) answers reads as the active
hub's would, and every change with a 503 naming the hub that holds the desk
(:mod:`gridcall.hub.api.standby`). ``GET /v1/agents`` is a 503 too: the roster lives in
the active hub's MQTT session.

When the lock comes to this hub, the CLI leaves :func:`serve_standby` (the API stops;
an open board stream ends) and starts the hub in full, whose API then listens on the
same address: for the takeover's time (bench/failover.py) the address refuses
connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from gridcall.config import ConfigSet
from gridcall.hub.api.app import create_app
from gridcall.hub.api.server import ApiServer
from gridcall.hub.api.tokens import TokenFile
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.store import DeskStore
from gridcall.wire.clock import Clock, wall_clock

log = logging.getLogger(__name__)

FOLLOW_EVERY = 1.0
"""Seconds between two folds of what the active hub wrote."""


@dataclass
class Standby:
    desk: Desk
    server: ApiServer
    follows: int = 0
    """Folds done (each one a look at the ledger's new rows)."""
    failures: int = 0
    """Folds that failed (the store unreachable): tried again at the next."""


async def _follow(standby: Standby, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await standby.desk.follow()
            standby.follows += 1
        except Exception as exc:  # the store away: the API serves what it has
            standby.failures += 1
            log.warning("standby: could not read the desk's new steps (%s); again in %.0fs",
                        exc, every)


@contextlib.asynccontextmanager
async def serve_standby(config: ConfigSet, store: DeskStore, address: tuple[str, int],
                        tokens: TokenFile, *, holder: Callable[[], str],
                        clock: Clock = wall_clock, follow_every: float = FOLLOW_EVERY
                        ) -> AsyncIterator[Standby]:
    """The read-only API on ``address`` over the desk in ``store`` (entered), until the
    block ends; ``holder()`` names the hub holding the desk, for the 503s."""
    desk = Desk(config, Ledger(store))
    desk.snapshot_every = 0  # the active hub writes the snapshots
    desk.writes = False  # and the closed alerts' rows
    await desk.start()
    settings = config.hub.api
    app = create_app(desk, tokens, clock=clock, config=config,
                     max_body_bytes=settings.max_body_bytes, standby=holder)
    tls = (settings.tls.certfile, settings.tls.keyfile) if settings.tls is not None else None
    async with ApiServer(app, *address, tls=tls) as server:
        standby = Standby(desk, server)
        task = asyncio.create_task(_follow(standby, follow_every), name="standby-follow")
        try:
            yield standby
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = ["FOLLOW_EVERY", "Standby", "serve_standby"]
