"""An agent's serial or Modbus source is checked like the rest of the config: every mistake
names the agent (or the line), the key path and what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridcall.config import SAMPLE_DISTRICT, ConfigError, load_config
from gridcall.config.sources import ModbusSettings, SerialSettings, SimulatedSettings


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    target = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, target)
    return target


def edit_agents(directory: Path, change: Any) -> None:
    path = directory / "agents.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change({a["id"]: a for a in data["agents"]})
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(directory)
    return [str(p) for p in info.value.problems]


def test_the_sample_has_one_serial_and_one_modbus_agent_reading_all_their_sensors() -> None:
    cfg = load_config(SAMPLE_DISTRICT)
    serial = cfg.agents["edge-dongyuan"]
    modbus = cfg.agents["edge-huangpu-cun"]
    assert isinstance(serial.source, SerialSettings)
    assert isinstance(modbus.source, ModbusSettings)
    channels = {s for d in serial.source.devices for s in d.channels.values()}
    assert channels == {s.id for s in serial.sensors}
    assert {r.sensor for r in modbus.source.registers} == {s.id for s in modbus.sensors}
    assert isinstance(cfg.agents["edge-anle"].source, SimulatedSettings)


def test_a_bare_source_name_still_means_simulated_and_the_others_need_settings(
        sample: Path) -> None:
    def bare(agents: dict[str, Any]) -> None:
        agents["edge-dongyuan"]["source"] = "serial"
        agents["edge-anle"]["source"] = "simulated"
        agents["edge-jiufo"]["source"] = "zigbee"

    edit_agents(sample, bare)
    problems = problems_of(sample)
    assert len(problems) == 2
    assert "agents[0].source: source 'serial' needs its settings" in problems[0]
    assert "agents[8].source: unknown source 'zigbee'" in problems[1]


def test_an_unknown_data_type_and_a_misspelt_key_name_the_key_path_and_line(
        sample: Path) -> None:
    def broken(agents: dict[str, Any]) -> None:
        regs = agents["edge-huangpu-cun"]["source"]["registers"]
        regs[1]["type"] = "float64"
        regs[2]["scael"] = 0.1

    edit_agents(sample, broken)
    problems = problems_of(sample)
    assert len(problems) == 2, problems
    # the union's tag ("modbus") is not part of the path a technician reads
    assert problems[0].startswith("agents.yaml:")
    assert "agents[1].source.registers[1].type: Input should be 'int16', 'uint16'" in problems[0]
    assert ("agents[1].source.registers[2].scael: unknown key 'scael' (did you mean 'scale'?)"
            in problems[1])


def test_overlapping_registers_name_the_agent_both_registers_and_the_range(
        sample: Path) -> None:
    def overlap(agents: dict[str, Any]) -> None:
        regs = agents["edge-huangpu-cun"]["source"]["registers"]
        regs[1]["address"] = 1  # a float32 at 0-1 and another at 1-2

    edit_agents(sample, overlap)
    [problem] = problems_of(sample)
    assert "agents[1].source.registers[1].address: agent 'edge-huangpu-cun': " in problem
    assert ("slave 1 holding 1-2 (float32) overlaps registers[0] (huangpu-cun-g1-waterlevel-1:"
            " slave 1 holding 0-1 (float32))") in problem


def test_registers_in_different_tables_or_slaves_may_share_an_address(sample: Path) -> None:
    def same_address(agents: dict[str, Any]) -> None:
        regs = agents["edge-huangpu-cun"]["source"]["registers"]
        regs[1].update(address=0, table="input")
        regs[2].update(address=0, slave=9)

    edit_agents(sample, same_address)
    assert load_config(sample).agents["edge-huangpu-cun"].source.type == "modbus"


def test_a_channel_mapped_to_an_unknown_or_foreign_sensor_is_an_error(sample: Path) -> None:
    def wrong(agents: dict[str, Any]) -> None:
        channels = agents["edge-dongyuan"]["source"]["devices"][0]["channels"]
        channels[0] = "dongyuan-g1-smok-1"  # typo
        channels[1] = "anle-g1-rain-1"  # another agent's sensor

    edit_agents(sample, wrong)
    problems = problems_of(sample)
    assert any("agents[0].source.devices[0].channels.0: agent 'edge-dongyuan': unknown sensor "
               "'dongyuan-g1-smok-1' (did you mean 'dongyuan-g1-smoke-1'?)" in p
               for p in problems), problems
    assert any("agents[0].source.devices[0].channels.1: agent 'edge-dongyuan': sensor "
               "'anle-g1-rain-1' names agent 'edge-anle' in sensors.yaml" in p
               for p in problems), problems
    # the two sensors those channels used to read now have no channel at all
    assert any("its sensor 'dongyuan-g1-smoke-1' is read by no channel" in p for p in problems)
    assert any("its sensor 'dongyuan-g1-waterleak-1' is read by no channel" in p
               for p in problems)


def test_a_sensor_read_twice_and_a_device_id_given_twice_are_errors(sample: Path) -> None:
    def twice(agents: dict[str, Any]) -> None:
        devices = agents["edge-dongyuan"]["source"]["devices"]
        devices[1]["id"] = devices[0]["id"]
        devices[1]["channels"][9] = devices[0]["channels"][0]

    edit_agents(sample, twice)
    problems = problems_of(sample)
    assert len(problems) == 2, problems
    assert ("agents[0].source.devices[1].channels.9: agent 'edge-dongyuan': sensor "
            "'dongyuan-g1-smoke-1' is already read at source.devices[0].channels.0"
            in problems[0])
    assert ("agents[0].source.devices[1].id: agent 'edge-dongyuan': device id 101 is already "
            "given at source.devices[0]" in problems[1])


def test_out_of_range_values_are_refused_by_the_models() -> None:
    with pytest.raises(ValueError, match="less than or equal to 255"):
        ModbusSettings.model_validate({"type": "modbus", "port": "/dev/ttyUSB0",
                                     "registers": [{"sensor": "a", "address": 0, "slave": 256}]})
    with pytest.raises(ValueError, match="less than or equal to 255"):
        SerialSettings.model_validate({"type": "serial", "port": "/dev/ttyACM0",
                                     "devices": [{"id": 1, "channels": {256: "a"}}]})


def test_every_source_type_but_simulated_has_one_registered_kind() -> None:
    """A new source is its settings model and one module with its KIND, registered once
    (docs/architecture.md's recipe: nothing else, not even an agent in the sample)."""
    import importlib

    from gridcall.config.sources import SOURCE_TYPES
    from gridcall.edge_agent.source_factory import SOURCES, SourceKind, kind_of

    assert set(SOURCE_TYPES) - {"simulated"} == set(SOURCES)
    for name, module in SOURCES.items():
        kind = importlib.import_module(module).KIND
        assert isinstance(kind, SourceKind)
        assert kind.settings.model_fields["type"].annotation.__args__ == (name,)
    cfg = load_config(SAMPLE_DISTRICT)
    kinds = {a.source.type: kind_of(a.source) for a in cfg.agents.values()}
    assert set(kinds) == {"simulated", "serial", "modbus", "mqtt"}  # the sample's agents
    for name, kind in kinds.items():
        if name == "simulated":
            assert kind is None  # the composition root supplies simulated sources
        else:
            assert kind is not None
            assert kind.settings.model_fields["type"].annotation.__args__ == (name,)
