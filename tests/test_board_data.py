"""Board data through the hub into real servers: a simulated district on a mosquitto of
its own (the sample's agent ids on the shared one meet other runs' agents of the same
ids, whose wills and heartbeats this hub would take) writes every board measurement into
InfluxDB 1.6.7 (checked with InfluxQL, the example queries of docs/boards.md among them)
and, through influxdb-client, into VictoriaMetrics; an edge agent killed with SIGKILL (a
private mosquitto publishes its last will) or silent for three heartbeats raises one
EDGE-OFFLINE alert listing its grids, which stays open when it comes back; bad status
payloads are counted and refused, and nothing else is lost."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiomqtt
import httpx
import pytest

from gridcall.config import ConfigSet
from gridcall.hub.desk.lifecycle import AlertState, Transition
from gridcall.hub.metrics import exposition, hub_registry
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.simulators.district import InProcessDistrict
from gridcall.simulators.streams import Injection
from gridcall.sinks import influx_sink
from gridcall.wire import AgentStatus, ReadingBatch, encode, topics
from gridcall.wire.messages import Reading
from tests.edge_crash_agent import NOW as AGENT_CLOCK
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto
from tests.servers import ROOT, influxql_async

AGENTS = ["edge-dongyuan", "edge-jiufo"]

# The example queries of docs/boards.md, with Grafana's $timeFilter put in.
EXAMPLES = {
    "open_alert": 'SELECT last("deadline_left_s") AS "left", last("title") AS "title" '
                  'FROM "open_alert" WHERE $timeFilter GROUP BY "alert_id", "tier", "unit"',
    "grid_risk": 'SELECT last("risk") AS "risk", last("lat") AS "lat", last("lon") AS "lon" '
                 'FROM "grid_risk" WHERE $timeFilter GROUP BY "grid", "grid_name"',
    "sensor_risk": 'SELECT last("healthy") AS "healthy", last("health") AS "health" '
                   'FROM "sensor_risk" WHERE $timeFilter GROUP BY "sensor", "agent"',
    "agent_state": 'SELECT last("online") AS "online", last("outbox_depth") AS "outbox" '
                   'FROM "agent_state" WHERE $timeFilter GROUP BY "agent", "town"',
    "anomaly": 'SELECT "text", "value" FROM "anomaly" WHERE $timeFilter',
    "alert_change": 'SELECT count("escalated") FROM "alert_change" WHERE $timeFilter '
                    'GROUP BY time(1m), "action"',
}


@pytest.fixture(scope="module")
def cfg(cfg: ConfigSet) -> ConfigSet:
    """The sample district writing every point of every snapshot (boards.full_every 1):
    these tests read one snapshot's instant and expect the whole of it there; what a hub
    writes between two full snapshots is tests/test_board_diff.py's."""
    boards = cfg.hub.boards.model_copy(update={"full_every": 1})
    return dataclasses.replace(cfg, hub=cfg.hub.model_copy(update={"boards": boards}))


def injections_for(cfg: ConfigSet, start: float) -> tuple[Injection, ...]:
    out: list[Injection] = []
    for agent in AGENTS:
        for s in cfg.agents[agent].sensors[:2]:
            if s.limits.alarm_high is not None:
                out.append(Injection(s.id, start + 1.0 + 0.3 * len(out), 2.0, "step",
                                     s.limits.alarm_high * 1.8, f"{s.kind} breach"))
    return tuple(out)


async def run_district(cfg: ConfigSet, folder: Path, store: Store, sink: object
                       ) -> tuple[InProcessDistrict, int, dict[str, AlertState]]:
    """The district until each injected anomaly has its alert; then one snapshot while
    the agents run (their snapshot at stop shows them stopped). Returns the district,
    the time of that snapshot and the alerts open in it."""
    with PrivateMosquitto(folder / "broker") as broker:
        return await _run(cfg, broker.url, store, sink)


