"""The shapes of the simulated sensor streams and of the rain model (pure, no I/O)."""

from __future__ import annotations

import dataclasses
import itertools
import statistics
from datetime import UTC, datetime

import pytest

from gridcall.config import ConfigSet, load_config
from gridcall.config.resolve import SensorSpec
from gridcall.simulators.streams import BASELINES, Injection, SensorStream
from gridcall.simulators.weather import RainEpisode, RainModel

T0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp() - 8 * 3600
"""Monday 5 January 2026, 00:00 China time: the streams' daily cycles are local hours."""


@pytest.fixture(scope="module")
def cfg() -> ConfigSet:
    return load_config("config/examples/huangpu")


def values(stream: SensorStream, start: float, seconds: float, step: float) -> list[float]:
    out = []
    t = start
    while t < start + seconds:
        v = stream.value(t)
        if v is not None:
            out.append(v)
        t += step
    return out


def test_a_stream_is_a_pure_function_of_seed_sensor_and_time() -> None:
    times = [T0 + 2.0 * i for i in range(500)]
    a = SensorStream("g1-noise-1", "noise", seed=3)
    forwards = [a.value(t) for t in times]
    b = SensorStream("g1-noise-1", "noise", seed=3)
    backwards = [b.value(t) for t in reversed(times)][::-1]
    assert forwards == backwards
    assert forwards == [b.value(t) for t in times]  # asked twice, same answers
    other_seed = [SensorStream("g1-noise-1", "noise", seed=4).value(t) for t in times]
    other_sensor = [SensorStream("g1-noise-2", "noise", seed=3).value(t) for t in times]
    assert forwards != other_seed
    assert forwards != other_sensor


def test_values_sit_on_the_instrument_resolution_and_inside_the_physical_range() -> None:
    for kind, b in BASELINES.items():
        vs = values(SensorStream(f"s-{kind}", kind, seed=1), T0, 3600, 5.0)
        assert all(b.lo <= v <= b.hi for v in vs), kind
        if b.resolution:
            steps = [v / b.resolution for v in vs]
            assert all(abs(s - round(s)) < 1e-6 for s in steps), kind


def test_noise_meters_are_loud_in_the_afternoon_and_quiet_at_night() -> None:
    s = SensorStream("g1-noise-1", "noise", seed=0)
    night = values(s, T0 + 2 * 3600, 3600, 2.0)       # 02:00-03:00
    afternoon = values(s, T0 + 15 * 3600, 3600, 2.0)  # 15:00-16:00
    assert statistics.median(afternoon) - statistics.median(night) > 8.0
    # nobody else drowns them out: at night passing cars stand out of the quiet
    assert max(night) - statistics.median(night) > 4.0
    # a short-term Leq of ordinary streets stays under a 70 dBA limit
    assert max(afternoon) < 70.0


def test_a_cold_room_cycles_with_its_compressor() -> None:
    s = SensorStream("market-temp-1", "temperature", seed=0)
    vs = values(s, T0 + 3 * 3600, 2 * 3600, 5.0)
    # the saw-tooth spans most of its 0.8 degree amplitude, within the 8 degree limit
    assert 0.6 < max(vs) - min(vs) < 3.0
    assert max(vs) < 8.0


def test_a_gas_cell_drifts_slowly_but_stays_far_below_its_limit() -> None:
    s = SensorStream("g3-gas-1", "gas", seed=2)
    hourly = [statistics.mean(values(s, T0 + h * 3600, 600, 2.0)) for h in range(0, 24, 3)]
    assert max(hourly) - min(hourly) > 0.1  # it moves (drift and kitchen hours)
    assert max(hourly) < 5.0                # far from 20 %LEL


def test_readings_are_lost_rarely_and_never_in_long_runs() -> None:
    s = SensorStream("g1-smoke-1", "smoke", seed=5)
    got = [s.value(T0 + 2.0 * i) for i in range(43_200)]  # a day at 2 s
    lost = [i for i, v in enumerate(got) if v is None]
    assert 0 < len(lost) < 60
    assert all(b - a > 1 for a, b in itertools.pairwise(lost))


