"""The simulated devices as a technician or CI uses them:
``python -m gridcall.simulators.devices``
in its own process, ``gridcall edge check`` against the sample config, and an edge agent
reading a noisy serial device and reporting its bad-frame counters in its status."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest
import yaml
from typer.testing import CliRunner

from gridcall.cli import app
from gridcall.config import SAMPLE_DISTRICT, ConfigSet, load_config
from gridcall.config.local_mqtt import LocalMqttSettings
from gridcall.config.sources import SerialSettings
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.local_mqtt import TopicMap
from gridcall.edge_agent.serial_source import SerialFrameSource
from gridcall.simulators.devices import LocalMqttSim
from gridcall.wire import AgentStatus, topics
from gridcall.wire.broker import BrokerAddress
from tests.polling import wait_until

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def simdevice(tmp_path: Path) -> Iterator[Any]:
    """Start ``python -m gridcall.simulators.devices ARGS`` processes; stopped with
    SIGTERM."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridcall.simulators.devices", *args], cwd=REPO,
            text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def started(proc: subprocess.Popen[str], link: Path) -> bool:
    """The device said where it is (its link exists only once it is ready)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if f" at {link}" in line:
            return link.is_symlink()
    return False


@pytest.mark.servers
def test_edge_check_passes_against_the_sample_config_with_the_simulated_devices(
        tmp_path: Path, mqtt_url: str, simdevice: Any) -> None:
    tty, modbus = tmp_path / "gridcall-tty0", tmp_path / "gridcall-modbus0"
    serial_dev = simdevice("--link", str(tty), "--interval", "0.2", "--garbage", "0.3")
    modbus_dev = simdevice("--modbus", "--link", str(modbus))
    assert started(serial_dev, tty)
    assert started(modbus_dev, modbus)
    district = tmp_path / "district"
    district.mkdir()
    for f in SAMPLE_DISTRICT.glob("*.yaml"):
        text = f.read_text(encoding="utf-8")
        if f.name == "agents.yaml":  # the sample's ports, moved into this test's folder
            data = yaml.safe_load(text.replace("/tmp/gridcall-tty0", str(tty)).replace(
                "/tmp/gridcall-modbus0", str(modbus)))
            data["defaults"].update(broker={"url": mqtt_url}, state_dir=str(tmp_path / "st"))
            text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        (district / f.name).write_text(text, encoding="utf-8")
    for agent, kind in (("edge-dongyuan", "serial"), ("edge-huangpu-cun", "modbus")):
        result = CliRunner().invoke(app, ["edge", "check", "--config", str(district),
                                          "--agent", agent, "--wait", "10"],
                                    env={"COLUMNS": "400"})
        assert result.exit_code == 0, result.output
        line = next(x for x in result.output.splitlines() if f"source ({kind})" in x)
        assert "PASS" in line
        assert "read 3 values" in line
    # edge-jiufo's devices publish to a broker (on the box, mosquitto at 127.0.0.1:1883;
    # here the test broker, given with --local-broker)
    mqtt_dev = simdevice("--mqtt", mqtt_url, "--interval", "0.5")
    assert mqtt_dev.stdout is not None
    assert any("simdevice: mqtt" in line for line in mqtt_dev.stdout)  # it is connected
    result = CliRunner().invoke(app, ["edge", "check", "--config", str(district), "--agent",
                                      "edge-jiufo", "--local-broker", mqtt_url, "--wait", "10"],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "source (mqtt)" in x)
    assert "PASS" in line  # a PASS means every mapped sensor sent a value (else a WARN)
    jiufo = load_config(district).agents["edge-jiufo"]
    read = re.search(r"read (\d+) values", line)
    assert read is not None, line
    assert int(read[1]) >= len(jiufo.sensors), line


@pytest.mark.servers
@pytest.mark.parametrize("transport", ["tcp", "rtu_over_tcp"])
def test_edge_check_passes_against_simulated_modbus_devices_on_the_network(
        tmp_path: Path, mqtt_url: str, simdevice: Any, transport: str) -> None:
    """The sample Modbus agent's slaves as devices on the network: slave 1 at one port,
    the others behind a second (as two gateways); the simulator serves each."""
    from tests.servers import unused_tcp_port

    first, second = unused_tcp_port(), unused_tcp_port()
    district = tmp_path / "district"
    district.mkdir()
    for f in SAMPLE_DISTRICT.glob("*.yaml"):
        text = f.read_text(encoding="utf-8")
        if f.name == "agents.yaml":
            data = yaml.safe_load(text)
            data["defaults"].update(broker={"url": mqtt_url}, state_dir=str(tmp_path / "st"))
            (agent,) = (a for a in data["agents"] if a["id"] == "edge-huangpu-cun")
            source = agent["source"]
            for key in ("port", "baudrate"):
                source.pop(key)
            source.update(transport=transport, host="127.0.0.1", tcp_port=second)
            for reg in source["registers"]:
                if reg["slave"] == 1:
                    reg["tcp_port"] = first
            text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        (district / f.name).write_text(text, encoding="utf-8")
    scheme = "tcp" if transport == "tcp" else "rtu+tcp"
    device = simdevice("--modbus", "--config", str(district))
    assert device.stdout is not None
    said = [next(device.stdout) for _ in range(3)]  # its agent, then one line per server
    assert f"slaves [1] at {scheme}://127.0.0.1:{first}" in said[1], said
    assert f"slaves [2, 3] at {scheme}://127.0.0.1:{second}" in said[2], said
    result = CliRunner().invoke(app, ["edge", "check", "--config", str(district),
                                      "--agent", "edge-huangpu-cun", "--wait", "10"],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    reached = next(x for x in result.output.splitlines() if "modbus devices" in x)
    assert "PASS" in reached, reached
    assert "2 reachable" in reached, reached
    line = next(x for x in result.output.splitlines() if "source (modbus)" in x)
    assert "PASS" in line, line
    assert "read 3 values" in line, line


def test_simulated_mqtt_devices_publish_what_the_agents_map_reads_back() -> None:
    """Each preset's topic and payload form (Tasmota's nested JSON, Zigbee2MQTT's JSON,
    ESPHome's plain number), with a scale and offset undone, decode to the stream value."""
    settings = LocalMqttSettings.model_validate({"type": "mqtt", "map": [
        {"preset": "tasmota", "device": "cab", "fields": {
            "DS18B20.Temperature": {"sensor": "t1", "scale": 0.1, "offset": -40},
            "AM2301.Humidity": "h1"}},
        {"preset": "zigbee2mqtt", "device": "smoke-7", "fields": {"smoke": "s1"}},
        {"preset": "esphome", "device": "node", "fields": {"pm25": "p1"}},
        {"topic": "lab/x", "value": "readings[1].v", "sensor": "x1"},
        {"topic": "lab/+/level", "value": "cm", "sensor": "flood-{1}"}]})
    values = {"t1": 21.5, "h1": 40.0, "s1": 1.0, "p1": 12.25, "x1": 7.0}
    sim = LocalMqttSim(settings, lambda sensor, t: values[sensor])
    decoder = TopicMap(settings.mappings())
    got = {s.sensor: s.value for topic, payload in sim.messages(0.0)
           for s in decoder.decode(topic, payload, 1)}
    assert got == pytest.approx(values)
    assert {t for t, _ in sim.messages(0.0)} == {
        "tele/cab/SENSOR", "zigbee2mqtt/smoke-7", "node/sensor/pm25/state", "lab/x"}


