"""``gridcall config check``: validate a config set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gridcall.cli.common import Command, load_config_set, out, typer_app

config_app = typer_app("Check a config set.")


@config_app.command("check", cls=Command)
def config_check(
    directory: Annotated[Path, typer.Argument(help="Folder with topology.yaml, sensors.yaml, "
                                              "agents.yaml, matters.yaml[, hub.yaml].")],
) -> None:
    """Validate a config set; print every problem with file, line, key path and reason."""
    cfg = load_config_set(directory)
    tiers = sorted({m.base_tier for m in cfg.matters.matters})
    out.print(
        f"[bold green]✓ {directory}[/]: {len(cfg.units_at('town'))} towns, "
        f"{len(cfg.units_at('community'))} communities, {len(cfg.units_at('grid'))} grids, "
        f"{len(cfg.sensors)} sensors of {len({s.kind for s in cfg.sensors.values()})} kinds, "
        f"{len(cfg.agents)} agents, {len(cfg.matters.matters)} matters (tiers {''.join(tiers)})"
    )
    if cfg.duty.persons:
        out.print(f"  roster.yaml: {len(cfg.duty.persons)} persons, shifts for "
                  f"{len(cfg.duty.shifts)} units, {len(cfg.duty.overrides)} override(s), "
                  f"escalation policies for {', '.join(cfg.duty.escalation) or 'none'}",
                  highlight=False)
    if cfg.calendars.calendars:
        default = cfg.calendars.named(None)
        names = ", ".join(f"{n} (default)" if cal is default else n
                          for n, cal in cfg.calendars.calendars.items())
        out.print(f"  calendars.yaml: {names}", highlight=False)
    if cfg.external.systems:
        out.print("  external.yaml: " + ", ".join(
            f"{s.id} ({len(s.events)} event types, {len(s.sites)} sites)"
            for s in cfg.external.systems), highlight=False)

