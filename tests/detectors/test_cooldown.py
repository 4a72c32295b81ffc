"""A cooldown cannot hide a real anomaly (issue 15, item 4).

A small false alert starts an episode and its refractory period (the cooldown: no new
episode for ``REFRACTORY`` readings). A deviation clearly larger than the one that opened
that episode must still raise, inside the cooldown and inside the episode itself; the
same size again must not.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.detectors import default_detector
from gridcall.detectors.episodes import REFRACTORY, Episodes
from gridcall.edge_agent.watch import SensorWatch

STEP = 300.0  # one reading every 5 minutes: the blip comes after a day of learning
BLIP = 350  # a small planted blip: 20 °C + 2.5 °C where the noise is 0.5 °C


def temperatures(seed: int) -> list[float]:
    """20 °C with 0.5 °C noise, and a small blip at BLIP."""
    rng = random.Random(seed)
    values = [20.0 + rng.gauss(0.0, 0.5) for _ in range(700)]
    values[BLIP] = 22.5
    return values


def run(values: list[float]) -> tuple[list[int], list[bool]]:
    """Episode starts, and whether an episode is open, at each reading."""
    det = default_detector()
    episodes = Episodes(threshold=det.threshold, refractory=REFRACTORY)
    found, active = [], []
    for i, v in enumerate(values):
        if episodes.step(det.score_one(STEP * i, v)) == "start":
            found.append(i)
        active.append(episodes.active)
    return found, active


def small_alert(seed: int) -> tuple[list[float], int]:
    """The stream and its first (false) alert whose cooldown reaches the blip: the blip
    itself, or noise before it whose cooldown swallowed the blip."""
    values = temperatures(seed)
    found, _ = run(values)
    return values, next(i for i in found if i > BLIP - REFRACTORY)


def plant_step(values: list[float], at: int, size: float = 15.0) -> list[float]:
    """A step of ``size`` lasting 10 readings from ``at`` (the issue's +15 °C step)."""
    return [v + size if at <= i < at + 10 else v for i, v in enumerate(values)]


@pytest.mark.parametrize("seed", range(8))
def test_a_large_step_inside_the_cooldown_of_a_small_alert_still_raises(seed: int) -> None:
    values, first = small_alert(seed)
    at = first + 97  # as in the issue: the step came 97 readings after a false alert
    found, active = run(plant_step(values, at))
    assert first in found
    assert not active[at - 1]  # the small alert's episode has ended: this is its cooldown
    assert any(at <= i < at + 10 for i in found), found


@pytest.mark.parametrize("seed", range(8))
def test_a_large_step_inside_a_small_episode_still_raises(seed: int) -> None:
    values, first = small_alert(seed)
    found, active = run(plant_step(values, first + 1))
    assert first in found
    assert active[first]  # the small alert's episode is still open
    assert any(first < i <= first + 10 for i in found), found


@pytest.mark.parametrize("seed", range(8))
def test_a_blip_no_larger_than_the_first_stays_quiet_in_the_cooldown(seed: int) -> None:
    values, first = small_alert(seed)
    values[first + 50] = values[first]
    found, _ = run(values)
    assert first in found
    assert not any(first < i < first + REFRACTORY for i in found), found


def test_the_edge_agent_sends_the_step_as_a_new_event() -> None:
    spec = next(s for s in load_config(SAMPLE_DISTRICT).sensors.values()
                if s.detector.name == "default")
    spec = dataclasses.replace(spec, detector=spec.detector.model_copy(
        update={"refractory": REFRACTORY}))
    values, first = small_alert(0)
    watch = SensorWatch(spec, default_detector(), clear_after=3)
    events = []
    for i, v in enumerate(plant_step(values, first + 97)):
        verdict = watch.observe(int(STEP * i * 1e9), v)
        if verdict is not None and verdict.phase == "start":
            events.append(i)
    assert first in events
    assert any(first + 97 <= i < first + 107 for i in events), events


def test_a_climbing_score_reraises_at_most_once_in_its_episode() -> None:
    episodes = Episodes(threshold=0.9, clear_after=3)
    scores = [0.91, 0.93, 0.95, 0.97, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0]
    phases = [episodes.step(s) for s in scores]
    assert phases.count("start") == 2, phases  # the opening and one re-raise
    assert episodes.active

