"""``gridcall hub report``: the assessment indicators (hub/desk/indicators.py) from the hub's
ledger, as a table for people or CSV for spreadsheets.

Registered on the ``hub`` group by :mod:`gridcall.cli`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gridcall.cli.common import desk_store_of, err, open_desk_store, out, store_name
from gridcall.config import SAMPLE_DISTRICT
from gridcall.config.base import Duration
from gridcall.wire.clock import from_iso, ns, utc_text

if TYPE_CHECKING:  # the hub's modules load when the command runs (the edge install lacks them)
    from gridcall.hub.desk.indicators import Indicator
    from gridcall.hub.desk.lifecycle import Transition
    from gridcall.hub.desk.silence import SilenceStep

_duration: TypeAdapter[timedelta] = TypeAdapter(Duration)

COLUMNS: tuple[tuple[str, str], ...] = (
    ("calls", "calls"),
    ("reopens", "re-\nopened"),
    ("response_timeliness_rate", "response\non time"),
    ("arrival_timeliness_rate", "arrival\non time"),
    ("disposal_timeliness_rate", "disposal\non time"),
    ("resolution_rate", "resolved"),
    ("false_alarm_rate", "false\nalarms"),
    ("whistle_rate", "whistle"),
    ("breaches", "breaches"),
    ("median_response_s", "median\nresponse"),
    ("median_disposal_s", "median\ndisposal"),
    ("audit_pass_rate", "audits\npassed"),
    ("satisfaction_rate", "satisfied"),
)
SECTIONS: dict[str, str] = {"unit": "units", "department": "departments",
                            "person": "persons", "matter": "matters", "tier": "tiers"}
"""Each group's rows under a heading of their own, in the order the rows come."""


def parse_period(text: str) -> timedelta:
    """``7d``, ``24h``, ``90m``...; ValueError saying what is wrong."""
    try:
        return _duration.validate_python(text)
    except ValidationError as exc:
        raise ValueError(exc.errors(include_url=False)[0]["msg"].removeprefix(
            "Value error, ")) from None


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def cell(row: Indicator, name: str) -> str:
    value = getattr(row, name)
    if name.endswith("_rate"):
        return _pct(value)
    if name.startswith("median_"):
        return _span(value)
    return str(value)


def table(rows: list[Indicator], title: str, names: dict[str, str] | None = None) -> Table:
    """The rows as one table, a section per group (units, departments, persons, matters,
    tiers) headed by its name; ``names``: a matter code's name, shown beside it."""
    t = Table(title=title, show_lines=False)
    t.add_column("unit / department / person / matter / tier", no_wrap=True)
    t.add_column("level", no_wrap=True)
    for _, label in COLUMNS:
        t.add_column(label, justify="right")
    group = None
    for r in rows:
        if r.group != group:
            if group is not None:
                t.add_section()
            group = r.group
            t.add_row(f"[bold]{SECTIONS.get(r.group, r.group)}[/]")
        key = escape(r.key)
        if names and r.group == "matter" and r.key in names:
            key += f" {escape(names[r.key])}"
        t.add_row(key, r.level, *(cell(r, name) for name, _ in COLUMNS))
    return t


def to_csv(rows: list[Indicator]) -> str:
    """Every field of every row; rates as fractions, times in seconds, empty for None."""
    buf = io.StringIO()
    names = list(rows[0].as_dict()) if rows else ["group", "key", "level"]
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if v is None else v for k, v in r.as_dict().items()})
    return buf.getvalue()


async def read_ledger(store: Path | str) -> list[Transition]:
    """Every step of the ledger in ``store``: a SQLite file, or a PostgreSQL URL."""
    from gridcall.hub.desk.ledger import Ledger

    async with open_desk_store(store) as desk_store:
        return await Ledger(desk_store).all()


async def read_silences(store: Path | str) -> list[SilenceStep]:
    from gridcall.hub.desk.silence_ledger import SilenceLedger

    async with open_desk_store(store) as desk_store:
        return await SilenceLedger(desk_store).all()


