"""The fault matrix's rig (issue 16, item 6): a whole pipeline on private servers, a fault
in the middle of its stream, and the store counted by ``(sensor, ts)`` afterwards.

One edge agent (the sample district's edge-dongyuan, on a fast synthetic source) talks
through a cuttable :class:`~gridcall.simulators.uplink.Uplink` to a private mosquitto
(persistence on, restartable: :mod:`tests.private_servers`); ``gridcall hub run`` runs as
a real process (so it can be killed with SIGKILL) writing readings to a private InfluxDB
1.6.7 (stoppable: :mod:`tests.private_servers`) and events and alerts to its SQLite store.
Nothing touches the shared test servers. Used by tests/test_fault_matrix.py (short
faults, for CI) and bench/faults.py (the real durations, with figures).

Counting is by ``(sensor, ts)``, the key of a stored reading: InfluxDB keeps one point per
series and timestamp, and a reading's series is its (agent, sensor) (hub.yaml
``influx.points: lean``, the default since issue 20: a point no longer carries its batch's
``seq``). The store is read back point by point and set against what the agent sealed
into each numbered batch (printed or recorded at :meth:`EdgeAgent.seal`, when the outbox
commit is done): a sealed key missing from the store is lost; a stored key the agent
never sealed is stray. A reading written twice cannot show as two points, in either
layout, so a duplicate is counted where it can happen: a reading the agent sealed into
two batches (two messages the desk would both take), and the hub's own count of batches
it took twice and dropped by (agent, seq) (``ingest.duplicate_batches``, scraped from its
``/metrics``) says how many copies it suppressed. With ``points: rich`` the stored seq is
also checked: a point under a seq other than its batch's counts as misplaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import msgspec
import yaml

from gridcall.config import SAMPLE_DISTRICT, ConfigSet, load_config
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.sources import Sample
from gridcall.edge_agent.watch import Verdict
from gridcall.simulators.steady import SimClock, SteadySource
from gridcall.simulators.uplink import Uplink
from gridcall.wire import ReadingBatch, RiskAlert, topics
from gridcall.wire.broker import BrokerAddress
from tests.private_servers import PrivateInflux, PrivateMosquitto
from tests.servers import ROOT, influxql_async, unused_tcp_port

AGENT = "edge-dongyuan"
NOW = 1_790_000_000 * 10**9
"""The agents' simulated clock starts here; the hub's ts window is widened to take it."""
DATABASE = "gridcall"
Key = tuple[str, int]
"""A reading: (sensor, ts)."""


class RecordingAgent(EdgeAgent):
    """An edge agent that remembers what it sealed into each numbered batch, and the
    sequence number of every event it made."""

    sealed: dict[int, list[Key]]
    events: set[int]

    def _queue_event(self, sensor: str, v: Verdict) -> None:
        super()._queue_event(sensor, v)
        self.events.add(self._event_seq.current)

    def seal(self) -> None:
        pending = [(r.sensor, r.ts) for r in self._pending]
        super().seal()
        if pending:
            self.sealed.setdefault(self._batch_seq.current, []).extend(pending)


class GatedSource:
    """A :class:`SteadySource` that stops after ``pause_at`` samples until :attr:`resume`
    is set: the test strikes its fault there, and the rest of the stream is made during
    it (on the simulated clock: 60,000 samples at 100/s are ten minutes of readings)."""

    def __init__(self, inner: SteadySource, pause_at: int | None,
                 paced: float | None = None) -> None:
        self.inner = inner
        self.pause_at = pause_at
        self.paced = paced
        """Samples a second of real time (bench/faults.py), or None: as fast as taken."""
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()
        self.done = inner.done

    async def samples(self) -> AsyncIterator[Sample]:
        n = 0
        start = time.monotonic()
        async for sample in self.inner.samples():
            if n == self.pause_at:
                self.paused.set()
                await self.resume.wait()
            if self.paced is not None:
                ahead = start + n / self.paced - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            n += 1
            yield sample


def recording_agent(cfg: ConfigSet, uplink: str, state: Path, *, total: int,
                    rate: float = 100.0, start_ns: int = NOW, pause_at: int | None = None,
                    paced: bool = False) -> tuple[RecordingAgent, GatedSource, SimClock]:
    spec = cfg.agents[AGENT]
    clock = SimClock(start_ns)
    source = GatedSource(SteadySource(spec.sensors, clock, total=total, rate=rate,
                                      breach_every=400), pause_at,
                         rate if paced else None)
    agent = RecordingAgent(spec, source, broker_url=uplink, clock=clock, state_dir=state)
    agent.sealed, agent.events = {}, set()
    return agent, source, clock


class HubProcess:
    """``gridcall hub run`` on a config folder, with ``/metrics`` on a port of its own."""

    def __init__(self, config_dir: Path, log: Path) -> None:
        self.config_dir = config_dir
        self.log = log
        self.metrics_port = unused_tcp_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from gridcall.cli import app; app()", "hub", "run",
                 "--config", str(self.config_dir), "--drain-timeout", "5",
                 "--metrics", f"127.0.0.1:{self.metrics_port}"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        self.starts += 1

    def metrics(self) -> dict[str, float]:
        """Its unlabelled metrics (``gridcall_subscribed``, ``gridcall_duplicate_batches_total``,
        ...) from /metrics ({} while it does not answer)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return {}
        return {m[1]: float(m[2]) for m in re.finditer(r"^(gridcall_\w+) (\S+)$", text, re.M)}

    async def ready(self, polls: int = 1200) -> bool:
        """Both its connections subscribed (bounded polling, not a timing assertion)."""
        for _ in range(polls):
            if self.proc is None or self.proc.poll() is not None:
                return False
            if (await asyncio.to_thread(self.metrics)).get("gridcall_subscribed") == 1:
                return True
            await asyncio.sleep(0.05)
        return False

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code


