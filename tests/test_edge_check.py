"""``gridcall edge check``: a technician learns in one run whether the box is ready, and what
to fix when it is not. Against the real mosquitto (anonymous and password-protected)."""

from __future__ import annotations

import asyncio
import inspect
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import serial
import yaml
from typer.testing import CliRunner, Result

from gridcall.cli import app
from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.firmware_bridge.pty import PtyPort
from gridcall.wire.broker import BrokerAddress
from tests.servers import Login, unused_tcp_port

WIDE = {"COLUMNS": "400"}  # one table row per line, so phrases are not wrapped apart


@pytest.fixture
def district(tmp_path: Path, mqtt_url: str) -> Path:
    """The sample district, its agents pointed at the test broker and a private state dir."""
    target = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, target)
    edit_agents(target, lambda d: d["defaults"].update(
        broker={"url": mqtt_url}, state_dir=str(tmp_path / "state")))
    return target


def edit_agents(directory: Path, change: Callable[[dict[str, Any]], object]) -> None:
    path = directory / "agents.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def set_source(directory: Path, agent: str, source: Any) -> None:
    def change(data: dict[str, Any]) -> None:
        for a in data["agents"]:
            if a["id"] == agent:
                a["source"] = source
    edit_agents(directory, change)


def check(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, ["edge", "check", *args, "--timeout", "5", "--wait", "3"],
                              env={**WIDE, **(env or {})})


def row(result: Result, name: str) -> str:
    """The table line of one check (its first line)."""
    for line in result.output.splitlines():
        if line.startswith(f"│ {name} "):
            return line
    raise AssertionError(f"no {name!r} row in:\n{result.output}")


def test_a_ready_box_passes_every_check_and_exits_0(district: Path) -> None:
    result = check("--config", str(district), "--agent", "edge-dasha-dong")
    assert result.exit_code == 0, result.output
    for name in ("config", "agent", "credentials", "source (simulated)",
                 "uplink broker", "state dir"):
        assert "PASS" in row(result, name), result.output
    assert "FAIL" not in result.output
    assert "│ serial ports " not in result.output  # a simulated agent reads no serial port
    assert "read 3 values" in row(result, "source (simulated)")
    assert "✓ ready" in result.output


def test_config_may_name_agents_yaml_itself(district: Path) -> None:
    result = check("--config", str(district / "agents.yaml"), "--agent", "edge-anle")
    assert result.exit_code == 0, result.output
    assert f"{district}: 9 agents" in row(result, "config")


def test_an_unreachable_broker_fails_with_what_to_check(district: Path) -> None:
    result = check("--config", str(district), "--agent", "edge-dasha-dong",
                   "--broker", f"mqtt://127.0.0.1:{unused_tcp_port()}")
    assert result.exit_code == 1
    line = row(result, "uplink broker")
    assert "FAIL" in line
    assert "unreachable" in line
    assert "check the network" in line
    assert "1 check(s) failed: uplink broker" in result.output
    assert "--broker URL" not in result.output  # it was given


def test_without_a_broker_the_last_line_says_what_to_add(district: Path) -> None:
    port = unused_tcp_port()
    edit_agents(district, lambda d: d["defaults"].update(broker={
        "url": f"mqtt://127.0.0.1:{port}"}))
    result = check("--config", str(district), "--agent", "edge-dasha-dong")
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("✗ 1 check(s) failed: uplink broker")
    assert f"no broker at mqtt://127.0.0.1:{port}" in last
    assert "add --broker URL" in last


def test_refused_credentials_are_reported_as_a_refused_login_not_an_outage(
        district: Path, mqtt_auth: Login) -> None:
    edit_agents(district, lambda d: d["defaults"].update(broker={
        "url": mqtt_auth.url, "username_env": "EDGE_USER", "password_env": "EDGE_PW"}))
    result = check("--config", str(district), "--agent", "edge-dasha-dong",
                   env={"EDGE_USER": mqtt_auth.username, "EDGE_PW": "wrong-password"})
    assert result.exit_code == 1
    line = row(result, "uplink broker")
    assert "FAIL" in line
    assert f"refused user {mqtt_auth.username!r}" in line
    assert "check the login in EDGE_USER / EDGE_PW" in line
    assert "unreachable" not in line

    right = check("--config", str(district), "--agent", "edge-dasha-dong",
                  env={"EDGE_USER": mqtt_auth.username, "EDGE_PW": mqtt_auth.password})
    assert right.exit_code == 0, right.output
    assert f"logged in as {mqtt_auth.username!r}" in row(right, "uplink broker")


