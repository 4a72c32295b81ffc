"""Config sets load into frozen, cross-checked objects, and every mistake is named precisely."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gridcall.cli import app
from gridcall.config import SAMPLE_DISTRICT, ConfigError, load_config
from gridcall.config.loader import MAX_YAML_BYTES
from gridcall.simulators.scenario import ScenarioError, load_scenario


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    target = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, target)
    return target


def edit(path: Path, change: object) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(directory)
    return [str(p) for p in info.value.problems]


def test_sample_district_is_the_size_the_demo_promises() -> None:
    cfg = load_config(SAMPLE_DISTRICT)
    assert len(cfg.units_at("town")) >= 2
    assert len(cfg.units_at("community")) >= 6
    assert len(cfg.units_at("grid")) >= 24
    assert len(cfg.sensors) >= 100
    assert len({s.kind for s in cfg.sensors.values()}) >= 6
    assert len(cfg.agents) >= 8
    assert {m.base_tier for m in cfg.matters.matters} == {"A", "B", "C", "D"}
    assert {m.type for m in cfg.matters.matters} == {"patrol", "emergency", "daily"}


def test_sensor_inherits_its_kind_defaults_and_its_place_on_the_ladder() -> None:
    cfg = load_config(SAMPLE_DISTRICT)
    gas = next(s for s in cfg.sensors.values() if s.kind == "gas")
    assert gas.limits.alarm_high == 20
    assert gas.unit_of_measure == "%LEL"
    assert gas.interval_s == 2.0
    district, town, community, grid = gas.path
    assert (district, grid) == ("huangpu", gas.grid)
    assert cfg.units[grid].parent == community
    assert cfg.units[community].parent == town
    assert gas in cfg.agents[gas.agent].sensors


def test_matter_lookup_prefers_the_sensor_kind_over_the_wildcard() -> None:
    cfg = load_config(SAMPLE_DISTRICT)
    assert cfg.matter_for("gas", "out_of_limits").code == "GAS-LEAK"  # type: ignore[union-attr]
    assert cfg.matter_for("gas", "stuck").code == "SENSOR-FAULT"  # type: ignore[union-attr]
    assert cfg.matter_for("gas", "no-such-kind") is None


def test_unknown_key_and_dangling_grid_are_both_named_with_file_line_and_path(
    sample: Path,
) -> None:
    def typo(data: dict) -> None:  # type: ignore[type-arg]
        data["sensors"][3]["gird"] = data["sensors"][3]["grid"]

    def dangling(data: dict) -> None:  # type: ignore[type-arg]
        data["agents"][1]["grid"] = "no-such-grid"

    edit(sample / "sensors.yaml", typo)
    edit(sample / "agents.yaml", dangling)
    found = problems_of(sample)
    assert any(
        p.startswith("sensors.yaml:") and "sensors[3].gird" in p and "unknown key 'gird'" in p
        and "did you mean 'grid'" in p for p in found
    ), found
    assert any(
        p.startswith("agents.yaml:") and "agents[1].grid" in p and "'no-such-grid'" in p
        for p in found
    ), found


def test_line_numbers_point_at_the_offending_key(sample: Path) -> None:
    path = sample / "matters.yaml"
    text = path.read_text(encoding="utf-8").replace("lead: fire_safety,", "lead: fire_safty,", 1)
    path.write_text(text, encoding="utf-8")
    (problem,) = problems_of(sample)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "fire_safty" in t)
    assert problem.startswith(f"matters.yaml:{line}: matters[0].departments.lead:")
    assert "unknown department 'fire_safty' (did you mean 'fire_safety'?)" in problem


def test_a_sensor_listed_by_an_agent_must_name_that_agent(sample: Path) -> None:
    def claim(data: dict) -> None:  # type: ignore[type-arg]
        data["agents"][0]["sensors"] = ["dongyuan-g1-smoke-1", "jiufo-g1-noise-1", "ghost"]

    edit(sample / "agents.yaml", claim)
    found = problems_of(sample)
    assert any("agents[0].sensors[1]" in p and "names agent 'edge-jiufo'" in p for p in found)
    assert any("agents[0].sensors[2]" in p and "unknown sensor 'ghost'" in p for p in found)


def test_bad_values_are_explained(sample: Path) -> None:
    def bad(data: dict) -> None:  # type: ignore[type-arg]
        data["default_deadlines"]["daily"]["response"] = "soon"
        data["matters"][1]["base_tier"] = "E"
        data["matters"][2]["deadlines"] = {"response": "2h", "arrival": "1h", "disposal": "3h"}

    edit(sample / "matters.yaml", bad)
    found = "\n".join(problems_of(sample))
    assert "default_deadlines.daily.response: 'soon' is not a duration" in found
    assert "matters[1].base_tier: Input should be 'A', 'B', 'C' or 'D'" in found
    assert "matters[2].deadlines: deadlines must satisfy response <= arrival <= disposal" in found


def test_broken_yaml_and_missing_files_are_reported_not_raised(sample: Path) -> None:
    (sample / "sensors.yaml").write_text("kinds: {gas: [unclosed\n", encoding="utf-8")
    (sample / "agents.yaml").unlink()
    found = problems_of(sample)
    assert any(p.startswith("sensors.yaml:") and "not valid YAML" in p for p in found)
    assert any(p.startswith("agents.yaml") and "file missing" in p for p in found)


BOMB = "".join(f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
               for a, b in zip("abcdefgh", "bcdefghi", strict=True))


@pytest.mark.parametrize(("make", "why"), [
    # nine levels of nine aliases: 387 million values, gigabytes and minutes to walk
    (lambda p: p.write_text("a: &a [x, x, x, x, x, x, x, x, x]\n" + BOMB, encoding="utf-8"),
     "more than 2,000,000 values once its aliases (*name) are expanded"),
    (lambda p: p.symlink_to("/dev/zero"), "is not a regular file"),  # read until no memory
    (os.mkfifo, "is not a regular file"),  # waited on for ever
    (lambda p: p.mkdir(), "cannot read: Is a directory"),  # a traceback
    (lambda p: p.write_bytes(b"hub: {client_id: \"\xff\"}\n"), "is not UTF-8 text (byte 18"),
    (lambda p: (p.touch(), os.truncate(p, MAX_YAML_BYTES + 1)),  # sparse: cheap
     "is larger than a config file may be (64 MiB)"),
])
def test_a_config_file_that_would_exhaust_or_hang_the_loader_is_one_problem(
        sample: Path, make: Callable[[Path], object], why: str) -> None:
    hub = sample / "hub.yaml"
    hub.unlink()
    make(hub)
    found = problems_of(sample)
    assert len(found) == 1, found
    assert found[0].startswith("hub.yaml:")
    assert why in found[0]


def test_a_file_given_for_the_config_folder_says_to_give_its_folder(sample: Path) -> None:
    """``edge check --config`` takes a file in the set; the other commands said only "is
    not a folder" for ``-c /etc/gridcall/agents.yaml``."""
    assert problems_of(sample / "agents.yaml") == [
        f"{sample / 'agents.yaml'}: (top level): is a file, not a config set's folder: give "
        f"its folder ({sample})"]
    assert problems_of(sample / "nowhere") == [
        f"{sample / 'nowhere'}: (top level): is not a folder (no such folder)"]


