"""The edge install (``pip install gridcall``, without the ``[hub]`` extra): the agent's
path imports none of the hub's libraries, and a hub command run on such an install says
in one line what to install instead of a traceback, and ``edge check`` passes with the
simulated devices (serial and Modbus RTU) against the real mosquitto.

The hub's libraries are read from pyproject.toml's ``[hub]`` extra and hidden from a
child interpreter (an import hook refuses them as a missing package would be), so the
test sees what an edge box sees even though the test environment has everything.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _hub_modules() -> set[str]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    wanted = set()
    for req in extras["hub"]:
        name = req.split(";")[0]
        for stop in "<>=!~[ ":
            name = name.split(stop)[0]
        wanted.add(name.lower().replace("_", "-"))
    return {module for module, dists in packages_distributions().items()
            if any(d.lower().replace("_", "-") in wanted for d in dists)
            and not module.startswith("_")}


HUB_MODULES = _hub_modules()

PRELUDE = """
import importlib.abc, sys
HIDDEN = set(sys.argv.pop(1).split(','))
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Hide())
"""


def run_edge_only(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", PRELUDE + code, ",".join(sorted(HUB_MODULES)),
                           *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120, check=False)


def test_the_hub_extra_names_the_hubs_libraries() -> None:
    for module in ("fastapi", "uvicorn", "amqtt", "numpy"):
        assert module in HUB_MODULES


def test_the_agents_path_imports_no_hub_library() -> None:
    code = ("import gridcall.cli, gridcall.edge_agent.agent, gridcall.edge_agent.source_factory,"
            " gridcall.simulators.devices, gridcall.edge_agent.modbus_source,"
            " gridcall.edge_agent.serial_source, gridcall.edge_agent.local_mqtt\n"
            "print('imported')")
    done = run_edge_only(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"


CLI = "import sys; from gridcall.cli import app; app(prog_name='gridcall', args=sys.argv[1:])"


@pytest.mark.parametrize("args", [["--help"], ["edge", "check", "--help"],
                                  ["config", "check", "config/examples/huangpu"]])
def test_edge_commands_run(args: list[str]) -> None:
    done = run_edge_only(CLI, *args)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("args", "command"), [
    (["hub", "run"], "gridcall hub run"),
    (["demo", "--duration", "5"], "gridcall demo"),
    (["hub", "ingest"], "gridcall hub ingest"),
])
def test_a_hub_command_says_what_to_install(args: list[str], command: str) -> None:
    done = run_edge_only(CLI, *args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"✗ {command} needs ")
    assert lines[0].endswith("pip install 'gridcall[hub]'")


@pytest.mark.servers
@pytest.mark.parametrize(("agent", "mode"), [("edge-dongyuan", ()),
                                             ("edge-huangpu-cun", ("--modbus",))])
def test_edge_check_passes_on_the_edge_install_with_the_simulated_devices(
        tmp_path: Path, mqtt_url: str, agent: str, mode: tuple[str, ...]) -> None:
    """Issue 19's done-when, 'a fresh venv with the edge install passes gridcall edge check
    with the simulated devices', as CI can check it: the simulated devices and ``edge
    check`` both run with the hub's libraries hidden, against the real mosquitto."""
    link = tmp_path / "device"
    district = tmp_path / "district"
    shutil.copytree(ROOT / "config" / "examples" / "huangpu", district)
    agents = district / "agents.yaml"
    data = yaml.safe_load(agents.read_text(encoding="utf-8"))
    data["defaults"].update(broker={"url": mqtt_url}, state_dir=str(tmp_path / "state"))
    for spec in data["agents"]:
        if spec["id"] == agent:
            spec["source"]["port"] = str(link)
    agents.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                      encoding="utf-8")
    device = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + "import runpy; runpy.run_module("
         "'gridcall.simulators.devices', run_name='__main__', alter_sys=True)",
         ",".join(sorted(HUB_MODULES)), *mode, "--config", str(district), "--agent", agent,
         "--link", str(link)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert device.stdout is not None
        said = [device.stdout.readline() for _ in range(2)]  # its agent, then where it is
        assert f" at {link}" in said[1], said
        done = run_edge_only(CLI, "edge", "check", "--config", str(district), "--agent", agent,
                             "--wait", "10")
    finally:
        device.send_signal(signal.SIGTERM)
        device.wait(timeout=20)
    assert done.returncode == 0, done.stdout + done.stderr
    kind = "modbus" if mode else "serial"
    row = next(line for line in done.stdout.splitlines() if f"source ({kind})" in line)
    assert "PASS" in row, done.stdout
    assert "read 3 values" in row, done.stdout
    assert "✓ ready" in done.stdout
