"""``gridcall hub handover``: what a unit hands over at a shift change, from the hub's
store: who is on duty now and next (roster.yaml), its duty leader, and the open alerts of
its subtree with their coming deadlines (hub/desk/handover.py).

Registered on the ``hub`` group by :mod:`gridcall.cli`.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gridcall.cli.common import (
    desk_store_of,
    err,
    fail,
    load_config_set,
    open_desk_store,
    out,
    store_name,
)
from gridcall.config import SAMPLE_DISTRICT, ConfigSet
from gridcall.hub.desk.duty import Stretch
from gridcall.hub.desk.handover import Handover
from gridcall.wire.clock import from_iso, utc_text


async def read_handover(cfg: ConfigSet, store_path: Path | str, unit: str, at: int | None
                        ) -> Handover:
    """The desk rebuilt from the store (read only: nothing is ticked or written), and the
    unit's hand-over at ``at`` (default: now on the store's desk clock, i.e. now or its
    last step if that is later)."""
    from gridcall.hub.desk.desk import Desk
    from gridcall.hub.desk.handover import handover
    from gridcall.hub.desk.ledger import Ledger

    async with open_desk_store(store_path) as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        last = await desk.ledger.last_at()
        when = at if at is not None else max(time.time_ns(), last + 1)
        return handover(cfg, desk.alerts(unit=unit, open_only=True), unit, when,
                        defer=desk.defer, on_duty_of=desk.handed_to)


def _who(s: Stretch | None) -> str:
    if s is None:
        return "nobody (the unit's channels)"
    extra = " (override)" if s.override else ""
    return (f"{s.person.name} ({s.person.id}) {utc_text(s.start, with_seconds=False)} – "
            f"{utc_text(s.end, with_seconds=False)}{extra}")


def as_json(h: Handover) -> str:
    from gridcall.hub.api.handover import handover_out

    return json.dumps(handover_out(h).model_dump(mode="json"), ensure_ascii=False, indent=1)


def hub_handover(
    unit: Annotated[str, typer.Option("--unit", "-u", help="The unit handing over (grid, "
                                      "community, town or district id).")],
    at: Annotated[str | None, typer.Option(metavar="TIME", help="The moment, ISO 8601 (no "
                                           "zone: UTC). Default: now on the store's desk "
                                           "clock.")] = None,
    as_json_: Annotated[bool, typer.Option("--json", help="JSON on stdout (the body of GET "
                                           "/v1/handover) instead of a table.")] = False,
    config_dir: Annotated[Path, typer.Option("--config", "-c", help="Config set folder "
                                             "(roster.yaml, hub.store_path).")
                          ] = SAMPLE_DISTRICT,
    store: Annotated[Path | None, typer.Option(help="The hub's SQLite store; default: the "
                                               "config's hub.desk_store (PostgreSQL), else "
                                               "hub.store_path.")] = None,
) -> None:
    """A unit's hand-over at a shift change: who is on duty, its open alerts, deadlines.

    Who is on duty now and who takes over next (roster.yaml), the unit's duty leader, and
    every open alert of its subtree with the deadline it waits on next, soonest first;
    those due before the incoming watch ends are marked.
    """
    cfg = load_config_set(config_dir)
    if unit not in cfg.units:
        raise fail(f"{unit!r} is not a unit of {config_dir} (district, town, community or "
                   "grid id)", 2)
    try:
        when = None if at is None else from_iso(at)
    except ValueError:
        raise fail(f"--at {at!r} is not an ISO 8601 time", 2) from None
    source = desk_store_of(config_dir, store)
    h = asyncio.run(read_handover(cfg, source, unit, when))
    if as_json_:
        typer.echo(as_json(h))
        return
    u = cfg.units[unit]
    out.print(f"[bold]Hand-over of {escape(u.name)} ({escape(unit)}, {u.level})[/] at "
              f"{utc_text(h.at, with_seconds=False)}", highlight=False)
    out.print(f"on duty now: {escape(_who(h.on_duty))}", highlight=False)
    out.print(f"next:        {escape(_who(h.next))}", highlight=False)
    leader = h.leader
    out.print(f"duty leader: {escape(f'{leader.name} ({leader.id})') if leader else 'none'}",
              highlight=False)
    if not h.items:
        out.print("no open alerts in the subtree", highlight=False)
        return
    table = Table(title=f"{len(h.items)} open alert(s), {len(h.held)} held here, "
                        f"{len(h.coming)} due before {utc_text(h.horizon, with_seconds=False)}")
    for column in ("alert", "tier", "matter", "state", "held by", "next deadline", "due",
                   "handed to"):
        table.add_column(column)
    for i in h.items:
        due = utc_text(i.due_at, with_seconds=False)
        mark = "[red]overdue[/]" if i.overdue else ("this watch" if i.in_shift else "")
        table.add_row(i.alert_id, i.tier, escape(i.matter_name), i.state,
                      escape(i.unit) + (" (here)" if i.held else ""), f"{i.deadline} {due}",
                      mark, escape(i.on_duty or "–"))
    (out if out.is_terminal else Console(width=200)).print(table)
    err.print(f"from {escape(store_name(source))}", highlight=False, soft_wrap=True)
