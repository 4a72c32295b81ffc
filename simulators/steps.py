"""Who took each step of a run, and when: the ledger's steps as rows for people.

A scenario's timeline (:mod:`gridcall.simulators.sim`) tells the story in sentences;
issue 18's chain (a report, a sensor anomaly and a system's event, each through plan,
dispatch, department report-in, arrival, disposal, audit and satisfaction) is read best
as a table of steps, each with its minute and its actor: the unit that acted (``hub``
for the hub's own steps), the department (its own steps, the ones a dispatch called,
the one a 督办 concerns, a system's owner), the person who took it (roster.yaml) and
whom the step was sent to. Pure: transitions and the config set in, rows out.
``gridcall sim run`` prints them (``--steps``) and writes them in ``--report-json``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gridcall.config import ConfigSet
from gridcall.hub.desk.lifecycle import Transition

DEPARTMENT_STEPS = frozenset({"report_in", "dept_arrive", "dept_dispose"})
NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class StepRow:
    """One ledger step of a run with its actor, ``offset_s`` after the scenario's start."""

    offset_s: float
    alert_id: str
    matter: str
    tier: str
    step: str
    """The ledger action, with what it says: ``request_close resolve``, ``audit pass``,
    ``rate satisfied``, ``plan_step warn`` (the plan's step ticked off)."""
    unit: str
    """The unit that acted, ``hub`` for the hub's own steps, "" for a department's."""
    department: str
    """The department that acted, that a dispatch called (several, comma-separated),
    that a 督办 concerns, or whose system called."""
    person: str
    """Who took the step (roster.yaml), "" for a unit's token or the hub."""
    told: str
    """Whom the step was sent to: the person on duty an alert was handed to, the
    departments' persons on duty a dispatch called, the district's for a 督办."""
    via: str
    """What called, on the steps a call writes (open, evidence, reopen): the sensor,
    ``report``, or ``system <id>``."""
    state: str
    responsible: str
    """The unit responsible for the alert after the step."""

    @property
    def minute(self) -> int:
        return int(self.offset_s // 60)

    def as_dict(self) -> dict[str, str | int | float]:
        return {"offset_s": self.offset_s, "alert": self.alert_id, "matter": self.matter,
                "tier": self.tier, "step": self.step, "unit": self.unit,
                "department": self.department, "person": self.person, "told": self.told,
                "via": self.via, "state": self.state, "responsible": self.responsible}

    def line(self) -> str:
        """One line (a golden file's): time, alert, step, by unit/person (a department's
        own step: department/person), the departments a dispatch called or the one a 督办
        concerns, what called, whom it was sent to, and where the alert stood then."""
        own = not self.unit and self.department
        actor = "/".join(x for x in (self.department if own else self.unit, self.person)
                         if x)
        whom = ""
        if self.department and not own:
            whom = {"dispatch": " calling ", "supervise": " of "}.get(self.step, " for ")
            whom += self.department
        told = f" -> {self.told}" if self.told else ""
        via = f" via {self.via}" if self.via else ""
        return (f"{hm(self.offset_s)} {self.alert_id} {self.matter} {self.tier} "
                f"{self.step} by {actor}{whom}{via}{told} [{self.state} at "
                f"{self.responsible}]")


def hm(seconds: float) -> str:
    """``HH:MM`` after the start (hours may pass 24)."""
    m = int(seconds // 60)
    return f"{m // 60:02d}:{m % 60:02d}"


def step_rows(transitions: Iterable[Transition], config: ConfigSet, start_ns: int
              ) -> list[StepRow]:
    """Every step in ledger order (by instant, then alert and number), with its actor."""
    matters: dict[str, str] = {}
    owners = {s.id: s.department or "" for s in config.external.systems}
    rows = []
    for t in sorted(transitions, key=lambda t: (t.at, t.alert_id, t.n)):
        if t.alert is not None:
            matters[t.alert_id] = t.alert.matter
        own = t.action in DEPARTMENT_STEPS
        department = t.department
        if t.action == "dispatch" and t.whistled:
            department = ",".join(w.department for w in t.whistled)
        via = ""
        if t.evidence is not None and t.action in ("open", "evidence", "reopen"):
            source = t.evidence[0]
            if t.sensor and t.sensor in config.sensors:
                via = t.sensor
            elif source in owners:
                via = f"system {source}"
                department = department or owners[source]
            else:
                via = "report"
        told = t.on_duty
        if t.action == "dispatch" and t.whistled:
            told = ",".join(w.on_duty for w in t.whistled if w.on_duty)
        step = f"request_close {t.request}" if t.action == "request_close" else t.action
        if t.action == "audit":
            step = f"audit {t.verdict}"
        if t.action == "rate" and t.rating is not None:
            step = f"rate {t.rating}"
        if t.action == "plan_step":
            step = f"plan_step {t.plan_step}"
        rows.append(StepRow(
            offset_s=(t.at - start_ns) / NS, alert_id=t.alert_id,
            matter=matters.get(t.alert_id, ""), tier=t.tier, step=step,
            unit="" if own else t.actor, department=department, person=t.person,
            told=told, via=via, state=t.state, responsible=t.unit))
    return rows


__all__ = ["StepRow", "hm", "step_rows"]