def test_no_normal_stream_repeats_one_value_long_enough_to_look_stuck() -> None:
    for kind in BASELINES:
        vs = values(SensorStream(f"s-{kind}", kind, seed=9), T0, 6 * 3600, 5.0)
        longest = run = 0
        for a, b in itertools.pairwise(vs):
            run = run + 1 if a == b else 0
            longest = max(longest, run)
        assert longest < 30, kind  # the default detector's stuck check needs 60


def test_a_ramp_reaches_its_target_after_ramp_s_and_holds_it() -> None:
    gas = Injection("g3-gas-1", T0 + 600, 1800, "ramp", target=40.0, ramp_s=300)
    s = SensorStream("g3-gas-1", "gas", seed=1, injections=(gas,))
    plain = SensorStream("g3-gas-1", "gas", seed=1)
    assert s.value(T0 + 599) == plain.value(T0 + 599)
    halfway = s.value(T0 + 750)
    assert halfway is not None
    assert 15.0 < halfway < 25.0
    held = values(s, T0 + 900, 1500, 2.0)
    assert all(39.0 < v < 41.0 for v in held)
    assert s.value(T0 + 2400) == plain.value(T0 + 2400)  # over: normal again


def test_a_ramp_without_ramp_s_takes_a_third_of_its_duration() -> None:
    inj = Injection("x", T0, 900, "ramp", target=50.0)
    assert inj.reach(T0 + 150) == pytest.approx(0.5)
    assert inj.reach(T0 + 300) == 1.0


def test_a_stuck_sensor_repeats_its_last_value_exactly() -> None:
    stuck = Injection("g1-smoke-1", T0 + 100, 600, "stuck")
    s = SensorStream("g1-smoke-1", "smoke", seed=1, injections=(stuck,))
    frozen = {s.value(T0 + 100 + 2 * i) for i in range(300)}
    assert frozen == {SensorStream("g1-smoke-1", "smoke", seed=1).normal(T0 + 100)}


def test_a_dropout_gives_no_values_for_its_duration() -> None:
    drop = Injection("g1-smoke-1", T0 + 100, 60, "dropout")
    s = SensorStream("g1-smoke-1", "smoke", seed=1, injections=(drop,))
    assert [s.value(T0 + 100 + i) for i in range(60)] == [None] * 60
    assert s.value(T0 + 161) is not None


def test_a_drift_moves_the_level_linearly_to_its_target() -> None:
    drift = Injection("bridge-1", T0, 6 * 3600, "drift", target=720.0)
    s = SensorStream("bridge-1", "bridge_strain", seed=1, injections=(drift,))
    plain = SensorStream("bridge-1", "bridge_strain", seed=1)
    offsets = [s.value(T0 + h * 3600) - plain.value(T0 + h * 3600)  # type: ignore[operator]
               for h in (1, 3, 5)]
    assert offsets[0] < offsets[1] < offsets[2]
    assert offsets[1] == pytest.approx((720.0 - s._level) * 0.5, abs=2.0)


def test_smoke_fades_after_the_fire_is_out_when_decay_is_given() -> None:
    fire = Injection("home-smoke-1", T0, 300, "step", target=2.0, decay_s=120)
    s = SensorStream("home-smoke-1", "smoke", seed=1, injections=(fire,))
    after = [s.value(T0 + 300 + dt) for dt in (1, 120, 600)]
    assert after[0] is not None
    assert after[0] > 1.5
    assert after[1] is not None
    assert 0.4 < after[1] < 1.0
    assert after[2] is not None
    assert after[2] < 0.1


# --------------------------------------------------------------------------- rain