@pytest.mark.servers
async def test_an_agent_reads_a_noisy_serial_device_and_reports_bad_frames_in_its_status(
        cfg: ConfigSet, tmp_path: Path, mqtt_url: str, simdevice: Any) -> None:
    tty = tmp_path / "tty0"
    base = cfg.agents["edge-dongyuan"]
    assert isinstance(base.source, SerialSettings)
    spec = dataclasses.replace(
        base, id=f"edge-serial-{uuid.uuid4().hex[:8]}",
        source=base.source.model_copy(update={"port": str(tty)}),
        settings=base.settings.model_copy(update={"status_interval": timedelta(seconds=0.2)}))
    device = simdevice("--link", str(tty), "--interval", "0.05", "--garbage", "0.5",
                       "--seed", "3")
    assert await asyncio.to_thread(started, device, tty)
    source = SerialFrameSource(spec.source, agent_id=spec.id)
    agent = EdgeAgent(spec, source, broker_url=mqtt_url)
    address = BrokerAddress.parse(mqtt_url)
    seen: list[AgentStatus] = []
    stop = asyncio.Event()
    async with aiomqtt.Client(address.host, address.port) as client:
        await client.subscribe(topics.status_topic(spec.id), qos=1)

        async def collect() -> None:
            async for msg in client.messages:
                if isinstance(msg.payload, bytes) and msg.payload:
                    seen.append(msgspec.json.decode(msg.payload, type=AgentStatus))

        collecting = asyncio.create_task(collect())
        running = asyncio.create_task(agent.run(stop))

        def noisy_and_reading() -> bool:
            c = seen[-1].source_counters if seen else {}
            return (c.get("frames", 0) >= 30 and c.get("garbage_bytes", 0) > 0
                    and c.get("bad_truncated", 0) + c.get("bad_crc", 0) > 0)

        assert await wait_until(noisy_and_reading)
        stop.set()
        await running
        collecting.cancel()
        await client.publish(topics.status_topic(spec.id), b"", retain=True)  # tidy up
    c = source.stats()
    assert agent.counters.readings_sent > 0
    # every frame the device sent after the agent opened the port arrived: none was lost to
    # the noise (a gap in sequence numbers would count missed_frames)
    assert c["missed_frames"] == 0
    assert c["unknown_device"] == c["unmapped_channel"] == 0
    assert set(seen[-1].sensor_health) == {s.id for s in spec.sensors}


