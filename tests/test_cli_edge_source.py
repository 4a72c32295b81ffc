"""What ``gridcall edge run`` says it reads, and reading an MQTT agent's sensors from
another broker (``--local-broker``, as ``edge check`` takes it), so a rehearsal without the
box's own mosquitto can run the agent as well as check it."""

from __future__ import annotations

import dataclasses

from typer.testing import CliRunner

from gridcall.cli import app
from gridcall.cli.common import load_config_set
from gridcall.cli.edge import describe_source, with_local_broker
from gridcall.config import SAMPLE_DISTRICT
from gridcall.config.sources import ModbusSettings, Register

CFG = load_config_set(SAMPLE_DISTRICT)


def test_a_modbus_tcp_source_names_its_devices_and_one_sensor_is_singular() -> None:
    rtu = CFG.agents["edge-huangpu-cun"]
    assert describe_source(rtu) == ("modbus source at /tmp/gridcall-modbus0, "
                                    f"{len(rtu.sensors)} sensors")
    tcp = ModbusSettings(type="modbus", transport="tcp", host="10.0.0.5", registers=(
        Register(sensor=rtu.sensors[0].id, slave=1, address=0),
        Register(sensor=rtu.sensors[0].id, slave=1, address=2, host="10.0.0.6",
                 tcp_port=4001)))
    one = dataclasses.replace(rtu, source=tcp, sensors=rtu.sensors[:1])
    assert describe_source(one) == ("modbus source at tcp://10.0.0.5:502, "
                                    "tcp://10.0.0.6:4001, 1 sensor")


def test_local_broker_moves_an_mqtt_source_and_refuses_another_kind() -> None:
    jiufo = CFG.agents["edge-jiufo"]
    moved = with_local_broker(jiufo, "mqtt://127.0.0.1:18831")
    assert describe_source(moved).startswith("mqtt source on mqtt://127.0.0.1:18831, ")
    assert moved.sensors == jiufo.sensors
    result = CliRunner().invoke(app, ["edge", "run", "--agent", "edge-dongyuan",
                                      "--local-broker", "mqtt://127.0.0.1:18831"],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "--local-broker is for an agent whose source is mqtt" in result.output
    assert "edge-dongyuan's is serial" in result.output
