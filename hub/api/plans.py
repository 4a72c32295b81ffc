"""The plan route (一事一预案, :mod:`gridcall.hub.desk.plans`): tick off a step of an
alert's plan. The plan itself is on the alert (``AlertOut.plan``); ticking is a ledger
step (``plan_step``) with the unit and the person."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from gridcall.config import ConfigSet
from gridcall.hub.api.alerts import alert_detail
from gridcall.hub.api.auth import AlertId, Caller, CallerPerson, visible
from gridcall.hub.api.models import (
    ACTION_ERRORS,
    OUTSIDE,
    ActionBody,
    AlertDetail,
    ApiError,
)
from gridcall.hub.desk.desk import Desk, NotFound, OutsideSubtree, UnknownUnit
from gridcall.hub.desk.lifecycle import IllegalTransition
from gridcall.hub.desk.plans import AlreadyTicked, NoSuchStep
from gridcall.wire.clock import Clock

StepId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                             description="The id of a step of the alert's plan.")]


def router(desk: Desk, cfg: ConfigSet, clock: Clock) -> APIRouter:
    """``POST /v1/alerts/{alert_id}/plan/{step_id}`` over ``desk``."""
    app = APIRouter()

    @app.post("/v1/alerts/{alert_id}/plan/{step_id}", response_model=AlertDetail,
              responses={**ACTION_ERRORS, 404: {
                  "model": ACTION_ERRORS[404]["model"],
                  "description": "No such alert, or no such step in its plan."}},
              tags=["actions"], operation_id="plan_step")
    async def tick(unit: Caller, person: CallerPerson, alert_id: AlertId, step_id: StepId,
                   body: ActionBody | None = None) -> AlertDetail:
        """Tick off a step of the alert's plan (一事一预案): a ledger step naming the step,
        your unit and, for a person's token, you. Any unit the alert is visible to may
        tick any step (the step's role says who should do it; the tick records who
        says it was done). Ticking a step ticked already writes nothing and answers
        the alert as it stands; a closed alert is a 409."""
        await visible(desk, unit, alert_id)
        try:
            change = await desk.tick_plan(alert_id, step_id, unit.id, now=clock(),
                                          note=(body or ActionBody()).note, person=person)
        except (NotFound, NoSuchStep) as exc:
            raise ApiError(404, str(exc)) from None
        except OutsideSubtree:
            raise ApiError(403, OUTSIDE) from None
        except IllegalTransition as exc:
            raise ApiError(409, str(exc)) from None
        except UnknownUnit as exc:
            raise ApiError(422, str(exc)) from None
        except AlreadyTicked as exc:  # a repeat: nothing written
            return await alert_detail(desk, exc.state)
        return await alert_detail(desk, change.alert)

    return app
