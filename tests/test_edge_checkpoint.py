"""Detector checkpoints: a restored agent continues exactly like one that never stopped;
a damaged, foreign or outdated checkpoint is refused by name and the agent starts fresh."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
import pickle
from pathlib import Path

import pytest

from gridcall.config import ConfigSet
from gridcall.detectors import MULTIVARIATE, REGISTRY, build
from gridcall.edge_agent import checkpoint
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.watch import Verdict
from gridcall.simulators.steady import SimClock, SteadySource

NOW = 1_790_000_000 * 10**9
AGENT = "edge-dongyuan"


def agent_at(cfg: ConfigSet, state: Path | None, clock: SimClock, **settings: object
             ) -> EdgeAgent:
    spec = cfg.agents[AGENT]
    if settings:
        spec = dataclasses.replace(spec, settings=spec.settings.model_copy(update=settings))
    return EdgeAgent(spec, SteadySource(spec.sensors, clock, total=0), clock=clock,
                     state_dir=state)


async def stream(cfg: ConfigSet, n: int, start_at: int = 0) -> list[tuple[str, int, float]]:
    """A deterministic stream with breaches (so episodes open and close mid-stream)."""
    clock = SimClock(NOW + start_at * 10**7)
    src = SteadySource(cfg.agents[AGENT].sensors, clock, total=n, start_at=start_at,
                       breach_every=300, breach_len=4, then_idle=False, seed=start_at)
    return [(s.sensor, s.ts, s.value) async for s in src.samples()]


def feed(agent: EdgeAgent, samples: list[tuple[str, int, float]]) -> list[Verdict | None]:
    return [agent.ingest(s, t, v) for s, t, v in samples]


async def test_a_restored_agent_continues_exactly_like_an_uninterrupted_one(
    cfg: ConfigSet, tmp_path: Path
) -> None:
    samples = await stream(cfg, 40_000)
    half = 23_457  # mid-episode somewhere is fine: episodes are checkpointed too
    clock = SimClock(NOW)
    whole = agent_at(cfg, None, clock)
    uninterrupted = feed(whole, samples)

    first = agent_at(cfg, tmp_path, clock)
    before = feed(first, samples[:half])
    assert first.save_checkpoint() > 0
    first.outbox.close()
    second = agent_at(cfg, tmp_path, clock)
    assert second.restored is not None
    assert set(second.restored.restored) == {s.id for s in cfg.agents[AGENT].sensors}
    after = feed(second, samples[half:])

    assert before + after == uninterrupted
    assert sum(v is not None for v in uninterrupted) >= 4  # episodes happened
    fresh = agent_at(cfg, None, clock)
    assert feed(fresh, samples[half:]) != uninterrupted[half:]  # the state mattered


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - MULTIVARIATE))
def test_every_univariate_detector_survives_a_checkpoint_bit_for_bit(
    cfg: ConfigSet, tmp_path: Path, name: str
) -> None:
    spec = cfg.agents[AGENT]
    sensor = spec.sensors[0]
    one = dataclasses.replace(spec, sensors=(sensor,))
    watch_of = {}
    for label in ("whole", "first", "second"):
        agent = EdgeAgent(one, SteadySource(one.sensors, SimClock(NOW), total=0))
        agent.watches[sensor.id].detector = build(name)
        watch_of[label] = agent.watches
    values = [20.0 + 3 * math.sin(i / 40) + (15.0 if i % 997 == 0 else 0.0)
              for i in range(4000)]
    det = {k: w[sensor.id].detector for k, w in watch_of.items()}
    whole = [det["whole"].score_one(float(i), v) for i, v in enumerate(values)]
    part = [det["first"].score_one(float(i), v) for i, v in enumerate(values[:2500])]
    path = tmp_path / "c"
    checkpoint.save(path, AGENT, watch_of["first"], NOW)
    restored = checkpoint.load(path, AGENT, watch_of["second"])
    assert restored is not None
    assert restored.restored == (sensor.id,)
    rest = watch_of["second"][sensor.id].detector
    part += [rest.score_one(float(i), v) for i, v in enumerate(values) if i >= 2500]
    assert part == whole


@pytest.mark.parametrize(("content", "why"), [
    (b"", "no header"),
    (b"just some text\n", "no header"),
    (checkpoint.MAGIC + b"\x00\x00\x00\x09" + b"\x00" * 32, "format version 9"),
])
def test_a_damaged_or_foreign_checkpoint_is_refused_by_name_and_the_agent_starts_fresh(
    cfg: ConfigSet, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, why: str
) -> None:
    path = tmp_path / f"{AGENT}.checkpoint"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        agent = agent_at(cfg, tmp_path, SimClock(NOW))
    assert agent.restored is None
    assert f"checkpoint {path}: " in caplog.text
    assert why in caplog.text
    assert "starting every detector fresh" in caplog.text


def test_a_torn_checkpoint_is_caught_by_its_checksum(
    cfg: ConfigSet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SimClock(NOW)
    agent_at(cfg, tmp_path, clock).save_checkpoint()
    path = tmp_path / f"{AGENT}.checkpoint"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # power lost mid-write (without the rename)
    with caplog.at_level(logging.WARNING):
        assert agent_at(cfg, tmp_path, clock).restored is None
    assert "damaged (checksum does not match" in caplog.text


def test_a_checkpoint_naming_a_class_outside_the_detectors_is_never_unpickled(
    tmp_path: Path,
) -> None:
    body = pickle.dumps({"agent": AGENT, "sensors": {"x": ("fp", print, None, None)}})
    path = tmp_path / "c"
    path.write_bytes(checkpoint.MAGIC + checkpoint._HEADER.pack(
        checkpoint.FORMAT, hashlib.sha256(body).digest()) + body)
    with pytest.raises(checkpoint.CheckpointRefused, match=r"builtins\.print is not allowed"):
        checkpoint.load(path, AGENT, {})


def test_another_agents_checkpoint_is_refused(cfg: ConfigSet, tmp_path: Path) -> None:
    agent = agent_at(cfg, tmp_path, SimClock(NOW))
    agent.save_checkpoint()
    with pytest.raises(checkpoint.CheckpointRefused, match="belongs to agent 'edge-dongyuan'"):
        checkpoint.load(tmp_path / f"{AGENT}.checkpoint", "edge-other", agent.watches)


def test_a_sensor_whose_detector_settings_changed_starts_fresh_the_others_are_restored(
    cfg: ConfigSet, tmp_path: Path
) -> None:
    clock = SimClock(NOW)
    agent_at(cfg, tmp_path, clock).save_checkpoint()
    spec = cfg.agents[AGENT]
    changed = spec.sensors[0]
    sensors = (dataclasses.replace(changed, detector=changed.detector.model_copy(
        update={"sensitivity": 0.9})), *spec.sensors[1:])
    again = EdgeAgent(dataclasses.replace(spec, sensors=sensors),
                      SteadySource(sensors, clock, total=0), clock=clock, state_dir=tmp_path)
    assert again.restored is not None
    assert set(again.restored.fresh) == {changed.id}
    assert "settings or limits changed" in again.restored.fresh[changed.id]
    assert len(again.restored.restored) == len(sensors) - 1


def test_a_detector_whose_state_changed_shape_starts_fresh(cfg: ConfigSet, tmp_path: Path
                                                           ) -> None:
    """A newer gridcall whose detector keeps other fields does not restore an old state into it
    (it would fail at the first sample); that sensor warms up again, the others restore."""
    clock = SimClock(NOW)
    agent_at(cfg, tmp_path, clock).save_checkpoint()
    again = agent_at(cfg, None, clock)
    sid, watch = next(iter(again.watches.items()))
    old = type(watch.detector)
    grown = type(old.__name__, (old,), {"__slots__": ("new_field",), "__module__": old.__module__,
                                        "__qualname__": old.__qualname__})
    watch.detector = grown.__new__(grown)
    restored = checkpoint.load(tmp_path / f"{AGENT}.checkpoint", AGENT, again.watches)
    assert restored is not None
    assert set(restored.fresh) == {sid}
    assert len(restored.restored) == len(again.watches) - 1


async def test_a_clean_stop_saves_a_checkpoint(cfg: ConfigSet, tmp_path: Path) -> None:
    spec = cfg.agents[AGENT]
    clock = SimClock(NOW)
    agent = EdgeAgent(spec, SteadySource(spec.sensors, clock, total=500), clock=clock,
                  state_dir=tmp_path, broker_url="mqtt://127.0.0.1:9")
    stop = asyncio.Event()
    stop.set()
    await agent.run(stop, drain_timeout=0.1)
    assert agent.counters.checkpoints_saved == 1
    assert (tmp_path / f"{AGENT}.checkpoint").exists()


def test_a_checkpoint_that_cannot_be_written_is_logged_and_counted_not_raised(
    cfg: ConfigSet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = agent_at(cfg, tmp_path, SimClock(NOW))
    (tmp_path / f"{AGENT}.checkpoint").mkdir()  # something in the way of the rename
    with caplog.at_level(logging.WARNING):
        assert agent.save_checkpoint() == 0
    assert agent.counters.checkpoint_failures == 1
    assert f"cannot write checkpoint {tmp_path / f'{AGENT}.checkpoint'}" in caplog.text
