"""The indicator route: the assessment indicators (:mod:`gridcall.hub.desk.indicators`) of
the units in the caller's subtree and of the departments, over a period."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gridcall.config import ConfigSet
from gridcall.hub.api.auth import Caller, inside, subtree
from gridcall.hub.api.models import ERRORS, IndicatorList
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.indicators import Group, indicators
from gridcall.wire.clock import Clock


def _of_subtree(cfg: ConfigSet, person: str, root: tuple[str, ...]) -> bool:
    """A person of a unit in the subtree, or of a department (shown like departments)."""
    who = cfg.duty.person(person)
    if who is None:
        return False
    unit = cfg.units.get(who.unit)
    return unit is None or inside(unit.path, root)


def router(desk: Desk, cfg: ConfigSet, clock: Clock) -> APIRouter:
    """``/v1/indicators`` over ``desk``'s ledger, judged as of ``clock``'s now at the latest."""
    app = APIRouter()

    @app.get("/v1/indicators", response_model=IndicatorList, responses=ERRORS,
             tags=["indicators"])
    async def get_indicators(
        unit: Caller,
        of: Annotated[str | None, Query(alias="unit", description="A unit in your subtree "
                                        "(default: yours).")] = None,
        period_s: Annotated[int, Query(alias="period", ge=1, description="Seconds back "
                                       "from `until` (default 7 days).")] = 7 * 86400,
        until: Annotated[int | None, Query(ge=0, description="End of the period, ns "
                                           "(default: now).")] = None,
        persons: Annotated[bool, Query(description="Add a row per person on duty "
                                       "(roster.yaml) of the subtree's units and the "
                                       "departments: the calls handed to them.")] = False,
        breakdown: Annotated[bool, Query(description="Add a row per matter and per tier "
                                         "over the subtree's alerts.")] = False,
    ) -> IndicatorList:
        """Indicators of the units in the subtree, and of the departments over the
        subtree's alerts, for alerts handed to them in the period, judged as of the
        period's end or now, whichever is earlier (definitions in hub/desk/indicators.py and
        docs/api.md)."""
        root = subtree(cfg, unit, of)
        now = clock()
        end = now if until is None else until
        start = end - period_s * 10**9
        # Only alerts that can have a stint starting in the period: opened before its end
        # and not closed for good before its start (a stint starts at an open, escalate
        # or reopen step, and closed_at is the latest closing). Steps after the end are
        # left out too: the figures are judged as of the end at the latest.
        judged = min(end, now)
        _, maybe = await desk.listing(unit=root.id, opened_before=end, closed_since=start)
        steps = await desk.transitions_of(maybe, until=judged + 1)
        groups: tuple[Group, ...] = (
            "unit", "department", *(("person",) if persons else ()),
            *(("matter", "tier") if breakdown else ()))
        rows = [r for r in indicators(steps, start, end, as_of=judged, groups=groups,
                                       defer=desk.deferral(steps))
                if r.group in ("department", "matter", "tier") or (
                    r.key in cfg.units and inside(cfg.units[r.key].path, root.path))
                or (r.group == "person" and _of_subtree(cfg, r.key, root.path))]
        return IndicatorList(unit=root.id, period_start=start, period_end=end,
                             rows=list(rows))

    return app
