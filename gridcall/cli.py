"""The ``gridcall`` command: one entry point for technicians, command centres and developers.

This module is the composition root: it may import every package; nothing imports it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from gridcall.config import SAMPLE_DISTRICT, ConfigError, ConfigSet, load_config

app = typer.Typer(
    name="gridcall",
    help="IoT sensing and alerts for grid-based governance: edge agents, hub, demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Check a config set.", no_args_is_help=True)
app.add_typer(config_app, name="config")
hub_app = typer.Typer(help="Run the hub.", no_args_is_help=True)
app.add_typer(hub_app, name="hub")
edge_app = typer.Typer(help="Run or commission an edge agent.", no_args_is_help=True)
app.add_typer(edge_app, name="edge")

out = Console()
err = Console(stderr=True)

ConfigDir = Annotated[Path, typer.Option("--config", "-c", help="Config set folder.")]


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pymodbus logs every unanswered request at ERROR with a frame dump: a dead slave polled
    # every 5 s would write 17,000 of them a day. The Modbus source counts them instead and
    # logs the first of each reason; -v shows pymodbus's own lines.
    logging.getLogger("pymodbus").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


@config_app.command("check")
def config_check(
    directory: Annotated[Path, typer.Argument(help="Folder with topology.yaml, sensors.yaml, "
                                              "agents.yaml, matters.yaml[, hub.yaml].")],
) -> None:
    """Validate a config set; print every problem with file, line, key path and reason."""
    cfg = _load(directory)
    tiers = sorted({m.base_tier for m in cfg.matters.matters})
    out.print(
        f"[bold green]✓ {directory}[/]: {len(cfg.units_at('town'))} towns, "
        f"{len(cfg.units_at('community'))} communities, {len(cfg.units_at('grid'))} grids, "
        f"{len(cfg.sensors)} sensors of {len({s.kind for s in cfg.sensors.values()})} kinds, "
        f"{len(cfg.agents)} agents, {len(cfg.matters.matters)} matters (tiers {''.join(tiers)})"
    )


def _load(directory: Path) -> ConfigSet:
    from gridcall.detectors import REGISTRY
    from gridcall.edge_agent.watch import detector_problem

    try:
        return load_config(directory, known_detectors=set(REGISTRY),
                           check_detector=detector_problem)
    except ConfigError as exc:
        err.print(f"[bold red]✗ {escape(str(directory))}: {len(exc.problems)} problem(s)[/]",
                  soft_wrap=True)
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _require_env(file: Path, unset: list[str]) -> None:
    """Refuse to start when the config names credential variables that are not set."""
    if unset:
        err.print(f"[bold red]✗ {escape(str(file))}: {len(unset)} environment variable(s) "
                  "not set[/]", soft_wrap=True)
        for item in unset:
            err.print(f"  {item} is named in the config but not set in the environment",
                      markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="Seconds to run.", min=5)] = 60.0,
    broker: Annotated[str | None, typer.Option(help="Use this MQTT broker "
                                               "(mqtt://host:port) instead of the embedded one."
                                               )] = None,
    influx: Annotated[str | None, typer.Option(help="Write readings to this InfluxDB "
                                               "(http://host:8086) instead of the embedded "
                                               "store.")] = None,
    influx_api: Annotated[int, typer.Option(help="InfluxDB write API: 1 (/write, database) "
                                            "or 2 (influxdb-client, org/bucket, token from "
                                            "$INFLUX_TOKEN).", min=1, max=2)] = 1,
    influx_database: Annotated[str, typer.Option(help="v1 database / v2 bucket.")] = "gridcall",
    summary_json: Annotated[Path | None, typer.Option(help="Write the run's figures as JSON "
                                                      "here.")] = None,
    store: Annotated[Path | None, typer.Option(help="Keep the embedded store (alerts, events, "
                                               "readings) in this SQLite file; default: in "
                                               "memory, nothing left behind.")] = None,
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    seed: Annotated[int, typer.Option(help="Seed for the simulated town.")] = 0,
    drain_timeout: Annotated[float, typer.Option(help="At the end, seconds the hub may spend "
                                                 "writing what it still holds; what the "
                                                 "store has not taken by then is reported "
                                                 "as not written.", min=0)] = 10.0,
    clock_speed: Annotated[float, typer.Option(help="Run the hub's clock (alert deadlines "
                                               "and escalations) this many times faster "
                                               "than real time; 600 makes a 60 s demo "
                                               "10 hours at the desk. Readings keep "
                                               "real time.")] = 1.0,
    api: Annotated[str, typer.Option(help="Serve the hub's HTTP API here while the demo "
                                     "runs (host:port; port 0 picks a free one), or "
                                     "'off'. Prints the URL and a district token.")
                   ] = "127.0.0.1:0",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the whole pipeline on the sample district, with nothing installed.

    Embedded broker and store, edge agents on simulated sensors with injected anomalies,
    the hub, and a live view; --broker and --influx switch to real servers. Exits 1 if a
    reading published was not stored (the summary says where it went).
    """
    from gridcall.demo import BrokerUnreachable, DemoOptions, run_demo

    _logging(verbose)
    cfg = _load(config_dir)
    try:
        options = DemoOptions(config=cfg, duration=duration, broker=broker, influx=influx,
                              influx_api=influx_api, influx_database=influx_database,
                              store_path=store, summary_json=summary_json, seed=seed,
                              live=out.is_terminal, drain_timeout=drain_timeout,
                              clock_speed=clock_speed, api=api)
    except ValueError as exc:
        err.print(f"[red]✗ {escape(str(exc))}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    try:
        summary = asyncio.run(run_demo(options))
    except BrokerUnreachable as exc:
        hint = "" if broker is None else "; start it, or leave out --broker for the embedded one"
        err.print(f"[red]✗ {escape(str(exc))}{hint}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    out.print()
    published, stored = summary["readings_published"], summary["readings_stored"]
    ok = stored == published
    out.print(
        f"{'[green]✓' if ok else '[red]✗'}[/] {published} readings "
        f"published, {stored} stored; {summary['anomaly_events']} anomaly "
        f"events; alerts by tier {summary['alerts_by_tier']}; "
        f"{summary['alerts_delivered']} delivered; {summary['escalations']} escalations; "
        f"{summary['malformed_messages']} malformed"
    )
    if summary_json:
        out.print(f"summary written to {summary_json}")
    if not ok:
        # Exit 1, not just a red line: a run that lost readings must fail in a script too.
        parts = [f"{summary['readings_unwritten']} not written within --drain-timeout "
                 f"{drain_timeout:g}s",
                 f"{summary['readings_rejected']} rejected by the store",
                 f"{published - summary['readings_received']} never reached the hub"]
        err.print(f"[red]✗ {published - stored} of {published} readings were not stored in "
                  f"{escape(summary['sink'])}: {', '.join(parts)}[/]",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def detect(
    file: Annotated[Path, typer.Argument(help="CSV file with a time column and value columns.",
                                         exists=True, dir_okay=False)],
    time_column: Annotated[str, typer.Option(help="Name of the timestamp column (ISO 8601 "
                                             "or epoch seconds).")],
    columns: Annotated[str, typer.Option(help="Comma-separated value columns; more than one "
                                         "runs the multivariate detector, which learns "
                                         "normal in the baseline and keeps it.")],
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
              f"episodes (event), {summary.anomalous} anomalous rows (alert), "
              f"{summary.unscored} unscored ({summary.warmup}; {summary.skipped} with a "
              f"missing value); cooldown {summary.cooldown} rows", highlight=False,
              soft_wrap=True)


def _until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


@hub_app.command("run")
def hub_run(
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    broker: Annotated[str | None, typer.Option(help="Override hub.broker.url.")] = None,
    drain_timeout: Annotated[float, typer.Option(help="On Ctrl-C/SIGTERM, seconds the hub may "
                                                 "spend writing what it still holds; the "
                                                 "rest is reported as not written. Keep it "
                                                 "under your supervisor's stop timeout.",
                                                 min=0)] = 10.0,
    api: Annotated[str, typer.Option(help="Serve the HTTP API on host:port (e.g. "
                                     "127.0.0.1:8470; put a TLS proxy in front), or 'off'.")
                   ] = "off",
    tokens: Annotated[Path | None, typer.Option(help="API tokens file; default: "
                                                "api-tokens.json beside hub.store_path.")
                      ] = None,
    ingest_workers: Annotated[int, typer.Option(help="1: readings in this process; N ≥ 2: "
                                                "N `hub ingest` processes sharing them; 0: "
                                                "none (workers run elsewhere).",
                                                min=0)] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Ingest readings and turn anomaly events into routed alerts until Ctrl-C.

    Exits 1 if, when stopped, readings it had taken could not be written to the store.
    """
    from gridcall.cli_ingest import ingest_processes, spool_dir
    from gridcall.hub.service import Hub
    from gridcall.hub.store import Store
    from gridcall.sinks import sink_from_settings
    from gridcall.wire.broker import BrokerAddress

    _logging(verbose)
    cfg = _load(config_dir)
    _require_env(config_dir / "hub.yaml", [
        *(f"hub.broker.{m}" for m in cfg.hub.broker.unset_env()),
        *(f"hub.influx.{m}" for m in (cfg.hub.influx.unset_env() if cfg.hub.influx else [])),
        *(f"notify.yaml: {m}" for m in cfg.notify.unset_env()),
    ])
    if broker is not None:
        try:
            BrokerAddress.parse(broker)
        except ValueError as exc:
            err.print(f"[red]✗ --broker: {escape(str(exc))}[/]", highlight=False,
                      soft_wrap=True)
            raise typer.Exit(2) from None
    from gridcall.cli_api import hub_services, tokens_path
    from gridcall.hub.api.server import ApiBindError, parse_address

    try:
        api_address = parse_address(api)
    except ValueError as exc:
        err.print(f"[red]✗ {escape(str(exc))}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    hubs: list[Hub] = []

    async def main(stop: asyncio.Event) -> None:
        async with Store(cfg.hub.store_path) as store, sink_from_settings(cfg, store) as sink:
            hub = Hub(cfg, sink=sink, store=store, broker_url=broker,
                      drain_timeout=drain_timeout, readings=ingest_workers == 1,
                      spool_dir=spool_dir(cfg, "readings"))
            hubs.append(hub)
            out.print(f"hub {hub.client_id}: {hub.address} → "
                      f"{cfg.hub.influx.url if cfg.hub.influx else cfg.hub.store_path}")
            async with hub_services(hub, sink, stop, api=api_address,
                                    tokens=tokens or tokens_path(cfg), say=out.print):
                await hub.run(stop)

    def run_desk() -> None:
        try:
            _until_signal(main)
        except ApiBindError as exc:
            err.print(f"[red]✗ {escape(str(exc))}; use --api HOST:PORT or --api off[/]",
                      highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    if ingest_workers >= 2:
        with ingest_processes(config_dir, ingest_workers, broker=broker,
                              drain_timeout=drain_timeout, verbose=verbose) as procs:
            run_desk()
        if any(p.returncode not in (0, -signal.SIGTERM) for p in procs):
            err.print("[red]✗ an ingest worker failed; see its lines above[/]")
            raise typer.Exit(1)
    else:
        run_desk()
    for hub in hubs:
        c = hub.ingest.counters
        if hub.unwritten:
            err.print(f"[red]✗ hub stopped: {hub.unwritten.readings} readings in "
                      f"{hub.unwritten.batches} batches were NOT written (drain timeout "
                      f"{drain_timeout:g}s; see the error above); {c.readings_stored} of "
                      f"{c.readings_received} stored[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        spooled = hub.ingest.spooled_pending
        out.print(f"hub stopped: {c.readings_stored} of {c.readings_received} readings "
                  f"stored, {c.rejected_readings} rejected"
                  + (f", {spooled} in the spool {hub.ingest.spool} (written when the sink "
                     "answers, at the next start if not before)" if spooled else ""))


@edge_app.command("run")
def edge_run(
    agent: Annotated[str, typer.Option(help="Agent id from agents.yaml.")],
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    broker: Annotated[str | None, typer.Option(help="Override the agent's broker URL.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run one edge agent: read its sensors, detect, publish, until Ctrl-C."""
    from gridcall.edge_agent.agent import EdgeAgent
    from gridcall.edge_agent.sources import Source

    _logging(verbose)
    cfg = _load(config_dir)
    spec = cfg.agents.get(agent)
    if spec is None:
        err.print(f"[red]no agent {agent!r} in {config_dir}/agents.yaml[/]; known: "
                  f"{', '.join(cfg.agents)}")
        raise typer.Exit(2)
    _require_env(config_dir / "agents.yaml",
                 [f"agents[{agent}].settings.broker.{m}" for m in spec.settings.broker.unset_env()]
                 + [f"agents[{agent}].source.{m}" for m in spec.source.unset_env()])
    source: Source
    if spec.source.type == "simulated":
        from gridcall.simulators.town import SimulatedTown

        source = SimulatedTown(cfg).source(agent)
    else:  # serial, modbus, mqtt
        from gridcall.edge_agent.source_factory import build_source

        source = build_source(spec)

    from gridcall.edge_agent.outbox import OutboxError
    from gridcall.edge_agent.sequence import SequenceStateError

    try:
        edge = EdgeAgent(spec, source, broker_url=broker, state_dir=Path(spec.settings.state_dir))
    except (SequenceStateError, OutboxError) as exc:
        err.print(f"[bold red]✗ agent {escape(agent)}:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None

    async def main(stop: asyncio.Event) -> None:
        await edge.run(stop)

    _until_signal(main)


from gridcall.cli_edge import edge_check  # noqa: E402  (its own module; registered here)

edge_app.command("check")(edge_check)

from gridcall.cli_report import hub_report  # noqa: E402  (its own module; registered here)

hub_app.command("report")(hub_report)

from gridcall.cli_api import token_app  # noqa: E402  (its own module; registered here)

hub_app.add_typer(token_app, name="token")

from gridcall.cli_ingest import hub_ingest  # noqa: E402  (its own module; registered here)

hub_app.command("ingest")(hub_ingest)

from gridcall.cli_boards import boards_app  # noqa: E402  (its own module; registered here)

app.add_typer(boards_app, name="boards")

from gridcall.cli_sim import sim_app  # noqa: E402  (its own module; registered here)

app.add_typer(sim_app, name="sim")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # python -m gridcall.cli … (else it imports and does nothing)
    app(prog_name="gridcall")
