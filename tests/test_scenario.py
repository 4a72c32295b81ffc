"""Scenario files: what a file says becomes a resolved, frozen scenario, and every
mistake in one is reported at once with its file, line and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridcall.config import SAMPLE_DISTRICT
from gridcall.simulators.clock import SimClock
from gridcall.simulators.scenario import PACKAGED, ScenarioError, load_scenario, parse_offset

GOOD = """\
name: leak
config: {config}
seed: 3
start: 2026-01-05T00:00:00+08:00
duration: 7d
sensors: [dongyuan-g3-gas-*]
timeline:
  - at: 10:30
    action: {{unit: dongyuan-g3, do: acknowledge, matter: GAS-LEAK, grid: dongyuan-g3}}
  - at: "00:10"
    anomaly: {{sensor: dongyuan-g3-gas-1, to: 2x, over: 5m, lasts: 40m}}
  - at: 150:00
    agent_offline: {{agent: edge-dongyuan, for: 10m}}
  - at: 3d
    weather: {{rain: 40, for: 2h}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_scenario_file_resolves_to_absolute_times_and_values(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, GOOD.format(config=SAMPLE_DISTRICT)))
    start = 1767542400  # 2026-01-05 00:00 in China = 2026-01-04 16:00 UTC
    assert s.start_ns == start * 10**9
    assert s.duration_s == 7 * 86400
    assert s.sensors == ("dongyuan-g3-gas-1", "dongyuan-g3-gas-2")
    assert s.agent_ids == ("edge-dongyuan",)
    (leak,) = s.injections
    limit = s.config.sensors["dongyuan-g3-gas-1"].limits.alarm_high
    assert limit is not None
    assert (leak.start, leak.duration, leak.shape) == (start + 600, 2400, "ramp")
    assert (leak.target, leak.ramp_s) == (2 * limit, 300)
    assert leak.label == "ramp on dongyuan-g3-gas-1"
    (ack,) = s.actions
    assert ack.at_ns == (start + 10 * 3600 + 30 * 60) * 10**9  # "10:30" unquoted: 10 h 30
    assert ack.where == "s.yaml:8"
    (outage,) = s.outages
    assert (outage.at_ns, outage.duration_s) == ((start + 150 * 3600) * 10**9, 600)
    (rain,) = s.weather
    assert (rain.at_ns, rain.rain_mm_h, rain.duration_s) == ((start + 3 * 86400) * 10**9,
                                                             40, 7200)


def test_every_problem_is_reported_with_line_and_key_path(tmp_path: Path) -> None:
    text = """\
config: huangpu
duration: 1h
sensors: [dongyuan-g3-gas-1, nope-*]
timeline:
  - at: "00:10"
    anomaly: {sensor: dongyuan-g3-gas-9, to: 2x}
  - at: "02:00"
    agent_offline: {agent: edge-dongyan, for: 10m}
  - at: "00:20"
    action: {unit: dongyuan-g3, do: arrive, matter: GAS-LEEK}
  - at: "00:30"
    anomaly: {sensor: dongyuan-g1-smoke-1, to: 2x}
"""
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, text))
    assert [str(p) for p in caught.value.problems] == [
        "s.yaml:3: sensors[1]: the pattern 'nope-*' matches no sensor",
        "s.yaml:6: timeline[0].anomaly.sensor: unknown sensor 'dongyuan-g3-gas-9' "
        "(did you mean 'dongyuan-g3-gas-2'?)",
        "s.yaml:10: timeline[2].action.matter: unknown matter 'GAS-LEEK' "
        "(did you mean 'GAS-LEAK'?)",
        "s.yaml:12: timeline[3].anomaly.sensor: 'dongyuan-g1-smoke-1' is not among the "
        "scenario's sensors: add it to 'sensors:'",
        "s.yaml:7: timeline[1].at: 02:00:00 lies after the scenario's end (duration "
        "01:00:00)",
        "s.yaml:8: timeline[1].agent_offline.agent: unknown agent 'edge-dongyan' "
        "(did you mean 'edge-dongyuan'?)",
    ]


