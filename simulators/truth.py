"""Ground truth against the alerts raised: what was detected, what was missed, what was
raised for nothing, and how long it took.

The ground truth of a run is its injected anomalies
(:class:`~gridcall.simulators.streams.Injection`,
including the rain model's ``rain`` labels) and its agent outages. The hub's answer is
the alerts' ledger steps (:class:`gridcall.hub.desk.lifecycle.Transition`). The matching rule:

* A **step names a sensor** when it is an ``open``, ``evidence`` or ``reopen`` step whose
  ``sensor`` is that sensor: the hub took an anomaly of that sensor into that alert. An
  anomaly spreading to the next grid is an injection on a sensor there, so it is found by
  the alert of that grid (or by the first one, if the hub grouped them).
* An **injection is detected** by the first step that names its sensor at a time within
  ``[start - early, end + grace_s]``, of an alert of the right family of matter:
  ``stuck`` and ``dropout`` injections need a *fault* matter (``SENSOR-FAULT``: the device
  is broken, not the street); every other shape needs a matter that is neither a fault
  nor an agent outage. ``early`` is ``early_s`` for the rain model's labels only
  (computed from a noise-free value: noise can cross the limit a little before the label
  says) and 0 for injected shapes, which start exactly when their label says;
  ``grace_s`` for detections that can only come after the fact (a dropout is seen when
  the next reading arrives, a stuck sensor after a run of identical readings).
* An **agent outage is detected** by an ``EDGE-OFFLINE`` alert (the hub's roster, on the
  agent's last will) whose event came from that agent in the same window (one alert per
  outage, listing the grids the agent serves).
* The **delay** is from the anomaly's start to that first step (the alert opening, or the
  anomaly joining an alert that was already open).
* A **false alert** is an alert whose opening (or a reopening) falls in no ground-truth
  window of its family, sensor (or agent): raised by noise, even if an injection's
  evidence joins it later (that step still detects the injection). With
  ``sensors`` and ``agents`` (the scenario's simulated ones; give them only when the run
  used a shared broker, where another publisher may be heard), an alert opened for a
  sensor outside them is *foreign*, listed apart, not false. An ``EDGE-OFFLINE`` alert
  names some sensor of the agent's grid, which need not be simulated: it is foreign when
  its *agent* is not simulated. With the embedded broker nothing else publishes, so
  every unmatched alert is false.
* An alert a **call** opened (a person's report, a department's system's event: its
  ``anomaly_kind`` is ``report`` or ``external``) is no detector's doing: it is listed
  apart (``calls``), neither detection nor false alert. Nor is an auditor's reopening
  (a step with no event behind it) a new alert raised by noise.

:func:`compare` is pure: the same inputs give the same report.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from gridcall.hub.desk.lifecycle import Transition
from gridcall.simulators.streams import Injection
from gridcall.wire.clock import NS

CALL_KINDS = frozenset({"report", "external"})
"""The anomaly kinds of alerts calls open (gridcall.wire.CallKind): no detector's."""
FAULT_SHAPES = frozenset({"stuck", "dropout"})
FAULT_MATTERS: tuple[str, ...] = ("SENSOR-FAULT",)
OFFLINE_MATTERS: tuple[str, ...] = ("EDGE-OFFLINE",)
EARLY_S = 120.0
GRACE_S = 600.0

Family = Literal["anomaly", "fault", "outage"]


class OutageLike(Protocol):
    """An agent cut off (``gridcall.simulators.scenario.Outage``)."""

    @property
    def at_ns(self) -> int: ...
    @property
    def agent(self) -> str: ...
    @property
    def duration_s(self) -> float: ...


class RunLike(Protocol):
    """What :func:`compare` reads of a run: every ledger step, in order."""

    @property
    def transitions(self) -> Sequence[Transition]: ...


@dataclass(frozen=True, slots=True)
class Truth:
    """One ground-truth item, normalised: an injection or an outage."""

    label: str
    family: Family
    start: float
    end: float
    sensor: str = ""
    agent: str = ""
    shape: str = ""


@dataclass(frozen=True, slots=True)
class Detection:
    truth: Truth
    alert_id: str | None = None
    matter: str | None = None
    tier: str | None = None
    at: float | None = None
    """When the matching step was written (POSIX s)."""
    also: tuple[str, ...] = ()
    """Further alerts that matched (an outage seen in several grids)."""

    @property
    def detected(self) -> bool:
        return self.alert_id is not None

    @property
    def delay_s(self) -> float | None:
        return None if self.at is None else round(self.at - self.truth.start, 3)

    def as_dict(self) -> dict[str, Any]:
        t = self.truth
        return {"label": t.label, "kind": t.family, "shape": t.shape, "sensor": t.sensor,
                "agent": t.agent, "start": _iso(t.start), "end": _iso(t.end),
                "detected": self.detected, "alert_id": self.alert_id,
                "matter": self.matter, "tier": self.tier, "delay_s": self.delay_s,
                "also": list(self.also)}


@dataclass(frozen=True, slots=True)
class FalseAlert:
    alert_id: str
    matter: str
    tier: str
    sensor: str
    grid: str
    anomaly_kind: str
    opened_at: float

    def as_dict(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "matter": self.matter, "tier": self.tier,
                "sensor": self.sensor, "grid": self.grid, "anomaly_kind": self.anomaly_kind,
                "opened_at": _iso(self.opened_at)}