def test_a_scenario_nested_past_pythons_recursion_limit_is_a_problem(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: x\nconfig: huangpu\ntimeline: " + "[" * 5000 + "]" * 5000,
                    encoding="utf-8")
    with pytest.raises(ScenarioError) as refused:
        load_scenario(deep)
    assert "nested deeper than the parser goes" in str(refused.value)
    assert "not valid YAML" not in str(refused.value)  # it was not read as YAML at all


@pytest.mark.parametrize("name", ["topology.yaml", "sensors.yaml", "agents.yaml",
                                  "matters.yaml", "hub.yaml", "notify.yaml"])
def test_a_yaml_syntax_error_is_one_problem_not_blamed_on_the_files_that_use_it(
        sample: Path, name: str) -> None:
    """A broken sensors.yaml or topology.yaml used to bring a dozen problems about
    agents.yaml's source maps naming sensors 'not of this agent' along with it."""
    with (sample / name).open("a", encoding="utf-8") as f:
        f.write("oops: : [\n")
    found = problems_of(sample)
    assert len(found) == 1, found
    assert found[0].startswith(f"{name}:")
    assert "not valid YAML" in found[0]


def test_two_matters_cannot_claim_the_same_anomaly(sample: Path) -> None:
    def clash(data: dict) -> None:  # type: ignore[type-arg]
        data["matters"][1]["triggers"] = [{"sensor_kinds": ["gas"]}]

    edit(sample / "matters.yaml", clash)
    found = problems_of(sample)
    assert any("already claimed by matter 'GAS-LEAK'" in p for p in found)


