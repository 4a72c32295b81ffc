"""``gridcall boards build|push``: the risk boards as Grafana provisioning files, or
uploaded to a running Grafana (gridcall/boards/).

Registered on the main app by :mod:`gridcall.cli`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gridcall.boards.dashboards import BoardSchema, build_dashboards
from gridcall.boards.grafana import Dashboard
from gridcall.boards.macros import duration_ms
from gridcall.boards.provisioning import (
    DASHBOARDS_PATH,
    FOLDER_TITLE,
    FOLDER_UID,
    DatasourceSpec,
    InfluxVersion,
    MissingSecret,
    write_provisioning,
)
from gridcall.cli.common import Command, err, load_config_set, out, typer_app
from gridcall.config import SAMPLE_DISTRICT, ConfigSet

boards_app = typer_app("Grafana risk boards as code: provisioning files or upload.")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Config set folder.")]
InfluxUrlOpt = Annotated[str | None, typer.Option(
    "--influx-url", help="InfluxDB's URL as Grafana reaches it; default: hub.yaml's "
    "influx.url, else http://localhost:8086.")]
InfluxVersionOpt = Annotated[int | None, typer.Option(
    "--influx-version", min=1, max=3, help="1 (database), 2 (InfluxQL through a DBRP "
    "mapping), 3 (database); default: hub.yaml's influx.api.")]
DatabaseOpt = Annotated[str | None, typer.Option(
    "--database", help="InfluxQL database (for 2.x the DBRP-mapped name); default: "
    "hub.yaml's database (api 1) or bucket (api 2).")]
InfluxTokenOpt = Annotated[str | None, typer.Option(
    "--influx-token-env", help="Variable holding the InfluxDB 2.x/3.x token (Grafana's "
    "environment for provisioning, this one for push); default: hub.yaml's token_env.")]
WindowOpt = Annotated[str | None, typer.Option(
    "--snapshot-window", help="Relative time of the 'now' panels (e.g. 1m); default: two "
    "of hub.yaml's boards.interval.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]✗[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _boards(config_dir: Path, influx_url: str | None, influx_version: int | None,
            database: str | None, token_env: str | None, snapshot_window: str | None
            ) -> tuple[ConfigSet, DatasourceSpec, tuple[Dashboard, ...]]:
    cfg = load_config_set(config_dir)
    if database is not None and not database.strip():
        raise _fail("--database is empty: name the InfluxQL database (for 2.x the "
                    "DBRP-mapped name), or leave the option out for hub.yaml's", 2)
    if snapshot_window is not None:
        try:
            window_ms = duration_ms(snapshot_window)
        except ValueError as exc:
            raise _fail(f"--snapshot-window: {exc}", 2) from None
        if window_ms < 1000:  # "0s" would give every "now" panel an empty time range
            raise _fail(f"--snapshot-window {snapshot_window}: give at least 1s (the "
                        "default is two of hub.yaml's boards.interval)", 2)
    try:
        version: InfluxVersion | None = None
        if influx_version is not None:
            version = 1 if influx_version == 1 else 2 if influx_version == 2 else 3
        spec = DatasourceSpec.for_config(cfg, url=influx_url, version=version,
                                         database=database, token_env=token_env)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    schema = BoardSchema.for_config(cfg, snapshot_window=snapshot_window)
    return cfg, spec, build_dashboards(cfg, schema)


@boards_app.command("build", cls=Command)
def boards_build(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write provisioning/ "
                                          "and dashboards/ into.")],
    config_dir: ConfigOpt = SAMPLE_DISTRICT,
    influx_url: InfluxUrlOpt = None,
    influx_version: InfluxVersionOpt = None,
    database: DatabaseOpt = None,
    influx_token_env: InfluxTokenOpt = None,
    dashboards_path: Annotated[str, typer.Option(
        help="Where Grafana finds dashboards/ (the file provider's path, in its container)."
    )] = DASHBOARDS_PATH,
    snapshot_window: WindowOpt = None,
) -> None:
    """Write Grafana provisioning files: data source, file provider, dashboards.

    The InfluxDB data source (InfluxQL), a file provider and the dashboards (district
    overview, town board, sensor drill-down) as JSON."""
    _, spec, dashboards = _boards(config_dir, influx_url, influx_version, database,
                                  influx_token_env, snapshot_window)
    try:
        written = write_provisioning(out_dir, dashboards, spec, dashboards_path=dashboards_path)
    except OSError as exc:
        raise _fail(f"--out {out_dir}: {exc.strerror or exc}") from None
    for path in written:
        out.print(f"  {escape(str(path))}", highlight=False)
    needs = ", ".join(spec.needed_env())
    # -c is optional: say which config set the grids, towns and sensors came from
    source = f"config set {config_dir}" + (
        " (the built-in sample district; -c DIR for yours)"
        if config_dir.resolve() == Path(SAMPLE_DISTRICT).resolve() else "")
    out.print(f"[green]✓[/] {len(dashboards)} dashboards and the data source "
              f"(InfluxDB {spec.version}.x at {escape(spec.url)}, database "
              f"{escape(spec.database)}) from {escape(source)} in {escape(str(out_dir))}"
              + (f"; Grafana needs {escape(needs)} in its environment" if needs else ""),
              highlight=False, soft_wrap=True)


@boards_app.command("push", cls=Command)
def boards_push(
    grafana: Annotated[str, typer.Option("--grafana", help="Grafana's URL, e.g. "
                                         "http://127.0.0.1:3000.")],
    token_env: Annotated[str, typer.Option("--token-env", help="Variable holding a Grafana "
                                           "service-account token (Admin for the data "
                                           "source).")],
    config_dir: ConfigOpt = SAMPLE_DISTRICT,
    influx_url: InfluxUrlOpt = None,
    influx_version: InfluxVersionOpt = None,
    database: DatabaseOpt = None,
    influx_token_env: InfluxTokenOpt = None,
    snapshot_window: WindowOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.",
                                           min=0.1)] = 15.0,
) -> None:
    """Upload the data source, folder and dashboards through Grafana's HTTP API.

    The gridcall folder is made if missing; dashboards are overwritten by uid."""
    from gridcall.boards.push import GrafanaError, push

    token = os.environ.get(token_env)
    if not token:
        raise _fail(f"--token-env {token_env}: the environment variable "
                    f"{'is empty' if token_env in os.environ else 'is not set'}; put a "
                    "Grafana service-account token in it", 2)
    _, spec, dashboards = _boards(config_dir, influx_url, influx_version, database,
                                  influx_token_env, snapshot_window)
    try:
        body = spec.api_body()
    except MissingSecret as exc:
        raise _fail(f"data source: {exc}", 2) from None
    try:
        result = push(grafana, token, datasource=body,
                      dashboards=[d.to_json(spec.uid) for d in dashboards],
                      folder_uid=FOLDER_UID, folder_title=FOLDER_TITLE, timeout=timeout)
    except GrafanaError as exc:
        raise _fail(str(exc)) from None
    out.print(f"[green]✓[/] folder {result.folder} "
              f"({'created' if result.folder_created else 'exists'}), data source "
              f"{result.datasource} ({'created' if result.datasource_created else 'updated'})",
              highlight=False)
    for d in result.dashboards:
        out.print(f"  {escape(d.uid)} v{d.version}: {escape(d.url)}", highlight=False)
