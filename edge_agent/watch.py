"""Per-sensor watch: a detector plus the episode logic that turns scores into events.

Pure: no I/O, no clock. A watch emits one ``start`` when the score first reaches the
detector's threshold and one ``end`` after ``clear_after`` normal scores in a row
(:class:`detectors.Episodes`), so a sensor hovering at its limit does not flood the hub
with events.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from config import SensorSpec
from config.models import Limits
from detectors import Detector, Episodes
from wire import AnomalyKind, Severity


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
    __slots__ = ("counts", "detector", "episodes", "kind", "spec")

    def __init__(self, spec: SensorSpec, detector: Detector, *, clear_after: int = 3) -> None:
        self.spec = spec
        self.detector = detector
        self.episodes = Episodes(threshold=detector.threshold, clear_after=clear_after,
                                 refractory=spec.detector.refractory)
        self.kind: AnomalyKind = "out_of_limits"
        self.counts: Counter[str] = Counter()

    @property
    def active(self) -> bool:
        return self.episodes.active

    def observe(self, ts_ns: int, value: float | None) -> Verdict | None:
        """Score one reading; a Verdict when an anomaly episode starts or ends."""
        score = self.detector.score_one(ts_ns / 1e9, value)
        if score is None:
            self.counts["not_scored"] += 1
            return None
        phase = self.episodes.step(score)
        if phase == "start":
            self.kind = self.detector.kind or "out_of_limits"
            self.counts["episodes"] += 1
            severity = severity_of(self.spec.limits, self.kind, value, score)
            return Verdict(self.kind, "start", severity, score, value, ts_ns)
        if phase == "end":
            return Verdict(self.kind, "end", "minor", score, value, ts_ns)
        return None