@pytest.mark.servers
async def test_an_agent_keeps_reading_after_its_device_is_unplugged_and_plugged_back(
        cfg: ConfigSet, tmp_path: Path, mqtt_url: str, simdevice: Any) -> None:
    """The device process goes away (its pty and link with it, as a USB unplug does) and a
    new one appears at the same path: the same agent, never restarted, reads it again.
    (How the new device's sequence numbers are counted depends on how many frames it sent
    before the port was reopened; tests/test_serial_source.py pins that down.)"""
    tty = tmp_path / "tty0"
    base = cfg.agents["edge-dongyuan"]
    assert isinstance(base.source, SerialSettings)
    spec = dataclasses.replace(
        base, id=f"edge-replug-{uuid.uuid4().hex[:8]}",
        source=base.source.model_copy(update={"port": str(tty),
                                              "reconnect_max": timedelta(seconds=0.2)}))
    source = SerialFrameSource(spec.source, agent_id=spec.id)
    agent = EdgeAgent(spec, source, broker_url=mqtt_url)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    first = simdevice("--link", str(tty), "--interval", "0.05")
    assert await asyncio.to_thread(started, first, tty)
    assert await wait_until(lambda: source.stats()["frames"] >= 10)
    first.send_signal(signal.SIGTERM)  # unplugged
    await asyncio.to_thread(first.wait, 20)
    assert await wait_until(lambda: source.stats()["disconnects"] == 1)
    sent_while_unplugged = agent.counters.readings_sent
    second = simdevice("--link", str(tty), "--interval", "0.05")  # plugged back in
    assert await asyncio.to_thread(started, second, tty)
    assert await wait_until(lambda: source.stats()["reconnects"] == 1)
    frames_before = source.stats()["frames"]
    assert await wait_until(lambda: source.stats()["frames"] >= frames_before + 10)
    assert await wait_until(lambda: agent.counters.readings_sent > sent_while_unplugged)
    assert not running.done()
    stop.set()
    await running
    c = source.stats()
    assert c["opens"] == 2
    assert c["unknown_device"] == c["unmapped_channel"] == 0
    address = BrokerAddress.parse(mqtt_url)
    async with aiomqtt.Client(address.host, address.port) as client:
        await client.publish(topics.status_topic(spec.id), b"", retain=True)  # tidy up
