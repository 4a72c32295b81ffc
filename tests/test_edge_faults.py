"""Values a sensor cannot produce are never published as readings, whatever the source:
a value outside its kind's physical range (the issue's 1025.0 degC from a temperature
sensor whose encoding was not configured) and a device's fault code (a Modbus sentinel).
The sensor's health is ``fault``, each is counted, and an out-of-range episode raises one
``fault`` anomaly, which the sample catalog makes SENSOR-FAULT."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import aiomqtt
import msgspec
import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridcall.config import ConfigSet, SensorSpec
from gridcall.config.sources import ModbusSettings
from gridcall.edge_agent.agent import MISSING_AFTER_INTERVALS, EdgeAgent
from gridcall.edge_agent.modbus_source import ModbusSource
from gridcall.edge_agent.outbox import Priority
from gridcall.edge_agent.sources import Sample
from gridcall.simulators.steady import SimClock
from gridcall.wire import AgentStatus, AnomalyEvent, Reading, ReadingBatch, topics
from gridcall.wire.broker import BrokerAddress
from tests.polling import wait_until
from tests.servers import unused_tcp_port

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


@pytest.mark.servers
async def test_modbus_faults_reach_the_broker_as_health_and_one_alert_never_as_readings(
        cfg: ConfigSet, mqtt_url: str) -> None:
    """The issue's devices end to end, pymodbus's TCP server → agent → mosquitto: a
    thermometer writing -25.0 degC as 10250 (offset-10000), a gas monitor answering its
    0xFFFF fault code, and a tilt sensor whose map lacks its scale (1025 deg, beyond its
    0-90 range)."""
    port = unused_tcp_port()
    device = SimDevice(id=1, simdata=[
        SimData(0, values=[10250, 0xFFFF, 1025, 0], datatype=DataType.REGISTERS)])
    server = ModbusTcpServer([device], address=("127.0.0.1", port))
    serving = asyncio.create_task(server.serve_forever())
    base = cfg.agents["edge-huangpu-cun"]
    temp, gas, tilt = ("huangpu-cun-g3-temperature-1", "huangpu-cun-g3-gas-1",
                       "huangpu-cun-g3-manholetilt-1")
    source = ModbusSettings.model_validate({
        "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "tcp_port": port,
        "registers": [
            {"sensor": temp, "address": 0, "encoding": "offset-10000", "scale": 0.1,
             "interval": "0.05s"},
            {"sensor": gas, "address": 1, "scale": 0.1, "faults": ["0xFFFF"],
             "interval": "0.05s"},
            {"sensor": tilt, "address": 2, "interval": "0.05s"}]})
    spec = dataclasses.replace(
        base, id=f"edge-faults-{uuid.uuid4().hex[:8]}", source=source,
        sensors=tuple(s for s in base.sensors if s.id in (temp, gas, tilt)),
        settings=base.settings.model_copy(update={
            "status_interval": timedelta(seconds=0.2), "batch_interval": timedelta(seconds=0.1)}))
    agent = EdgeAgent(spec, ModbusSource(source, agent_id=spec.id), broker_url=mqtt_url)
    readings: list[Reading] = []
    events: list[AnomalyEvent] = []
    statuses: list[AgentStatus] = []
    stop = asyncio.Event()
    address = BrokerAddress.parse(mqtt_url)
    try:
        async with aiomqtt.Client(address.host, address.port) as client:
            for topic in (topics.readings_topic(spec.id), topics.events_topic(spec.id),
                          topics.status_topic(spec.id)):
                await client.subscribe(topic, qos=1)

            async def collect() -> None:
                async for msg in client.messages:
                    payload = msg.payload
                    if not isinstance(payload, bytes) or not payload:
                        continue
                    topic = str(msg.topic)
                    if topic == topics.readings_topic(spec.id):
                        readings.extend(msgspec.json.decode(payload, type=ReadingBatch).readings)
                    elif topic == topics.events_topic(spec.id):
                        events.append(msgspec.json.decode(payload, type=AnomalyEvent))
                    else:
                        statuses.append(msgspec.json.decode(payload, type=AgentStatus))

            collecting = asyncio.create_task(collect())
            running = asyncio.create_task(agent.run(stop))

            def settled() -> bool:
                last = statuses[-1] if statuses else None
                return (len(readings) >= 10 and last is not None
                        and last.faults.get("out_of_range", 0) >= 10
                        and last.faults.get("sentinel", 0) >= 10)

            assert await wait_until(settled)
            stop.set()
            await running
            collecting.cancel()
            await client.publish(topics.status_topic(spec.id), b"", retain=True)  # tidy up
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    assert {(r.sensor, r.value) for r in readings} == {(temp, -25.0)}
    assert [(e.sensor, e.kind, e.phase, e.value) for e in events] == [
        (tilt, "fault", "start", 1025.0)]
    health = {s: h.state for s, h in statuses[-2].sensor_health.items()}  # the last online
    assert health == {temp: "ok", gas: "fault", tilt: "fault"}
    assert statuses[-2].source_counters["fault_sentinel"] >= 10


async def test_edge_check_warns_of_values_the_agent_would_not_publish(
        cfg: ConfigSet) -> None:
    """The issue: an unscaled 1025 and a 0xFFFF fault code passed edge check."""
    from gridcall.edge_agent.commissioning import CheckOptions
    from gridcall.edge_agent.source_factory import build_source, source_checks

    port = unused_tcp_port()
    device = SimDevice(id=1, simdata=[
        SimData(0, values=[10250, 0xFFFF, 1025, 0], datatype=DataType.REGISTERS)])
    server = ModbusTcpServer([device], address=("127.0.0.1", port))
    serving = asyncio.create_task(server.serve_forever())
    base = cfg.agents["edge-huangpu-cun"]
    temp, gas, tilt = ("huangpu-cun-g3-temperature-1", "huangpu-cun-g3-gas-1",
                       "huangpu-cun-g3-manholetilt-1")
    source = ModbusSettings.model_validate({
        "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "tcp_port": port,
        "registers": [
            {"sensor": temp, "address": 0, "encoding": "offset-10000", "scale": 0.1},
            {"sensor": gas, "address": 1, "scale": 0.1, "faults": [0xFFFF]},
            {"sensor": tilt, "address": 2}]})
    spec = dataclasses.replace(base, source=source, sensors=tuple(
        s for s in base.sensors if s.id in (temp, gas, tilt)))
    try:
        assert await wait_until(lambda: server.transport is not None)  # it listens
        checks = await source_checks(spec, CheckOptions(config=cfg.directory, wait=5),
                                     lambda: build_source(spec))
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    read = checks[-1]
    assert (read.name, read.status) == ("source (modbus)", "WARN")
    assert f"{temp}=-25" in read.detail
    assert f"{gas}=sentinel" in read.detail
    assert (f"not published: {gas} gave its device's fault code (sentinel); {tilt} read "
            "1025, outside its kind's physical range 0..90") in read.detail
