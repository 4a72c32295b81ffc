"""Commissioning checks for a field technician: is this box ready to run its agent?

:func:`run_checks` validates the config, lists serial ports, opens the agent's source and
reads a few values, checks the uplink broker's reachability *and* credentials, and checks
the state folder is writable with room to spare. Each check is a :class:`Check` with a
status (PASS, WARN, FAIL), what was found, and for a FAIL or WARN what to do about it.

It lives in ``gridcall/`` (the composition root) because a simulated source comes from
``simulators/``, which the edge agent itself never imports. Each kind of source brings its
own checks next to its builder (:mod:`gridcall.edge_agent.source_factory`); this module
calls them through that registry.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridcall.config import AgentSpec, ConfigError, ConfigSet, load_config
from gridcall.edge_agent.commissioning import Check, CheckOptions, Status, probe_broker
from gridcall.edge_agent.source_factory import source_checks as kind_checks
from gridcall.edge_agent.sources import Source

__all__ = ["Check", "CheckOptions", "Status", "probe_broker", "run_checks", "source_type"]

MIN_FREE_BYTES = 50 * 2**20
"""Below this a state folder FAILs: the outbox and checkpoints need room to grow."""
LOW_FREE_BYTES = 500 * 2**20
"""Below this it WARNs."""


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
    unset += [f"source.{m}" for m in spec.source.unset_env()]
    if unset:
        names = [u.rpartition(": ")[2] for u in unset]
        return Check("credentials", "FAIL", "not set: " + "; ".join(unset),
                     f"set {', '.join(names)} in the environment (for the service: its "
                     "EnvironmentFile, /etc/gridcall/edge.env)")
    named = (spec.settings.broker.username_env, spec.settings.broker.password_env)
    return Check("credentials", "PASS", "every variable the config names is set"
                 if any(named) else "the uplink broker takes no login in this config")


def reads_serial_port(spec: AgentSpec) -> bool:
    """The agent's source reads a serial port (serial frames, Modbus RTU), not TCP, MQTT
    or a simulation."""
    return getattr(spec.source, "port", None) is not None


def serial_ports(spec: AgentSpec) -> Check:
    """The serial ports this box has (only asked for an agent that reads one)."""
    from serial.tools import list_ports

    ports = sorted(list_ports.comports(), key=lambda p: p.device)
    listing = "; ".join(f"{p.device} ({p.description})" if p.description not in (None, "n/a")
                        else p.device for p in ports) or "none"
    if not ports:
        return Check("serial ports", "WARN", "no USB or on-board serial port found",
                     "plug the USB-serial adapter in; `dmesg | tail` shows whether the kernel "
                     "saw it")
    return Check("serial ports", "PASS", listing)


SourceFactory = Callable[[ConfigSet, AgentSpec], Source]


async def source_checks(cfg: ConfigSet, spec: AgentSpec, options: CheckOptions,
                        factory: SourceFactory | None) -> list[Check]:
    """The source's own checks, from its kind in the registry (the port, its values...)."""
    open_source = (lambda: factory(cfg, spec)) if factory is not None else None
    return await kind_checks(spec, options, open_source)


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
    if cfg is None or spec is None:
        return checks
    if reads_serial_port(spec):  # a row for TCP, MQTT or simulated agents only misleads
        checks.append(serial_ports(spec))
    checks.append(env_check(spec))
    checks += await source_checks(cfg, spec, options, factory)
    checks.append(await probe_broker(
        "uplink broker", spec.settings.broker, options.broker, timeout=options.timeout,
        # never the agent's own client id: the broker would drop a running agent for it
        client_id=f"gridcall-check-{spec.id}-{uuid.uuid4().hex[:6]}",
        flag=None if options.broker else "--broker"))
    checks.append(state_dir_check(spec))
    return checks