def test_an_unset_credential_variable_fails_naming_it(district: Path) -> None:
    edit_agents(district, lambda d: d["defaults"]["broker"].update(
        username_env="EDGE_CHECK_UNSET_USER"))
    result = check("--config", str(district), "--agent", "edge-dasha-dong",
                   env={"EDGE_CHECK_UNSET_USER": None})
    assert result.exit_code == 1
    assert "EDGE_CHECK_UNSET_USER" in row(result, "credentials")
    assert "FAIL" in row(result, "credentials")


def test_a_broken_config_or_unknown_agent_fails(district: Path) -> None:
    unknown = check("--config", str(district), "--agent", "edge-nowhere")
    assert unknown.exit_code == 1
    assert "no agent 'edge-nowhere'" in row(unknown, "agent")
    assert "edge-dasha-dong" in unknown.output  # the known ones are listed

    edit_agents(district, lambda d: d["agents"][0].update(gird="x"))
    broken = check("--config", str(district), "--agent", "edge-dasha-dong")
    assert broken.exit_code == 1
    assert "FAIL" in row(broken, "config")
    assert "unknown key 'gird'" in broken.output
    assert "gridcall config check" in broken.output


def test_a_state_dir_that_cannot_be_created_fails(district: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    edit_agents(district, lambda d: d["defaults"].update(state_dir=str(blocker / "state")))
    result = check("--config", str(district), "--agent", "edge-dasha-dong")
    assert result.exit_code == 1
    assert "cannot write" in row(result, "state dir")


# --- an agent reading a local MQTT bus ---------------------------------------------------

async def publish(url: str, messages: list[tuple[str, bytes]], *, retain: bool) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port)) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1, retain=retain)


JIUFO = sorted(s.id for s in load_config(SAMPLE_DISTRICT).agents["edge-jiufo"].sensors)


def possible(sensor: str) -> bytes:
    """A value within the sensor's kind's physical range (smoke: 0-10 dB/m; the others'
    ranges hold 35)."""
    return b"0.5" if "-smoke-" in sensor else b"35"


def esphome_source(url: str, node: str) -> dict[str, Any]:
    """Every sensor of edge-jiufo as an ESPHome sensor of one node: ``<node>/sensor/<id>``."""
    return {"type": "mqtt", "broker": {"url": url}, "map": [
        {"preset": "esphome", "device": node, "fields": {sensor: sensor for sensor in JIUFO}}]}


def test_an_mqtt_source_passes_when_its_devices_have_published(
        district: Path, mqtt_url: str) -> None:
    node = f"node-{uuid.uuid4().hex[:8]}"
    set_source(district, "edge-jiufo", esphome_source(mqtt_url, node))
    values = {sensor: possible(sensor) for sensor in JIUFO} | {"jiufo-g1-manholetilt-1": b"1.5"}
    state = [(f"{node}/sensor/{sensor}/state", value) for sensor, value in values.items()]
    asyncio.run(publish(mqtt_url, state, retain=True))
    try:
        result = check("--config", str(district), "--agent", "edge-jiufo")
    finally:
        asyncio.run(publish(mqtt_url, [(t, b"") for t, _ in state], retain=True))
    assert result.exit_code == 0, result.output
    assert "PASS" in row(result, "local MQTT broker")
    line = row(result, "source (mqtt)")
    assert "PASS" in line
    assert f"read {len(JIUFO)} values" in line
    assert "jiufo-g1-manholetilt-1=1.5" in line


def test_an_mqtt_source_whose_payloads_cannot_be_read_fails(
        district: Path, mqtt_url: str) -> None:
    node = f"node-{uuid.uuid4().hex[:8]}"
    set_source(district, "edge-jiufo", esphome_source(mqtt_url, node))
    topic = f"{node}/sensor/jiufo-g1-noise-1/state"
    asyncio.run(publish(mqtt_url, [(topic, b"loud")], retain=True))
    try:
        result = check("--config", str(district), "--agent", "edge-jiufo")
    finally:
        asyncio.run(publish(mqtt_url, [(topic, b"")], retain=True))
    assert result.exit_code == 1
    line = row(result, "source (mqtt)")
    assert "none could be read: 1 non_numeric" in line


def test_a_value_outside_its_kinds_physical_range_is_flagged_not_passed(
        district: Path, mqtt_url: str) -> None:
    """As the Modbus and serial checks: 35 dB/m from a smoke sensor (0-10) is what the
    agent would never publish."""
    node = f"node-{uuid.uuid4().hex[:8]}"
    set_source(district, "edge-jiufo", esphome_source(mqtt_url, node))
    values = {sensor: possible(sensor) for sensor in JIUFO} | {"jiufo-g2-smoke-1": b"35"}
    state = [(f"{node}/sensor/{sensor}/state", value) for sensor, value in values.items()]
    asyncio.run(publish(mqtt_url, state, retain=True))
    try:
        result = check("--config", str(district), "--agent", "edge-jiufo")
    finally:
        asyncio.run(publish(mqtt_url, [(t, b"") for t, _ in state], retain=True))
    assert result.exit_code == 0, result.output  # a warning
    line = row(result, "source (mqtt)")
    assert "WARN" in line
    assert ("not published: jiufo-g2-smoke-1 read 35, outside its kind's physical range "
            "0..10") in line


