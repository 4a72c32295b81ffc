"""bench/district_day.py, the simulated day of a district's message rates: its totals add
up (the day's readings are sensors x rate x seconds, every episode is a start and an
end), an outage's backlog arrives when its agents reconnect, the storm's events are in
the storm's minutes, and a seed gives the same day. A small district: a second or so."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import yaml

from bench.district_day import DAY, Params, catch_up, district, simulate
from bench.million_rates import SAMPLE, _seconds

SMALL = Params(sensors=5_000, per_agent=10, batch=10, seed=7)


def test_the_day_s_readings_are_sensors_times_rate_times_seconds() -> None:
    doc = yaml.safe_load((SAMPLE / "sensors.yaml").read_text(encoding="utf-8"))
    sample = doc["sensors"]
    want = sum(DAY / _seconds(str(doc["kinds"][sample[i % len(sample)]["kind"]]["interval"]))
               for i in range(SMALL.sensors))
    for p in (SMALL, replace(SMALL, outage_min=0), replace(SMALL, outage_share=0.25)):
        day = simulate(p)
        assert day.readings.sum() == want  # an outage moves readings, it loses none
        assert district(p).readings_per_day() == want
        assert (day.readings >= 0).all()
        assert (day.messages >= 0).all()


def test_episodes_are_a_start_and_an_end_and_calls_as_many_as_asked() -> None:
    day = simulate(SMALL)
    assert day.storm_sensors > 0
    assert day.events.sum() == 2 * round(SMALL.sensors * SMALL.episodes) + 2 * day.storm_sensors
    assert day.calls.sum() == round(SMALL.sensors * SMALL.calls)
    # the diurnal shape: more in the afternoon's hours than in the night's
    calls = day.calls.reshape(24, -1).sum(axis=1)
    assert calls[12:16].sum() > calls[0:4].sum()


def test_an_outage_s_backlog_arrives_when_its_agents_reconnect() -> None:
    calm = simulate(replace(SMALL, outage_min=0))
    day = simulate(SMALL)  # the broker away: every agent
    o0, o1 = day.outage
    assert day.readings[o0:o1].sum() == 0
    # all that was sealed meanwhile, and the reconnect second's own flushes, at once
    assert day.readings[o1] == calm.readings[o0:o1 + 1].sum()
    assert day.readings[o1 + 1:].tolist() == calm.readings[o1 + 1:].tolist()
    # a town's uplink: a quarter of the agents, the rest publishing as usual
    part = simulate(replace(SMALL, outage_share=0.25))
    assert 0 < part.readings[o0:o1].sum() < calm.readings[o0:o1].sum()
    assert part.readings[o1] > calm.readings[o1]


def test_the_storm_s_events_are_in_its_minutes() -> None:
    quiet = simulate(replace(SMALL, storm_grids=0.0))
    day = simulate(SMALL)
    assert quiet.storm_sensors == 0 < day.storm_sensors
    t0, t1 = day.storm
    onset = slice(t0, t0 + int(SMALL.storm_onset * 60))
    # what the storm adds: its starts in the onset, its ends after it, nothing elsewhere
    added = day.events - quiet.events
    assert added[onset].sum() == day.storm_sensors
    assert added[t1:t1 + int(SMALL.storm_min * 60)].sum() == day.storm_sensors
    assert added.sum() == 2 * day.storm_sensors
    assert (added >= 0).all()


def test_a_seed_gives_the_same_day_and_another_a_different_one() -> None:
    a, b = simulate(SMALL), simulate(SMALL)
    assert np.array_equal(a.messages, b.messages)
    assert np.array_equal(a.desk, b.desk)
    c = simulate(replace(SMALL, seed=8))
    assert not np.array_equal(a.events, c.events)


def test_the_catch_up_queue_drains_at_the_capacity() -> None:
    arriving = np.zeros(100)
    arriving[10] = 1_000.0
    capacity = 100.0
    top, stood = catch_up(arriving, capacity)
    assert top == arriving[10] - capacity  # the first second takes its share
    assert stood == top / capacity  # then a capacity a second, until none is left
