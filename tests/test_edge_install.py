"""The edge install (``pip install gridcall``, without the ``[hub]`` extra): the agent's
path imports none of the hub's libraries, and a hub command run on such an install says
in one line what to install instead of a traceback.

The hub's libraries are read from pyproject.toml's ``[hub]`` extra and hidden from a
child interpreter (an import hook refuses them as a missing package would be), so the
test sees what an edge box sees even though the test environment has everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

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
