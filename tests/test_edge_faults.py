"""Values a sensor cannot produce are never published as readings, whatever the source:
a value outside its kind's physical range (the issue's 1025.0 degC from a temperature
sensor whose encoding was not configured) and a device's fault code (a Modbus sentinel).
The sensor's health is ``fault``, each is counted, and an out-of-range episode raises one
``fault`` anomaly, which the sample catalog makes SENSOR-FAULT."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from gridcall.config import ConfigSet, SensorSpec
from gridcall.edge_agent.agent import MISSING_AFTER_INTERVALS, EdgeAgent
from gridcall.edge_agent.outbox import Priority
from gridcall.edge_agent.sources import Sample
from gridcall.simulators.steady import SimClock
from gridcall.wire import AnomalyEvent, ReadingBatch

NOW = 1_790_000_000 * 10**9
SECOND = 10**9


class NoSource:
    async def samples(self):  # type: ignore[no-untyped-def]  # never iterated here
        yield Sample("", 0, None)


@pytest.fixture
def temperature(cfg: ConfigSet) -> tuple[EdgeAgent, SensorSpec, SimClock]:
    """An agent with one temperature sensor (physical range -40..125 degC)."""
    spec = cfg.agents["edge-dongyuan"]
    (sensor,) = (s for s in spec.sensors if s.kind == "temperature")
    assert (sensor.limits.physical_min, sensor.limits.physical_max) == (-40, 125)
    clock = SimClock(NOW)
    agent = EdgeAgent(dataclasses.replace(spec, sensors=(sensor,)), NoSource(), clock=clock)
    return agent, sensor, clock


def published(agent: EdgeAgent) -> tuple[list[float], list[AnomalyEvent]]:
    """The readings' values and the events the agent's outbox held, in order (taken out,
    as the broker's acknowledgements would)."""
    agent.seal()
    values: list[float] = []
    events: list[AnomalyEvent] = []
    while window := agent.outbox.peek(1000):
        for m in window:
            if m.priority == Priority.EVENT:
                events.append(msgspec.json.decode(m.payload, type=AnomalyEvent))
            else:
                batch = msgspec.json.decode(m.payload, type=ReadingBatch)
                values += [r.value for r in batch.readings]
        agent.outbox.ack(window)
    return values, events


def test_a_value_outside_the_physical_range_is_a_fault_not_a_reading(
        temperature: tuple[EdgeAgent, SensorSpec, SimClock], cfg: ConfigSet) -> None:
    agent, sensor, clock = temperature
    step = int(sensor.interval_s * SECOND)
    sent = [4.0, 4.2, 1025.0, 1025.0, -41.0, 1025.0, 4.1, 125.0, -40.0, 3.9]
    health = []
    for value in sent:
        clock.now += step
        agent.ingest(sensor.id, clock.now, value)
        health.append(agent.health(clock.now)[sensor.id].state)
    values, events = published(agent)
    assert values == [4.0, 4.2, 4.1, 125.0, -40.0, 3.9]  # the bounds themselves are possible
    assert health == ["ok", "ok", "fault", "fault", "fault", "fault", "ok", "ok", "ok", "ok"]
    assert agent.counters.faults == {"out_of_range": 4}
    # one episode: one start at the first impossible value, one end at the next possible one
    faults = [e for e in events if e.kind == "fault"]
    assert [(e.phase, e.value) for e in faults] == [("start", 1025.0), ("end", 4.1)]
    assert faults[0].ts == NOW + 3 * step
    # 125 degC is possible, and far past the alarm limit: the detector's alarm, as before
    assert [(e.kind, e.value) for e in events if e.kind != "fault"] == [
        ("out_of_limits", 125.0)]
    matter = cfg.matter_for(sensor.kind, "fault")
    assert matter is not None
    assert matter.code == "SENSOR-FAULT"
    assert msgspec.json.decode(agent.status(), type=dict)["faults"] == {"out_of_range": 4}


def test_a_device_fault_code_marks_the_sensor_faulty_without_an_alert(
        temperature: tuple[EdgeAgent, SensorSpec, SimClock]) -> None:
    agent, sensor, clock = temperature
    step = int(sensor.interval_s * SECOND)
    clock.now += step
    agent.ingest(sensor.id, clock.now, 5.0)
    for _ in range(3):
        clock.now += step
        agent.ingest(sensor.id, clock.now, None, "sentinel")
    health = agent.health(clock.now)[sensor.id]
    assert (health.state, health.last_ts) == ("fault", NOW + step)
    assert agent.counters.faults == {"sentinel": 3}
    assert agent.counters.skipped.get("no_value", 0) == 0  # a fault, not a dropout
    assert published(agent) == ([5.0], [])
    # a sensor that then says nothing at all is missing once its fault is old
    clock.now += int(MISSING_AFTER_INTERVALS * sensor.interval_s * SECOND) + 1
    assert agent.health(clock.now)[sensor.id].state == "missing"


def test_a_catalog_without_fault_sends_it_where_stuck_sensors_go(cfg: ConfigSet) -> None:
    """Catalogs written before agents reported faults need no edit."""
    stuck = cfg.matter_for("gas", "stuck")
    assert stuck is not None
    index = {k: m for k, m in cfg._matter_index.items() if k[1] != "fault"}
    older = dataclasses.replace(cfg, _matter_index=index)
    assert ("*", "fault") not in older._matter_index
    assert older.matter_for("gas", "fault") is stuck