@dataclass
class Count:
    """The store against what was sealed, by (sensor, ts)."""

    sealed_readings: int
    stored_readings: int
    lost: int
    """Readings sealed into a batch and not in the store."""
    duplicated: int
    """Readings sealed into more than one batch (plus, with a stored seq, points beyond a
    batch's own)."""
    misplaced: int
    """Stored points the agent never sealed (stray), plus, with a stored seq, points
    under a seq other than the batch they were sealed into."""
    batches: int
    events_made: int
    events_stored: int
    alerts: int
    alerts_on_own_topic: int
    suppressed: int = 0
    """Batches the hub took again and dropped by (agent, seq), summed over its lives
    (gridcall_duplicate_batches_total, scraped before each stop; before a kill -9, the
    last scrape before it)."""
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return (self.lost == self.duplicated == self.misplaced == 0
                and self.events_stored == self.events_made
                and self.alerts == self.alerts_on_own_topic)


def count(sealed: dict[int, list[Key]], stored: Iterable[tuple[str, int, int | None]],
          events_made: set[int], events_stored: set[int],
          alerts: dict[str, str], alert_topics: dict[str, set[str]]) -> Count:
    """``stored``: (sensor, ts, seq) of every point the hub stored for the agent, seq None
    when the points carry none (lean); ``alerts``: alert id -> the topic it must be on;
    ``alert_topics``: alert id -> the topics its retained copies were found on."""
    where: dict[Key, int] = {}
    duplicated = 0
    for seq, keys in sealed.items():
        for key in keys:
            if key in where:
                duplicated += 1
            where[key] = seq
    per_seq: Counter[int] = Counter()
    have: set[Key] = set()
    misplaced = 0
    for sensor, ts, seq in stored:
        have.add((sensor, ts))
        if seq is None:
            misplaced += (sensor, ts) not in where
            continue
        per_seq[seq] += 1
        if where.get((sensor, ts)) != seq:
            misplaced += 1
    duplicated += sum(max(0, n - len(sealed.get(seq, ()))) for seq, n in per_seq.items())
    return Count(
        sealed_readings=len(where), stored_readings=len(have), lost=len(where.keys() - have),
        duplicated=duplicated, misplaced=misplaced, batches=len(sealed),
        events_made=len(events_made), events_stored=len(events_made & events_stored),
        alerts=len(alerts),
        alerts_on_own_topic=sum(t in alert_topics.get(a, ()) for a, t in alerts.items()))


