"""The ``gridcall`` command: one entry point for technicians, command centres and developers.

This package is the composition root: it may import every package; nothing below it
imports it. Each subcommand group has its own module (``config``, ``demo``, ``detect``,
``hub`` with ``report``, ``handover``, ``ingest``, ``tokens``, ``silence`` and ``deadletter``,
``edge``, ``boards``, ``sim``); what
they share (consoles, loading a config set, the environment check, running until a
signal, the logging set-up) is :mod:`gridcall.cli.common`, which imports none of them.
This module builds the app from them; none of them imports it back.
"""

from __future__ import annotations

from typing import Annotated

import typer

from gridcall import __version__
from gridcall.cli.boards import boards_app
from gridcall.cli.broker import broker_app
from gridcall.cli.common import Command, Group
from gridcall.cli.config import config_app
from gridcall.cli.deadletter import deadletter_app
from gridcall.cli.demo import demo
from gridcall.cli.detect import detect
from gridcall.cli.edge import edge_app
from gridcall.cli.handover import hub_handover
from gridcall.cli.hub import hub_app
from gridcall.cli.ingest import hub_ingest
from gridcall.cli.report import hub_report
from gridcall.cli.silence import silence_app
from gridcall.cli.sim import sim_app
from gridcall.cli.tokens import token_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="gridcall",
    help="IoT sensing and alerts for grid-based governance: edge agents, hub, demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=Group,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gridcall {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", help="Print the installed version and exit.", is_eager=True,
        callback=_print_version)] = False,
) -> None:
    """IoT sensing and alerts for grid-based governance: edge agents, hub, demo."""


app.command("demo", cls=Command)(demo)
app.command("detect", cls=Command)(detect)
app.add_typer(config_app, name="config")
app.add_typer(hub_app, name="hub")
hub_app.command("report", cls=Command)(hub_report)
hub_app.command("handover", cls=Command)(hub_handover)
hub_app.add_typer(token_app, name="token")
hub_app.add_typer(silence_app, name="silence")
hub_app.command("ingest", cls=Command)(hub_ingest)
hub_app.add_typer(deadletter_app, name="deadletter")
app.add_typer(edge_app, name="edge")
app.add_typer(boards_app, name="boards")
app.add_typer(broker_app, name="broker")
app.add_typer(sim_app, name="sim")


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="gridcall")
