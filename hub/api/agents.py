"""The agent route: the edge agents with a sensor in the caller's subtree, as the hub's
roster (:mod:`gridcall.hub.desk.roster`) sees them now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gridcall.config import ConfigSet
from gridcall.hub.api.auth import Caller, inside, subtree
from gridcall.hub.api.models import ERRORS, AgentList, AgentOut, ApiError, Problem, SensorHealthOut
from gridcall.hub.desk.roster import Roster
from gridcall.wire.clock import Clock


def router(cfg: ConfigSet, clock: Clock, roster: Roster | None) -> APIRouter:
    """``/v1/agents`` from ``roster`` (503 without one)."""
    app = APIRouter()

    @app.get("/v1/agents", response_model=AgentList, responses={
        **ERRORS, 503: {"model": Problem, "description": "The API runs without the "
                        "hub's agent roster."}}, tags=["agents"])
    def list_agents(
        unit: Caller,
        of: Annotated[str | None, Query(alias="unit", description="A unit in your subtree "
                                        "(default: yours).")] = None,
    ) -> AgentList:
        """The edge agents with a sensor in the unit's subtree, as the hub's roster sees
        them now (status topics: heartbeats and last wills), with those sensors' health.
        An agent silent or lost has an EDGE-OFFLINE alert listing its grids."""
        root = subtree(cfg, unit, of)
        if roster is None:
            raise ApiError(503, "this API runs without the hub's agent roster")
        now = clock()
        out: list[AgentOut] = []
        for spec in cfg.agents.values():
            mine = [s for s in spec.sensors if inside(s.path, root.path)]
            if not mine:
                continue
            view = roster.view(spec.id, now)
            out.append(AgentOut(
                agent=spec.id, name=spec.name, grid=spec.grid, town=view.town,
                state=view.state, online=view.online, heartbeat_s=view.heartbeat_s,
                last_seen_s=view.last_seen_s, outbox_depth=view.outbox_depth,
                outbox_age_s=view.outbox_age_s, dropped=view.dropped,
                unhealthy_sensors=sum(1 for s in mine if view.sensors[s.id] != "ok"),
                sensors=[SensorHealthOut(sensor=s.id, grid=s.grid, health=view.sensors[s.id])
                         for s in mine]))
        return AgentList(unit=root.id, count=len(out), agents=out)

    return app