class Rig:
    """Private broker and InfluxDB, the hub process, an uplink: everything but the agent."""

    def __init__(self, folder: Path, *, outage_ok_s: float = 3600) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.broker = PrivateMosquitto(folder / "broker")
        self.influx = PrivateInflux(folder / "influx")
        self.config_dir = folder / "district"
        self.store_path = folder / "hub.sqlite"
        self.hub = HubProcess(self.config_dir, folder / "hub.log")
        self.suppressed = 0
        """Duplicate batches counted by the hub's earlier lives."""
        self.uplink: Uplink | None = None
        self.outage_ok_s = outage_ok_s

    def _write_config(self) -> ConfigSet:
        self.config_dir.mkdir(exist_ok=True)
        for f in SAMPLE_DISTRICT.glob("*.yaml"):
            shutil.copyfile(f, self.config_dir / f.name)
        (self.config_dir / "hub.yaml").write_text(yaml.safe_dump({"hub": {
            "broker": {"url": self.broker.url}, "client_id": "fault-hub",
            "store_path": str(self.store_path), "spool_dir": str(self.folder / "spool"),
            "deadletter_path": str(self.folder / "deadletter.sqlite"),
            # the agent's clock is simulated from NOW (2026-09-21), months from the wall
            # clock this runs on: the window reaches back far enough to take it
            "ts_window": {"past": "3650d", "future": "3650d"},
            "influx": {"url": self.influx.url, "database": DATABASE,
                       "flush_interval": 0.1}}}), encoding="utf-8")
        return load_config(self.config_dir)

    async def __aenter__(self) -> Rig:
        self.broker.start()
        self.influx.__enter__()
        await influxql_async(self.influx.url, f"CREATE DATABASE {DATABASE}")
        self.cfg = self._write_config()
        self.hub.start()
        if not await self.hub.ready():
            raise RuntimeError(f"the hub did not subscribe:\n{self.hub_log()}")
        self.uplink = Uplink(BrokerAddress.parse(self.broker.url))
        await self.uplink.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.hub.stop()
        if self.uplink is not None:
            await self.uplink.close()
        self.broker.stop()
        self.influx.stop()

    @property
    def uplink_url(self) -> str:
        if self.uplink is None:
            raise RuntimeError("the rig is not started")
        return self.uplink.url

    async def strike(self, fault: str, hold_s: float = 2.0) -> float:
        """Strike ``fault``, hold it ``hold_s`` seconds, lift it; the seconds it took to
        lift (a broker's or InfluxDB's start, the hub's until subscribed again)."""
        if fault == "broker_restart":
            self.broker.stop()
        elif fault == "hub_kill9":
            self.suppressed += self._duplicates()
            self.hub.kill9()
        elif fault == "influx_down":
            self.influx.stop()
        elif fault == "uplink_down":
            if self.uplink is not None:
                self.uplink.cut()
        else:
            raise ValueError(f"unknown fault {fault!r}")
        await asyncio.sleep(hold_s)
        lifted = now_s()
        if fault == "broker_restart":
            self.broker.start()
        elif fault == "hub_kill9":
            self.hub.start()
            if not await self.hub.ready():
                raise RuntimeError(f"the hub did not come back:\n{self.hub_log()}")
        elif fault == "influx_down":
            await asyncio.to_thread(self.influx.start)
        elif self.uplink is not None:
            self.uplink.restore()
        return now_s() - lifted

    def _duplicates(self) -> int:
        return int(self.hub.metrics().get("gridcall_duplicate_batches_total", 0))

    def hub_log(self) -> str:
        return self.hub.log.read_text(errors="replace")[-4000:]

    async def stored(self) -> list[tuple[str, int, int | None]]:
        """(sensor, ts, seq) of every stored point of the agent; seq None in the lean
        layout (``SELECT *`` has no seq column then)."""
        rows = await influxql_async(
            self.influx.url, f"SELECT * FROM reading WHERE agent='{AGENT}'",
            database=DATABASE)
        return [(r["sensor"], int(r["time"]),
                 None if r.get("seq") is None else int(r["seq"])) for r in rows]

    async def wait_stored(self, sealed: dict[int, list[Key]], polls: int = 2400) -> bool:
        """Poll the store until it holds every sealed reading (bounded)."""
        want = sum(len(v) for v in sealed.values())
        for _ in range(polls):
            try:
                if len(await self.stored()) >= want:
                    return True
            except (httpx.HTTPError, RuntimeError):
                pass  # InfluxDB is down in this fault
            await asyncio.sleep(0.05)
        return False

    def events_stored(self) -> set[int]:
        with sqlite3.connect(self.store_path) as db:
            return {r[0] for r in db.execute("SELECT seq FROM events WHERE agent=?", (AGENT,))}

    def alert_units(self) -> dict[str, str]:
        """Each alert the hub's ledger holds -> its unit's topic (from its newest step)."""
        out: dict[str, str] = {}
        with sqlite3.connect(self.store_path) as db:
            for alert_id, body in db.execute(
                    "SELECT alert_id, body FROM transitions ORDER BY seq"):
                path = msgspec.json.decode(body).get("unit_path") or []
                out[alert_id] = topics.alert_topic(path, alert_id) if path else ""
        return out

    async def retained_alerts(self) -> dict[str, set[str]]:
        """Alert id -> the topics its retained copies are on, as a new subscriber sees
        them."""
        address = BrokerAddress.parse(self.broker.url)
        found: dict[str, set[str]] = {}
        async with aiomqtt.Client(address.host, address.port) as client:
            await client.subscribe(f"{topics.PREFIX}/alerts/#", qos=1)
            try:
                async with asyncio.timeout(3):
                    async for msg in client.messages:
                        if isinstance(msg.payload, bytes) and msg.payload:
                            alert = msgspec.json.decode(msg.payload, type=RiskAlert)
                            found.setdefault(alert.alert_id, set()).add(str(msg.topic))
            except TimeoutError:
                pass  # retained messages come at once; three quiet seconds: all seen
        return found

    async def count(self, sealed: dict[int, list[Key]], events_made: set[int]) -> Count:
        stored = await self.stored()
        # the hub delivers the alerts it opened while the broker was away once its desk is
        # connected again (published before it counts as subscribed): wait for that, as the
        # agent, now back within about 0.5 s of the broker, may finish first
        await self.hub.ready()
        suppressed = self.suppressed + self._duplicates()
        code = self.hub.stop()  # the desk's ledger is read once the hub is done
        result = count(sealed, stored, events_made, self.events_stored(),
                       self.alert_units(), await self.retained_alerts())
        result.suppressed = suppressed
        result.notes.append(f"hub exit {code}")
        return result


