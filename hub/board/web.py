"""The built-in board: a web page served by the hub's API at ``/board`` for the embedded
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
import contextlib
import importlib.resources
import logging
from collections.abc import AsyncIterable, Iterator

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import Field

from gridcall.config import ConfigSet, Unit
from gridcall.hub.api.app import ERRORS, AlertOut, Caller, Me, Out, TransitionOut
from gridcall.hub.board.view import (
    board_actions,
    board_areas,
    board_sensors,
    by_deadline,
    grid_risk,
    inside,
    sensor_risk,
)
from gridcall.hub.desk.desk import Change, Desk
from gridcall.hub.desk.lifecycle import Action, AlertState
from gridcall.wire import UnitLevel
from gridcall.wire.clock import Clock
from gridcall.wire.ladder import RISK

log = logging.getLogger(__name__)


TICK_S = 5.0
"""Seconds between ``tick`` events (the desk's clock for the page's countdowns; also how
soon a page notices a stream that silently died)."""
QUEUE_LIMIT = 1000
"""Changes held per open stream; a client that falls further behind gets ``resync``."""

ASSETS = {"board.js": "text/javascript; charset=utf-8",
          "board.css": "text/css; charset=utf-8"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
"""Only this origin: the page works with no Internet, and an injected script or a
CDN link would simply not load."""


# --------------------------------------------------------------------------- models


class AreaOut(Out):
    id: str
    name: str
    level: UnitLevel
    parent: str | None
    polygon: list[list[list[float]]] | None = Field(
        description="GeoJSON polygon rings of [lon, lat]; null when the config gives a point.")
    point: list[float] | None
    centre: list[float] = Field(description="[lon, lat] of the ring's mean point.")


class SensorOut(Out):
    id: str
    name: str
    kind: str
    grid: str
    lon: float
    lat: float


class BoardMap(Out):
    """The caller's subtree on the map: itself and every unit below, top down."""

    unit: Me
    areas: list[AreaOut]
    sensors: list[SensorOut]


class Risk(Out):
    id: str = Field(description="Grid or sensor id.")
    risk: int = Field(description="Highest open tier: 1 D, 2 C, 3 B, 4 A (absent: 0).")
    open: int = Field(description="Open alerts counted.")


class BoardAlert(AlertOut):
    actions: list[Action] = Field(description="What the lifecycle allows on it now.")
    unit_name: str
    grid_name: str
    community_name: str


class Escalation(Out):
    alert_id: str
    at: int
    actor: str = Field(description='Who called upward, or "hub" for a deadline or tier '
                       'rule.')
    tier: str
    unit: str
    unit_name: str
    reason: str


class BoardState(Out):
    unit: str
    now: int = Field(description="The desk's clock (ns): countdowns count from it.")
    grids: list[Risk]
    sensors: list[Risk]
    alerts: list[BoardAlert] = Field(description="Open alerts, next deadline first.")
    escalations: list[Escalation] = Field(description="Escalations of the open alerts, "
                                          "latest first.")


class BoardChange(Out):
    """One ledger step in the subtree, as the ``change`` event's data."""

    now: int
    alert: BoardAlert
    step: TransitionOut


# --------------------------------------------------------------------------- the feed


class _Stream:
    def __init__(self, root: tuple[str, ...]) -> None:
        self.root = root
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(QUEUE_LIMIT)
        self.lost = False


class ChangeFeed:
    """Fans the desk's changes out to the open event streams (a desk hook: putting on a
    queue never waits, so a slow browser cannot hold up the desk)."""

    def __init__(self) -> None:
        self._streams: set[_Stream] = set()
        self.closed = False
        self.version = 0
        """Changes seen: the desk's alerts change only through its hooks, so a state
        computed at this version stays right until the next change."""

    @property
    def streams(self) -> int:
        return len(self._streams)

    async def hook(self, change: Change) -> None:
        self.version += 1
        for stream in list(self._streams):
            if not inside(change.alert.place, stream.root):
                continue
            try:
                stream.queue.put_nowait(change)
            except asyncio.QueueFull:
                stream.lost = True  # the page is told to fetch the whole state again

    @contextlib.contextmanager
    def subscribe(self, root: tuple[str, ...]) -> Iterator[_Stream]:
        stream = _Stream(root)
        if self.closed:
            stream.queue.put_nowait(None)
        self._streams.add(stream)
        try:
            yield stream
        finally:
            self._streams.discard(stream)

    def close(self) -> None:
        """End every stream (the server is stopping: an open stream would keep it up)."""
        self.closed = True
        for stream in self._streams:
            while stream.queue.full():
                stream.queue.get_nowait()
                stream.lost = True
            stream.queue.put_nowait(None)


# --------------------------------------------------------------------------- the routes


def _asset(name: str) -> bytes:
    return importlib.resources.files("gridcall.hub.board").joinpath(name).read_bytes()


def add_board(app: FastAPI, desk: Desk, cfg: ConfigSet, clock: Clock, *,
              tick_s: float = TICK_S) -> ChangeFeed:
    """Serve the board on ``app`` over ``desk``; the feed is a hook on the desk and is
    closed by :class:`gridcall.hub.api.server.ApiServer` before it stops."""
    feed = ChangeFeed()
    desk.add_hook(feed.hook)
    app.state.closing = [*getattr(app.state, "closing", []), feed.close]
    app.state.board_feed = feed

    def name(unit_id: str) -> str:
        unit = cfg.units.get(unit_id)
        return unit.name if unit else unit_id

    def board_alert(state: AlertState) -> BoardAlert:
        out = AlertOut.of(state)
        return BoardAlert.model_validate({
            **out.model_dump(), "actions": board_actions(state),
            "unit_name": name(state.unit), "grid_name": name(state.place[-1]),
            "community_name": name(state.place[-2])})

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
                sensors=[SensorOut.model_validate(s) for s in board_sensors(cfg, unit)])
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
            alerts=[board_alert(s) for s in open_states],
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
                    now=clock(), alert=board_alert(change.alert),
                    step=TransitionOut.of(change.transition)))

    return feed


__all__ = ["RISK", "BoardAlert", "BoardMap", "BoardState", "ChangeFeed", "add_board"]
