"""``gridcall sim run|list|replay``: play a scenario and compare its ground truth with
the alerts; play recorded data as an edge agent.

``sim run`` plays a scenario file (or a packaged one by name, ``sim list``) on the
simulated district (simulators/sim.py): real edge agents and a real hub, over the
embedded broker or ``--broker``, as fast as it goes or ``--speed`` times real time,
with a progress bar. It ends with a report (simulators/truth.py): each injected anomaly
and outage, whether an alert found it and how soon, the false alerts, and the totals;
``--report-json`` writes it for CI. A scenario that cannot be loaded or run exits 2 with
the reason (file:line for the file's problems).

``sim replay`` plays a recorded CSV (simulators/replay.py) through a real edge agent of
the config set to its broker at any speed: staging a hub with recorded data.

Registered on the main app by :mod:`gridcall.cli`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridcall.cli.common import Command, ConfigDir, err, load_config_set, out, typer_app
from gridcall.config import SAMPLE_DISTRICT, AgentSpec

if TYPE_CHECKING:  # loaded when a sim command runs: `gridcall edge run` starts without them
    from gridcall.simulators.replay import Recording
    from gridcall.simulators.scenario import Scenario
    from gridcall.simulators.steps import StepRow
    from gridcall.simulators.truth import TruthReport

sim_app = typer_app("Play scenarios on the simulated district; the scenario library.")


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]✗[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def library() -> list[Path]:
    """The packaged scenarios (simulators/scenarios/*.yaml), by name."""
    from gridcall.simulators.scenario import PACKAGED

    return sorted(PACKAGED.glob("*.yaml"))


@sim_app.command("list", cls=Command)
def sim_list() -> None:
    """The scenario library: name, simulated time, sensors, ground truth, what happens."""
    from gridcall.simulators.scenario import ScenarioError, load_scenario

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


@sim_app.command("run", cls=Command)
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
    steps: Annotated[bool | None, typer.Option(
        "--steps/--no-steps", help="Print every ledger step with its time and actor "
        "(unit, department, person) and whom it was sent to; default: when the scenario "
        "has actions, reports, ratings or systems' events.")] = None,
    store: Annotated[Path | None, typer.Option(
        "--store", help="Keep the hub's store (its ledger) in this SQLite file, for "
        "gridcall hub report --store FILE --until END; default: in memory. The file must "
        "not hold another run's.")] = None,
) -> None:
    """Play SCENARIO against the hub and report ground truth against the alerts raised."""
    from gridcall.simulators.scenario import ScenarioError, load_scenario

    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    options: dict[str, Any] = {} if seed is None else {"seed": seed}
    if store is not None:
        if store.exists():
            raise _fail(f"--store {store}: the file exists; give a new one (a run's ledger "
                        "does not go on another's)")
        options["store_path"] = store
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    try:
        run, report = asyncio.run(_play(loaded, broker, speed, options))
    except Exception as exc:  # the run itself failed: say what, not a traceback
        raise _fail(f"scenario {loaded.name} failed: {type(exc).__name__}: {exc}") from None
    if timeline:
        for entry in run.timeline:
            out.print(escape(str(entry)), highlight=False)
    rows = run.steps()
    if steps if steps is not None else bool(
            loaded.actions or loaded.reports or loaded.ratings or loaded.externals):
        print_steps(loaded, rows)
    out.print(report_table(loaded, report, run.wall_s))
    if report_json is not None:
        doc = {"scenario": loaded.name, **report.as_dict(), "wall_s": round(run.wall_s, 3),
               "samples": run.samples, "events": run.events,
               "broker": broker or "embedded", "steps": [r.as_dict() for r in rows]}
        report_json.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
                               encoding="utf-8")
        out.print(f"report written to {escape(str(report_json))}")
    if store is not None:
        end = datetime.fromtimestamp(loaded.start_ns / 1e9 + loaded.duration_s,
                                     UTC).isoformat(timespec="seconds")
        out.print(f"the hub's store is in {escape(str(store))}: gridcall hub report "
                  f"--store {escape(str(store))} --until {end}", highlight=False,
                  soft_wrap=True)


async def _play(scenario: Scenario, broker: str | None, speed: float | None,
                options: dict[str, Any]) -> tuple[Any, TruthReport]:
    from gridcall.simulators.sim import run_scenario
    from gridcall.simulators.truth import compare

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
    # only a shared broker carries other publishers' events: embedded, every alert is ours
    shared = broker is not None
    return run, compare(run.injections, run, outages=run.scenario.outages,
                        sensors=set(run.scenario.sensor_ids) if shared else None,
                        agents=set(run.scenario.agent_ids) if shared else None)


@sim_app.command("replay", cls=Command)
def sim_replay(
    file: Annotated[Path, typer.Argument(help="A recorded CSV: an InfluxDB 1.x/2.x export "
                                         "or a data logger's file.")],
    agent: Annotated[str, typer.Option(help="The edge agent (agents.yaml) that plays it.")],
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    broker: Annotated[str | None, typer.Option(help="Override the agent's broker URL.")
                      ] = None,
    speed: Annotated[float, typer.Option(min=0.001, help="N times as fast as recorded.")
                     ] = 1.0,
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="COLUMN=SENSOR: a recorded column or series plays as that sensor "
        "(repeat it); unmapped ones must be sensor ids.")] = None,
    field: Annotated[str | None, typer.Option(
        help="The field to play when an InfluxDB export holds several.")] = None,
    columns: Annotated[str | None, typer.Option(
        help="Comma-separated column names of a file without a header.")] = None,
    keep_time: Annotated[bool, typer.Option(
        "--keep-time", help="Stamp the recorded times (a backfill) instead of now.")] = False,
) -> None:
    """Play a recorded CSV as an edge agent's sensors, through the real agent.

    The agent (detectors, outbox) publishes it to the broker at SPEED, then flushes and
    exits."""
    cfg = load_config_set(config_dir)
    spec = cfg.agents.get(agent)
    if spec is None:
        raise _fail(f"no agent {agent!r} in {config_dir}/agents.yaml; known: "
                    f"{', '.join(cfg.agents)}")
    pairs: dict[str, str] = {}
    for item in mapping or []:
        column, sep, sensor = item.partition("=")
        if not sep or not column or not sensor:
            raise _fail(f"--map {item!r}: give COLUMN=SENSOR")
        pairs[column] = sensor
    from gridcall.simulators.replay import ReplayError, read_recording

    try:
        rec = read_recording(file, mapping=pairs, sensors={s.id for s in spec.sensors},
                             value_field=field,
                             columns=columns.split(",") if columns else None)
    except ReplayError as exc:
        raise _fail(str(exc)) from None
    out.print(escape(rec.describe()), highlight=False)
    for row in rec.skipped[:20]:
        err.print(f"[yellow]skipped[/] {escape(row.describe(file))}", highlight=False)
    if len(rec.skipped) > 20:
        err.print(f"[yellow]… and {len(rec.skipped) - 20} more skipped row(s)[/]")
    played, sent, events = asyncio.run(_replay(spec, rec, broker, speed, keep_time))
    out.print(f"played {played} readings of {len(rec.series)} sensor(s) as {agent}: "
              f"{sent} sent, {events} anomaly event(s)")


async def _replay(spec: AgentSpec, rec: Recording, broker: str | None, speed: float,
                  keep_time: bool) -> tuple[int, int, int]:
    import time

    from gridcall.edge_agent.agent import EdgeAgent
    from gridcall.simulators.replay import ReplaySource

    source = ReplaySource(rec, clock=time.time_ns, speed=speed, keep_time=keep_time)
    edge = EdgeAgent(spec, source, broker_url=broker)
    stop = asyncio.Event()
    run = asyncio.create_task(edge.run(stop))
    done = asyncio.create_task(source.done.wait())
    await asyncio.wait({run, done}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()  # the recording is over: the agent seals and sends what it holds
    await run
    c = edge.counters
    return source.played, c.readings_sent, c.events_sent


def print_steps(scenario: Scenario, rows: list[StepRow]) -> None:
    """Every ledger step of the run, one line each: when (after the start), which alert,
    what, and who: the unit (``hub`` for its own steps) / department / person, what
    called (via), whom it was sent to (->), and where the alert stood then
    (simulators/steps.py)."""
    out.print(f"[bold]{escape(scenario.name)}: steps and who took them[/] (time after the "
              "start; by unit/department/person)", highlight=False)
    for r in rows:
        out.print(escape(r.line()), highlight=False, soft_wrap=True)
    if not rows:
        out.print("  no alert was opened")


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
    for f in report.calls:
        kind = "a person's report" if f.anomaly_kind == "report" else "a system's event"
        table.add_row(_offset(f.opened_at - start), f"[cyan]call: {kind}[/]",
                      escape(f.sensor), f.alert_id, f.matter, f.tier, "")
    for f in report.foreign:
        table.add_row(_offset(f.opened_at - start), "[dim]foreign (another publisher "
                      "on the broker)[/]", escape(f.sensor), f.alert_id, f.matter, f.tier, "")
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
