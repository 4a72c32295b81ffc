"""``gridcall hub token issue|list|revoke``: the API's bearer tokens, one or more per unit
or per person of roster.yaml.

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
    unit: Annotated[str | None, typer.Argument(
        help="Unit id (grid, community, town or district) or department id (its token "
             "opens the department routes); default: the person's unit.")
                    ] = None,
    person: Annotated[str | None, typer.Option(
        help="A person of roster.yaml: the token is theirs, and every step they take "
             "names them.")] = None,
    label: Annotated[str, typer.Option(help="What the token is for (shown by list).")] = "",
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    tokens: TokensPath = None,
    system: Annotated[str | None, typer.Option(
        help="A department's business system of external.yaml: the token may only post "
             "its events (POST /v1/events/external).")] = None,
) -> None:
    """Make a token for UNIT, --person or --system and print it once.

    It is stored only as a hash."""
    from gridcall.hub.api.tokens import TokenFileError, issue, issue_system

    cfg = load_config_set(config_dir)
    path = tokens or tokens_path(cfg)
    if system is not None:
        if unit is not None or person is not None:
            raise fail("a --system token belongs to the system alone: give no UNIT or "
                       "--person", 2)
        try:
            token = issue_system(path, system, known_systems=[
                s.id for s in cfg.external.systems], label=label)
        except ValueError as exc:
            raise fail(str(exc), 1 if isinstance(exc, TokenFileError) else 2) from None
        err.print(f"token for external system {escape(system)} written (hashed) to "
                  f"{escape(str(path))}; it is shown only now:", highlight=False)
        typer.echo(token)
        return
    if person is not None:
        who = cfg.duty.person(person)
        if who is None:
            raise fail(f"{person!r} is not a person of roster.yaml in {config_dir}", 2)
        unit = unit or who.unit
        if unit not in cfg.units and unit not in cfg.departments:
            raise fail(f"{person} belongs to {who.unit!r}, neither a unit of the ladder nor "
                       "a department: give the UNIT whose alerts their token opens", 2)
    if unit is None:
        raise fail("give a UNIT, or --person", 2)
    try:
        token = issue(path, unit, known_units={*cfg.units, *cfg.departments}, label=label,
                      person=person or "")
    except ValueError as exc:
        raise fail(str(exc), 1 if isinstance(exc, TokenFileError) else 2) from None
    whose = f"{escape(person)} of " if person else ""
    level = cfg.units[unit].level if unit in cfg.units else "department"
    err.print(f"token for {whose}{level} {escape(unit)} written (hashed) to "
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
    for column in ("unit", "person", "system", "issued at", "label", "hash (first 12)"):
        table.add_column(column)
    for e in entries:
        table.add_row(escape(e.unit), escape(e.person), escape(e.system), e.issued_at,
                      escape(e.label), e.sha256[:12])
    out.print(table)


@token_app.command("revoke", cls=Command)
def token_revoke(
    unit: Annotated[str | None, typer.Argument(help="Unit id whose tokens to remove.")
                    ] = None,
    person: Annotated[str | None, typer.Option(help="Remove only this person's tokens.")
                      ] = None,
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    tokens: TokensPath = None,
    system: Annotated[str | None, typer.Option(
        help="Remove the tokens of this external system.")] = None,
) -> None:
    """Remove every token of UNIT, of --person or of --system.

    A running hub refuses them at the next request."""
    from gridcall.hub.api.tokens import TokenFileError, revoke

    if sum(x is not None for x in (unit, person, system)) != 1:
        raise fail("give a UNIT, --person or --system (one of them)", 2)
    path = tokens or tokens_path(load_config_set(config_dir))
    try:
        gone = revoke(path, unit or "", person=person, system=system)
    except TokenFileError as exc:
        raise fail(str(exc), 1) from None
    out.print(f"{gone} token(s) of {escape(unit or person or system or '')} revoked in "
              f"{escape(str(path))}")
