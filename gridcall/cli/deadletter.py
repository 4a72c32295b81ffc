"""``gridcall hub deadletter list|replay``: messages the hub set aside, and taking them again.

Registered on the ``hub`` group by :mod:`gridcall.cli`. The store is
``hub.deadletter_path`` (:mod:`gridcall.hub.deadletter`); ``replay`` only marks entries:
the running hub takes them within a few seconds (or the next ``hub run`` at its start)
through its normal path, so the desk stays the one writer of alerts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gridcall.cli.common import Command, ConfigDir, fail, load_config_set, out, typer_app
from gridcall.config import SAMPLE_DISTRICT

deadletter_app = typer_app("Messages the hub could not handle, kept for a look and a replay.")

StorePath = Annotated[Path | None, typer.Option("--store", metavar="FILE",
                                                help="The dead-letter store; default: "
                                                "hub.deadletter_path.")]


def _path(config_dir: Path, store: Path | None) -> Path:
    """``--store``, else ``hub.deadletter_path``; exits 1 naming the absolute path if no
    store is there. The hub creates its store when it starts, so a missing one is almost
    always the wrong folder: a relative path in hub.yaml is taken from the working
    directory, as ``store_path`` is, so this command must run where the hub runs."""
    path = store if store is not None else Path(load_config_set(config_dir).hub.deadletter_path)
    if not path.exists():
        where = ("" if store is not None or path.is_absolute() else
                 f" (hub.deadletter_path {path} is relative, so it is taken from the folder "
                 "this command runs in: run it in the hub's working directory, give --store "
                 "FILE, or make the path absolute in hub.yaml)")
        raise fail(f"no dead-letter store at {path.resolve()}{where}; the hub creates it "
                   "when it starts", 1)
    return path


@deadletter_app.command("list", cls=Command)
def deadletter_list(
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    store: StorePath = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason (ts_window, "
                                               "rejected, sink_error, desk_error).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.", min=1)] = 50,
    payload: Annotated[bool, typer.Option("--payload", help="Print each payload too.")
                       ] = False,
) -> None:
    """Show the messages set aside: when, why, from which topic, and the error."""
    from gridcall.hub.deadletter import DeadLetters
    from gridcall.wire.clock import utc_text

    path = _path(config_dir, store)
    with DeadLetters(path) as letters:
        counts = letters.count_by_reason()
        entries = letters.entries(reason=reason, limit=limit)
    table = Table(title=f"dead letters in {path}: "
                  + (", ".join(f"{n} {r}" for r, n in sorted(counts.items())) or "none"))
    for column in ("id", "at", "reason", "topic", "from", "error"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(str(e.id) + (" (replay)" if e.replay else ""), utc_text(e.at),
                      e.reason, escape(e.topic), escape(e.source), escape(e.detail))
    out.print(table)
    if payload:
        for e in entries:
            out.print(f"#{e.id} {escape(e.topic)}: "
                      f"{escape(e.payload.decode('utf-8', 'replace'))}", highlight=False,
                      soft_wrap=True)


@deadletter_app.command("replay", cls=Command)
def deadletter_replay(
    ids: Annotated[list[int] | None, typer.Argument(metavar="[ID]...",
                                                    help="Entries to replay (see list).")
                   ] = None,
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    store: StorePath = None,
    reason: Annotated[str | None, typer.Option(help="Every entry of this reason.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every entry.")] = False,
) -> None:
    """Mark entries for the hub to take again, once their cause is fixed.

    The running hub takes them within seconds (the next `hub run` at its start) through
    its normal path; one that fails again is set aside again as a new entry.
    """
    from gridcall.hub.deadletter import DeadLetters

    if not ids and reason is None and not every:
        raise fail("say which entries: IDs, --reason REASON or --all", 2)
    path = _path(config_dir, store)
    with DeadLetters(path) as letters:
        marked = letters.mark_replay(ids=ids or (), reason=reason, every=every)
    out.print(f"{marked} dead letter(s) marked for replay in {escape(str(path))}; the "
              "running hub takes them within seconds (or the next `gridcall hub run`)",
              highlight=False)
