"""What every ``gridcall`` subcommand shares: the consoles, loading a config set, the
environment check, running until a signal, the one logging set-up, and the help's look.

The leaf of :mod:`gridcall.cli`: the subcommand modules import it, it imports none of
them (nor the package's ``__init__``, which builds the app from them).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from gridcall.config import ConfigError, ConfigSet, load_config

out = Console()
err = Console(stderr=True)

ConfigDir = Annotated[Path, typer.Option("--config", "-c", metavar="DIR",
                                         help="Config set folder.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v",
                                       help="Log at debug level, every library included.")]

_METAVARS = {"str": "TEXT", "path": "PATH", "int": "N", "float": "NUMBER"}


def _plain_metavars(params: list[Any], ctx: Any) -> None:
    """typer writes a value's type as ``<str>``, ``<path>``, ``<float range>`` and a
    flag as ``<bool>`` in the help; flags need no placeholder and values get a plain
    word, unless the option names its own (``URL``, ``DIR``, ``SECONDS``...)."""
    for param in params:
        if isinstance(param, TyperArgument):  # its name (FILE, UNIT...) says enough
            setattr(param, "display_type_rich", _no_type)  # noqa: B010
            continue
        if not isinstance(param, TyperOption) or param.metavar is not None:
            continue
        if param.is_flag:
            param.metavar = ""
            continue
        label = param.display_type(ctx).strip("<>")
        param.metavar = _METAVARS.get(label.removesuffix(" range"), label.upper())


def _no_type(ctx: Any) -> None:
    return None


class Command(TyperCommand):
    """A command whose help has no ``<bool>``/``<str>`` placeholders."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _plain_metavars(params, ctx)
        return params


class Group(TyperGroup):
    """A command group whose help has no ``<bool>`` placeholders."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _plain_metavars(params, ctx)
        return params


def typer_app(help: str) -> typer.Typer:
    """A subcommand group as every group of the CLI is made."""
    return typer.Typer(help=help, no_args_is_help=True, cls=Group)


def setup_logging(verbose: bool, *, quiet: int = logging.WARNING) -> None:
    """The one logging set-up of every command: ``quiet`` (WARNING, or ERROR for
    commands whose output is a table) unless ``--verbose``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else quiet,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pymodbus logs every unanswered request at ERROR with a frame dump: a dead slave polled
    # every 5 s would write 17,000 of them a day. The Modbus source counts them instead and
    # logs the first of each reason; -v shows pymodbus's own lines.
    logging.getLogger("pymodbus").setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    # amqtt (the embedded broker) reports each client's coming and going at INFO
    logging.getLogger("amqtt").setLevel(logging.DEBUG if verbose else logging.WARNING)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``✗ message`` on stderr; the exit to raise."""
    err.print(f"[red]✗ {escape(message)}[/]", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_config_set(directory: Path) -> ConfigSet:
    """The config set in ``directory``, checked against the detectors this build has;
    every problem printed with file, line, key path and reason, then exit 1."""
    from gridcall.detectors import REGISTRY
    from gridcall.edge_agent.watch import detector_problem

    try:
        return load_config(directory, known_detectors=set(REGISTRY),
                           check_detector=detector_problem)
    except ConfigError as exc:
        err.print(f"[bold red]✗ {escape(str(directory))}: {len(exc.problems)} problem(s)[/]",
                  soft_wrap=True)
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def require_env(file: Path, unset: list[str]) -> None:
    """Refuse to start when the config names credential variables that are not set."""
    if unset:
        err.print(f"[bold red]✗ {escape(str(file))}: {len(unset)} environment variable(s) "
                  "not set[/]", soft_wrap=True)
        for item in unset:
            err.print(f"  {item} is named in the config but not set in the environment",
                      markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)


def until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` in a new event loop; SIGINT and SIGTERM set ``stop``."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())