# Tasmota BME280 with its default units, beside a DS18B20 and a BH1750:
# tele/Wetterstation2023/SENSOR in https://github.com/home-assistant/core/issues/98699
# (tests/test_local_mqtt_devices.py and tests/data/device_vectors.yaml have it too).
TASMOTA_BME280_HPA = (b'{"Time":"2023-08-20T11:09:47","DS18B20":{"Id":"3CE10457A8F9",'
                      b'"Temperature":27.9},"BME280":{"Temperature":27.8,"Humidity":54.5,'
                      b'"DewPoint":17.8,"Pressure":1018.0},"BH1750":{"Illuminance":171},'
                      b'"PressureUnit":"hPa","TempUnit":"C"}')


def test_a_value_in_a_unit_its_sensor_cannot_take_fails(
        district: Path, mqtt_url: str) -> None:
    """The BME280's pressure mapped to the °C temperature sensor (the wrong field): the
    payload says hPa, which is no temperature, so that sensor would never report."""
    node = f"node-{uuid.uuid4().hex[:8]}"
    cabinet = f"cabinet-{uuid.uuid4().hex[:8]}"
    source = esphome_source(mqtt_url, node)
    source["map"][0]["fields"].pop("jiufo-g3-temperature-1")
    source["map"].append({"preset": "tasmota", "device": cabinet,
                          "fields": {"BME280.Pressure": "jiufo-g3-temperature-1"}})
    set_source(district, "edge-jiufo", source)
    state = [(f"{node}/sensor/{sensor}/state", possible(sensor)) for sensor in JIUFO
             if sensor != "jiufo-g3-temperature-1"]
    state.append((f"tele/{cabinet}/SENSOR", TASMOTA_BME280_HPA))
    asyncio.run(publish(mqtt_url, state, retain=True))
    try:
        result = check("--config", str(district), "--agent", "edge-jiufo")
    finally:
        asyncio.run(publish(mqtt_url, [(t, b"") for t, _ in state], retain=True))
    assert result.exit_code == 1, result.output
    line = row(result, "source (mqtt)")
    assert "FAIL" in line
    assert f"refused for their unit (never published): tele/{cabinet}/SENSOR:" in line
    assert "'hPa'" in line


def test_a_device_that_says_it_is_offline_fails_the_availability_row(
        district: Path, mqtt_url: str) -> None:
    """ESPHome's retained will "offline" on <node>/status (esphome.io/components/mqtt)."""
    node = f"node-{uuid.uuid4().hex[:8]}"
    set_source(district, "edge-jiufo", esphome_source(mqtt_url, node))
    state = [(f"{node}/sensor/{sensor}/state", possible(sensor)) for sensor in JIUFO]
    state.append((f"{node}/status", b"offline"))
    asyncio.run(publish(mqtt_url, state, retain=True))
    try:
        result = check("--config", str(district), "--agent", "edge-jiufo")
    finally:
        asyncio.run(publish(mqtt_url, [(t, b"") for t, _ in state], retain=True))
    assert result.exit_code == 1, result.output
    line = row(result, "availability")
    assert "FAIL" in line
    assert f"{node}/status" in line
    assert "PASS" in row(result, "source (mqtt)")


def test_a_silent_mqtt_source_warns_and_an_absent_local_broker_fails(
        district: Path, mqtt_url: str) -> None:
    set_source(district, "edge-jiufo", esphome_source(mqtt_url, f"quiet-{uuid.uuid4().hex}"))
    quiet = check("--config", str(district), "--agent", "edge-jiufo")
    assert quiet.exit_code == 0, quiet.output  # a warning is not a failure
    assert "WARN" in row(quiet, "source (mqtt)")
    assert "no message on" in row(quiet, "source (mqtt)")

    set_source(district, "edge-jiufo",
               esphome_source(f"mqtt://127.0.0.1:{unused_tcp_port()}", "n"))
    absent = check("--config", str(district), "--agent", "edge-jiufo")
    assert absent.exit_code == 1
    assert "unreachable" in row(absent, "local MQTT broker")
    assert "sudo systemctl start mosquitto" in row(absent, "local MQTT broker")
    assert "--local-broker" in row(absent, "local MQTT broker")