async def _run(cfg: ConfigSet, mqtt_url: str, store: Store, sink: object
               ) -> tuple[InProcessDistrict, int, dict[str, AlertState]]:
    injections = injections_for(cfg, time.time())
    district = InProcessDistrict(cfg, broker_url=mqtt_url, store=store, sink=sink,  # type: ignore[arg-type]
                                 injections=injections, agents=AGENTS, interval_scale=0.1)
    async with district:
        hub = district.hub
        wanted = set()
        for i in injections:
            sensor = cfg.sensors[i.sensor]
            matter = cfg.matter_for(sensor.kind, "out_of_limits")
            assert matter is not None
            wanted.add((sensor.grid, matter.code))
        assert await wait_until(lambda: wanted <= {
            (s.place[-1], s.alert.matter) for s in hub.desk.alerts(open_only=True)},
            polls=1200)
        assert await wait_until(lambda: all(
            hub.roster.view(a, hub.clock()).online for a in AGENTS), polls=1200)
        snapshot_at = hub.clock()
        # taken with no await before the snapshot is built: the same open alerts
        open_then = {s.alert_id: s for s in hub.desk.alerts(open_only=True)}
        assert await hub.write_boards(snapshot_at)
    return district, snapshot_at, open_then


async def test_v1_every_board_measurement_is_written_with_its_tags_and_fields(
    cfg: ConfigSet, influx_v1_url: str, influx_database: str, tmp_path: Path
) -> None:
    db = influx_database
    async with Store(tmp_path / "hub.sqlite") as store, influx_sink(
            cfg, url=influx_v1_url, api=1, database=db) as sink:
        district, at, open_now = await run_district(cfg, tmp_path, store, sink)
        hub = district.hub
        steps = await hub.desk.transitions()
    assert hub.boards is not None
    assert hub.boards.counters.failed_snapshots == hub.boards.counters.failed_event_writes == 0

    async def q(query: str) -> list[dict[str, object]]:
        return await influxql_async(influx_v1_url, query, database=db)

    # open_alert: one point per open alert of that snapshot, with the contract's tags
    rows = await q(f"SELECT * FROM open_alert WHERE time = {at}")
    assert {r["alert_id"] for r in rows} == set(open_now)
    for r in rows:
        state = open_now[str(r["alert_id"])]
        assert (r["matter"], r["tier"], r["state"], r["unit"], r["level"], r["grid"]) == (
            state.alert.matter, state.tier, state.state, state.unit, state.unit_level,
            state.place[-1])
        assert (r["town"], r["community"], r["department"]) == (
            state.place[1], state.place[2], state.departments[0])
        assert r["open"] == 1
        assert r["sensor"] == state.alert.sensor
        assert r["deadline_kind"] == "response"
        assert r["deadline_ms"] == state.deadlines.response // 10**6
        assert r["title"] == f"{state.alert.matter_name} {cfg.units[state.place[-1]].name}"

    # grid_risk: every grid, at its polygon's centre; risk where alerts are open
    rows = await q(f"SELECT * FROM grid_risk WHERE time = {at}")
    assert {r["grid"] for r in rows} == {u.id for u in cfg.units_at("grid")}
    risky = {s.place[-1] for s in open_now.values()}
    assert {r["grid"] for r in rows if int(r["risk"]) > 0} == risky  # type: ignore[call-overload]
    for r in rows:
        assert (r["lon"], r["lat"]) == cfg.units[str(r["grid"])].location.centre()
        assert r["grid_name"] == cfg.units[str(r["grid"])].name

    # sensor_risk: every sensor; those of the running agents report their health
    rows = await q(f"SELECT * FROM sensor_risk WHERE time = {at}")
    assert len(rows) == len(cfg.sensors)
    ours = [r for r in rows if r["agent"] in AGENTS]
    assert {r["health"] for r in ours} <= {"ok", "stuck", "missing"}
    assert any(r["health"] == "ok" and r["healthy"] == 1 for r in ours)
    assert {r["health"] for r in rows if r["agent"] not in AGENTS} <= {"unknown", "ok",
                                                                      "stuck", "missing"}

    # agent_state: every configured agent; ours online then
    rows = await q(f"SELECT * FROM agent_state WHERE time = {at}")
    assert {r["agent"] for r in rows} == set(cfg.agents)
    assert {r["agent"]: r["online"] for r in rows if r["agent"] in AGENTS} == {
        a: 1 for a in AGENTS}
    # and a last snapshot at the hub's stop (whether each agent's goodbye reached the hub
    # before it is a race on the shared broker; the private-broker test checks 'stopped')
    last = await q('SELECT last("online") AS "online" FROM agent_state GROUP BY "agent"')
    assert {r["agent"] for r in last} == set(cfg.agents)
    assert all(int(r["time"]) > at for r in last)  # type: ignore[call-overload]

    # events: one anomaly point per event the hub took, one alert_change per ledger step
    rows = await q("SELECT * FROM anomaly")
    assert len(rows) == hub.counters.events > 0
    assert {r["phase"] for r in rows} <= {"start", "end"}
    assert all(r["sensor"] in cfg.sensors and r["text"] for r in rows)
    rows = await q("SELECT * FROM alert_change")
    assert sorted((r["alert_id"], r["action"], r["time"]) for r in rows) == sorted(
        (t.alert_id, t.action, t.at) for t in steps)

    # field types as the contract has them (InfluxDB keeps the first type it saw)
    types = {(r["_measurement"], r["fieldKey"]): r["fieldType"]
             for r in await q("SHOW FIELD KEYS")}
    for key, kind in {("open_alert", "open"): "integer", ("open_alert", "age_s"): "float",
                      ("open_alert", "deadline_ms"): "integer",
                      ("open_alert", "title"): "string", ("grid_risk", "risk"): "integer",
                      ("grid_risk", "lat"): "float", ("sensor_risk", "healthy"): "integer",
                      ("sensor_risk", "health"): "string", ("agent_state", "online"): "integer",
                      ("agent_state", "outbox_age_s"): "float", ("anomaly", "score"): "float",
                      ("anomaly", "text"): "string", ("alert_change", "escalated"): "integer",
                      ("alert_change", "text"): "string"}.items():
        assert types[key] == kind, key

    # the indicators are the hub's own task now (a round at start, then every 60 s)
    assert hub.indicator_counters.rounds >= 1
    assert hub.indicator_counters.failed_writes == 0

    # every example query of docs/boards.md answers on 1.6.7
    time_filter = f"time >= {at - 3600 * 10**9} AND time <= {at + 3600 * 10**9}"
    for name, query in EXAMPLES.items():
        assert await q(query.replace("$timeFilter", time_filter)), name


