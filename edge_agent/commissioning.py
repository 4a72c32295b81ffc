"""What a commissioning check is, and the checks every kind of source builds on.

``gridcall edge check`` (:mod:`gridcall.commission`) runs the box-wide checks (config,
credentials, uplink broker, state folder); each kind of source brings its own checks next
to its builder (:mod:`gridcall.edge_agent.source_factory`), made of the pieces here:
:func:`port_check`, :func:`read_check`, :func:`probe_broker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiomqtt

from gridcall.config import AgentSpec
from gridcall.config.base import BrokerSettings
from gridcall.edge_agent.sources import Sample, Source
from gridcall.wire.broker import TlsFileError, credentials_refused
from gridcall.wire.stats import stats_of

Status = Literal["PASS", "WARN", "FAIL"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    hint: str = ""
    """What to add to the command line, if that is the fix (e.g. ``--broker URL`` for a
    rehearsal without the agent's broker): shown in one line under the table."""


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


OpenSource = Callable[[], Source]
"""Opens the agent's source as ``gridcall edge run`` would (None where not available)."""


async def probe_broker(name: str, settings: BrokerSettings, url: str | None, *,
                       timeout: float, client_id: str,  # noqa: ASYNC109
                       flag: str | None = None) -> Check:
    """Connect and disconnect once: PASS, or FAIL saying unreachable or refused login.
    ``flag``: the command's option that checks another broker (``--broker``); an
    unreachable broker's hint names it."""
    try:
        address = settings.address(url)
    except ValueError as exc:
        return Check(name, "FAIL", str(exc), "fix the broker url in agents.yaml")
    try:
        user, password = settings.credentials()
    except KeyError as exc:
        return Check(name, "FAIL", f"{address}: {exc.args[0]}",
                     "set the variable (see the credentials check)")
    try:
        tls_context = address.tls_context()
    except TlsFileError as exc:
        return Check(name, "FAIL", f"{address}: {exc}", "fix the file named in broker.tls")
    client = aiomqtt.Client(address.host, address.port, username=user, password=password,
                            identifier=client_id, tls_context=tls_context, timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            async with client:
                pass
    except TimeoutError:
        refusal = (await asyncio.to_thread(tls_refusal, address.host, address.port,
                                           tls_context, min(timeout, 5.0))
                   if tls_context is not None else None)
        if refusal is not None:
            return Check(name, "FAIL", f"{address} refused our TLS client certificate "
                                       f"({refusal})",
                         "give broker.tls a certfile and keyfile signed by the CA the broker "
                         "trusts (its operator can tell which)")
        return Check(name, "FAIL", f"{address}: no answer within {timeout:g}s",
                     "check the network (4G/LAN), the host and port in the url, and any "
                     "firewall between this box and the broker", _reach_hint(address, flag))
    except aiomqtt.MqttError as exc:
        if credentials_refused(exc):
            who = f"user {user!r}" if user else "an anonymous login"
            env = " / ".join(v for v in (settings.username_env, settings.password_env) if v)
            return Check(name, "FAIL", f"{address} refused {who} ({exc})",
                         f"check the login in {env or 'username_env / password_env'}; "
                         "the broker's operator can tell which user it expects")
        return Check(name, "FAIL", f"{address} unreachable ({exc})",
                     "check the network (4G/LAN), the host and port in the url, that the "
                     "broker runs, and any firewall", _reach_hint(address, flag))
    login = f" as {user!r}" if user else " (anonymous)"
    return Check(name, "PASS", f"{address}: connected and logged in{login}")


_CLIENT_CERTIFICATE_ALERTS = ("CERTIFICATE_REQUIRED", "UNKNOWN_CA", "BAD_CERTIFICATE",
                              "CERTIFICATE_UNKNOWN", "CERTIFICATE_EXPIRED",
                              "CERTIFICATE_REVOKED", "ACCESS_DENIED")


def tls_refusal(host: str, port: int, context: ssl.SSLContext,
                timeout: float) -> str | None:
    """Why a TLS broker that gave no CONNACK refused us, if it was our client certificate:
    under TLS 1.3 the broker checks it after the handshake and hangs up with an alert that
    the MQTT client never reports (aiomqtt waits for a CONNACK until its timeout). Opens
    one TLS connection and reads without writing (a write could reset the connection and
    lose the alert): the alert's name, or None when none comes within ``timeout`` (the
    broker took the certificate and waits for a CONNECT) or the failure is another one."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            tls.recv(4)
    except ssl.SSLError as exc:
        reason = str(exc.reason or exc)
        return reason if any(a in reason for a in _CLIENT_CERTIFICATE_ALERTS) else None
    except OSError:
        return None
    return None


def _reach_hint(address: object, flag: str | None) -> str:
    if flag is None:
        return ""
    return f"no broker at {address}: start one there, or add {flag} URL naming one this box reaches"


async def read_samples(source: Source, *, wait: float,
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


def skipped(source: object) -> str:
    """The non-zero ``bad_*`` counters of a source that keeps them, as one phrase."""
    try:
        bad = {k.removeprefix("bad_"): int(v) for k, v in stats_of(source).items()
               if k.startswith("bad_") and v}
    except Exception:  # a broken counter must not break the check
        return ""
    return ", ".join(f"{n} {reason}" for reason, n in sorted(bad.items()))


def values(samples: list[Sample]) -> str:
    last: dict[str, str] = {}
    for s in samples:
        last[s.sensor] = s.fault or ("no value" if s.value is None else f"{s.value:g}")
    shown = [f"{k}={v}" for k, v in list(last.items())[:6]]
    return ", ".join(shown) + (f" (+{len(last) - 6} more)" if len(last) > 6 else "")


def impossible(samples: list[Sample], spec: AgentSpec) -> list[str]:
    """Each sensor whose latest sample was a value it cannot produce: its device's fault
    code, or outside its kind's physical range (what the agent would not publish)."""
    limits = {s.id: s.limits for s in spec.sensors}
    last = {s.sensor: s for s in samples}
    out = []
    for sensor, s in last.items():
        lim = limits.get(sensor)
        if s.fault:
            out.append(f"{sensor} gave its device's fault code ({s.fault})")
        elif lim is not None and s.value is not None and (
                (lim.physical_min is not None and s.value < lim.physical_min)
                or (lim.physical_max is not None and s.value > lim.physical_max)):
            out.append(f"{sensor} read {s.value:g}, outside its kind's physical range "
                       f"{_bound(lim.physical_min)}..{_bound(lim.physical_max)}")
    return out


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def port_check(kind: str, port: str) -> Check:
    """A serial or Modbus source's port: present, a character device, openable."""
    path = Path(port)
    if not path.exists():
        return Check(f"{kind} port", "FAIL", f"missing serial device {port}",
                     "plug the device in; `ls -l /dev/serial/by-id/` shows what is there; "
                     "a udev rule gives it a stable name (docs/install-edge.md)")
    if not os.access(path, os.R_OK | os.W_OK):
        return Check(f"{kind} port", "FAIL", f"{port}: no read/write permission",
                     "add the service user to the dialout group (docs/install-edge.md)")
    return Check(f"{kind} port", "PASS", f"{port} present ({path.resolve()})")


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


async def read_check(kind: str, spec: AgentSpec, options: CheckOptions,
                     open_source: OpenSource | None, *, port: str | None = None) -> list[Check]:
    """Open the source as the agent would and read a few values: PASS with what was read,
    FAIL naming why the port never opened or that nothing came."""
    if open_source is None:
        return [Check(f"source ({kind})", "WARN", f"reading a {kind} source is not "
                      "available in this version", "")]
    try:
        source = open_source()
    except (OSError, ValueError) as exc:
        return [Check(f"source ({kind})", "FAIL", f"cannot open: {exc}",
                      "see the message; check the port and its settings")]
    want = max(1, min(options.values, len(spec.sensors)))
    got = await read_samples(source, wait=options.wait, done=lambda got: len(got) >= want)
    bad = skipped(source)
    device = port or "the port"
    refused = _open_refused(source, device) if not got else ""
    if refused:
        return [Check(f"source ({kind})", "FAIL", f"cannot open {device}: {refused}",
                      _open_fix(refused, device))]
    if not got:
        return [Check(f"source ({kind})", "FAIL",
                      f"no value within {options.wait:g}s" + (f"; skipped: {bad}" if bad else ""),
                      "check the wiring, baud rate and device ids; is the device powered?")]
    read = f"read {len(got)} values: {values(got)}" + (f"; skipped: {bad}" if bad else "")
    wrong = impossible(got, spec)
    if wrong:
        return [Check(f"source ({kind})", "WARN", f"{read}; not published: {'; '.join(wrong)}",
                      "check the map's type, encoding and scale against the device's manual "
                      "(a fault code: the device reports a fault itself; see its manual)")]
    return [Check(f"source ({kind})", "PASS", read)]


async def port_source_checks(kind: str, port: str, spec: AgentSpec, options: CheckOptions,
                             open_source: OpenSource | None) -> list[Check]:
    """A source on a serial port: the port, then its values (not if the port FAILs)."""
    checked = port_check(kind, port)
    if checked.status == "FAIL":
        return [checked]
    return [checked, *await read_check(kind, spec, options, open_source, port=port)]