def test_shape_errors_name_the_key(tmp_path: Path) -> None:
    text = """\
config: huangpu
duration: 1h
sensorz: [x]
timeline:
  - at: "00:10"
    anomaly: {sensor: dongyuan-g3-gas-1, to: 2y}
  - at: "00:30"
    action: {unit: dongyuan-g3, do: acknowledge, matter: GAS-LEAK}
    weather: {rain: 3, for: 1h}
  - at: soon
    action: {unit: dongyuan-g3, do: escalate, grid: dongyuan-g3}
"""
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, text))
    text_of = {p.path: (p.line, p.reason) for p in caught.value.problems}
    assert text_of["sensorz"] == (3, "unknown key 'sensorz' (did you mean 'sensors'?)")
    assert text_of["timeline[0].anomaly.to"][0] == 6
    assert "'2y' is neither a number nor a multiple" in text_of["timeline[0].anomaly.to"][1]
    assert text_of["timeline[1]"][0] == 7
    assert "exactly one of" in text_of["timeline[1]"][1]
    assert "'soon' is not an offset" in text_of["timeline[2].at"][1]
    assert "needs a 'reason'" in text_of["timeline[2].action"][1]


def test_a_config_that_is_not_there_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"s.yaml:1: config: 'nowhere' is neither a "
                       r"folder .* nor a packaged sample \(huangpu, pumping-station\)"):
        load_scenario(write(tmp_path, "config: nowhere\nduration: 1h\n"))


def test_a_relative_path_that_is_not_there_says_where_it_was_looked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An integrator's ``sim_district("../district")`` run from another folder than they
    thought said only "no such file: ../district"."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError) as refused:
        load_scenario("../district")
    text = str(refused.value)
    assert "no config folder or scenario file ../district" in text
    assert f"({tmp_path / '..' / 'district'}: a relative path starts from the folder" in text


def test_a_config_folder_is_found_relative_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "district").symlink_to(SAMPLE_DISTRICT)
    s = load_scenario(write(tmp_path, "config: district\nduration: 30m\n"))
    assert s.config.directory == tmp_path / "district"
    assert s.sensors is None
    assert s.sensor_ids == tuple(s.config.sensors)


def test_the_packaged_scenarios_load_by_name() -> None:
    names = sorted(p.stem for p in PACKAGED.glob("*.yaml"))
    assert {"gas-leak-spreads", "quiet-week"} <= set(names)
    for name in names:
        scenario = load_scenario(name)
        assert scenario.name == name
        assert scenario.injections, f"{name} injects nothing"


@pytest.mark.parametrize(("text", "seconds"), [
    ("00:10", 600), ("10:30", 37800), ("01:00:05", 3605), ("150:00", 540000),
    ("90s", 90), ("2h30m", 9000), (45, 45)])
def test_offsets(text: str | int, seconds: float) -> None:
    assert parse_offset(text).total_seconds() == seconds


def test_the_simulated_clock_only_moves_forward() -> None:
    clock = SimClock(1_000)
    assert clock() == 1_000
    assert clock.advance(1.5) == 1_500_001_000
    assert clock.advance_to(2_000_000_000) == clock() == 2_000_000_000
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance_to(1)
    with pytest.raises(ValueError, match="seconds >= 0"):
        clock.advance(-1)


def test_a_timeline_runs_on_an_integrators_own_config_set() -> None:
    from gridcall.config import load_config
    from gridcall.simulators.scenario import scenario_from_data

    own = load_config(Path(__file__).parent / "integrator" / "district")
    scenario = scenario_from_data({"config": "huangpu", "duration": "1h", "timeline": [
        {"at": "00:10", "anomaly": {"sensor": "dongyuan-g3-gas-1", "to": "2x"}}]},
        config=own)
    assert scenario.config is own
    # a shipped timeline whose action names a matter this catalog lacks is reported
    with pytest.raises(ScenarioError, match=r"gas-leak-spreads.yaml:\d+: timeline\[2\]"
                                            r".action.matter: unknown matter 'GAS-LEAK'"):
        load_scenario("gas-leak-spreads", config=own)
