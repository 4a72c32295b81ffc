"""``gridcall hub token issue|list|revoke``: the API's bearer tokens, one or more per unit.

Registered on the ``hub`` group by :mod:`gridcall.cli`. Tokens are printed once and
stored only as SHA-256 hashes (:mod:`gridcall.hub.api.tokens`); the file defaults to
``api-tokens.json`` beside the hub's store (``hub.store_path``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gridcall.cli.common import (
    Command,
    ConfigDir,
    err,
    fail,
    load_config_set,
    out,
    typer_app,
)
from gridcall.config import SAMPLE_DISTRICT, ConfigSet

token_app = typer_app("Bearer tokens for the hub's HTTP API (one or more per unit).")

TokensPath = Annotated[Path | None, typer.Option("--tokens", metavar="FILE",
                                                 help="The tokens file; default: "
                                                 "api-tokens.json beside hub.store_path.")]


def tokens_path(cfg: ConfigSet) -> Path:
    """Where the hub keeps its API tokens unless told otherwise."""
    return Path(cfg.hub.store_path).parent / "api-tokens.json"


@token_app.command("issue", cls=Command)
def token_issue(
    unit: Annotated[str, typer.Argument(help="Unit id (grid, community, town or district).")],
    label: Annotated[str, typer.Option(help="What the token is for (shown by list).")] = "",
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    tokens: TokensPath = None,
) -> None:
    """Make a token for UNIT and print it once: it is stored only as a hash."""
    from gridcall.hub.api.tokens import TokenFileError, issue

    cfg = load_config_set(config_dir)
    path = tokens or tokens_path(cfg)
    try:
        token = issue(path, unit, known_units=cfg.units, label=label)
    except ValueError as exc:
        raise fail(str(exc), 1 if isinstance(exc, TokenFileError) else 2) from None
    err.print(f"token for {cfg.units[unit].level} {escape(unit)} written (hashed) to "
              f"{escape(str(path))}; it is shown only now:", highlight=False)
    typer.echo(token)


@token_app.command("list", cls=Command)
def token_list(config_dir: ConfigDir = SAMPLE_DISTRICT, tokens: TokensPath = None) -> None:
    """Which units have tokens, issued when, for what (never the tokens)."""
    from gridcall.hub.api.tokens import TokenFileError, read_entries

    path = tokens or tokens_path(load_config_set(config_dir))
    try:
        entries = read_entries(path)
    except TokenFileError as exc:
        raise fail(str(exc), 1) from None
    table = Table(title=f"API tokens in {path}")
    for column in ("unit", "issued at", "label", "hash (first 12)"):
        table.add_column(column)
    for e in entries:
        table.add_row(escape(e.unit), e.issued_at, escape(e.label), e.sha256[:12])
    out.print(table)


@token_app.command("revoke", cls=Command)
def token_revoke(
    unit: Annotated[str, typer.Argument(help="Unit id whose tokens to remove.")],
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    tokens: TokensPath = None,
) -> None:
    """Remove every token of UNIT; a running hub refuses them at the next request."""
    from gridcall.hub.api.tokens import TokenFileError, revoke

    path = tokens or tokens_path(load_config_set(config_dir))
    try:
        gone = revoke(path, unit)
    except TokenFileError as exc:
        raise fail(str(exc), 1) from None
    out.print(f"{gone} token(s) of {escape(unit)} revoked in {escape(str(path))}")
