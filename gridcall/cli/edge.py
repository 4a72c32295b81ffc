"""``gridcall edge run|check|discover``: run one edge agent; commission an edge box (the
command for field technicians; the checks themselves are in :mod:`gridcall.commission`);
draft an MQTT source's mappings from Home Assistant discovery
(:mod:`gridcall.edge_agent.discovery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gridcall.cli.common import (
    Command,
    ConfigDir,
    Verbose,
    err,
    fail,
    load_config_set,
    out,
    require_env,
    setup_logging,
    typer_app,
    until_signal,
)
from gridcall.commission import Check, CheckOptions, run_checks, source_type
from gridcall.config import SAMPLE_DISTRICT, AgentSpec, ConfigSet
from gridcall.edge_agent.discovery import Discovered, draft, parse
from gridcall.edge_agent.sources import Source

edge_app = typer_app("Run or commission an edge agent.")

STYLE = {"PASS": "bold green", "WARN": "bold yellow", "FAIL": "bold red"}


def open_source(cfg: ConfigSet, spec: AgentSpec, *, interval_scale: float = 1.0) -> Source:
    """The agent's source as ``gridcall edge run`` opens it: a registered kind through
    the source registry, a simulated one from the simulators (which the runtime never
    imports), its sensors' intervals times ``interval_scale``."""
    if source_type(spec.source) == "simulated":
        from gridcall.simulators.town import SimulatedTown

        return SimulatedTown(cfg, interval_scale=interval_scale).source(spec.id)
    from gridcall.edge_agent.source_factory import build_source

    return build_source(spec)


def source_for(cfg: ConfigSet, spec: AgentSpec) -> Source:
    """The agent's source for ``edge check`` (MQTT is checked apart): a simulated one at a
    hundredth of each sensor's interval, a few values at once rather than in 5 s."""
    return open_source(cfg, spec, interval_scale=0.01)


