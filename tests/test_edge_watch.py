"""A sensor watch turns a stream of scores into one event per anomaly episode."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.config.models import Limits
from gridcall.edge_agent.watch import SensorWatch, severity_of
from gridcall.wire import AnomalyKind


@dataclass
class ScriptedDetector:
    """Plays back a fixed list of scores: the watch's logic is what is under test here."""

    scores: list[float | None]
    threshold: float = 0.9
    kind: AnomalyKind | None = "spike"

    def score_one(self, ts: float, value: float | None) -> float | None:
        return self.scores.pop(0)


def phases(scores: list[float | None], clear_after: int = 3) -> list[str]:
    spec = next(iter(load_config(SAMPLE_DISTRICT).sensors.values()))
    watch = SensorWatch(spec, ScriptedDetector(list(scores)), clear_after=clear_after)
    out = []
    for i in range(len(scores)):
        verdict = watch.observe(i * 10**9, 1.0)
        if verdict is not None:
            out.append(f"{verdict.phase}@{i}")
    return out


def test_an_episode_opens_once_and_closes_after_enough_normal_scores() -> None:
    assert phases([0.1, 0.95, 0.97, 0.96, 0.2, 0.1, 0.1, 0.1]) == ["start@1", "end@6"]


def test_a_sensor_flapping_around_its_threshold_stays_in_one_episode() -> None:
    flapping = [0.1, 0.95, 0.5, 0.95, 0.5, 0.95, 0.5, 0.5, 0.5]
    assert phases(flapping) == ["start@1", "end@8"]


def test_warm_up_says_nothing() -> None:
    assert phases([None, None, None, 0.1]) == []


@pytest.mark.parametrize(
    ("value", "severity"),
    [(21.0, "minor"), (24.0, "major"), (40.0, "critical")],
)
def test_severity_measures_how_far_past_the_limit(value: float, severity: str) -> None:
    limits = Limits(alarm_high=20.0)
    assert severity_of(limits, "out_of_limits", value, 1.0) == severity


def test_severity_below_a_low_limit() -> None:
    limits = Limits(alarm_low=-25.0, alarm_high=8.0)
    assert severity_of(limits, "out_of_limits", -40.0, 1.0) == "critical"
    assert severity_of(limits, "spike", 3.0, 0.95) == "minor"