def test_local_broker_reads_the_sensors_from_another_broker_than_agents_yaml_names(
        district: Path, mqtt_url: str) -> None:
    """The sample's edge-jiufo expects mosquitto on the box itself; a rehearsal elsewhere
    points the check at another broker without editing agents.yaml."""
    node = f"node-{uuid.uuid4().hex[:8]}"
    set_source(district, "edge-jiufo",
               esphome_source(f"mqtt://127.0.0.1:{unused_tcp_port()}", node))
    state = [(f"{node}/sensor/{sensor}/state", possible(sensor)) for sensor in JIUFO]
    asyncio.run(publish(mqtt_url, state, retain=True))
    try:
        result = check("--config", str(district), "--agent", "edge-jiufo",
                       "--local-broker", mqtt_url)
    finally:
        asyncio.run(publish(mqtt_url, [(t, b"") for t, _ in state], retain=True))
    assert result.exit_code == 0, result.output
    assert f"{BrokerAddress.parse(mqtt_url)}: connected" in row(result, "local MQTT broker")
    assert f"read {len(JIUFO)} values" in row(result, "source (mqtt)")


# --- serial and Modbus agents -----------------------------------------------------------

def test_a_missing_serial_device_fails_naming_the_port(district: Path, tmp_path: Path) -> None:
    port = tmp_path / "ttyUSB-unplugged"

    def unplug(data: dict[str, Any]) -> None:
        serial = next(a for a in data["agents"] if a["id"] == "edge-dongyuan")
        assert serial["source"]["type"] == "serial"
        serial["source"]["port"] = str(port)
    edit_agents(district, unplug)
    result = check("--config", str(district), "--agent", "edge-dongyuan")
    assert result.exit_code == 1
    line = row(result, "serial port")
    assert "FAIL" in line
    assert f"missing serial device {port}" in line
    assert "/dev/serial/by-id/" in line
    assert "source (serial)" not in result.output  # nothing to read from a missing port
    assert "PASS" in row(result, "uplink broker")  # the other checks still ran
    row(result, "serial ports")  # a serial agent lists the box's serial ports


@pytest.mark.parametrize(("agent", "kind"), [("edge-dongyuan", "serial"),
                                             ("edge-huangpu-cun", "modbus")])
def test_a_port_held_by_the_running_service_fails_saying_so_and_what_to_do(
        district: Path, tmp_path: Path, agent: str, kind: str) -> None:
    """The agent's service opens its port exclusively (pyserial for frames, pymodbus for
    Modbus); a check run beside it must not say "no value" (which sends a technician to
    the wiring) but that the port is taken."""
    with PtyPort(tmp_path / "ttyUSB-busy") as port:
        edit_agents(district, lambda d: next(
            a for a in d["agents"] if a["id"] == agent)["source"].update(port=str(port.link)))
        with serial.Serial(str(port.link), exclusive=True):  # as the running agent holds it
            result = check("--config", str(district), "--agent", agent)
    assert result.exit_code == 1, result.output
    line = row(result, f"source ({kind})")
    assert "FAIL" in line
    assert f"cannot open {port.link}" in line
    assert "lock" in line  # pyserial's own reason
    assert "systemctl stop gridcall-edge" in line
    assert "no value" not in line


# --- the systemd unit -------------------------------------------------------------------

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "systemd" / "gridcall-edge.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Everything but ExecStart's binary, which exists only on an installed Pi."""
    text = UNIT.read_text(encoding="utf-8")
    assert "/opt/gridcall/venv/bin/gridcall edge run" in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/opt/gridcall/venv/bin/gridcall", shutil.which("true")
                                 or "/bin/true"), encoding="utf-8")
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_the_unit_gives_the_agent_longer_to_stop_than_its_flush_takes() -> None:
    """systemd's SIGKILL must not cut the agent's final flush short."""
    from gridcall.edge_agent.agent import EdgeAgent

    drain = inspect.signature(EdgeAgent.run).parameters["drain_timeout"].default
    stop = re.search(r"^TimeoutStopSec=(\d+)s$", UNIT.read_text(encoding="utf-8"), re.M)
    assert stop is not None
    assert int(stop.group(1)) >= drain + 10


def test_a_relative_state_dir_is_a_warning_not_a_failure(
        district: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    edit_agents(district, lambda d: d["defaults"].update(state_dir="var/agent"))
    result = check("--config", str(district), "--agent", "edge-dasha-dong")
    assert result.exit_code == 0, result.output
    line = row(result, "state dir")
    assert "WARN" in line
    assert f"{tmp_path / 'var' / 'agent'}: writable" in line
    assert "give an absolute state_dir" in line