async def finish(agent: EdgeAgent, stop: asyncio.Event, running: asyncio.Task[None],
                 source: GatedSource, polls: int = 6000) -> bool:
    """Let the source end and the outbox drain, then stop the agent (bounded)."""
    for _ in range(polls):
        if source.done.is_set() and not agent._pending and agent.outbox_depth == 0:
            break
        await asyncio.sleep(0.05)
    else:
        return False
    stop.set()
    await running
    return True


def now_s() -> float:
    return time.monotonic()


def held_batches(state: Path) -> dict[int, list[Key]]:
    """What the agent's outbox in ``state`` holds, batch by batch: seq -> its readings."""
    path = state / f"{AGENT}.outbox.sqlite"
    if not path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT payload FROM messages WHERE priority = 1").fetchall()
    batches = [msgspec.json.decode(p, type=ReadingBatch) for (p,) in rows]
    return {b.seq: [(r.sensor, r.ts) for r in b.readings] for b in batches}


class AgentProcess:
    """tests/edge_crash_agent.py in a subprocess (for kill -9); its stdout says what it
    sealed into each batch and which events it made, once each was in its outbox.

    After a kill, :attr:`sealed` also takes the batches its outbox holds that no line
    announced (:attr:`unprinted`): a kill between a batch's commit and its line leaves
    one, sealed once and sent by the next life, which the count would otherwise see as
    points of an unknown batch (50 duplicated and 50 misplaced, 0 lost: CI at 19e8bf3)."""

    def __init__(self, state: Path, broker: str, start_at: int, total: int, *,
                 die_unprinted: int = 0) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if die_unprinted:
            env["GRIDCALL_TEST_DIE_UNPRINTED"] = str(die_unprinted)
        self.state = state
        self.unprinted = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.edge_crash_agent", str(state), broker,
             str(start_at), str(total)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.sealed: dict[int, list[Key]] = {}
        self.batches: list[dict[str, Any]] = []
        """Each batch line as printed: ``seq``, ``after`` and ``readings``."""
        self.events: set[int] = set()

    def _take(self, line: bytes) -> None:
        item = json.loads(line)
        if "seq" in item:
            self.batches.append(item)
            self.sealed.setdefault(item["seq"], []).extend(
                (s, t) for s, t, _v in item["readings"])
        elif "event_seq" in item:
            self.events.add(item["event_seq"])

    async def read_until(self, batches: int) -> bool:
        """Read its lines until ``batches`` batches were sealed (False if it ended)."""
        assert self.proc.stdout is not None
        while len(self.batches) < batches:
            line = await asyncio.to_thread(self.proc.stdout.readline)
            if not line:
                return False
            self._take(line)
        return True

    def readings(self) -> set[tuple[str, int, float]]:
        """Every reading it sealed, with its value."""
        return {(s, t, v) for b in self.batches for s, t, v in b["readings"]}

    async def read_readings(self, readings: int) -> bool:
        """Read its lines until it sealed ``readings`` readings (False if it ended)."""
        assert self.proc.stdout is not None
        while sum(map(len, self.sealed.values())) < readings:
            line = await asyncio.to_thread(self.proc.stdout.readline)
            if not line:
                return False
            self._take(line)
        return True

    async def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await self.read_rest()  # what it printed before it died counts too
        for seq, keys in held_batches(self.state).items():
            if seq not in self.sealed:  # committed, then killed before its line
                self.sealed[seq] = keys
                self.unprinted += 1

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        await self.read_rest()
        return self.proc.wait(timeout=60)

    async def read_rest(self) -> None:
        assert self.proc.stdout is not None
        for line in await asyncio.to_thread(self.proc.stdout.readlines):
            self._take(line)
        await asyncio.to_thread(self.proc.wait)


__all__ = ["AGENT", "NOW", "AgentProcess", "Count", "GatedSource", "HubProcess",
           "RecordingAgent", "Rig", "count", "finish", "held_batches", "now_s",
           "recording_agent"]
