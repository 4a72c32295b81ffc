"""A non-editable install ships what the kit needs: every non-Python file inside the
packages (the scenario library, the sample config the scenarios name, the board's
assets) is matched by pyproject's package data, so ``gridcall sim list`` and
``gridcall sim run gas-leak-spreads`` work from a wheel. (Checked by hand from a wheel
in a throwaway venv; this guards the globs.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_data_file_in_a_package_is_package_data() -> None:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = tool["package-data"]
    packages = [p.rstrip("*") for p in tool["packages"]["find"]["include"]]
    unshipped = []
    for package in packages:
        base = ROOT / package
        shipped = {m for g in globs.get(package, []) for m in base.glob(g)}
        for f in base.rglob("*"):
            if (not f.is_file() or f.suffix in (".py", ".pyc") or "__pycache__" in f.parts
                    or f.name == "py.typed"):
                continue
            if f not in shipped:
                unshipped.append(str(f.relative_to(ROOT)))
    assert unshipped == []


def test_the_library_and_the_sample_config_are_inside_the_packages() -> None:
    from gridcall.config import SAMPLE_DISTRICT
    from gridcall.simulators.scenario import PACKAGED

    assert PACKAGED.is_relative_to(ROOT / "simulators")
    assert SAMPLE_DISTRICT.is_relative_to(ROOT / "config")
    assert len(list(PACKAGED.glob("*.yaml"))) >= 8
    assert (SAMPLE_DISTRICT / "matters.yaml").is_file()