@edge_app.command("run", cls=Command)
def edge_run(
    agent: Annotated[str, typer.Option(help="Agent id from agents.yaml.")],
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    broker: Annotated[str | None, typer.Option(help="Override the agent's broker URL.")] = None,
    local_broker: Annotated[str | None, typer.Option(
        help="Read an MQTT source's sensors from this broker URL instead of the one in "
        "agents.yaml (as `edge check --local-broker`).")] = None,
    verbose: Verbose = False,
) -> None:
    """Run one edge agent: read its sensors, detect, publish, until Ctrl-C.

    On Ctrl-C/SIGTERM it flushes for up to 30 s and exits within 40 s
    whatever its source is doing; a second one exits at once (status 1).
    """
    from gridcall.edge_agent.agent import EdgeAgent

    setup_logging(verbose)
    cfg = load_config_set(config_dir)
    spec = cfg.agents.get(agent)
    if spec is None:
        err.print(f"[red]no agent {agent!r} in {config_dir}/agents.yaml[/]; known: "
                  f"{', '.join(cfg.agents)}")
        raise typer.Exit(2)
    if local_broker is not None:
        spec = with_local_broker(spec, local_broker)
    require_env(config_dir / "agents.yaml",
                [f"agents[{agent}].settings.broker.{m}" for m in spec.settings.broker.unset_env()]
                + [f"agents[{agent}].source.{m}" for m in spec.source.unset_env()])
    source = open_source(cfg, spec)

    from gridcall.edge_agent.outbox import OutboxError
    from gridcall.edge_agent.sequence import SequenceStateError

    try:
        edge = EdgeAgent(spec, source, broker_url=broker, state_dir=Path(spec.settings.state_dir))
    except (SequenceStateError, OutboxError) as exc:
        err.print(f"[bold red]✗ agent {escape(agent)}:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None

    recovered = edge.counters.recovered_readings
    out.print(f"agent {escape(agent)}: {escape(describe_source(spec))} → "
              f"{escape(str(edge.address))}; state in {escape(spec.settings.state_dir)}"
              + (f"; sealed {recovered} readings the last run read but had not sealed"
                 if recovered else ""), highlight=False, soft_wrap=True)

    metrics_at: tuple[str, int] | None = None
    if spec.settings.metrics is not None:
        try:
            from gridcall.edge_agent.metrics import parse_address
        except ImportError:
            raise fail(f"agent {agent}: settings.metrics needs prometheus-client: pip "
                       "install 'gridcall[metrics]'", 2) from None
        metrics_at = parse_address(spec.settings.metrics)

    async def main(stop: asyncio.Event) -> None:
        if metrics_at is None:
            await edge.run(stop)
            return
        from gridcall.edge_agent.metrics import start_metrics

        async with await start_metrics(edge, *metrics_at):
            out.print(f"agent {escape(agent)}: metrics on "
                      f"http://{metrics_at[0]}:{metrics_at[1]}/metrics", highlight=False)
            await edge.run(stop)

    if metrics_at is None:
        until_signal(main)
    else:
        from gridcall.edge_agent.metrics import MetricsBindError

        try:
            until_signal(main)
        except MetricsBindError as exc:
            raise fail(str(exc), 1) from None
    c = edge.counters
    kept = edge.outbox_depth
    out.print(f"agent {escape(agent)} stopped: {c.samples} samples read, "
              f"{c.readings_sent} readings in {c.batches_sent} batches and {c.events_sent} "
              f"anomaly events sent; {kept} message(s) kept in the outbox"
              + (" for the next start" if kept else ""), highlight=False, soft_wrap=True)


def with_local_broker(spec: AgentSpec, url: str) -> AgentSpec:
    """``spec`` reading its MQTT source from ``url``; exits 2 for another kind of source."""
    source = spec.source
    local = getattr(source, "broker", None)
    if source_type(source) != "mqtt" or local is None:
        raise fail(f"--local-broker is for an agent whose source is mqtt; {spec.id}'s is "
                   f"{source_type(source)}", 2)
    moved = source.model_copy(update={"broker": local.model_copy(update={"url": url})})
    return dataclasses.replace(spec, source=moved)


def describe_source(spec: AgentSpec) -> str:
    """``serial source at /dev/ttyUSB0, 6 sensors``: what the start line says it reads
    (a Modbus source: each of its connections, ``tcp://10.0.0.5:502``)."""
    settings = spec.source
    links = getattr(settings, "links", None)
    port = (", ".join(str(link) for link in links()) if callable(links)
            else getattr(settings, "port", None))
    broker = getattr(getattr(settings, "broker", None), "url", None)
    where = f" at {port}" if port else f" on {broker}" if broker else ""
    n = len(spec.sensors)
    return f"{settings.type} source{where}, {n} sensor{'' if n == 1 else 's'}"


def table(checks: list[Check]) -> Table:
    t = Table(title="gridcall edge check", show_lines=True, expand=False)
    t.add_column("check", no_wrap=True)
    t.add_column("result", no_wrap=True)
    t.add_column("found")
    t.add_column("what to do")
    for c in checks:
        t.add_row(c.name, f"[{STYLE[c.status]}]{c.status}[/]", escape(c.detail), escape(c.fix))
    return t


@edge_app.command("check", cls=Command)
def edge_check(
    config: Annotated[Path, typer.Option(
        "--config", "-c", help="The config set folder, or a file in it (e.g. "
        "/etc/gridcall/agents.yaml: its folder is read, since sensors.yaml and "
        "topology.yaml belong with it).")],
    agent: Annotated[str | None, typer.Option(
        help="Agent id from agents.yaml; may be left out when the set has one agent.")] = None,
    broker: Annotated[str | None, typer.Option(
        help="Check this uplink broker URL instead of the agent's.")] = None,
    local_broker: Annotated[str | None, typer.Option(
        help="Read an MQTT source's sensors from this broker URL instead of the one in "
        "agents.yaml (e.g. a rehearsal without the box's own mosquitto).")] = None,
    timeout: Annotated[float, typer.Option(
        help="Seconds for each broker connection.", min=0.1)] = 10.0,
    wait: Annotated[float, typer.Option(
        help="Seconds to wait for values from the agent's source.", min=0.1)] = 10.0,
    verbose: Verbose = False,
) -> None:
    """Commission an edge box: PASS/WARN/FAIL for each check, with what to fix.

    Checks the config, serial ports, the source's first values, the uplink broker's login
    and the state folder; exits 1 on any FAIL."""
    setup_logging(verbose, quiet=logging.ERROR)  # the table is the output
    options = CheckOptions(config=config, agent=agent, broker=broker,
                           local_broker=local_broker, timeout=timeout, wait=wait)
    checks = asyncio.run(run_checks(options, factory=source_for))
    console = Console()  # made here, so COLUMNS set for this run is honoured
    console.print(table(checks))
    failed = [c.name for c in checks if c.status == "FAIL"]
    warned = [c.name for c in checks if c.status == "WARN"]
    if failed:
        hints = "; ".join(dict.fromkeys(c.hint for c in checks if c.status == "FAIL" and c.hint))
        console.print(f"[bold red]✗ {len(failed)} check(s) failed: {escape(', '.join(failed))}"
                      f"[/]" + (f" ({escape(hints)})" if hints else ""), soft_wrap=True)
        raise typer.Exit(1)
    console.print("[bold green]✓ ready[/]" + (f" ([yellow]{len(warned)} warning(s): "
                                          f"{', '.join(warned)}[/])" if warned else ""))


async def listen_for_discovery(url: str, *, seconds: float, prefix: str,
                               username: str | None, password: str | None
                               ) -> list[Discovered]:
    """The discovery configs announced on the broker at ``url`` within ``seconds``
    (retained ones arrive at once), the last one per config topic."""
    import aiomqtt

    from gridcall.wire.broker import BrokerAddress

    address = BrokerAddress.parse(url, None)
    found: dict[str, Discovered] = {}
    async with aiomqtt.Client(address.host, address.port, username=username,
                              password=password, tls_context=address.tls_context()) as client:
        for topic in (f"{prefix}/+/+/config", f"{prefix}/+/+/+/config"):
            await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                payload = message.payload
                data = payload if isinstance(payload, bytes) else str(payload or "").encode()
                topic = message.topic.value
                entry = parse(topic, data, prefix)
                if entry is None:
                    found.pop(topic, None)  # a removal, or not a measurement
                else:
                    found[topic] = entry

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(collect(), timeout=seconds)
    return list(found.values())


@edge_app.command("discover", cls=Command)
def edge_discover(
    broker: Annotated[str, typer.Option(
        help="The broker the devices publish to (mqtt:// or mqtts://).")] =
        "mqtt://127.0.0.1:1883",
    listen: Annotated[float, typer.Option(
        help="Seconds to listen for announcements (retained ones come at once; a device "
        "announces again when it restarts).", min=0.1)] = 10.0,
    prefix: Annotated[str, typer.Option(
        help="Home Assistant's discovery prefix.")] = "homeassistant",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the draft here instead of printing it.")] = None,
    username_env: Annotated[str | None, typer.Option(
        help="Environment variable holding the broker's user name.")] = None,
    password_env: Annotated[str | None, typer.Option(
        help="Environment variable holding the broker's password.")] = None,
    verbose: Verbose = False,
) -> None:
    """Draft an MQTT source's mappings from Home Assistant MQTT discovery.

    Listens on <prefix>/+/+/config and the node form <prefix>/+/+/+/config for sensors
    and binary sensors (Tasmota, ESPHome, Zigbee2MQTT and Shelly announce theirs there)
    and writes a `source:` block for agents.yaml: rename the sensors to the district's
    ids and delete what the agent should not read."""
    import aiomqtt

    from gridcall.config.base import read_env

    setup_logging(verbose)
    try:
        user, password = read_env(username_env), read_env(password_env)
    except KeyError as exc:
        raise fail(str(exc).strip("'\"")) from None
    try:
        found = asyncio.run(listen_for_discovery(broker, seconds=listen, prefix=prefix,
                                                 username=user, password=password))
    except ValueError as exc:
        raise fail(f"--broker: {exc}") from None
    except aiomqtt.MqttError as exc:
        raise fail(f"cannot listen on {broker}: {exc}", code=1) from None
    text = draft(found, broker)
    if output is None:
        out.print(text, end="", markup=False, highlight=False, soft_wrap=True)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output} ({len(found)} sensors announced)", highlight=False)
