"""Commissioning checks for a field technician: is this box ready to run its agent?

:func:`run_checks` validates the config, lists serial ports, opens the agent's source and
reads a few values, checks the uplink broker's reachability *and* credentials, and checks
the state folder is writable with room to spare. Each check is a :class:`Check` with a
status (PASS, WARN, FAIL), what was found, and for a FAIL or WARN what to do about it.

It lives in ``gridcall/`` (the composition root) because a simulated source comes from
``simulators/``, which the edge agent itself never imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiomqtt

from gridcall.config import AgentSpec, ConfigError, ConfigSet, load_config
from gridcall.config.base import BrokerSettings
from gridcall.config.local_mqtt import LocalMqttSource as LocalMqttSettings
from gridcall.edge_agent.sources import Sample, Source
from gridcall.wire.broker import BrokerAddress, credentials_refused

Status = Literal["PASS", "WARN", "FAIL"]
MIN_FREE_BYTES = 50 * 2**20
"""Below this a state folder FAILs: the outbox and checkpoints need room to grow."""
LOW_FREE_BYTES = 500 * 2**20
"""Below this it WARNs."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class CheckOptions:
    config: Path
    """A config set folder, or a file in one (``agents.yaml``): its folder is used."""
    agent: str | None = None
    """None: the config set's only agent."""
    broker: str | None = None
    """Override the agent's uplink broker URL (as ``gridcall edge run --broker``)."""
    local_broker: str | None = None
    """Override an MQTT source's local broker URL (a rehearsal against another broker)."""
    timeout: float = 10.0
    """Seconds for each broker connection attempt."""
    wait: float = 10.0
    """Seconds to wait for values from a source that publishes on its own schedule."""
    values: int = 3
    """How many values to read from a source that has them at once."""


def config_dir(path: Path) -> Path:
    return path.parent if path.is_file() else path


def source_type(source: Any) -> str:
    """``simulated``, ``serial``, ``modbus``, ``mqtt``: a bare name or a model's type."""
    return source if isinstance(source, str) else str(source.type)


def load(options: CheckOptions) -> tuple[list[Check], ConfigSet | None, AgentSpec | None]:
    from gridcall.detectors import REGISTRY
    from gridcall.edge_agent.watch import detector_problem

    directory = config_dir(options.config)
    try:
        cfg = load_config(directory, known_detectors=set(REGISTRY),
                          check_detector=detector_problem)
    except ConfigError as exc:
        shown = [str(p) for p in exc.problems[:8]]
        more = len(exc.problems) - len(shown)
        return [Check("config", "FAIL", f"{directory}: {len(exc.problems)} problem(s):\n"
                      + "\n".join(shown) + (f"\n... and {more} more" if more else ""),
                      f"fix them; `gridcall config check {directory}` lists all")], None, None
    checks = [Check("config", "PASS", f"{directory}: {len(cfg.agents)} agents, "
                    f"{len(cfg.sensors)} sensors")]
    agent = options.agent
    if agent is None and len(cfg.agents) == 1:
        agent = next(iter(cfg.agents))
    spec = cfg.agents.get(agent) if agent is not None else None
    if spec is None:
        checks.append(Check("agent", "FAIL",
                            f"no agent {agent!r} in {directory / 'agents.yaml'}" if agent
                            else f"{len(cfg.agents)} agents in {directory / 'agents.yaml'}",
                            f"give --agent with one of: {', '.join(cfg.agents)}"))
        return checks, cfg, None
    checks.append(Check("agent", "PASS", f"{spec.id} ({spec.name}): {len(spec.sensors)} "
                        f"sensors, source {source_type(spec.source)}"))
    return checks, cfg, spec


def env_check(spec: AgentSpec) -> Check:
    unset = [f"settings.broker.{m}" for m in spec.settings.broker.unset_env()]
    if isinstance(spec.source, LocalMqttSettings):
        unset += [f"source.broker.{m}" for m in spec.source.broker.unset_env()]
    if unset:
        names = [u.rpartition(": ")[2] for u in unset]
        return Check("credentials", "FAIL", "not set: " + "; ".join(unset),
                     f"set {', '.join(names)} in the environment (for the service: its "
                     "EnvironmentFile, /etc/gridcall/edge.env)")
    named = (spec.settings.broker.username_env, spec.settings.broker.password_env)
    return Check("credentials", "PASS", "every variable the config names is set"
                 if any(named) else "the uplink broker takes no login in this config")