def _ns(iso: str) -> int:
    """``--until``: ISO 8601 as ns since the epoch; a time without a zone is UTC."""
    try:
        return from_iso(iso)
    except ValueError:
        raise ValueError(f"--until {iso!r} is not an ISO 8601 time") from None


def _when(at: int) -> str:
    return utc_text(at, with_seconds=False)


def _matter_names(config_dir: Path) -> dict[str, str]:
    """Matter code -> name from the config's catalog ({} if it cannot be read: the codes
    alone are shown, the report does not depend on the config)."""
    from gridcall.config import ConfigError, load_config
    try:
        return {m.code: m.name for m in load_config(config_dir).matters.matters}
    except (ConfigError, OSError):
        return {}


def hub_report(
    period: Annotated[str, typer.Option(help="How far back from --until: 7d, 24h, 30d...")
                      ] = "7d",
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout instead of a table.")
                      ] = False,
    config_dir: Annotated[Path, typer.Option("--config", "-c", help="Config set folder "
                                             "(for hub.store_path).")] = SAMPLE_DISTRICT,
    store: Annotated[Path | None, typer.Option(help="The hub's SQLite store; default: the "
                                               "config's hub.desk_store (PostgreSQL), else "
                                               "hub.store_path.")] = None,
    persons: Annotated[bool, typer.Option(help="Add a row per person on duty "
                                          "(roster.yaml): the calls handed to them.")
                       ] = False,
    until: Annotated[str | None, typer.Option(
        metavar="TIME", help="End of the period, ISO 8601. Default: now on the store's own "
        "desk clock, i.e. now or its last step if that is later (a --clock-speed demo's "
        "desk runs ahead).")] = None,
) -> None:
    """The assessment indicators per unit, department, matter and tier, from the hub's
    ledger.

    Response, arrival and disposal timeliness, resolution, false-alarm and whistle rates,
    median response and disposal times, the audit-pass rate (稽查合格率) and the
    satisfaction rate (满意率).

    Each alert is credited to the unit responsible for it at each step, a department on
    its own steps; see hub/desk/indicators.py for the exact definitions.
    """
    try:
        span = parse_period(period)
        given_end = None if until is None else _ns(until)
    except ValueError as exc:
        err.print(f"[red]✗ {escape(str(exc))}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    source = desk_store_of(config_dir, store)
    where = escape(store_name(source))  # the store looked at, wherever it was run from
    steps = asyncio.run(read_ledger(source))
    # "Now" on the store's own desk clock is at least its last step: a --clock-speed
    # demo's desk runs ahead of this machine's clock, and its alerts are in its "now".
    now = max(time.time_ns(), max((t.at for t in steps), default=0) + 1)
    end = now if given_end is None else given_end
    start = end - ns(span)
    # A period that has not ended yet is judged as of now, not as of its end: deadlines
    # still ahead are not missed.
    from gridcall.hub.desk.indicators import indicators
    from gridcall.hub.desk.silence import deferral

    # silenced time is not counted against a unit, as in the API (hub/desk/silence.py)
    defer = deferral(asyncio.run(read_silences(source)), steps)
    rows = indicators(steps, start, end, as_of=min(end, now),
                      groups=("unit", "department", "person", "matter", "tier") if persons
                      else ("unit", "department", "matter", "tier"), defer=defer)
    if as_csv:
        typer.echo(to_csv(rows), nl=False)
        err.print(f"from {where}", highlight=False, soft_wrap=True)  # stdout stays CSV
        return
    if not rows:
        out.print(f"no alerts between {_when(start)} and {_when(end)} in {where}",
                  highlight=False, soft_wrap=True)
        return
    # piped into a file or a mail, the table keeps all its columns rather than 80
    wide = out if out.is_terminal else Console(width=220)
    names = _matter_names(config_dir)
    shown = table(rows, f"indicators {_when(start)} – {_when(end)} ({period})", names)
    shown.caption = f"from {where}"
    shown.caption_justify = "left"
    wide.print(shown)