def sensor(cfg: ConfigSet, kind: str, tag: str | None = None) -> SensorSpec:
    return next(s for s in sorted(cfg.sensors.values(), key=lambda s: s.id)
                if s.kind == kind and (tag is None or tag in s.tags))


def stream(spec: SensorSpec, weather: RainModel) -> SensorStream:
    return SensorStream(spec.id, spec.kind, seed=0, place=spec.path, tags=spec.tags,
                        weather=weather)


def test_rain_falls_on_its_area_only(cfg: ConfigSet) -> None:
    gauges = [s for s in cfg.sensors.values() if s.kind == "rain"]
    inside = gauges[0]
    outside = next(g for g in gauges if g.path[2] != inside.path[2])
    weather = RainModel([RainEpisode(T0, 3600, 80.0, area=frozenset({inside.path[2]}))])
    mid = T0 + 1800
    wet = stream(inside, weather).value(mid)
    assert wet is not None
    assert 50.0 < wet < 130.0
    dry = stream(outside, weather).value(mid)
    assert dry is not None
    assert dry < 1.0


def test_water_rises_after_the_rain_lagged_and_integrated_and_drains(cfg: ConfigSet) -> None:
    low = sensor(cfg, "water_level", "flood_point")
    weather = RainModel([RainEpisode(T0, 2400, 80.0)])
    s = stream(low, weather)
    rise = [weather.water(low.id, low.tags, low.path, T0 + m * 60) for m in range(0, 240, 5)]
    assert rise[1] < 1.0                      # five minutes in: still on its way
    peak = max(range(len(rise)), key=rise.__getitem__)
    assert 40 * 60 < peak * 5 * 60 < 90 * 60  # peaks after the rain (40 min) stopped
    assert rise[-1] < rise[peak] / 4          # and drains away
    wet = s.value(T0 + peak * 5 * 60)
    assert wet is not None
    assert wet > (low.limits.alarm_high or 0.0)


def test_a_low_point_floods_deeper_than_an_ordinary_gully(cfg: ConfigSet) -> None:
    weather = RainModel([RainEpisode(T0, 2400, 60.0)])
    low = [s for s in cfg.sensors.values() if s.kind == "water_level" and "flood_point" in s.tags]
    # the sample config has water levels only at low points: the same places, untagged
    gully = [dataclasses.replace(s, id=f"{s.id}-gully", tags=()) for s in low]
    depth = {s.id: max(weather.water(s.id, s.tags, s.path, T0 + m * 60) for m in range(180))
             for s in low + gully}
    assert min(depth[s.id] for s in low) > max(depth[s.id] for s in gully)


def test_rain_labels_say_when_each_sensor_is_beyond_its_limit(cfg: ConfigSet) -> None:
    low = sensor(cfg, "water_level", "flood_point")
    area = frozenset({low.path[2]})
    weather = RainModel([RainEpisode(T0, 2400, 80.0, area=area)])
    labels = weather.labels(cfg.sensors.values())
    assert labels, "an 80 mm/h downpour floods the low point"
    assert {cfg.sensors[i.sensor].path[2] for i in labels} == set(area)
    flood = next(i for i in labels if i.sensor == low.id)
    assert flood.shape == "rain"
    assert flood.start > T0 + 600
    rain = [i for i in labels if cfg.sensors[i.sensor].kind == "rain"]
    assert rain
    assert all(i.start < flood.start for i in rain)
    # the label is what the noisy stream shows: beyond the limit inside, not before
    s = stream(low, weather)
    inside = values(s, flood.start + 120, flood.duration - 240, 5.0)
    assert min(inside) > (low.limits.alarm_high or 0.0)
    before = values(s, T0, flood.start - T0 - 120, 5.0)
    assert max(before) < (low.limits.alarm_high or 0.0)


def test_light_rain_gives_no_labels(cfg: ConfigSet) -> None:
    weather = RainModel([RainEpisode(T0, 3600, 8.0)])
    assert weather.labels(cfg.sensors.values()) == ()
