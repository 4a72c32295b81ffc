"""Per-sensor watch: a detector plus the episode logic that turns scores into events.

Pure: no I/O, no clock. A watch emits one ``start`` when the score first reaches the
detector's threshold and one ``end`` after ``clear_after`` normal scores in a row
(:class:`detectors.Episodes`), so a sensor hovering at its limit does not flood the hub
with events.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections import Counter
from dataclasses import dataclass

from gridcall.config import SensorSpec
from gridcall.config.models import Limits
from gridcall.detectors import MULTIVARIATE, REGISTRY, Detector, DetectorArgs, Episodes, create
from gridcall.detectors import Limits as DetectorLimits
from gridcall.detectors.base import Streaming
from gridcall.wire import AnomalyKind, Severity


def detector_for(sensor: SensorSpec, *, seed: int = 0) -> Detector:
    """The detector the sensor's settings ask for, built from the one contract: the
    sensor's limits, its sensitivity, the agent's seed and the detector's own params."""
    settings, lim = sensor.detector, sensor.limits
    limits = DetectorLimits(physical_min=lim.physical_min, physical_max=lim.physical_max,
                            alarm_low=lim.alarm_low, alarm_high=lim.alarm_high,
                            hysteresis=lim.hysteresis)
    return create(settings.name, DetectorArgs(limits=limits, sensitivity=settings.sensitivity,
                                              seed=seed, params=settings.params))


def detector_problem(sensor: SensorSpec) -> str | None:
    """Why the sensor's detector settings would fail in the agent, or None if they run.

    Meant for ``config check`` (``load_config(check_detector=...)``), so a typo'd or
    mistyped parameter is a config problem rather than a crash on the Pi: parameter names
    are checked against the detector's signature, then the detector is built exactly as
    the agent builds it and fed a few readings inside its limits.
    """
    settings = sensor.detector
    if settings.name in MULTIVARIATE:  # before the lookup, which would import numpy
        return (f"{settings.name!r} is a multivariate detector; it cannot watch one sensor "
                "(its rows are mappings of several values)")
    cls = REGISTRY.get(settings.name)
    if cls is None:
        return None  # an unknown name is the registry check's to report
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "limits")]
    for key in settings.params:
        if key not in accepted:
            hint = difflib.get_close_matches(key, accepted, n=1)
            return f"unknown parameter {key!r} for detector {settings.name!r}" + (
                f" (did you mean {hint[0]!r}?)" if hint else f" (it takes {', '.join(accepted)})")
    lim = sensor.limits
    low = next((v for v in (lim.alarm_low, lim.physical_min) if v is not None), None)
    high = next((v for v in (lim.alarm_high, lim.physical_max) if v is not None), None)
    ends = [e for e in (low, high) if e is not None]
    probe = sum(ends) / len(ends) if ends else 0.0
    step_s = sensor.interval_s or 1.0
    try:
        detector = detector_for(sensor)
        for i in range(3):
            detector.score_one(i * step_s, probe)
    except Exception as exc:  # whatever breaks here is the config's mistake, to be reported
        return (f"detector {settings.name!r} does not run with params "
                f"{dict(settings.params)}: {exc}")
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: AnomalyKind
    phase: str
    severity: Severity
    score: float
    value: float | None
    ts: int


def severity_of(limits: Limits, kind: AnomalyKind, value: float | None, score: float) -> Severity:
    """How bad: beyond an alarm limit by half the limit's distance from normal is critical.

    For limit breaches the distance is measured from the alarm limit relative to the span
    between the alarm limit and the physical bound on the same side (or the limit itself),
    so "twice the gas limit" is critical whatever the unit.
    """
    if kind == "out_of_limits" and value is not None and math.isfinite(value):
        excess = 0.0
        if limits.alarm_high is not None and value > limits.alarm_high:
            span = abs(limits.alarm_high) or 1.0
            excess = (value - limits.alarm_high) / span
        elif limits.alarm_low is not None and value < limits.alarm_low:
            span = abs(limits.alarm_low) or 1.0
            excess = (limits.alarm_low - value) / span
        if excess >= 0.5:
            return "critical"
        if excess >= 0.15:
            return "major"
        return "minor"
    return "major" if score >= 0.999 else "minor"


class SensorWatch:
    __slots__ = ("_score_plausible", "counts", "detector", "episodes", "kind", "spec")

    def __init__(self, spec: SensorSpec, detector: Detector, *, clear_after: int = 3) -> None:
        self.spec = spec
        self.detector = detector
        # the short way for a value the agent's FaultWatch let through, when the detector
        # is a Streaming one that scores with Streaming's own score_one (a subclass with
        # its own score_one gets every value through that)
        self._score_plausible = (
            detector.score_plausible if isinstance(detector, Streaming)
            and type(detector).score_one is Streaming.score_one else detector.score_one)
        self.episodes = Episodes(threshold=detector.threshold, clear_after=clear_after,
                                 refractory=spec.detector.refractory)
        self.kind: AnomalyKind = "out_of_limits"
        self.counts: Counter[str] = Counter()

    @property
    def active(self) -> bool:
        return self.episodes.active

    def observe(self, ts_ns: int, value: float | None) -> Verdict | None:
        """Score one reading; a Verdict when an anomaly episode starts or ends."""
        return self._judge(self.detector.score_one(ts_ns / 1e9, value), ts_ns, value)

    def observe_plausible(self, ts_ns: int, value: float) -> Verdict | None:
        """:meth:`observe` for a finite value inside the sensor's physical range (the
        agent's :class:`~gridcall.edge_agent.faults.FaultWatch` checked it): the same
        verdict, without checking again what that check already did
        (:meth:`gridcall.detectors.base.InputGuard.check_plausible`)."""
        return self._judge(self._score_plausible(ts_ns / 1e9, value), ts_ns, value)

    def _judge(self, score: float | None, ts_ns: int, value: float | None) -> Verdict | None:
        if score is None:
            self.counts["not_scored"] += 1
            return None
        phase = self.episodes.step(score)
        if phase is None:
            return None
        if phase == "start":
            self.kind = self.detector.kind or "out_of_limits"
            self.counts["episodes"] += 1
            severity = severity_of(self.spec.limits, self.kind, value, score)
            return Verdict(self.kind, "start", severity, score, value, ts_ns)
        return Verdict(self.kind, "end", "minor", score, value, ts_ns)
