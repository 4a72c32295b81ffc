"""The built-in board's routes: a web page served by the hub's API at ``/board`` for the embedded
default with no Grafana (docs/api.md, "The built-in board").

The page (``hub/board/``: plain HTML, JS and CSS, no build step, nothing from a CDN and
no map tiles: the Content-Security-Policy allows this origin only) asks once for a unit's
bearer token, keeps it in ``sessionStorage`` and then uses the same unit-scoped API as
any app:

- ``GET /v1/board/map``: the unit's subtree as GeoJSON polygons (towns, communities,
  grids) and sensor points, drawn as SVG by the browser;
- ``GET /v1/board/state``: the risk of each grid and sensor (highest open tier), the open
  alerts by next deadline with the actions the lifecycle allows now, and their
  escalations;
- ``GET /v1/board/events``: Server-Sent Events, one ``change`` per ledger step in the
  subtree (a desk hook), a ``tick`` with the desk's clock every few seconds;
- the existing ``POST /v1/alerts/{id}/acknowledge`` etc. for the buttons, and
  ``GET /v1/agents`` (the hub's roster) for the edge agents and unhealthy sensors.

**Why fetch() streaming for the events and not EventSource**: EventSource cannot send an
``Authorization`` header, so it would need the token (or a second, short-lived one) in
the URL, where it ends up in access logs, proxy logs and the browser's history. fetch()
with a ``ReadableStream`` sends the header like every other call, needs no second token
mechanism, and the page does its own reconnecting (a few lines). The stream is plain
``text/event-stream`` (FastAPI's EventSourceResponse), so ``curl -N -H 'Authorization:
Bearer …'`` reads it too.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
from collections.abc import AsyncIterable

from fastapi import APIRouter
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from gridcall.config import ConfigSet, Unit
from gridcall.hub.api.auth import Caller
from gridcall.hub.api.models import (
    ERRORS,
    AlertOut,
    AreaOut,
    BoardAlert,
    BoardChange,
    BoardMap,
    BoardState,
    Escalation,
    Me,
    Risk,
    SensorOut,
    TransitionOut,
)
from gridcall.hub.board.changes import ChangeFeed
from gridcall.hub.board.view import (
    board_actions,
    board_agents,
    board_areas,
    board_matters,
    board_names,
    board_sensors,
    by_deadline,
    grid_risk,
    sensor_risk,
)
from gridcall.hub.desk.audits import approver_needed, approver_of
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.lifecycle import AlertState
from gridcall.wire.clock import Clock

log = logging.getLogger(__name__)


TICK_S = 5.0
"""Seconds between ``tick`` events (the desk's clock for the page's countdowns; also how
soon a page notices a stream that silently died)."""

ASSETS = {"board.js": "text/javascript; charset=utf-8",
          "report.js": "text/javascript; charset=utf-8",
          "audits.js": "text/javascript; charset=utf-8",
          "board.css": "text/css; charset=utf-8"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
"""Only this origin: the page works with no Internet, and an injected script or a
CDN link would simply not load."""


def _asset(name: str) -> bytes:
    return importlib.resources.files("gridcall.hub.board").joinpath(name).read_bytes()


def router(desk: Desk, cfg: ConfigSet, clock: Clock, feed: ChangeFeed, *,
           tick_s: float = TICK_S) -> APIRouter:
    """The board's page, assets and ``/v1/board/*`` over ``desk``; ``feed`` must be a
    hook on the desk (the app makes it and closes it before the server stops)."""
    app = APIRouter()

    def name(unit_id: str) -> str:
        unit = cfg.units.get(unit_id)
        return unit.name if unit else unit_id

    def board_alert(state: AlertState, caller: Unit) -> BoardAlert:
        out = AlertOut.of(state, desk.incident_id(state.alert_id))
        plan = state.alert.plan
        rules = cfg.matters.closure
        approver = approver_of(rules, state) if state.pending else ""
        return BoardAlert.model_validate({
            **out.model_dump(), "actions": board_actions(state),
            # the plan itself is read with the alert (GET /v1/alerts/{id}) when opened:
            # the state carries every open alert, and a plan is a screenful
            "plan": None, "plan_steps": None if plan is None else len(plan.steps),
            "unit_name": name(state.unit), "grid_name": name(state.place[-1]),
            "community_name": name(state.place[-2]),
            "approver": approver, "approver_name": name(approver) if approver else "",
            "may_approve": bool(approver) and approver_needed(rules, state, caller) is None})

    no_cache = {"Cache-Control": "no-cache"}

    @app.get("/board", include_in_schema=False)
    def page() -> Response:
        return Response(_asset("index.html"), media_type="text/html; charset=utf-8",
                        headers={**no_cache, "Content-Security-Policy": CSP,
                                 "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "no-referrer"})

    def serve_asset(file: str) -> None:
        def asset() -> Response:
            return Response(_asset(file), media_type=ASSETS[file],
                            headers={**no_cache, "X-Content-Type-Options": "nosniff"})
        app.get(f"/board/{file}", include_in_schema=False, name=f"board-{file}")(asset)

    for file in ASSETS:
        serve_asset(file)

    maps: dict[str, Response] = {}
    """The map of each unit, as sent, built once: the config does not change while the
    app runs (a page fetches it at every load)."""

    @app.get("/v1/board/map", response_model=BoardMap, responses=ERRORS, tags=["board"])
    async def board_map(unit: Caller) -> Response:
        """The caller's subtree for the board's map: the GeoJSON polygons of the config's
        topology (the unit itself and every unit below it) and the sensors' points."""
        if unit.id not in maps:
            body = BoardMap(
                unit=Me(unit=unit.id, name=unit.name, level=unit.level, path=list(unit.path)),
                areas=[AreaOut.model_validate(a) for a in board_areas(cfg, unit)],
                sensors=[SensorOut.model_validate(s) for s in board_sensors(cfg, unit)],
                names=board_names(cfg, unit), matters=board_matters(cfg),
                agents=board_agents(cfg, unit))
            maps[unit.id] = Response(body.model_dump_json(), media_type="application/json")
        return maps[unit.id]

    @app.get("/v1/board/state", response_model=BoardState, responses=ERRORS,
             tags=["board"])
    async def board_state(unit: Caller) -> BoardState:
        """What the board shows now for the caller's subtree: the risk of each grid and
        sensor with an open alert, the open alerts (next deadline first) with the actions
        allowed on them, and the escalations those alerts went through."""
        return await state_of(unit)

    states: dict[str, tuple[int, BoardState]] = {}
    """The last state computed per unit and the feed's version then: every board of a
    unit refetches the state after each change it hears, so with several boards open
    it is computed once per change, not once per board (bench/board_web.py)."""

    async def state_of(unit: Unit) -> BoardState:
        version = feed.version
        cached = states.get(unit.id)
        if cached is not None and cached[0] == version:
            return cached[1].model_copy(update={"now": clock()})
        state = await compute_state(unit)
        if feed.version == version:  # nothing changed while the ledger was read
            states[unit.id] = (version, state)
        return state

    async def compute_state(unit: Unit) -> BoardState:
        now = clock()
        open_states = by_deadline(desk.alerts(unit=unit.id, open_only=True))
        escalations = [t for t in await desk.transitions_of(open_states)
                       if t.action == "escalate"]
        escalations.sort(key=lambda t: t.at, reverse=True)
        return BoardState(
            unit=unit.id, now=now,
            grids=[Risk(id=k, risk=r, open=n) for k, (r, n) in
                   sorted(grid_risk(open_states).items())],
            sensors=[Risk(id=k, risk=r, open=n) for k, (r, n) in
                     sorted(sensor_risk(open_states, {s.alert_id: desk.sensors_of(s.alert_id)
                                                    for s in open_states}).items())],
            alerts=[board_alert(s, unit) for s in open_states],
            escalations=[Escalation(alert_id=t.alert_id, at=t.at, actor=t.actor, tier=t.tier,
                                    unit=t.unit, unit_name=name(t.unit),
                                    reason=t.reason or t.note)
                         for t in escalations])

    @app.get("/v1/board/events", response_class=EventSourceResponse, tags=["board"],
             responses={**ERRORS, 200: {"description": (
                 "`text/event-stream`: `hello` {unit, now} first, then `change` "
                 "(a BoardChange) for every ledger step in the subtree, `tick` {now} every "
                 f"{TICK_S:g} s, `resync` {{now}} when changes were dropped for a slow "
                 "reader (fetch the state again)")}})
    async def board_events(unit: Caller) -> AsyncIterable[ServerSentEvent]:
        """Live updates for the caller's subtree as Server-Sent Events. Send the bearer
        token in the `Authorization` header (fetch() streaming; EventSource cannot send
        it). The stream ends when the hub stops; reconnect and fetch the state again."""
        with feed.subscribe(unit.path) as stream:
            yield ServerSentEvent(event="hello", data={"unit": unit.id, "now": clock()},
                                  retry=2000)
            while True:
                try:
                    async with asyncio.timeout(tick_s):
                        change = await stream.queue.get()
                except TimeoutError:
                    yield ServerSentEvent(event="tick", data={"now": clock()})
                    continue
                if change is None:
                    return
                if stream.lost:
                    stream.lost = False
                    yield ServerSentEvent(event="resync", data={"now": clock()})
                yield ServerSentEvent(event="change", data=BoardChange(
                    now=clock(), alert=board_alert(change.alert, unit),
                    step=TransitionOut.of(change.transition)))

    return app