def serial_ports(spec: AgentSpec | None) -> Check:
    from serial.tools import list_ports

    ports = sorted(list_ports.comports(), key=lambda p: p.device)
    listing = "; ".join(f"{p.device} ({p.description})" if p.description not in (None, "n/a")
                        else p.device for p in ports) or "none"
    needs = spec is not None and source_type(spec.source) in ("serial", "modbus")
    if not ports and needs:
        return Check("serial ports", "WARN", "no USB or on-board serial port found",
                     "plug the USB-serial adapter in; `dmesg | tail` shows whether the kernel "
                     "saw it")
    return Check("serial ports", "PASS", listing)


async def probe_broker(name: str, settings: BrokerSettings, url: str | None, *,
                       timeout: float, client_id: str) -> Check:  # noqa: ASYNC109
    """Connect and disconnect once: PASS, or FAIL saying unreachable or refused login."""
    try:
        address = BrokerAddress.parse(url or settings.url)
    except ValueError as exc:
        return Check(name, "FAIL", str(exc), "fix the broker url in agents.yaml")
    try:
        user, password = settings.credentials()
    except KeyError as exc:
        return Check(name, "FAIL", f"{address}: {exc.args[0]}",
                     "set the variable (see the credentials check)")
    client = aiomqtt.Client(address.host, address.port, username=user, password=password,
                            identifier=client_id, tls_context=address.tls_context(),
                            timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            async with client:
                pass
    except TimeoutError:
        return Check(name, "FAIL", f"{address}: no answer within {timeout:g}s",
                     "check the network (4G/LAN), the host and port in the url, and any "
                     "firewall between this box and the broker")
    except aiomqtt.MqttError as exc:
        if credentials_refused(exc):
            who = f"user {user!r}" if user else "an anonymous login"
            env = " / ".join(v for v in (settings.username_env, settings.password_env) if v)
            return Check(name, "FAIL", f"{address} refused {who} ({exc})",
                         f"check the login in {env or 'username_env / password_env'}; "
                         "the broker's operator can tell which user it expects")
        return Check(name, "FAIL", f"{address} unreachable ({exc})",
                     "check the network (4G/LAN), the host and port in the url, that the "
                     "broker runs, and any firewall")
    login = f" as {user!r}" if user else " (anonymous)"
    return Check(name, "PASS", f"{address}: connected and logged in{login}")


async def _read(source: Source, *, wait: float,
                done: Callable[[list[Sample]], bool]) -> list[Sample]:
    """Samples until ``done(samples)`` or ``wait`` seconds; the source is closed after."""
    got: list[Sample] = []
    samples = source.samples()

    async def take() -> None:
        async for sample in samples:
            got.append(sample)
            if done(got):
                return

    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(take(), timeout=wait)
    finally:
        aclose = getattr(samples, "aclose", None)
        if aclose is not None:  # an async generator: close its port or connection now
            await aclose()
    return got


def _skipped(source: object) -> str:
    """The non-zero ``bad_*`` counters of a source that keeps them, as one phrase."""
    counters = getattr(source, "counters", None)
    if not callable(counters):
        return ""
    try:
        bad = {k.removeprefix("bad_"): int(v) for k, v in dict(counters()).items()
               if k.startswith("bad_") and v}
    except Exception:  # a broken counter must not break the check
        return ""
    return ", ".join(f"{n} {reason}" for reason, n in sorted(bad.items()))


def _open_refused(source: object, port: str) -> str:
    """Why a serial or Modbus source's port never opened ('' if it did, or has no port)."""
    link = getattr(source, "link", None) or getattr(source, "poller", None)
    counts = getattr(link, "counts", None)
    if counts is None or counts["opens"] or not counts["open_failures"]:
        return ""
    why = str(getattr(link, "last_error", ""))
    if not why:  # pymodbus only says connect() failed: open the port once to learn why
        import serial

        try:
            serial.Serial(port, exclusive=True).close()
        except (serial.SerialException, OSError, ValueError) as exc:
            why = str(exc)
    return why or "refused (no reason given)"


def _open_fix(error: str, port: str) -> str:
    if "lock" in error.lower():  # pyserial's exclusive open: another program holds it
        return (f"another program has {port} open: the agent's own service if it runs "
                "(`sudo systemctl stop gridcall-edge`, check again, then `sudo systemctl "
                f"start gridcall-edge`), or a terminal program (`sudo fuser -v {port}` "
                "names it)")
    return ("check the port's permissions (dialout group), that it is a serial device, "
            "and the baud rate in agents.yaml")


def _values(samples: list[Sample]) -> str:
    last: dict[str, float | None] = {}
    for s in samples:
        last[s.sensor] = s.value
    shown = [f"{k}={'no value' if v is None else f'{v:g}'}" for k, v in list(last.items())[:6]]
    return ", ".join(shown) + (f" (+{len(last) - 6} more)" if len(last) > 6 else "")


async def mqtt_source_checks(spec: AgentSpec, settings: LocalMqttSettings,
                             options: CheckOptions) -> list[Check]:
    from gridcall.edge_agent.local_mqtt import LocalMqttSource

    probe_id = f"gridcall-check-{spec.id}-{uuid.uuid4().hex[:6]}"
    if options.local_broker is not None:
        settings = settings.model_copy(update={"broker": settings.broker.model_copy(
            update={"url": options.local_broker})})
    reach = await probe_broker("local MQTT broker", settings.broker, None,
                               timeout=options.timeout, client_id=probe_id)
    if reach.status == "FAIL" and ("unreachable" in reach.detail
                                   or "no answer within" in reach.detail):
        # the sensors' broker usually runs on this box: say what to start, not "network"
        reach = dataclasses.replace(reach, fix=(
            "start the broker the sensors publish to: on this box `sudo systemctl start "
            "mosquitto` (`sudo apt-get install mosquitto` if it is not installed); on the LAN "
            "check its host, port and firewall; or check against another broker with "
            "--local-broker URL"))
    if reach.status == "FAIL":
        return [reach]
    # Retained values count here: they show the device did publish, and when a device
    # reports every few minutes they may be all there is within the wait.
    copy = settings.model_copy(update={"client_id": probe_id + "-read",
                                       "accept_retained": True})
    source = LocalMqttSource(copy, agent_id=spec.id, sensors={s.id for s in spec.sensors})
    expected = {m.sensor for m in settings.mappings() if not m.is_template}
    got = await _read(source, wait=options.wait,
                      done=lambda got: expected <= {s.sensor for s in got})
    seen = {s.sensor for s in got}
    bad = _skipped(source)
    topics = ", ".join(source.filters[:4]) + (" ..." if len(source.filters) > 4 else "")
    if not got and bad:
        return [reach, Check("source (mqtt)", "FAIL",
                             f"messages arrived but none could be read: {bad}",
                             "compare the device's payload (mosquitto_sub -v -t '#') with the "
                             "preset and field names in agents.yaml")]
    if not got:
        return [reach, Check("source (mqtt)", "WARN",
                             f"no message on {topics} within {options.wait:g}s",
                             "check the device publishes to this broker and topic "
                             "(mosquitto_sub -v -t '#'); a device reporting every few "
                             "minutes (Tasmota TelePeriod 300 s) needs a longer --wait")]
    missing = sorted(expected - seen)
    detail = f"read {len(got)} values: {_values(got)}" + (f"; skipped: {bad}" if bad else "")
    if missing:
        return [reach, Check("source (mqtt)", "WARN",
                             f"{detail}; nothing yet from {', '.join(missing)}",
                             "check those devices publish (or wait longer with --wait)")]
    return [reach, Check("source (mqtt)", "PASS", detail)]


def port_check(spec: AgentSpec) -> Check | None:
    """A serial or Modbus source's port: present, a character device, openable."""
    port = getattr(spec.source, "port", None)
    if port is None:
        return None
    kind = source_type(spec.source)
    path = Path(port)
    if not path.exists():
        return Check(f"{kind} port", "FAIL", f"missing serial device {port}",
                     "plug the device in; `ls -l /dev/serial/by-id/` shows what is there; "
                     "a udev rule gives it a stable name (docs/install-edge.md)")
    if not os.access(path, os.R_OK | os.W_OK):
        return Check(f"{kind} port", "FAIL", f"{port}: no read/write permission",
                     "add the service user to the dialout group (docs/install-edge.md)")
    return Check(f"{kind} port", "PASS", f"{port} present ({path.resolve()})")


SourceFactory = Callable[[ConfigSet, AgentSpec], Source]


async def source_checks(cfg: ConfigSet, spec: AgentSpec, options: CheckOptions,
                        factory: SourceFactory | None) -> list[Check]:
    kind = source_type(spec.source)
    if isinstance(spec.source, LocalMqttSettings):
        return await mqtt_source_checks(spec, spec.source, options)
    checks: list[Check] = []
    port = port_check(spec)
    if port is not None:
        checks.append(port)
        if port.status == "FAIL":
            return checks
    if factory is None:
        return [*checks, Check(f"source ({kind})", "WARN", f"reading a {kind} source is not "
                               "available in this version", "")]
    try:
        source = factory(cfg, spec)
    except (OSError, ValueError) as exc:
        return [*checks, Check(f"source ({kind})", "FAIL", f"cannot open: {exc}",
                               "see the message; check the port and its settings")]
    want = max(1, min(options.values, len(spec.sensors)))
    got = await _read(source, wait=options.wait, done=lambda got: len(got) >= want)
    bad = _skipped(source)
    device = str(getattr(spec.source, "port", "the port"))
    refused = _open_refused(source, device) if not got else ""
    if refused:
        return [*checks, Check(f"source ({kind})", "FAIL", f"cannot open {device}: {refused}",
                               _open_fix(refused, device))]
    if not got:
        return [*checks, Check(f"source ({kind})", "FAIL",
                               f"no value within {options.wait:g}s"
                               + (f"; skipped: {bad}" if bad else ""),
                               "check the wiring, baud rate and device ids; is the device "
                               "powered?")]
    return [*checks, Check(f"source ({kind})", "PASS", f"read {len(got)} values: "
                           f"{_values(got)}" + (f"; skipped: {bad}" if bad else ""))]


def state_dir_check(spec: AgentSpec) -> Check:
    path = Path(spec.settings.state_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".gridcall-check-{uuid.uuid4().hex[:8]}"
        with probe.open("wb") as f:
            f.write(b"x" * 4096)
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        return Check("state dir", "FAIL", f"{path}: cannot write ({exc.strerror or exc})",
                     "create it and give it to the service user, or set state_dir in "
                     "agents.yaml (the systemd unit's StateDirectory= makes "
                     "/var/lib/gridcall-edge)")
    free = shutil.disk_usage(path).free
    where = f"{path.resolve()}: writable, {free / 2**20:,.0f} MiB free"
    if free < MIN_FREE_BYTES:
        return Check("state dir", "FAIL", where, f"free at least {MIN_FREE_BYTES // 2**20} MiB "
                     "(the outbox keeps readings here while the uplink is down)")
    if free < LOW_FREE_BYTES:
        return Check("state dir", "WARN", where, "little room for the outbox during a long "
                     "outage; free some space or use a larger card")
    if not path.is_absolute():
        return Check("state dir", "WARN", f"{where}; relative to the folder this check ran in",
                     "give an absolute state_dir in agents.yaml (e.g. /var/lib/gridcall-edge): "
                     "the service resolves a relative one against its WorkingDirectory")
    return Check("state dir", "PASS", where)


async def run_checks(options: CheckOptions, *, factory: SourceFactory | None = None
                     ) -> list[Check]:
    """Every check, in the order a technician would fix them."""
    checks, cfg, spec = load(options)
    checks.append(serial_ports(spec))
    if cfg is None or spec is None:
        return checks
    checks.append(env_check(spec))
    checks += await source_checks(cfg, spec, options, factory)
    checks.append(await probe_broker(
        "uplink broker", spec.settings.broker, options.broker, timeout=options.timeout,
        # never the agent's own client id: the broker would drop a running agent for it
        client_id=f"gridcall-check-{spec.id}-{uuid.uuid4().hex[:6]}"))
    checks.append(state_dir_check(spec))
    return checks

