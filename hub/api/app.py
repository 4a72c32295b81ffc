"""The hub's HTTP API for units and their apps (FastAPI): alerts, actions, indicators,
edge agents and the built-in board. This module assembles the app from one router per
concern (:mod:`~gridcall.hub.api.alerts`, :mod:`~gridcall.hub.api.indicators`,
:mod:`~gridcall.hub.api.board`, :mod:`~gridcall.hub.api.agents`,
:mod:`~gridcall.hub.api.silences`, :mod:`~gridcall.hub.api.handover`,
:mod:`~gridcall.hub.api.incidents`, :mod:`~gridcall.hub.api.plans`) over the models of
:mod:`~gridcall.hub.api.models`.

Every request carries a unit's bearer token (:mod:`gridcall.hub.api.tokens`, checked by
:mod:`gridcall.hub.api.auth`); the unit may see and act on alerts in its own subtree
only: a grid on its grid's alerts, a community on its grids',
a town on its communities' and grids', the district on all. The sensor's place decides
(``AlertState.place``), not the unit currently responsible, so a grid still sees the alert
it called upward.

Misuse gets a 4xx with a reason in ``detail`` (one body, ``Problem``, for every status:
:mod:`~gridcall.hub.api.guard`) and writes nothing:

====  ==========================================================================
400   the body could not be read
401   no token, or a token the tokens file does not know
403   the alert or unit is outside the caller's area ("outside your area", nothing
      more); a grid dispatching
404   no such alert
409   the lifecycle refuses the action now (IllegalTransition's message), or the same
      call upward again
413   the body is larger than ``max_body_bytes`` (64 KiB unless configured)
422   a malformed body or parameter, text that is not valid UTF-8 or has a lone
      surrogate, an unknown department, a call upward with no reason
====  ==========================================================================

Repeating an action is safe: a dispatch that adds no department answers 200 with the
alert as it stands and writes no step; a second identical call upward is a 409.

(Deadlines that passed before a refused action still fire, as they would at the desk's
next tick; the refused action itself writes nothing.)

Times are integers, nanoseconds since the Unix epoch, as everywhere in gridcall's wire
contract. The OpenAPI document is published as docs/openapi.json
(``python scripts/make_openapi.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import Depends, FastAPI

from gridcall.config import ConfigSet
from gridcall.hub.api import (
    agents,
    alerts,
    audits,
    board,
    departments,
    external,
    guard,
    handover,
    incidents,
    indicators,
    plans,
    reports,
    silences,
)
from gridcall.hub.api.guard import DEFAULT_MAX_BODY_BYTES, BodyGuard
from gridcall.hub.api.models import API_VERSION, COMMON_ERRORS, ApiError
from gridcall.hub.api.standby import ReadOnlyGuard
from gridcall.hub.api.tokens import TokenFile
from gridcall.hub.board.changes import ChangeFeed
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.photos import PhotoStore
from gridcall.hub.desk.roster import Roster
from gridcall.wire.clock import Clock


def create_app(desk: Desk, tokens: TokenFile, *, clock: Clock,
               config: ConfigSet | None = None, roster: Roster | None = None,
               agent_clock: Clock | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               photo_dir: Path | str | None = None,
               standby: Callable[[], str] | None = None) -> FastAPI:
    """The API over ``desk``; ``clock`` gives the desk's time (ns) for each action;
    ``roster``: the hub's agent roster for ``GET /v1/agents`` (503 without one), judged
    on ``agent_clock``, the agents' time base (default ``clock``); a request body over
    ``max_body_bytes`` is refused (413), but for the routes that take photos (up to
    ``hub.reports``' limit); photos are kept in the desk store, and read from
    ``photo_dir`` (default ``hub.reports.photo_dir``), where earlier versions kept them,
    when the store lacks one (:mod:`gridcall.hub.desk.photos`). ``standby``: this is a
    standby hub's API (:mod:`gridcall.hub.standby`), read only; it says who holds the
    desk, for the 503 that every other call gets (:mod:`gridcall.hub.api.standby`)."""
    cfg = config or desk.config
    app = FastAPI(
        title="gridcall hub API", version=API_VERSION,
        description="Alerts for the unit that must act, and its answers: list and read "
                    "alerts in your subtree, acknowledge, arrive, resolve, mark a false "
                    "alarm, call upward, dispatch departments; indicators. Every request "
                    "needs `Authorization: Bearer <token>` (`gridcall hub token issue "
                    "UNIT`). Times are ns since the Unix epoch.",
        responses=COMMON_ERRORS,
        dependencies=[Depends(guard.refuse_unknown_query)],
    )
    app.state.tokens = tokens
    app.state.config = cfg
    guard.install(app)
    app.add_middleware(BodyGuard, max_bytes=max_body_bytes,
                       larger=(reports.photo_routes(cfg.hub.reports),
                               cfg.hub.reports.max_body_bytes()))
    if standby is not None:  # outermost: refused before a body is read
        app.add_middleware(ReadOnlyGuard, client_id=cfg.hub.client_id, holder=standby,
                           tokens=tokens)

    feed = ChangeFeed()
    desk.add_hook(feed.hook)
    app.state.closing = [feed.close]
    """Closed by :class:`gridcall.hub.api.server.ApiServer` before it stops: an open event
    stream would keep the server up."""
    app.state.board_feed = feed

    app.include_router(alerts.router(desk, cfg, clock))
    app.include_router(indicators.router(desk, cfg, clock))
    app.include_router(audits.router(desk, cfg, clock))
    app.include_router(board.router(desk, cfg, clock, feed))
    app.include_router(agents.router(cfg, agent_clock or clock, roster))
    app.include_router(silences.router(desk, cfg, clock))
    app.include_router(handover.router(desk, cfg, clock))
    app.include_router(incidents.router(desk, cfg))
    app.include_router(departments.router(desk, cfg, clock))
    app.include_router(external.router(desk, cfg, clock))
    app.include_router(reports.router(  # photos in the desk store: a standby serves them too
        desk, cfg, clock, PhotoStore(desk.ledger.store,
                                     legacy=photo_dir or cfg.hub.reports.photo_dir)))
    app.include_router(plans.router(desk, cfg, clock))
    return app


__all__ = ["API_VERSION", "ApiError", "create_app"]