async def test_v2_the_board_numbers_reach_victoriametrics_through_influxdb_client(
    cfg: ConfigSet, victoria_url: str, tmp_path: Path
) -> None:
    """VictoriaMetrics keeps numeric fields (``<measurement>_<field>``) and drops strings."""
    bucket = f"boards_{uuid.uuid4().hex[:8]}"
    async with Store(tmp_path / "hub.sqlite") as store, influx_sink(
            cfg, url=victoria_url, api=2, database=bucket, token="unused") as sink:
        district, at, open_then = await run_district(cfg, tmp_path, store, sink)
    hub = district.hub
    assert hub.boards is not None
    assert hub.boards.counters.failed_snapshots == 0
    open_now = set(open_then)
    wanted = {"open_alert_open": open_now, "grid_risk_risk": None, "agent_state_online": None,
              "sensor_risk_risk": None, "alert_change_escalated": None, "anomaly_score": None}
    got: dict[str, list[dict[str, object]]] = {}
    async with httpx.AsyncClient(base_url=victoria_url) as http:

        async def export() -> bool:
            (await http.get("/internal/force_flush")).raise_for_status()
            for name in wanted:
                resp = await http.post("/api/v1/export", data={
                    "match[]": f'{{__name__="{name}"}}', "start": str(at // 10**9 - 60)})
                resp.raise_for_status()
                got[name] = [json.loads(x) for x in resp.text.splitlines() if x.strip()]
            return all(got.values())

        for _ in range(100):  # searchable a moment after the write is acknowledged
            if await export():
                break
            await asyncio.sleep(0.1)
    assert open_now <= {s["metric"]["alert_id"] for s in got["open_alert_open"]}  # type: ignore[index]
    assert {s["metric"]["grid"] for s in got["grid_risk_risk"]} >= {  # type: ignore[index]
        u.id for u in cfg.units_at("grid")}
    assert {s["metric"]["agent"] for s in got["agent_state_online"]} >= set(cfg.agents)  # type: ignore[index]
    assert got["alert_change_escalated"]
    assert got["anomaly_score"]


class AgentProcess:
    """tests/edge_crash_agent.py (edge-dongyuan on a fast synthetic source) in a process."""

    def __init__(self, state: Path, broker: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.edge_crash_agent", str(state), broker, "0",
             "10000000"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def stop(self, sig: int) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)


async def test_an_agent_killed_with_sigkill_raises_one_edge_offline_listing_its_grids(
        cfg: ConfigSet, tmp_path: Path) -> None:
    agent = "edge-dongyuan"
    grids = list(dict.fromkeys(s.grid for s in cfg.agents[agent].sensors))
    # The agent runs on its own simulated clock; the hub's stands still at its start, so
    # the only way for it to go offline here is its last will.
    with PrivateMosquitto(tmp_path / "broker") as broker:
        async with Store(tmp_path / "hub.sqlite") as store:
            hub = Hub(cfg, sink=store, store=store, broker_url=broker.url,
                      client_id="offline-test-hub", clock=lambda: AGENT_CLOCK,
                      tick_interval=0.2)
            stop = asyncio.Event()
            task = asyncio.create_task(hub.run(stop))
            proc = None
            try:
                assert await wait_until(hub.subscribed.is_set, polls=1200)
                proc = AgentProcess(tmp_path / "state", broker.url)
                assert await wait_until(
                    lambda: hub.roster.view(agent, hub.clock()).online, polls=1200)

                def offline_alerts() -> dict[str, AlertState]:
                    return {s.place[-1]: s for s in hub.desk.alerts()
                            if s.alert.matter == "EDGE-OFFLINE"}

                assert offline_alerts() == {}
                proc.stop(signal.SIGKILL)  # no DISCONNECT: the broker sends the will

                assert await wait_until(lambda: bool(offline_alerts()), polls=1200)
                (state,) = offline_alerts().values()  # one outage, one alert
                assert state.alert.grids == grids
                assert hub.roster.view(agent, hub.clock()).state == "lost"
                assert hub.counters.agent_outages == 1
                for state in offline_alerts().values():
                    assert state.is_open
                    assert state.alert.agent == agent
                    # a device fault: the maintenance department leads it
                    assert state.departments[0] == "operations_maintenance"
                    assert state.alert.matter_type == "daily"
                    # one outage is one incident: the spread rules do not lift it (a
                    # sensitive site in the grid may: a school without smoke alarms)
                    assert "spread" not in state.alert.reason
                    assert "last will" in state.last.note or "last will" in (
                        (await hub.desk.history(state.alert_id))[0].note)

                # back online: a note on each alert, which stays open for people to close
                proc = AgentProcess(tmp_path / "state", broker.url)
                assert await wait_until(
                    lambda: hub.roster.view(agent, hub.clock()).online, polls=1200)

                async def noted() -> bool:
                    for state in offline_alerts().values():
                        if "back online" not in state.last.note:
                            return False
                    return True

                for _ in range(600):
                    if await noted():
                        break
                    await asyncio.sleep(0.05)
                assert await noted()
                assert all(s.is_open for s in offline_alerts().values())
                # a clean stop is not an outage: no new outage alert, no new step on them
                # (only outage steps: an anomaly the agent detected and sent just before
                # its goodbye may still reach the desk, as it should)
                async def outage_steps() -> list[Transition]:
                    return [t for t in await hub.desk.transitions()
                            if t.alert_id in outages]

                outages = {s.alert_id for s in offline_alerts().values()}
                steps = await outage_steps()
                proc.stop(signal.SIGTERM)
                proc = None
                assert await wait_until(
                    lambda: hub.roster.view(agent, hub.clock()).state == "stopped",
                    polls=1200)
                assert {s.alert_id for s in offline_alerts().values()} == outages
                assert await outage_steps() == steps
                assert hub.counters.agent_outages == 1
            finally:
                if proc is not None:
                    proc.stop(signal.SIGKILL)
                stop.set()
                await task


async def test_bad_status_payloads_are_counted_and_refused_and_nothing_else_is_lost(
        cfg: ConfigSet, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agent = "edge-jiufo"
    sensor = cfg.agents[agent].sensors[0].id
    good = AgentStatus(agent=agent, state="online", ts=time.time_ns(), heartbeat_s=30.0,
                       outbox_messages=2)
    bad = [
        (topics.status_topic(agent), b"{not json"),
        (topics.status_topic(agent), b'{"agent": "edge-jiufo", "state": "dozing", "ts": 1}'),
        (topics.status_topic(agent), encode(AgentStatus(agent="edge-longhu", state="online",
                                                        ts=1))),  # topic says jiufo
        (topics.status_topic("edge-nowhere"),
         encode(AgentStatus(agent="edge-nowhere", state="online", ts=1))),
    ]
    batch = ReadingBatch(agent=agent, seq=1, sent_at=1,
                         readings=[Reading(sensor, time.time_ns(), 1.5)])
    caplog.set_level(logging.WARNING, logger="gridcall.hub.service")
    with PrivateMosquitto(tmp_path / "broker") as broker:
        async with Store(tmp_path / "hub.sqlite") as store:
            hub = Hub(cfg, sink=store, store=store, broker_url=broker.url,
                      client_id="status-test-hub", flush_interval=0.05)
            stop = asyncio.Event()
            task = asyncio.create_task(hub.run(stop))
            try:
                assert await wait_until(hub.subscribed.is_set, polls=1200)
                host, port = broker.url.removeprefix("mqtt://").split(":")
                async with aiomqtt.Client(host, int(port)) as client:
                    for topic, payload in bad:
                        await client.publish(topic, payload, qos=1)
                    await client.publish(topics.status_topic(agent), encode(good), qos=1)
                    await client.publish(topics.readings_topic(agent), encode(batch), qos=1)
                assert await wait_until(lambda: hub.counters.messages >= len(bad) + 1
                                        and hub.ingest.counters.readings_stored == 1,
                                        polls=1200)
            finally:
                stop.set()
                await task
            assert await store.count_readings() == 1
    assert hub.decoder.malformed_total == 3
    assert hub.roster.counters.unknown_agents == 1
    # an unconfigured id is refused everywhere: no status kept, no series on /metrics
    assert list(hub.agents) == [agent]
    exposed = exposition(hub_registry(hub)).decode()
    assert f'gridcall_agent_outbox_messages{{agent="{agent}"}} 2.0' in exposed
    assert "edge-nowhere" not in exposed
    view = hub.roster.view(agent, hub.clock())
    assert (view.state, view.outbox_depth) == ("online", 2)
    assert hub.desk.alerts() == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert topics.status_topic(agent) in logged
    assert "'edge-nowhere'" in logged
    assert "not in the config" in logged


async def test_an_agent_that_falls_silent_raises_edge_offline_on_the_hubs_clock(
        cfg: ConfigSet, tmp_path: Path) -> None:
    """No will (the link hangs, the broker has not noticed): three heartbeats without a
    status on the hub's clock are an outage too."""
    agent = "edge-jiufo"
    grids = list(dict.fromkeys(s.grid for s in cfg.agents[agent].sensors))
    now = [AGENT_CLOCK]
    with PrivateMosquitto(tmp_path / "broker") as broker:
        async with Store(tmp_path / "hub.sqlite") as store:
            hub = Hub(cfg, sink=store, store=store, broker_url=broker.url,
                      client_id="silence-test-hub", clock=lambda: now[0], tick_interval=0.05)
            stop = asyncio.Event()
            task = asyncio.create_task(hub.run(stop))
            try:
                assert await wait_until(hub.subscribed.is_set, polls=1200)
                host, port = broker.url.removeprefix("mqtt://").split(":")
                async with aiomqtt.Client(host, int(port)) as client:
                    await client.publish(topics.status_topic(agent), encode(AgentStatus(
                        agent=agent, state="online", ts=now[0], heartbeat_s=30.0)), qos=1)
                assert await wait_until(
                    lambda: hub.roster.view(agent, now[0]).online, polls=1200)
                now[0] += 90 * 10**9  # three heartbeats: still online
                assert hub.roster.view(agent, now[0]).state == "online"
                assert hub.roster.check(now[0]) == []
                now[0] += 2 * 10**9
                assert await wait_until(lambda: [
                    s.alert.grids for s in hub.desk.alerts(open_only=True)
                    if s.alert.matter == "EDGE-OFFLINE"] == [grids], polls=1200)
                assert hub.roster.view(agent, now[0]).state == "silent"
                assert hub.counters.agent_outages == 1
                (first, *_) = await hub.desk.history(hub.desk.alerts()[0].alert_id)
                assert "silent for 92 s" in first.note
            finally:
                stop.set()
                await task
