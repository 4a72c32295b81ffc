"""The ``gridcall`` command: one entry point for technicians, command centres and developers.

This module is the composition root: it may import every package; nothing imports it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from config import SAMPLE_DISTRICT, ConfigError, load_config

app = typer.Typer(
    name="gridcall",
    help="IoT sensing and alerts for grid-based governance: edge agents, hub, demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Check a config set.", no_args_is_help=True)
app.add_typer(config_app, name="config")

out = Console()
err = Console(stderr=True)

ConfigDir = Annotated[Path, typer.Option("--config", "-c", help="Config set folder.")]


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@config_app.command("check")
def config_check(
    directory: Annotated[Path, typer.Argument(help="Folder with topology.yaml, sensors.yaml, "
                                              "agents.yaml, matters.yaml[, hub.yaml].")],
) -> None:
    """Validate a config set; print every problem with file, line, key path and reason."""
    from detectors import REGISTRY

    try:
        cfg = load_config(directory, known_detectors=set(REGISTRY))
    except ConfigError as exc:
        err.print(f"[bold red]✗ {directory}: {len(exc.problems)} problem(s)[/]")
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    tiers = sorted({m.base_tier for m in cfg.matters.matters})
    out.print(
        f"[bold green]✓ {directory}[/]: {len(cfg.units_at('town'))} towns, "
        f"{len(cfg.units_at('community'))} communities, {len(cfg.units_at('grid'))} grids, "
        f"{len(cfg.sensors)} sensors of {len({s.kind for s in cfg.sensors.values()})} kinds, "
        f"{len(cfg.agents)} agents, {len(cfg.matters.matters)} matters (tiers {''.join(tiers)})"
    )


def main() -> None:  # pragma: no cover - console entry
    app()


_ = SAMPLE_DISTRICT
