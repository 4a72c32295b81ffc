"""Active/standby on one PostgreSQL (hub/lease.py): two `gridcall hub run` processes on
the same desk store and broker; the active one is killed with SIGKILL in the middle of a
stream of anomaly events, and the standby takes the desk over. Against the real
mosquitto and PostgreSQL: no event lost, none folded twice, every alert's steps numbered
without a gap or a repeat, every alert's latest state published retained again by the
standby, every opening notified and none the killed hub had finished notifying sent
again, a response deadline pending at the kill escalated by the standby at its own
instant, and the desk's lock held by the standby. While it waits, the standby's API
(``--api``) serves reads and refuses a change with a 503 naming the active hub."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import httpx
import msgspec
import psycopg
import pytest
import yaml
from aiohttp import web

from gridcall.config import SAMPLE_DISTRICT, ConfigSet, load_config
from gridcall.hub.api.tokens import issue
from gridcall.hub.lease import lock_key
from gridcall.hub.pgstore import PgStore
from gridcall.wire import AnomalyEvent, encode, topics
from gridcall.wire.broker import BrokerAddress
from tests.desk_stores import pg_database
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto
from tests.servers import unused_tcp_port

LEAK_DEADLINES = "    deadlines: {response: 1h, arrival: 4h, disposal: 2d}\n    triggers:\n" \
                 "      - sensor_kinds: [water_leak]\n"
RESPONSE_S = 20
"""The water-leak matter's response deadline in the failover test: long enough that the
alert is still waiting on it when the active hub is killed, short enough to pass while
the test runs (the escalation is stamped with the deadline, whenever it fires)."""


@pytest.fixture
def mqtt_url(tmp_path: Path) -> Iterator[str]:
    """A broker of the test's own: the hubs read every agent's status on it, and a
    status another test (or a test run beside this one) left retained on the shared
    broker, for an agent of the sample district, made the hub raise that agent's outage:
    an event the test never published (seen in a full run, an 'edge-jiufo' outage)."""
    with PrivateMosquitto(tmp_path / "broker") as broker:
        yield broker.url


def hub_config(tmp_path: Path, mqtt_url: str, client_id: str,
               webhook: str | None = None) -> Path:
    """The sample district with its hub on ``mqtt_url`` and its desk in the database
    named by GRIDCALL_FAILOVER_DESK_URL; with ``webhook``, every unit's notifications
    go to ``{webhook}/{unit}``. A water leak must be answered within
    :data:`RESPONSE_S` seconds."""
    folder = tmp_path / "district"
    folder.mkdir()
    for f in SAMPLE_DISTRICT.glob("*.yaml"):
        (folder / f.name).write_bytes(f.read_bytes())
    matters = (folder / "matters.yaml").read_text(encoding="utf-8")
    if matters.count(LEAK_DEADLINES) != 1:
        raise ValueError("the sample catalog's WATER-LEAK deadlines moved; update the test")
    (folder / "matters.yaml").write_text(matters.replace(LEAK_DEADLINES, LEAK_DEADLINES.replace(
        "response: 1h", f"response: {RESPONSE_S}s")), encoding="utf-8")
    if webhook is not None:
        units = load_config(SAMPLE_DISTRICT).units
        (folder / "notify.yaml").write_text(yaml.safe_dump({
            "retry": {"attempts": 2, "backoff": "1s", "max_backoff": "1s", "timeout": "5s"},
            "units": {u: [{"type": "webhook", "url": f"{webhook}/{u}"}] for u in units}}),
            encoding="utf-8")
    (folder / "hub.yaml").write_text(yaml.safe_dump({"hub": {
        "broker": {"url": mqtt_url}, "client_id": client_id,
        "store_path": str(tmp_path / "hub.sqlite"),
        "deadletter_path": str(tmp_path / "deadletter.sqlite"),
        "spool_dir": str(tmp_path / "spool"),
        "desk_store": {"url_env": "GRIDCALL_FAILOVER_DESK_URL"}}}), encoding="utf-8")
    return folder


def start_hub(config: Path, url: str, log: Path, api: str = "off") -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", "from gridcall.cli import app; app()", "hub", "run",
             "--config", str(config), "--ingest-workers", "0", "--drain-timeout", "1",
             "--api", api],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "GRIDCALL_FAILOVER_DESK_URL": url})


def query(url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql.encode(), params).fetchall()


def lock_holder(url: str, client_id: str) -> list[int]:
    """The backend pids holding the desk's lock (at most one)."""
    key = lock_key(client_id)
    return [int(str(r[0])) for r in query(
        url, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND ((classid::bigint << 32) | objid::bigint) = %s", key)]


def lease_sessions(url: str) -> int:
    return len(query(url, "SELECT pid FROM pg_stat_activity "
                          "WHERE application_name LIKE 'gridcall-lease%%'"))


async def forget_session(mqtt_url: str, client_id: str) -> None:
    address = BrokerAddress.parse(mqtt_url)
    async with aiomqtt.Client(address.host, address.port, identifier=client_id,
                              clean_session=True):
        pass


async def retained_alerts(mqtt_url: str, mine: set[tuple[str, int]]) -> dict[str, tuple[str, int]]:
    """The retained alert messages on the broker that are this test's (their
    ``(alert_id, opened_at)`` in ``mine``): topic → (alert_id, n). Other tests on the
    shared broker use the same alert ids, never the same opening time."""
    address = BrokerAddress.parse(mqtt_url)
    found: dict[str, tuple[str, int]] = {}
    async with aiomqtt.Client(address.host, address.port) as client:
        await client.subscribe(f"{topics.PREFIX}/alerts/#", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):  # retained copies come first, at once
                async for message in client.messages:
                    if not message.retain or not message.payload:
                        continue
                    alert = msgspec.json.decode(bytes(message.payload))  # type: ignore[arg-type]
                    if (alert["alert_id"], alert["opened_at"]) in mine:
                        found[str(message.topic)] = (alert["alert_id"], alert["n"])
    return found


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[str, list[tuple[str, str, int, bool]]]]:
    """A webhook endpoint; yields its base URL and the ``(unit, alert_id, n, own)`` of the
    alerts the messages it was sent are about (an alert's own message: ``own``; or each
    alert of an incident's), in order of arrival."""
    got: list[tuple[str, str, int, bool]] = []

    async def take(request: web.Request) -> web.Response:
        body = msgspec.json.decode((await request.json())["message"])
        # an alert's own message, or an incident's (one for several alerts)
        alerts = body.get("alerts", [body]) if isinstance(body, dict) else []
        unit = request.match_info["unit"]
        own = isinstance(body, dict) and "alerts" not in body
        got.extend((unit, str(a["alert_id"]), int(a["n"]), own) for a in alerts
                   if "alert_id" in a)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook/{unit}", take)
    runner = web.AppRunner(app)
    await runner.setup()
    port = unused_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/hook", got
    finally:
        await runner.cleanup()


def opened(url: str) -> set[tuple[str, int]]:
    return {(str(a), int(str(t))) for a, t in query(
        url, "SELECT alert_id, at FROM transitions WHERE n = 1")}


def events_of(cfg: ConfigSet) -> list[AnomalyEvent]:
    """One start event from each of 24 sensors (so each is one ledger step: an alert
    opened or evidence on one), numbered per agent as agents do."""
    sensors = sorted((s for s in cfg.sensors.values() if s.kind in ("noise", "pm25")),
                     key=lambda s: s.id)[:24]
    seqs: dict[str, int] = {}
    now = time.time_ns()  # the hub's window takes events stamped near its clock
    out = []
    for s in sorted(sensors, key=lambda s: s.id):
        seqs[s.agent] = seqs.get(s.agent, 0) + 1
        out.append(AnomalyEvent(agent=s.agent, seq=seqs[s.agent], sensor=s.id,
                                kind="out_of_limits", severity="major", score=0.9,
                                value=200.0, ts=now))
    return out


def leak_event(cfg: ConfigSet, others: list[AnomalyEvent]) -> AnomalyEvent:
    """A water leak from an agent none of ``others`` comes from: its alert waits on a
    :data:`RESPONSE_S` response deadline."""
    busy = {e.agent for e in others}
    sensor = next(s for s in sorted(cfg.sensors.values(), key=lambda s: s.id)
                  if s.kind == "water_leak" and s.agent not in busy)
    return AnomalyEvent(agent=sensor.agent, seq=1, sensor=sensor.id, kind="out_of_limits",
                        severity="major", score=0.9, value=1.0, ts=time.time_ns())


async def standby_api(base: str, token: str, active_pid: int) -> tuple[int, int, str]:
    """Through the standby's API: how many alerts it lists (polled until some), and the
    status and detail of an acknowledgement it is asked for."""
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as http:
        count = 0
        for _ in range(600):  # polled, bounded: the API opens once the desk is rebuilt
            with contextlib.suppress(httpx.TransportError):
                count = int((await http.get("/v1/alerts")).json()["count"])
                if count:
                    break
            await asyncio.sleep(0.1)
        refused = await http.post("/v1/alerts/AL000001/acknowledge", json={})
        detail = str(refused.json().get("detail", ""))
    assert f"pid {active_pid}" in detail, detail
    return count, refused.status_code, refused.headers.get("retry-after", "")


async def test_the_standby_takes_over_a_killed_hub_without_losing_or_doubling_a_step(
        cfg: ConfigSet, mqtt_url: str, postgres_url: str, tmp_path: Path) -> None:
    client_id = f"test-failover-{uuid.uuid4().hex[:8]}"
    receiver = webhook_receiver()
    hook, deliveries = await receiver.__aenter__()
    config = hub_config(tmp_path, mqtt_url, client_id, webhook=hook)
    events = events_of(cfg)
    leak = leak_event(cfg, events)
    everything = [*events, leak]
    token = issue(tmp_path / "api-tokens.json", "huangpu", known_units=cfg.units)
    api_port = unused_tcp_port()
    address = BrokerAddress.parse(mqtt_url)
    procs: list[subprocess.Popen[bytes]] = []
    with pg_database(postgres_url) as url:
        async with PgStore(url):  # the tables, so the test can count before a hub starts
            pass
        try:
            procs.append(start_hub(config, url, tmp_path / "a.log"))
            folded = lambda: int(str(query(url, "SELECT count(*) FROM events")[0][0]))  # noqa: E731
            async with aiomqtt.Client(address.host, address.port) as client:
                first = events[0]
                async def taken(n: int) -> bool:
                    for _ in range(600):  # the same (agent, seq) again until stored once
                        if folded() >= n:
                            return True
                        await client.publish(topics.events_topic(first.agent),
                                             encode(first), qos=1)
                        await asyncio.sleep(0.1)
                    return False
                assert await taken(1), (tmp_path / "a.log").read_text()
                procs.append(start_hub(config, url, tmp_path / "b.log",
                                       api=f"127.0.0.1:{api_port}"))
                assert await wait_until(lambda: lease_sessions(url) == 2, polls=600), \
                    (tmp_path / "b.log").read_text()
                active = lock_holder(url, client_id)
                assert len(active) == 1
                # the standby's API: reads from the shared store, a change refused (503)
                listed, status, retry = await standby_api(
                    f"http://127.0.0.1:{api_port}", token, procs[0].pid)
                assert listed >= 1, (tmp_path / "b.log").read_text()
                assert (status, retry) == (503, "5")
                third = len(events) // 3
                for e in [*events[1:third], leak]:
                    await client.publish(topics.events_topic(e.agent), encode(e), qos=1)
                assert await wait_until(lambda: folded() >= third + 1, polls=600)
                # every alert so far published retained at its latest step, then cleared:
                # the standby must publish them again when it takes over
                def latest() -> set[tuple[str, int]]:
                    return {(str(a), int(str(n))) for a, n in query(
                        url, "SELECT alert_id, max(n) FROM transitions GROUP BY alert_id")}
                before: dict[str, tuple[str, int]] = {}
                for _ in range(100):
                    before = await retained_alerts(mqtt_url, opened(url))
                    if set(before.values()) >= latest():
                        break
                assert set(before.values()) >= latest(), (before, latest())
                for topic in before:
                    await client.publish(topic, b"", qos=1, retain=True)
                for e in events[third:2 * third]:  # in flight when the active hub dies
                    await client.publish(topics.events_topic(e.agent), encode(e), qos=1)
                # the leak's alert waits on its response deadline when the hub dies
                leak_alert, leak_due = next(
                    (str(a), int(str(b))) for a, b in query(
                        url, "SELECT alert_id, convert_from(body, 'UTF8')::jsonb"
                        "->'deadlines'->>'response' FROM transitions "
                        "WHERE ev_agent = %s AND ev_seq = %s",
                        leak.agent, leak.seq))
                procs[0].send_signal(signal.SIGKILL)
                procs[0].wait(30)
                assert not query(url, "SELECT n FROM transitions WHERE alert_id = %s AND "
                                      "action = 'escalate'", leak_alert), \
                    "the response deadline passed before the kill: raise RESPONSE_S"
                marked = {(str(a), int(str(n))) for a, n in query(
                    url, "SELECT alert_id, n FROM notified")}
                sent_before = len(deliveries)
                for e in events[2 * third:]:
                    await client.publish(topics.events_topic(e.agent), encode(e), qos=1)
            assert await wait_until(lambda: folded() == len(everything), polls=1200), \
                (tmp_path / "b.log").read_text()
            # the standby resumed the leak's timer: escalated once, by the hub, stamped
            # with the deadline itself (not when the standby got to it)
            def escalations() -> list[tuple[object, ...]]:
                return query(url, "SELECT n, at, actor FROM transitions WHERE alert_id = %s "
                                  "AND action = 'escalate'", leak_alert)
            assert await wait_until(lambda: bool(escalations()), polls=1200), \
                (tmp_path / "b.log").read_text()
            [(escalated_n, escalated_at, actor)] = escalations()
            assert (escalated_at, actor) == (leak_due, "hub")
            assert procs[1].poll() is None, (tmp_path / "b.log").read_text()
            holder = lock_holder(url, client_id)
            assert len(holder) == 1
            assert holder != active
            last = {str(a): int(str(n)) for a, n in query(
                url, "SELECT alert_id, max(n) FROM transitions GROUP BY alert_id")}
            republished: dict[str, tuple[str, int]] = {}
            for _ in range(30):  # a loaded machine may give a collection fewer copies
                republished = await retained_alerts(mqtt_url, opened(url))
                if set(before) <= set(republished) and set(republished.values()) == set(
                        last.items()):
                    break
            assert set(before) <= set(republished)
            assert {a for a, _ in republished.values()} == set(last)
            assert all(n == last[a] for a, n in republished.values()), (republished, last)
            # notifications: every opening notified (the killed hub's unfinished ones by the
            # standby), and none the killed hub had finished sent again
            assert await wait_until(lambda: {str(r[0]) for r in query(
                url, "SELECT alert_id FROM notified")} >= set(last), polls=1200)
            assert {a for _, a, _, _ in deliveries} >= set(last)
            assert marked
            assert not marked & {(a, n) for _, a, n, _ in deliveries[sent_before:]}, (
                marked, deliveries)
            # each unit got each step's own message once, but for steps in flight at the
            # kill (delivered, not yet marked: at least once); the escalation, by the
            # standby, reached the units it concerns (both levels) once each
            own = Counter((u, a, n) for u, a, n, whole in deliveries if whole)
            twice = {(a, n) for (_, a, n), k in own.items() if k > 1}
            assert not twice & marked, (twice, marked)
            def heard() -> Counter[str]:
                return Counter(u for u, a, n, whole in deliveries
                               if whole and (a, n) == (leak_alert, escalated_n))
            assert await wait_until(lambda: len(heard()) >= 2, polls=600), deliveries
            assert set(heard().values()) == {1}, heard()
            stored = query(url, "SELECT agent, seq FROM events ORDER BY agent, seq")
            assert sorted(stored) == sorted((e.agent, e.seq) for e in everything)
            rows = query(url, "SELECT alert_id, n, ev_agent, ev_seq FROM transitions "
                              "ORDER BY alert_id, n")
            by_alert: dict[str, list[int]] = {}
            for alert_id, n, _, _ in rows:
                by_alert.setdefault(str(alert_id), []).append(int(str(n)))
            assert all(ns == list(range(1, len(ns) + 1)) for ns in by_alert.values()), rows
            evidence = [(str(a), int(str(s))) for _, _, a, s in rows if a is not None]
            assert sorted(evidence) == sorted((e.agent, e.seq) for e in everything)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(60)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
            await forget_session(mqtt_url, client_id)
            await receiver.__aexit__(None, None, None)


async def test_a_hub_whose_lock_connection_fails_stops_rather_than_run_a_second_desk(
        cfg: ConfigSet, mqtt_url: str, postgres_url: str, tmp_path: Path) -> None:
    """Its lock may be another hub's by now: it stops with exit status 1, saying why."""
    client_id = f"test-fence-{uuid.uuid4().hex[:8]}"
    config = hub_config(tmp_path, mqtt_url, client_id)
    log = tmp_path / "a.log"
    with pg_database(postgres_url) as url:
        proc = start_hub(config, url, log)
        try:
            assert await wait_until(lambda: len(lock_holder(url, client_id)) == 1, polls=600), \
                log.read_text()
            query(url, "SELECT pg_terminate_backend(%s)", lock_holder(url, client_id)[0])
            code = await asyncio.to_thread(proc.wait, 60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            await forget_session(mqtt_url, client_id)
    assert code == 1, log.read_text()
    assert "the lock's connection failed" in " ".join(log.read_text().split())
