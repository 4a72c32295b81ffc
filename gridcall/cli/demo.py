"""``gridcall demo``: the whole pipeline on the sample district, with nothing installed
(the run itself is :mod:`gridcall.demo`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gridcall.cli.common import ConfigDir, Verbose, err, load_config_set, out, setup_logging
from gridcall.config import SAMPLE_DISTRICT


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
    take_offline: Annotated[str | None, typer.Option(
        metavar="AGENT", help="Take this edge agent offline on purpose (its uplink cut from "
        "30% to 55% of the run, so the broker publishes its last will), announced in "
        "the live view: the hub raises one EDGE-OFFLINE for the outage. Counted in the "
        "summary as agents_taken_offline.")] = None,
    verbose: Verbose = False,
) -> None:
    """Run the whole pipeline on the sample district, with nothing installed.

    Embedded broker and store, edge agents on simulated sensors with injected anomalies,
    the hub, and a live view; --broker and --influx switch to real servers. Exits 1 if a
    reading published was not stored (the summary says where it went).
    """
    from gridcall.demo import BrokerUnreachable, DemoOptions, run_demo

    setup_logging(verbose)
    cfg = load_config_set(config_dir)
    try:
        options = DemoOptions(config=cfg, duration=duration, broker=broker, influx=influx,
                              influx_api=influx_api, influx_database=influx_database,
                              store_path=store, summary_json=summary_json, seed=seed,
                              live=out.is_terminal, drain_timeout=drain_timeout,
                              clock_speed=clock_speed, api=api, take_offline=take_offline)
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
    def tiers(counts: dict[str, int]) -> str:
        return " ".join(f"{t} {n}" for t, n in counts.items())

    out.print(
        f"{'[green]✓' if ok else '[red]✗'}[/] {published} readings "
        f"published, {stored} stored; {summary['anomaly_events']} anomaly "
        f"events; {summary['alerts_opened']} alerts (tiers at opening "
        f"{tiers(summary['tiers_at_opening'])}, now {tiers(summary['tiers_now'])}); "
        f"{summary['alerts_delivered']} delivered; {summary['escalations']} escalations; "
        f"{summary['malformed_messages']} malformed", highlight=False
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

