"""A matter's plan (一事一预案): ``plan:`` of a matter in ``matters.yaml``.

"One event, one plan": every matter of the catalog says what is done when it happens,
by whom, which departments are called in at the higher tiers, with what, and whom to
ring::

    plan:
      summary: 切断气源、疏散周边、消防到场处置。
      steps:                               # ticked off on the alert, in this order
      - {id: evacuate, role: grid, text: 疏散周边居民，设置警戒区}
      - {id: shut-off, role: fire_safety, text: 关闭燃气总阀，切断气源}
      dispatch:                            # called in automatically at tier B and A
      - {department: fire_safety, when: {A: always, B: always}}
      - {department: police, when: {A: always, B: {sites: [school, market]}}}
      resources:
      - {name: 可燃气体检测仪, note: 社区联勤队伍配备}
      contacts:
      - {name: 火警, phone: "119"}
      - {name: 消防安全, department: fire_safety}

- **steps**: ``id`` (unique in the plan: what a tick names), ``text`` and ``role``: who
  does it, a level of the ladder (``grid``, ``community``, ``town``, ``district``), the
  unit holding the alert (``responsible``), or a department of topology.yaml.
- **dispatch**: per department, a **condition per tier** (``A``, ``B``): ``always``, or
  ``sites`` (the alert's sensor or grid carries one of these site tags) and/or
  ``severities`` (the alert's severity is one of these); both given: both must hold.
  A tier the department does not name: not dispatched at it. Only B and A: below them
  the grid and the community handle the matter themselves (瑣事网格共治、小事社区共治).
- **resources** and **contacts**: shown with the alert, for the people who act.

A plain string (the catalog before plans were structured) is still a plan: its
``summary``, with no steps to tick and nobody dispatched automatically.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from gridcall.config.base import Id, Model, Name

PlanTier = Literal["A", "B"]
"""The tiers at which a plan's departments are dispatched automatically."""
LEVEL_ROLES: tuple[str, ...] = ("grid", "community", "town", "district", "responsible")
"""The roles a step may name besides a department: a level of the ladder, or whichever
unit holds the alert."""
Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class DispatchCondition(Model):
    """When a department is dispatched at one tier, besides ``always``."""

    sites: tuple[Literal["school", "elderly_home", "hazardous_goods", "hospital", "market",
                         "flood_point", "bridge", "residential", "restaurant",
                         "construction_site"], ...] = ()
    severities: tuple[Literal["minor", "major", "critical"], ...] = ()

    @model_validator(mode="after")
    def _something(self) -> DispatchCondition:
        if not self.sites and not self.severities:
            raise ValueError("a condition names sites and/or severities; write 'always' "
                             "for no condition")
        return self

    def holds(self, *, tags: tuple[str, ...], severity: str) -> bool:
        return ((not self.sites or any(t in self.sites for t in tags))
                and (not self.severities or severity in self.severities))

    def text(self) -> str:
        parts = []
        if self.sites:
            parts.append("at " + "/".join(self.sites))
        if self.severities:
            parts.append("if " + "/".join(self.severities))
        return " ".join(parts)


class PlanDispatch(Model):
    department: Id
    when: dict[PlanTier, Literal["always"] | DispatchCondition] = Field(min_length=1)

    def condition(self, tier: str) -> Literal["always"] | DispatchCondition | None:
        """The condition at ``tier``; None: not dispatched at it."""
        for at, cond in self.when.items():
            if at == tier:
                return cond
        return None

    def holds(self, tier: str, *, tags: tuple[str, ...], severity: str) -> bool:
        """Whether the department is dispatched at ``tier`` for these facts."""
        cond = self.condition(tier)
        if cond is None:
            return False
        if cond == "always":
            return True
        return cond.holds(tags=tags, severity=severity)


class PlanStep(Model):
    id: Id
    text: Text
    role: Id
    """A level (``grid``, ``community``, ``town``, ``district``), ``responsible`` or a
    department id (checked against topology.yaml by the loader)."""


class PlanResource(Model):
    name: Name
    note: str = ""


class PlanContact(Model):
    name: Name
    phone: str = Field(default="", max_length=40)
    department: Id | None = None
    """A department of topology.yaml to reach (its channels and persons are its own)."""
    note: str = ""


class Plan(Model):
    summary: str = Field(default="", max_length=2000)
    steps: tuple[PlanStep, ...] = ()
    dispatch: tuple[PlanDispatch, ...] = ()
    resources: tuple[PlanResource, ...] = ()
    contacts: tuple[PlanContact, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        """A plain string is the plan's summary (the catalog's free text of old)."""
        return {"summary": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _unique(self) -> Plan:
        for what, ids in (("step id", [s.id for s in self.steps]),
                          ("dispatch department", [d.department for d in self.dispatch])):
            seen: set[str] = set()
            for i in ids:
                if i in seen:
                    raise ValueError(f"{what} {i!r} is given twice")
                seen.add(i)
        return self

    @property
    def empty(self) -> bool:
        return not (self.summary or self.steps or self.dispatch or self.resources
                    or self.contacts)

    def departments_at(self, tier: str, *, tags: tuple[str, ...], severity: str
                       ) -> tuple[str, ...]:
        """The departments the plan dispatches at ``tier`` for these facts, in order."""
        return tuple(d.department for d in self.dispatch
                     if d.holds(tier, tags=tags, severity=severity))


__all__ = ["LEVEL_ROLES", "DispatchCondition", "Plan", "PlanContact", "PlanDispatch",
           "PlanResource", "PlanStep", "PlanTier"]
