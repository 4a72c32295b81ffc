"""A newly installed sensor, or an agent restarting without a checkpoint, must not raise
false anomalies while the detector is still learning the sensor's behaviour; a
configured alarm limit still raises at once.

Novelty (a never-seen transition, a new extreme) and record-based outliers count only
after ``novel_learn`` (a day) of time; before that, an outlier must be as far out as a new
extreme would need. ``novel_learn=0`` is the behaviour before that learning period, which
raised several false episodes an hour on these streams.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.detectors import Limits, default_detector
from gridcall.detectors.episodes import Episodes
from gridcall.edge_agent.watch import SensorWatch, detector_for
from gridcall.simulators.streams import SensorStream

START = 1_767_225_600.0
HOURS = 3.0


def noise_starts(seed: int, **params: Any) -> int:
    """Episode starts over the first HOURS of stationary noise read every 2 s, at the
    product's setting (sensitivity 0, extreme_z 8)."""
    rng = random.Random(seed)
    det = default_detector(sensitivity=0.0, extreme_z=8, **params)
    episodes = Episodes(threshold=det.threshold)
    starts = 0
    for i in range(int(HOURS * 3600 / 2)):
        if episodes.step(det.score_one(START + 2.0 * i, 20.0 + rng.gauss(0.0, 0.5))) == "start":
            starts += 1
    return starts


def stream_starts(kind: str, seed: int, **params: Any) -> int:
    """Episode starts over the first HOURS of one sample sensor's realistic stream, built
    as its edge agent builds it."""
    spec = next(s for s in sorted(load_config(SAMPLE_DISTRICT).sensors.values(),
                                  key=lambda s: s.id) if s.kind == kind)
    if params:
        spec = dataclasses.replace(spec, detector=spec.detector.model_copy(
            update={"params": {**spec.detector.params, **params}}))
    watch = SensorWatch(spec, detector_for(spec, seed=seed))
    stream = SensorStream(spec.id, spec.kind, seed=seed, place=spec.path, tags=spec.tags)
    t0 = START + seed * 7 * 3600.0
    starts, t = 0, t0
    while t < t0 + HOURS * 3600.0:
        verdict = watch.observe(int(t * 1e9), stream.value(t))
        if verdict is not None and verdict.phase == "start":
            starts += 1
        t += spec.interval_s
    return starts


def test_fresh_detector_on_stationary_noise_raises_nothing_in_its_first_hours() -> None:
    assert [noise_starts(seed) for seed in range(4)] == [0, 0, 0, 0]


def test_without_the_learning_period_the_same_noise_raises() -> None:
    """The check above is not vacuous: the old behaviour raises on this noise."""
    assert sum(noise_starts(seed, novel_learn=0) for seed in range(4)) > 0


@pytest.mark.parametrize("kind", ["temperature", "pm25", "gas"])
def test_fresh_sample_sensor_raises_nothing_in_its_first_hours(kind: str) -> None:
    assert stream_starts(kind, seed=1) == 0
    assert stream_starts(kind, seed=1, novel_learn=0) > 0  # and it used to


def test_a_limit_needs_no_learning_period() -> None:
    det = default_detector(Limits(alarm_high=30.0), sensitivity=0.0, extreme_z=8)
    assert det.score_one(START, 20.0) is None
    assert det.score_one(START + 2.0, 35.0) == 1.0
    assert det.kind == "out_of_limits"


def test_novel_learn_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="novel_learn"):
        default_detector(novel_learn=-1.0)