@dataclass(frozen=True, slots=True)
class TruthReport:
    detections: tuple[Detection, ...]
    false_alert_details: tuple[FalseAlert, ...]
    alerts: int
    """How many alerts the run opened."""
    rule: dict[str, Any] = field(default_factory=dict)
    foreign: tuple[FalseAlert, ...] = ()
    """Alerts for sensors the run does not simulate (events of another publisher on a
    shared broker): neither detections nor false alerts."""
    calls: tuple[FalseAlert, ...] = ()
    """Alerts a report or a system's event opened (no detector's): neither detections
    nor false alerts."""

    @property
    def injected(self) -> int:
        return len(self.detections)

    @property
    def detected(self) -> int:
        return sum(d.detected for d in self.detections)

    @property
    def missed(self) -> int:
        return self.injected - self.detected

    @property
    def false_alerts(self) -> int:
        return len(self.false_alert_details)

    @property
    def median_delay_s(self) -> float | None:
        delays = [d.delay_s for d in self.detections if d.delay_s is not None]
        return round(statistics.median(delays), 3) if delays else None

    def as_dict(self) -> dict[str, Any]:
        """The JSON report: the five figures first, then the detail."""
        return {"injected": self.injected, "detected": self.detected, "missed": self.missed,
                "false_alerts": self.false_alerts, "median_delay_s": self.median_delay_s,
                "alerts": self.alerts,
                "injections": [d.as_dict() for d in self.detections],
                "false_alert_details": [f.as_dict() for f in self.false_alert_details],
                "foreign_alerts": [f.as_dict() for f in self.foreign],
                "calls": [f.as_dict() for f in self.calls],
                "matching": self.rule}


def truths(injections: Iterable[Injection], outages: Iterable[OutageLike] = ()
           ) -> tuple[Truth, ...]:
    out = [Truth(i.label or f"{i.shape} on {i.sensor}",
                 "fault" if i.shape in FAULT_SHAPES else "anomaly",
                 i.start, i.start + i.duration, sensor=i.sensor, shape=i.shape)
           for i in injections]
    out += [Truth(f"edge agent {o.agent} offline for {o.duration_s / 60:g} min", "outage",
                  o.at_ns / NS, o.at_ns / NS + o.duration_s, agent=o.agent,
                  shape="offline") for o in outages]
    return tuple(sorted(out, key=lambda t: (t.start, t.sensor, t.agent)))


def compare(injections: Iterable[Injection], run: RunLike | Sequence[Transition], *,
            outages: Iterable[OutageLike] = (), early_s: float = EARLY_S,
            grace_s: float = GRACE_S, fault_matters: Sequence[str] = FAULT_MATTERS,
            offline_matters: Sequence[str] = OFFLINE_MATTERS,
            sensors: Collection[str] | None = None,
            agents: Collection[str] | None = None) -> TruthReport:
    """Match the ground truth with the alerts of ``run`` (its ledger steps); see the
    module's docstring for the rule."""
    steps = tuple(run if isinstance(run, Sequence) else run.transitions)
    opened: dict[str, Transition] = {}
    for t in steps:
        if t.action == "open" and t.alert is not None:
            opened.setdefault(t.alert_id, t)

    def family(alert_id: str) -> Family | None:
        o = opened.get(alert_id)
        if o is None or o.alert is None:
            return None
        m = o.alert.matter
        return "fault" if m in fault_matters else "outage" if m in offline_matters \
            else "anomaly"

    def agent_of(t: Transition) -> str:
        if t.evidence is not None:
            return t.evidence[0]
        o = opened.get(t.alert_id)
        return o.alert.agent if o is not None and o.alert is not None else ""

    def names(t: Transition, truth: Truth) -> bool:
        # only a rain label may be seen early: it is the noise-free model's crossing, and
        # the noisy reading can cross first; an injected shape starts when it says
        early = early_s if truth.shape == "rain" else 0.0
        lo, hi = truth.start - early, truth.end + grace_s
        return (lo <= t.at / NS <= hi and family(t.alert_id) == truth.family
                and (agent_of(t) == truth.agent if truth.family == "outage"
                     else t.sensor == truth.sensor))

    naming = [t for t in steps if t.action in ("open", "evidence", "reopen")]
    every = truths(injections, outages)
    detections = []
    for truth in every:
        hits = [t for t in naming if names(t, truth)]
        if not hits:
            detections.append(Detection(truth))
            continue
        first = min(hits, key=lambda t: t.at)
        ids = list(dict.fromkeys(t.alert_id for t in hits))
        detections.append(Detection(truth, first.alert_id, _matter(opened, first.alert_id),
                                    first.tier, first.at / NS,
                                    tuple(i for i in ids if i != first.alert_id)))
    false: list[FalseAlert] = []
    foreign: list[FalseAlert] = []
    # false: an alert opened (or reopened) by no ground truth, even if an injection's
    # evidence joined it later (that evidence still credits the injection's detection)
    unfounded = {t.alert_id for t in steps if t.action in ("open", "reopen")
                 and (t.action == "open" or t.evidence is not None)
                 and not any(names(t, truth) for truth in every)}
    calls: list[FalseAlert] = []
    for alert_id, o in opened.items():
        if alert_id not in unfounded or o.alert is None:
            continue
        a = o.alert
        alert = FalseAlert(alert_id, a.matter, o.tier, a.sensor, a.grid, a.anomaly_kind,
                           o.at / NS)
        if a.anomaly_kind in CALL_KINDS:
            calls.append(alert)
            continue
        if family(alert_id) == "outage":
            alien = agents is not None and a.agent not in agents
        else:
            alien = sensors is not None and a.sensor not in sensors
        (foreign if alien else false).append(alert)
    rule = {"early_s": early_s, "grace_s": grace_s, "fault_matters": list(fault_matters),
            "offline_matters": list(offline_matters)}
    return TruthReport(tuple(detections), tuple(false), len(opened), rule, tuple(foreign),
                       tuple(calls))


def _matter(opened: dict[str, Transition], alert_id: str) -> str | None:
    o = opened.get(alert_id)
    return o.alert.matter if o is not None and o.alert is not None else None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
