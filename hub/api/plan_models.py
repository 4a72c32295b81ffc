"""The API's models of an alert's plan (一事一预案, :mod:`gridcall.hub.desk.plans`): what
``AlertOut.plan`` and ``AlertOut.plan_done`` carry. Pure data."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class PlanStepOut(_Out):
    id: str = Field(description="What a tick names (POST /v1/alerts/{id}/plan/{step}).")
    text: str
    role: str = Field(description="Who does it: grid, community, town, district, "
                      "responsible (the unit holding the alert) or a department id.")


class PlanDispatchOut(_Out):
    department: str
    when: dict[str, str] = Field(description="Tier (A, B) → `always` or the condition, "
                                 "e.g. `at school/market`, `if critical`: the hub "
                                 "dispatches the department when the alert stands at that "
                                 "tier and the condition holds.")


class PlanResourceOut(_Out):
    name: str
    note: str = ""


class PlanContactOut(_Out):
    name: str
    phone: str = ""
    department: str = Field(default="", description="A department to reach, if any.")
    note: str = ""


class PlanOut(_Out):
    """The matter's plan as the alert was given it when it opened."""

    summary: str = ""
    steps: list[PlanStepOut] = []
    dispatch: list[PlanDispatchOut] = []
    resources: list[PlanResourceOut] = []
    contacts: list[PlanContactOut] = []


class PlanTickOut(_Out):
    """A step of the plan ticked off."""

    step: str
    at: int
    by: str = Field(description="The unit (or department) whose token ticked it.")
    person: str = Field(default="", description="The person, for a person's token.")
