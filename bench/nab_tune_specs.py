"""Detector factories for bench/nab_tune.py (one global configuration each).

``NAB_PARAMS`` (JSON in the environment) overrides keyword arguments, for sweeps.
"""

from __future__ import annotations

import json
import os
from typing import Any

from gridcall.detectors import default_detector
from gridcall.detectors.episodes import Episodes

PARAMS: dict[str, Any] = json.loads(os.environ.get("NAB_PARAMS", "{}"))


class Policy:
    def __init__(self, det: Any, refractory: int = 100, clear_after: int = 3) -> None:
        self.det = det
        self.ep = Episodes(threshold=det.threshold, refractory=refractory,
                           clear_after=clear_after)

    def step(self, ts: float, v: float) -> bool:
        return self.ep.step(self.det.score_one(ts, v)) == "start"


def default() -> Policy:
    p = dict(PARAMS)
    pol = {k: p.pop(k) for k in ("refractory", "clear_after") if k in p}
    nov = {k[4:]: p.pop(k) for k in list(p) if k.startswith("nov_")}
    det = default_detector(**p)
    if nov:
        from gridcall.detectors.novelty import Novelty
        base = dict(warmup=det.parts[3].warmup, z_alert=det.parts[3].z_alert)
        base.update(nov)
        det.parts = (*det.parts[:3], Novelty(**base))
    return Policy(det, **pol)


def raw() -> Policy:
    from gridcall.detectors.default import DefaultDetector
    return Policy(DefaultDetector(**PARAMS))


class Escalating:
    """Refractory episodes, but a clearly stronger score may start a new one."""

    def __init__(self, det: Any, refractory: int = 100, factor: float = 2.0) -> None:
        self.det = det
        self.refractory = refractory
        self.factor = factor
        self.since = refractory + 1
        self.level = 0.0  # strength (1 / (1 - score)) that started the last alert
        self.active = False
        self.normal = 0

    def step(self, ts: float, v: float) -> bool:
        s = self.det.score_one(ts, v)
        if s is None:
            return False
        self.since += 1
        if s < 0.9:
            self.normal += 1
            if self.normal >= 3:
                self.active = False
            return False
        self.normal = 0
        strength = 1.0 / max(1.0 - s, 1e-9)
        fire = (not self.active and self.since > self.refractory) or (
            strength >= self.factor * self.level)
        if fire:
            self.since = 0
            self.level = strength
            self.active = True
        else:
            self.level = max(self.level, strength) if self.active else self.level
        return fire


def escalating() -> Escalating:
    from gridcall.detectors.default import DefaultDetector
    p = dict(PARAMS)
    factor = p.pop("factor", 2.0)
    return Escalating(DefaultDetector(**p), factor=factor)
