"""``gridcall sim run|list``: play a scenario and compare its ground truth with the alerts.

``sim run`` plays a scenario file (or a packaged one by name, ``sim list``) on the
simulated district (simulators/sim.py): real edge agents and a real hub, over the
embedded broker or ``--broker``, as fast as it goes or ``--speed`` times real time,
with a progress bar. It ends with a report (simulators/truth.py): each injected anomaly
and outage, whether an alert found it and how soon, the false alerts, and the totals;
``--report-json`` writes it for CI. A scenario that cannot be loaded or run exits 2 with
the reason (file:line for the file's problems).

Registered on the main app by :mod:`gridcall.cli`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulators.scenario import PACKAGED, Scenario, ScenarioError, load_scenario
from simulators.truth import TruthReport, compare

sim_app = typer.Typer(help="Play scenarios on the simulated district; the scenario library.",
                      no_args_is_help=True)

out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]✗[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def library() -> list[Path]:
    """The packaged scenarios (simulators/scenarios/*.yaml), by name."""
    return sorted(PACKAGED.glob("*.yaml"))


@sim_app.command("list")
def sim_list() -> None:
    """The scenario library: name, simulated time, sensors, ground truth, what happens."""
    table = Table(title="scenario library (gridcall sim run NAME)", title_justify="left")
    table.add_column("name", no_wrap=True)  # what people type: never folded
    for col in ("duration", "sensors", "anomalies", "outages", "rain", "description"):
        table.add_column(col, overflow="fold")
    for path in library():
        try:
            s = load_scenario(path)
        except ScenarioError as exc:
            table.add_row(path.stem, "", "", "", "", "", f"[red]{escape(str(exc))}[/]")
            continue
        table.add_row(s.name, _duration(s.duration_s), str(len(s.sensor_ids)),
                      str(len(s.injections)), str(len(s.outages)), str(len(s.weather)),
                      escape(" ".join(s.description.split())))
    out.print(table)


@sim_app.command("run")
def sim_run(
    scenario: Annotated[str, typer.Argument(help="A scenario file, or the name of a "
                                            "packaged one (gridcall sim list).")],
    speed: Annotated[float | None, typer.Option(
        "--speed", min=0.001, help="Play at N times real time (default: as fast as it "
        "goes).")] = None,
    broker: Annotated[str | None, typer.Option(
        "--broker", help="A real MQTT broker (mqtt://host:port) for the agents and the "
        "hub; default: an embedded one.")] = None,
    report_json: Annotated[Path | None, typer.Option(
        "--report-json", help="Write the report as JSON (keys injected, detected, missed, "
        "false_alerts, median_delay_s, plus detail).")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the scenario's seed.")] = None,
    timeline: Annotated[bool, typer.Option(
        "--timeline/--no-timeline", help="Print the run's timeline too.")] = False,
) -> None:
    """Play SCENARIO against the hub and report ground truth against the alerts raised."""
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    options: dict[str, Any] = {} if seed is None else {"seed": seed}
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    try:
        run, report = asyncio.run(_play(loaded, broker, speed, options))
    except Exception as exc:  # the run itself failed: say what, not a traceback
        raise _fail(f"scenario {loaded.name} failed: {type(exc).__name__}: {exc}") from None
    if timeline:
        for entry in run.timeline:
            out.print(escape(str(entry)), highlight=False)
    out.print(report_table(loaded, report, run.wall_s))
    if report_json is not None:
        doc = {"scenario": loaded.name, **report.as_dict(), "wall_s": round(run.wall_s, 3),
               "samples": run.samples, "events": run.events,
               "broker": broker or "embedded"}
        report_json.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
                               encoding="utf-8")
        out.print(f"report written to {escape(str(report_json))}")


async def _play(scenario: Scenario, broker: str | None, speed: float | None,
                options: dict[str, Any]) -> tuple[Any, TruthReport]:
    from simulators.sim import run_scenario

    columns = (TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.fields[sim]} of {task.fields[of]} simulated"),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(scenario.name, total=scenario.duration_s, sim="0s",
                            of=_duration(scenario.duration_s))

        def progress(done_s: float, total_s: float) -> None:
            bar.update(task, completed=done_s, sim=_duration(done_s))

        run = await run_scenario(scenario, broker_url=broker, speed=speed,
                                 progress=progress, **options)
    return run, compare(run.injections, run, outages=run.scenario.outages)


def report_table(scenario: Scenario, report: TruthReport, wall_s: float) -> Table:
    """Ground truth against the alerts: one row per injected anomaly or outage, then the
    false alerts, then the totals in the caption."""
    table = Table(title=f"{scenario.name}: ground truth against alerts", title_justify="left")
    for col in ("at", "ground truth", "sensor / agent", "alert", "matter", "tier", "delay"):
        table.add_column(col, overflow="fold")
    start = scenario.start_ns / 1e9
    for d in report.detections:
        t = d.truth
        table.add_row(_offset(t.start - start), escape(t.label), escape(t.sensor or t.agent),
                      d.alert_id or "[red]missed[/]", d.matter or "", d.tier or "",
                      "" if d.delay_s is None else f"{d.delay_s:g} s")
    for f in report.false_alert_details:
        table.add_row(_offset(f.opened_at - start), "[yellow]false alert[/]",
                      escape(f.sensor), f.alert_id, f.matter, f.tier, "")
    delay = "–" if report.median_delay_s is None else f"{report.median_delay_s:g} s"
    table.caption = (f"injected {report.injected} · detected {report.detected} · missed "
                     f"{report.missed} · false alerts {report.false_alerts} · median delay "
                     f"{delay} · {report.alerts} alert(s) · wall {wall_s:.1f} s")
    table.caption_justify = "left"
    return table


def _duration(seconds: float) -> str:
    s = round(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{d}d" if d else "", f"{h}h" if h else "", f"{m}m" if m else "",
             f"{s}s" if s or not (d or h or m) else ""]
    return "".join(parts)


def _offset(seconds: float) -> str:
    sign = "-" if seconds < 0 else "+"
    s = abs(round(seconds))
    return f"{sign}{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
