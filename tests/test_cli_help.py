"""The command as a new user first meets it: ``--version``, and a help for every command
that describes every option and argument without typer's ``<bool>``/``<str>`` type
placeholders."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gridcall.cli import app

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"<(bool|str|path|file|int|float|[a-z]+ range)>")


def commands() -> Iterator[tuple[list[str], Any]]:
    """Every command and group of the app, as (words after ``gridcall``, click command)."""

    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        if hasattr(command, "list_commands"):
            ctx = typer.Context(command)
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), [*path, name])

    yield from walk(typer.main.get_command(app), [])


ALL = list(commands())


def test_version_is_the_installed_one() -> None:
    done = subprocess.run([sys.executable, "-m", "gridcall", "--version"], cwd=ROOT,
                          capture_output=True, text=True, check=False,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"gridcall {version('gridcall')}"


def test_every_command_is_walked() -> None:
    names = {" ".join(path) for path, _ in ALL}
    assert {"demo", "detect", "config check", "hub run", "hub report", "hub ingest",
            "hub token issue", "edge run", "edge check", "boards build", "sim run",
            "sim replay"} <= names


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) or "gridcall" for p, _ in ALL])
def test_help_describes_every_option_without_placeholders(path: list[str], command: Any
                                                          ) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="gridcall",
                                env={"COLUMNS": "160", "NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    assert not PLACEHOLDER.findall(result.output), result.output
    undescribed = [param.name for param in command.params if not (param.help or "").strip()]
    assert not undescribed, f"gridcall {' '.join(path)}: no help for {undescribed}"


@pytest.mark.parametrize(("path", "command"), ALL[1:], ids=[" ".join(p) for p, _ in ALL[1:]])
def test_each_command_is_one_line_in_its_groups_list(path: list[str], command: Any) -> None:
    """The list of a group's commands shows each one's first paragraph: one short line,
    the details after a blank line."""
    first = " ".join((command.help or "").strip().split("\n\n")[0].split())
    assert first, f"gridcall {' '.join(path)} has no help"
    assert len(first) <= 90, f"gridcall {' '.join(path)}: {first!r}"


def test_hub_run_api_help_names_the_tls_setting_it_serves_https_with() -> None:
    """The API serves HTTPS itself with ``api.tls`` (issue 16); the option's help must not
    send an operator to a proxy as the only way."""
    run = CliRunner().invoke(app, ["hub", "run", "--help"], env={"COLUMNS": "200"})
    assert run.exit_code == 0, run.output
    help_text = " ".join(run.output.split())
    assert "api.tls" in help_text
