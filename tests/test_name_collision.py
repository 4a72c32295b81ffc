"""gridcall installed next to a user's own code: a project with its own ``config.py``,
``hub.py``, ``wire.py`` and ``detectors/`` (names most apps have) imports gridcall, runs
``gridcall demo --help`` and a test with the ``sim_district`` fixture. Before every
module moved under ``gridcall.``, the first failed with ``cannot import name
'SAMPLE_DISTRICT' from 'config'`` and the last with ``cannot import name 'ConfigSet' from
'config'``.

Each step runs in a subprocess whose working directory is the user's project (so its
modules come first on ``sys.path``), without the repository on ``sys.path``: gridcall is
found as installed, or (a worktree run on PYTHONPATH) through a folder holding only a
link to the package under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import gridcall
from tests.conftest import GRIDCALL_PLUGIN_INSTALLED

PACKAGE = Path(gridcall.__file__).resolve().parent

USER_FILES = {
    "config.py": 'APP_NAME = "myapp"\nDATABASE_URL = "sqlite:///myapp.db"\n',
    "hub.py": "def connect() -> str:\n    return 'the app hub'\n",
    "wire.py": "def transfer(amount: int) -> int:\n    return amount\n",
    "detectors/__init__.py": "REGISTRY = {'motion': object}\n",
    "detectors/motion.py": "THRESHOLD = 3\n",
}

USER_TEST = '''
import pytest

import config
import detectors
import hub

pytestmark = pytest.mark.asyncio


async def test_our_modules_and_gridcalls_side_by_side(sim_district):
    assert config.APP_NAME == "myapp" and hub.connect() == "the app hub"
    assert list(detectors.REGISTRY) == ["motion"]
    district = await sim_district("gas-leak-spreads")
    alert = await district.expect_alert(matter="GAS-LEAK", within="20m")
    assert alert.grid == "dongyuan-g3"
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "myapp"
    for name, text in USER_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "test_app.py").write_text(USER_TEST, encoding="utf-8")
    return root


def environment(tmp_path: Path) -> dict[str, str]:
    """No PYTHONPATH to the repository; if the gridcall under test is not the installed
    one (a worktree), a folder with only a ``gridcall`` link to it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    probe = subprocess.run([sys.executable, "-c", "import gridcall; print(gridcall.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    installed = probe.returncode == 0 and Path(probe.stdout.strip()).resolve().parent == PACKAGE
    if not installed:
        site = tmp_path / "site"
        site.mkdir()
        (site / "gridcall").symlink_to(PACKAGE, target_is_directory=True)
        env["PYTHONPATH"] = str(site)
    return env


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, env={**env, "COLUMNS": "120"},
                          capture_output=True, text=True, check=False, timeout=240)


def test_the_users_own_modules_do_not_shadow_gridcalls(project: Path, tmp_path: Path) -> None:
    env = environment(tmp_path)
    repo = str(PACKAGE.parent)
    where = run(["-c", "import sys, config, gridcall\n"
                       "from gridcall import cli\n"
                       "from gridcall.config import SAMPLE_DISTRICT\n"
                       "print(config.__file__)\nprint(gridcall.__file__)\n"
                       "print(SAMPLE_DISTRICT.is_dir())\n"
                       f"print(any(p.rstrip('/') == {repo!r} for p in sys.path))"],
                project, env)
    assert where.returncode == 0, where.stderr
    user_config, package, sample, repo_on_path = where.stdout.split()
    assert Path(user_config) == project / "config.py"  # the user's config is theirs
    assert Path(package).resolve().parent == PACKAGE  # and gridcall the one under test
    assert sample == "True"
    assert repo_on_path == "False"

    demo = run(["-m", "gridcall", "demo", "--help"], project, env)
    assert demo.returncode == 0, demo.stderr
    assert "Run the whole pipeline on the sample district" in demo.stdout


def test_a_sim_district_test_runs_in_the_users_project(project: Path, tmp_path: Path) -> None:
    env = environment(tmp_path)
    plugin = [] if GRIDCALL_PLUGIN_INSTALLED else ["-p", "gridcall.testing.plugin"]
    done = run(["-m", "pytest", *plugin, "-p", "no:cacheprovider", "-q", "test_app.py"],
               project, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
