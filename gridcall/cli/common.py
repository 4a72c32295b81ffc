"""What every ``gridcall`` subcommand shares: the consoles, loading a config set, the
environment check, running until a signal, the one logging set-up, and the help's look.

The leaf of :mod:`gridcall.cli`: the subcommand modules import it, it imports none of
them (nor the package's ``__init__``, which builds the app from them).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from gridcall.config import ConfigError, ConfigSet, load_config
from gridcall.wire.logtext import LOG_FORMAT, PrintableFormatter

if TYPE_CHECKING:
    from gridcall.hub.store import DeskStore

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
            if param.metavar is None and param.name:  # typer writes it as {name}
                param.metavar = param.name.upper()
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
    """A command group whose help has no ``<bool>`` placeholders, and whose commands say
    in one line what to install when a library they need is missing (:func:`missing`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _plain_metavars(params, ctx)
        return params

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ImportError as exc:
            line = missing(exc, ctx)
            if line is None:
                raise
            raise fail(line) from None


def missing(exc: ImportError, ctx: Any) -> str | None:
    """The one line for a command that needs a library this install lacks (the edge
    install has none of the hub's), or None if ``exc`` is a bug of gridcall's own (a
    missing gridcall module, an import cycle) whose traceback must show."""
    from gridcall.detectors import HUB_EXTRA_HINT, MissingDependency

    if isinstance(exc, MissingDependency):
        return str(exc)
    name = getattr(exc, "name", None)
    if not isinstance(exc, ModuleNotFoundError) or not name or name.startswith("gridcall"):
        return None
    command = ctx.command_path if ctx.invoked_subcommand is None else (
        f"{ctx.command_path} {ctx.invoked_subcommand}")
    # the innermost group reports it: its path names the whole command
    return (f"{command} needs {name.split('.')[0]}, which this install lacks (the edge "
            f"install has none of the hub's parts): {HUB_EXTRA_HINT}")


def typer_app(help: str) -> typer.Typer:
    """A subcommand group as every group of the CLI is made."""
    return typer.Typer(help=help, no_args_is_help=True, cls=Group)


def setup_logging(verbose: bool, *, quiet: int = logging.WARNING) -> None:
    """The one logging set-up of every command: ``quiet`` (WARNING, or ERROR for
    commands whose output is a table) unless ``--verbose``."""
    # Every line through PrintableFormatter: what a device or a client sent (a topic, an
    # agent id, a payload's fragment) cannot end the line and forge another, nor write
    # escape sequences to the terminal (gridcall/wire/logtext.py).
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter(LOG_FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else quiet, handlers=[handler])
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


def desk_store_of(config_dir: Path, store: Path | None) -> Path | str:
    """Where a command reads the desk's ledgers: ``--store`` (a SQLite file), else the
    config's ``hub.desk_store`` (the PostgreSQL URL in its variable), else
    ``hub.store_path``. Exits 2 if the variable is unset, 1 if the SQLite file is not
    there."""
    if store is None:
        hub = load_config_set(config_dir).hub
        if hub.desk_store is not None:
            try:
                return hub.desk_store.url()
            except KeyError as exc:
                raise fail(f"{config_dir / 'hub.yaml'}: hub.desk_store: {exc.args[0]}",
                           2) from None
        store = Path(hub.store_path)
        if not store.exists() and not store.is_absolute():
            raise fail(f"no hub store at {store.resolve()}: hub.store_path {store} is "
                       "relative, so it is taken from the folder this command runs in: run "
                       "it in the hub's working directory, give --store FILE, or make the "
                       "path absolute in hub.yaml", 1)
    if not store.exists():
        raise fail(f"no hub store at {store.resolve()}: run the hub first, or give --store",
                   1)
    return store


def store_name(where: Path | str) -> str:
    """``where`` (:func:`desk_store_of`) for a message: the file's absolute path, or the
    database's URL without its password."""
    if isinstance(where, Path):
        return str(where.resolve())
    parts = urlsplit(where)
    if parts.password is None:
        return where
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@",
                                                                 ":***@", 1)))


def open_desk_store(where: Path | str) -> contextlib.AbstractAsyncContextManager[DeskStore]:
    """The desk store at ``where`` (:func:`desk_store_of`): PostgreSQL for a URL, else
    the SQLite file."""
    if isinstance(where, str) and where.startswith(("postgresql://", "postgres://")):
        from gridcall.hub.pgstore import PgStore

        return PgStore(where)
    from gridcall.hub.store import Store

    return Store(where)


def require_env(file: Path, unset: list[str]) -> None:
    """Refuse to start when the config names credential variables that are not set."""
    if unset:
        err.print(f"[bold red]✗ {escape(str(file))}: {len(unset)} environment variable(s) "
                  "not set[/]", soft_wrap=True)
        for item in unset:
            err.print(f"  {item} is named in the config but not set in the environment",
                      markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)


STOP_GRACE_S = 40.0
"""Seconds a command has, after the first SIGINT/SIGTERM, to stop cleanly (unless it says
otherwise: the hub's is its drain timeout plus 30 s). The edge agent's 30 s flush fits,
and the edge systemd unit's ``TimeoutStopSec=45s`` is longer, so the agent's own log line,
not a SIGKILL, says when a stop was cut short."""
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def until_signal(main: Callable[[asyncio.Event], Awaitable[None]], *,
                 grace: float = STOP_GRACE_S) -> None:
    """Run ``main(stop)`` in a new event loop; SIGINT and SIGTERM set ``stop``.

    Stopping is bounded whatever ``main`` and its sources are doing: ``grace`` seconds
    after the first signal, or at a second one, the process exits at once with status 1,
    saying why in the log (after the grace, with every thread's stack, to show what held
    it). A thread does the counting, so a blocked event loop cannot stop it; the deadline
    covers the event loop's own close after ``main`` returns too.
    """
    deadline: threading.Timer | None = None
    previous = {s: signal.getsignal(s) for s in _STOP_SIGNALS}

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def first(sig: signal.Signals) -> None:
            nonlocal deadline
            if deadline is not None:
                return  # two signals in one loop turn: the handlers were already swapped
            logging.getLogger("gridcall").warning(
                "%s: stopping (within %.0fs; a second SIGINT or SIGTERM exits at once)",
                sig.name, grace)
            stop.set()
            deadline = threading.Timer(grace, _stop_overdue, (sig, grace))
            deadline.name = "stop deadline"
            deadline.daemon = True
            deadline.start()
            for s in _STOP_SIGNALS:  # the next one exits at once, even with the loop stuck
                loop.remove_signal_handler(s)
                signal.signal(s, _second_signal)

        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, first, sig)
        await main(stop)

    try:
        asyncio.run(runner())
    finally:
        if deadline is not None:
            deadline.cancel()  # stopped in time; in-process callers (tests) live on
        for s, handler in previous.items():
            signal.signal(s, handler)


def _second_signal(signum: int, frame: object) -> None:
    _exit_now(f"a second {signal.Signals(signum).name} while stopping: exiting now, "
              "without finishing the stop")


def _stop_overdue(sig: signal.Signals, grace: float) -> None:
    _exit_now(f"still not stopped {grace:.0f}s after {sig.name}: exiting now, without "
              "finishing the stop; the threads' stacks follow", stacks=True)


def _exit_now(message: str, *, stacks: bool = False) -> None:
    logging.getLogger("gridcall").critical(message)
    for handler in logging.getLogger().handlers:
        handler.flush()
    if stacks:
        faulthandler.dump_traceback(all_threads=True)
    os._exit(1)
