"""Who is calling, and what they may see: the bearer token of every request names a unit
(:mod:`gridcall.hub.api.tokens` holds the hashed tokens), and the unit sees and acts on
its own subtree only. The sensor's place decides (``AlertState.place``), not the unit
currently responsible, so a grid still sees the alert it called upward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gridcall.config import ConfigSet, Unit
from gridcall.config.models import Department
from gridcall.hub.api.models import OUTSIDE, ApiError
from gridcall.hub.api.tokens import TokenEntry, TokenFile
from gridcall.hub.desk.desk import Desk, NotFound, UnknownUnit
from gridcall.hub.desk.lifecycle import AlertState


def inside(path: tuple[str, ...], root: tuple[str, ...]) -> bool:
    """Whether ``path`` lies in the subtree whose root has the path ``root``."""
    return path[:len(root)] == root


_bearer = HTTPBearer(auto_error=False, description="A unit's token.")


def token_entry(request: Request, creds: HTTPAuthorizationCredentials | None, *,
                issue: str) -> TokenEntry:
    """The token file's entry of the request's bearer token: 401 if there is none (saying
    how to send one, and ``issue``, the command that issues the kind the route takes) or
    the token is unknown or revoked. Whose it may be is each route's own check."""
    tokens: TokenFile = request.app.state.tokens
    if creds is None:
        raise ApiError(401, "no bearer token: send 'Authorization: Bearer <token>' "
                            f"({issue})")
    entry = tokens.entry_of(creds.credentials)
    if entry is None:
        raise ApiError(401, "unknown or revoked token")
    return entry


def _caller(request: Request,
            creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Unit:
    """The unit whose token the request carries; 401 otherwise."""
    cfg: ConfigSet = request.app.state.config
    entry = token_entry(request, creds, issue="gridcall hub token issue UNIT")
    if entry.system:
        raise ApiError(401, f"the token belongs to the external system {entry.system!r}: "
                            "it may only post its events (POST /v1/events/external)")
    unit_id = entry.unit
    unit = cfg.units.get(unit_id)
    if unit is None and unit_id in cfg.departments:
        raise ApiError(401, f"the token belongs to the department {unit_id!r}: it opens the "
                            "department routes (/v1/department/...)")
    if unit is None:
        raise ApiError(401, f"the token belongs to unit {unit_id!r}, which the config no "
                            "longer has")
    return unit


Caller = Annotated[Unit, Depends(_caller)]
"""The calling unit, as a route parameter."""


def _person(request: Request, unit: Caller,
            creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The person the token was issued to (roster.yaml), "" for a unit's token."""
    tokens: TokenFile = request.app.state.tokens
    entry = tokens.entry_of(creds.credentials) if creds is not None else None
    return entry.person if entry is not None else ""


CallerPerson = Annotated[str, Depends(_person)]
"""The calling person ("" for a unit's token), as a route parameter; checks the token
as :data:`Caller` does."""
@dataclass(frozen=True, slots=True)
class DepartmentCaller:
    """A department's token: the department, and the person it was issued to ("" for
    the department's own token)."""

    department: Department
    person: str


def _department(request: Request,
                creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
                ) -> DepartmentCaller:
    """The department whose token the request carries; 401 otherwise (a unit's token
    included: the department routes are a department's)."""
    cfg: ConfigSet = request.app.state.config
    entry = token_entry(request, creds, issue="gridcall hub token issue DEPARTMENT")
    department = cfg.departments.get(entry.unit) if not entry.system else None
    if department is None:
        raise ApiError(401, "not a department's token: the department routes take one "
                            "(gridcall hub token issue DEPARTMENT)")
    return DepartmentCaller(department, entry.person)


DeptCaller = Annotated[DepartmentCaller, Depends(_department)]
"""The calling department (and person), as a route parameter."""
AlertId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


async def visible(desk: Desk, unit: Unit, alert_id: str) -> AlertState:
    """The alert if ``unit`` may see it (held by the desk or closed long ago: read from
    the store): 404 if there is none, 403 outside its subtree (saying only "outside your
    area")."""
    try:
        state = await desk.find(alert_id)
    except NotFound as exc:
        raise ApiError(404, str(exc)) from None
    if not inside(state.place, unit.path):
        raise ApiError(403, OUTSIDE)
    return state


def subtree(cfg: ConfigSet, unit: Unit, of: str | None) -> Unit:
    """The unit ``of`` names (``unit`` itself if None) if it is in ``unit``'s subtree:
    422 if the config has no such unit, 403 if it lies outside."""
    if of is None:
        return unit
    target = cfg.units.get(of)
    if target is None:
        raise ApiError(422, str(UnknownUnit(of)))
    if not inside(target.path, unit.path):
        raise ApiError(403, OUTSIDE)
    return target
