"""``gridcall detect``: the default detectors over recorded data (a CSV)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gridcall.cli.common import err, out


def detect(
    file: Annotated[Path, typer.Argument(help="CSV file with a time column and value columns.",
                                         exists=True, dir_okay=False)],
    time_column: Annotated[str, typer.Option(help="Name of the timestamp column (ISO 8601 "
                                             "or epoch seconds).")],
    columns: Annotated[str, typer.Option(help="Comma-separated value columns; more than one "
                                         "runs the multivariate detector, which learns "
                                         "normal in the baseline and keeps it, and adds "
                                         "'moved': the sensors that moved at each event.")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the scored CSV "
                                           "(UTF-8, same separator as the input); written "
                                           "only if the whole file could be scored.")],
    baseline: Annotated[str | None, typer.Option(
        help="The commissioning window, learned from and not scored: ROWS (e.g. 400) or "
             "a DURATION from the first row (e.g. 2h). Default: the warm-up, 200 rows "
             "(one column), a baseline of 400 rows (several).")] = None,
    sep: Annotated[str, typer.Option(help="Field separator: one character; '\\t' or 'tab' "
                                     "for a tab.")] = ",",
    encoding: Annotated[str, typer.Option(help="Encoding of FILE, e.g. gbk for a CSV saved "
                                          "by Chinese Excel; the default reads UTF-8 with or "
                                          "without a byte-order mark.")] = "utf-8-sig",
) -> None:
    """Run the default detectors over recorded data, at the product's default settings.

    Adds anomaly_score (empty while learning: the first 200 rows, 400 for several
    columns, unless --baseline says otherwise; and rows with a missing value), alert (1
    on every row held anomalous, until 3 normal scores in a row) and event (1 where an
    episode starts, as an edge agent would publish it; cooldown: the sensors' default
    detector.refractory, 0 rows).

    A single column's detector holds its novelty check back for the file's first day of
    time: until then only limits, new extremes of 10 deviations, stuck values and
    dropouts alert, so small departures in a shorter file go unflagged (docs/benchmarks.md,
    "One setting for the product").
    """
    from gridcall.config.models import DetectorSettings
    from gridcall.detectors import ReplayInputError
    from gridcall.detectors.replay import Baseline, ReplaySettings, replay_csv

    names = [c.strip() for c in columns.split(",") if c.strip()]
    product = DetectorSettings()
    try:
        settings = ReplaySettings(
            sensitivity=product.sensitivity, params=product.params,
            cooldown=product.refractory,
            baseline=None if baseline is None else Baseline.parse(baseline))
        summary = replay_csv(file, time_column=time_column, columns=names, sep=sep,
                             encoding=encoding, out=out_file, settings=settings)
    except ReplayInputError as exc:
        err.print(f"[red]✗ {escape(str(exc))}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    out.print(f"✓ {summary.rows} rows → {escape(str(out_file))}: {summary.episodes} "
              f"episodes, {summary.events} events (event), {summary.anomalous} anomalous "
              f"rows (alert), "
              f"{summary.unscored} unscored ({summary.warmup}; {summary.skipped} with a "
              f"missing value); cooldown {summary.cooldown} rows", highlight=False,
              soft_wrap=True)

