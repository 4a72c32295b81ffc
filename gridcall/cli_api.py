"""``gridcall hub token issue|list|revoke``: the API's bearer tokens, one or more per unit.

Registered on the ``hub`` sub-app by :mod:`gridcall.cli`. Tokens are printed once and
stored only as SHA-256 hashes (:mod:`gridcall.hub.api.tokens`); the file defaults to
``api-tokens.json`` beside the hub's store (``hub.store_path``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gridcall.config import SAMPLE_DISTRICT, ConfigSet

if TYPE_CHECKING:
    from gridcall.hub.api.server import ApiServer
    from gridcall.hub.notify.notifier import Notifier
    from gridcall.hub.service import Hub

token_app = typer.Typer(help="Bearer tokens for the hub's HTTP API (one or more per unit).",
                        no_args_is_help=True)
out = Console()
err = Console(stderr=True)

ConfigDir = Annotated[Path, typer.Option("--config", "-c", help="Config set folder.")]
TokensPath = Annotated[Path | None, typer.Option("--tokens", help="The tokens file; default: "
                                                 "api-tokens.json beside hub.store_path.")]


def tokens_path(cfg: ConfigSet) -> Path:
    """Where the hub keeps its API tokens unless told otherwise."""
    return Path(cfg.hub.store_path).parent / "api-tokens.json"


def _config(config_dir: Path) -> ConfigSet:
    from gridcall.cli import _load

    return _load(config_dir)


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]✗ {escape(message)}[/]", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@token_app.command("issue")
def token_issue(
    unit: Annotated[str, typer.Argument(help="Unit id (grid, community, town or district).")],
    label: Annotated[str, typer.Option(help="What the token is for (shown by list).")] = "",
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    tokens: TokensPath = None,
) -> None:
    """Make a token for UNIT and print it once: it is stored only as a hash."""
    from gridcall.hub.api.tokens import TokenFileError, issue

    cfg = _config(config_dir)
    path = tokens or tokens_path(cfg)
    try:
        token = issue(path, unit, known_units=cfg.units, label=label)
    except ValueError as exc:
        raise _fail(str(exc), 1 if isinstance(exc, TokenFileError) else 2) from None
    err.print(f"token for {cfg.units[unit].level} {escape(unit)} written (hashed) to "
              f"{escape(str(path))}; it is shown only now:", highlight=False)
    typer.echo(token)


@token_app.command("list")
def token_list(config_dir: ConfigDir = SAMPLE_DISTRICT, tokens: TokensPath = None) -> None:
    """Which units have tokens, issued when, for what (never the tokens)."""
    from gridcall.hub.api.tokens import TokenFileError, read_entries

    path = tokens or tokens_path(_config(config_dir))
    try:
        entries = read_entries(path)
    except TokenFileError as exc:
        raise _fail(str(exc), 1) from None
    table = Table(title=f"API tokens in {path}")
    for column in ("unit", "issued at", "label", "hash (first 12)"):
        table.add_column(column)
    for e in entries:
        table.add_row(escape(e.unit), e.issued_at, escape(e.label), e.sha256[:12])
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    unit: Annotated[str, typer.Argument(help="Unit id whose tokens to remove.")],
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    tokens: TokensPath = None,
) -> None:
    """Remove every token of UNIT; a running hub refuses them at the next request."""
    from gridcall.hub.api.tokens import TokenFileError, revoke

    path = tokens or tokens_path(_config(config_dir))
    try:
        gone = revoke(path, unit)
    except TokenFileError as exc:
        raise _fail(str(exc), 1) from None
    out.print(f"{gone} token(s) of {escape(unit)} revoked in {escape(str(path))}")


SUGGESTED_API = "127.0.0.1:8470"
"""``hub run`` serves the API only when asked (``--api HOST:PORT``): a listening socket is
the operator's decision (which interface, behind which TLS proxy), and two hubs or test
runs on one machine must not fight over a default port."""


@contextlib.asynccontextmanager
async def hub_services(hub: Hub, sink: object, stop: asyncio.Event, *,
                       api: tuple[str, int] | None, tokens: Path,
                       say: Callable[[str], None]) -> AsyncIterator[ApiServer | None]:
    """What runs beside the hub's MQTT loop: the notifier (notify.yaml) as a desk hook,
    and the HTTP API. (The indicator and board writers are the hub's own tasks now,
    :meth:`gridcall.hub.service.Hub.run`; ``sink`` is kept for callers.)"""
    from gridcall.hub.api.app import create_app
    from gridcall.hub.api.server import ApiServer
    from gridcall.hub.api.tokens import TokenFile
    from gridcall.hub.notify.notifier import NOTIFIED_ACTIONS, Notifier, desk_hook
    from gridcall.hub.notify.outbox import NotifyOutbox, changes_to_replay

    async with contextlib.AsyncExitStack() as stack:
        # Deliveries under way get at most 2 s at shutdown: the readings' drain comes
        # first within the supervisor's stop timeout; what is left is counted as unsent.
        notifier = Notifier(hub.config.notify, drain_timeout=min(2.0, hub.drain_timeout))
        stack.callback(_notify_summary, notifier, say)  # runs last: after the drain
        await stack.enter_async_context(notifier)
        # Steps a crash (or a stop mid-retry) left un-notified are sent again first.
        outbox = NotifyOutbox(hub.store)
        await outbox.setup()
        await hub.start_desk()
        hook = desk_hook(notifier, outbox, hub.clock)
        late = await changes_to_replay(hub.desk, await outbox.pending(NOTIFIED_ACTIONS))
        if late:
            say(f"notifying {len(late)} step(s) again that the last run did not finish "
                "notifying")
        for change in late:
            await hook(change)
        hub.desk.add_hook(hook)
        server = None
        if api is not None:
            token_file = TokenFile(tokens)
            app = create_app(hub.desk, token_file, clock=hub.clock, roster=hub.roster)
            server = await stack.enter_async_context(ApiServer(app, *api))
            say(f"API {server.url} (docs {server.url}/docs; tokens in {tokens}); "
                f"board {server.url}/board")
            if token_file.error:
                say(f"API tokens file unusable: {token_file.error}")
            elif not len(token_file):
                say(f"no API tokens in {tokens} yet: every request gets 401 until one is "
                    "issued (gridcall hub token issue UNIT; no restart needed)")
        else:
            say(f"API off (--api {SUGGESTED_API} to serve it)")
        yield server


def _notify_summary(notifier: Notifier, say: Callable[[str], None]) -> None:
    c = notifier.counters
    if c.queued:
        say(f"notifications: {c.sent} sent, {c.given_up} given up, "
            f"{c.unsent_at_shutdown} unsent at stop ({c.failed_attempts} failed attempts)")


@contextlib.asynccontextmanager
async def demo_api(hub: Hub, address: tuple[str, int] | None,
                   say: Callable[[str], None]) -> AsyncIterator[dict[str, str]]:
    """The demo's API: a throw-away tokens file with one token for the district (it sees
    every alert), printed with the URL so the API can be tried while the demo runs.
    Yields ``{"url", "token"}`` (empty when ``address`` is None)."""
    import tempfile

    from gridcall.hub.api.app import create_app
    from gridcall.hub.api.server import ApiServer
    from gridcall.hub.api.tokens import TokenFile, issue

    if address is None:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="gridcall-demo-") as folder:
        path = Path(folder) / "api-tokens.json"
        district = hub.config.district.id
        token = issue(path, district, known_units=hub.config.units, label="demo")
        app = create_app(hub.desk, TokenFile(path), clock=hub.clock, roster=hub.roster)
        async with ApiServer(app, *address) as server:
            say(f"API {server.url}/docs · try: curl -H 'Authorization: Bearer {token}' "
                f"{server.url}/v1/alerts?open=true   (district {district}; the token "
                "ends with the demo)")
            # The token rides in the fragment, which the browser never sends to a server
            # or writes to a log; the page moves it to sessionStorage and clears it.
            say(f"board {server.url}/board#token={token}   (live map and alerts, "
                "acknowledge/resolve as the district)")
            yield {"url": server.url, "token": token, "board": f"{server.url}/board"}