def test_cli_check_exits_nonzero_without_a_traceback(sample: Path) -> None:
    def typo(data: dict) -> None:  # type: ignore[type-arg]
        data["sensors"][0]["grid"] = "nowhere"
        data["kinds"]["gas"]["colour"] = "red"

    edit(sample / "sensors.yaml", typo)
    result = CliRunner().invoke(app, ["config", "check", str(sample)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "sensors[0].grid: unknown grid 'nowhere'" in result.output
    assert "kinds.gas.colour: unknown key 'colour'" in result.output


def test_cli_check_passes_the_sample() -> None:
    result = CliRunner().invoke(app, ["config", "check", str(SAMPLE_DISTRICT)])
    assert result.exit_code == 0, result.output
    # rich wraps at the terminal's width, and the line starts with the folder's path
    assert "27 grids" in " ".join(result.output.split())


def test_a_typo_does_not_hide_a_dangling_reference_in_the_same_file(sample: Path) -> None:
    def both(data: dict) -> None:  # type: ignore[type-arg]
        data["sensors"][5]["colour"] = "red"
        data["sensors"][7]["grid"] = "no-such-grid"

    edit(sample / "sensors.yaml", both)
    found = problems_of(sample)
    assert any("sensors[5].colour: unknown key 'colour'" in p for p in found), found
    assert any("sensors[7].grid: unknown grid 'no-such-grid'" in p for p in found), found


def test_hub_run_refuses_to_start_when_a_credential_variable_is_not_set(
    sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRIDCALL_NO_SUCH_PASSWORD", raising=False)

    def secret(data: dict) -> None:  # type: ignore[type-arg]
        data["hub"]["broker"]["username_env"] = "HOME"  # set: not reported
        data["hub"]["broker"]["password_env"] = "GRIDCALL_NO_SUCH_PASSWORD"

    edit(sample / "hub.yaml", secret)
    result = CliRunner().invoke(app, ["hub", "run", "--config", str(sample)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"{sample / 'hub.yaml'}: 1 environment variable(s) not set" in result.output
    assert "hub.broker.password_env: GRIDCALL_NO_SUCH_PASSWORD is named in the config but " \
           "not set" in result.output


def test_a_broken_matter_does_not_hide_a_bad_department_in_a_later_one(sample: Path) -> None:
    def two_mistakes(data: dict) -> None:  # type: ignore[type-arg]
        data["matters"][1]["base_tier"] = "E"
        data["matters"][4]["departments"]["lead"] = "fire_brigade"

    edit(sample / "matters.yaml", two_mistakes)
    found = problems_of(sample)
    assert len(found) == 2, found
    assert any("matters[1].base_tier:" in p for p in found)
    # reported at its place in the file as written, not in the salvaged list
    assert any("matters[4].departments.lead: unknown department 'fire_brigade'" in p
               for p in found)


def test_a_sensor_with_a_missing_key_is_reported_once_not_again_where_an_agent_lists_it(
    sample: Path,
) -> None:
    sensors = yaml.safe_load((sample / "sensors.yaml").read_text(encoding="utf-8"))
    broken = sensors["sensors"][7]

    def drop_grid(data: dict) -> None:  # type: ignore[type-arg]
        del data["sensors"][7]["grid"]
        data["sensors"][9]["kind"] = "gass"

    def list_it(data: dict) -> None:  # type: ignore[type-arg]
        agent = next(a for a in data["agents"] if a["id"] == broken["agent"])
        agent["sensors"] = [broken["id"]]

    edit(sample / "sensors.yaml", drop_grid)
    edit(sample / "agents.yaml", list_it)
    found = problems_of(sample)
    assert any("sensors[7].grid: missing required key 'grid'" in p for p in found)
    assert any("sensors[9].kind: unknown sensor kind 'gass' (did you mean 'gas'?)" in p
               for p in found)
    assert not any(broken["id"] in p for p in found), found


def test_a_key_given_twice_is_refused_with_both_lines(sample: Path) -> None:
    path = sample / "matters.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("    base_tier: A\n", "    base_tier: A\n    base_tier: D\n", 1)
    path.write_text(text, encoding="utf-8")
    first = text.splitlines().index("    base_tier: A") + 1
    assert problems_of(sample) == [
        f"matters.yaml:{first + 1}: matters[0].base_tier: duplicate key "
        f"(first given on line {first})"]


def test_an_unknown_detector_on_a_kind_is_reported_once_for_the_kind(sample: Path) -> None:
    def unknown(data: dict) -> None:  # type: ignore[type-arg]
        data["kinds"]["gas"]["detector"] = {"name": "magic"}

    edit(sample / "sensors.yaml", unknown)
    with pytest.raises(ConfigError) as info:
        load_config(sample, known_detectors={"default", "limits"})
    assert [p.path for p in info.value.problems] == ["kinds.gas.detector.name"]


@pytest.mark.parametrize(("detector", "reason"), [
    ({"name": "default", "params": {"warmpu": 200}},
     "kinds.gas.detector.params: unknown parameter 'warmpu' for detector 'default' "
     "(did you mean 'warmup'?)"),
    ({"name": "default", "params": {"warmup": "abc"}},
     "kinds.gas.detector.params: detector 'default' does not run with params "
     "{'warmup': 'abc'"),
    ({"name": "mahalanobis"},
     "kinds.gas.detector.params: 'mahalanobis' is a multivariate detector; it cannot watch "
     "one sensor"),
])
def test_detector_settings_that_would_crash_the_agent_are_config_problems(
    sample: Path, detector: dict, reason: str  # type: ignore[type-arg]
) -> None:
    def settings(data: dict) -> None:  # type: ignore[type-arg]
        data["kinds"]["gas"]["detector"] = detector

    edit(sample / "sensors.yaml", settings)
    result = CliRunner().invoke(app, ["config", "check", str(sample)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "1 problem(s)" in result.output
    assert reason in result.output


def test_an_agent_may_not_be_set_to_send_batches_the_hub_refuses(sample: Path) -> None:
    """hub.max_batch_readings refuses longer batches whole (issue 16): an agent set to
    send longer ones is a config problem, named where it is set."""
    edit(sample / "hub.yaml", lambda d: d["hub"].update(max_batch_readings=40))
    found = problems_of(sample)
    assert len(found) == 1
    assert "agents.yaml" in found[0]
    assert "defaults.batch_max_readings" in found[0]
    assert "agents send up to 500 readings a batch" in found[0]
    edit(sample / "agents.yaml", lambda d: d["defaults"].update(batch_max_readings=40))
    assert load_config(sample).hub.max_batch_readings == 40
