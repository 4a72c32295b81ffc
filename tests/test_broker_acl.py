"""`gridcall broker acl` against a real mosquitto (issue 16, item 1): every forgery the
issue lists is refused, by the broker (MQTT v5 reason code 135 "Not authorized", which
the publishing client logs) or, where the broker lets it through because the login
publishes on its own topic, by the hub.

A mosquitto of the test's own (Debian's /usr/sbin/mosquitto, a temporary folder, a free
loopback port) runs with the generated password file and ACL and no anonymous access.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from gridcall.broker.credentials import read_credentials
from gridcall.broker.mosquitto import password_hash
from gridcall.cli import app
from gridcall.config import AgentSpec, ConfigSet, SensorSpec
from gridcall.config.models import BrokerSettings
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.outbox import Outbox
from gridcall.edge_agent.sources import Sample
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.simulators.steady import mid_value
from gridcall.wire import (
    AgentStatus,
    AnomalyEvent,
    Reading,
    ReadingBatch,
    RiskAlert,
    encode,
    topics,
)
from gridcall.wire.codec import Decoder
from tests.polling import wait_until
from tests.servers import unused_tcp_port

log = logging.getLogger(__name__)

MOSQUITTO = "/usr/sbin/mosquitto"
NOT_AUTHORIZED = 135
WAIT = 10.0  # a guard against a hang, not a timing claim
HUB_USER_VAR, HUB_PASSWORD_VAR = "GRIDCALL_TEST_ACL_HUB_USER", "GRIDCALL_TEST_ACL_HUB_PW"


@dataclass
class SecuredBroker:
    url: str
    port: int
    folder: Path
    passwords: dict[str, str]
    log: Path


@pytest.fixture
def secured(tmp_path: Path, cfg: ConfigSet) -> Iterator[SecuredBroker]:
    out = tmp_path / "broker"
    result = CliRunner().invoke(app, ["broker", "acl", "-c", str(cfg.directory),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    port = unused_tcp_port()
    broker_log = tmp_path / "mosquitto.log"
    conf = tmp_path / "mosquitto.conf"
    # `user root`: run as root (CI's container), mosquitto would drop to its own user,
    # which can read neither pytest's 0700 folder nor the 0640 passwd; a deployment gives
    # passwd to the broker's group (deploy/town-centre/README.md). Ignored if not root.
    conf.write_text(f"listener {port} 127.0.0.1\n"
                    "user root\n"
                    "allow_anonymous false\n"
                    f"password_file {out / 'passwd'}\n"
                    f"acl_file {out / 'acl'}\n"
                    f"log_dest file {broker_log}\n"
                    "log_type all\n", encoding="ascii")
    console = tmp_path / "mosquitto.out"
    with console.open("wb") as said:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=said,
                                stderr=subprocess.STDOUT)
    try:
        for _ in range(200):  # bounded wait for the listener
            if proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {console.read_text()}")
            if broker_log.exists() and f"port {port}" in broker_log.read_text():
                break
            time.sleep(0.05)
        yield SecuredBroker(f"mqtt://127.0.0.1:{port}", port, out,
                            read_credentials(out / "credentials"), broker_log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@dataclass
class V5:
    """A paho 2 MQTT v5 client that logs and keeps every reason code the broker sends."""

    user: str | None
    password: str | None
    port: int
    will: tuple[str, bytes] | None = None
    connack: ReasonCode | None = None
    received: list[mqtt.MQTTMessage] = field(default_factory=list)
    _acks: dict[int, ReasonCode | list[ReasonCode]] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    client: mqtt.Client = field(init=False)

    def __post_init__(self) -> None:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                        client_id=f"acl-test-{self.user}-{os.urandom(3).hex()}")
        if self.user is not None:
            c.username_pw_set(self.user, self.password)
        if self.will is not None:
            c.will_set(self.will[0], self.will[1], qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        self.client = c

    def _done(self, key: int, value: ReasonCode | list[ReasonCode]) -> None:
        with self._cond:
            self._acks[key] = value
            self._cond.notify_all()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object,
                    rc: ReasonCode, properties: object = None) -> None:
        log.info("%s: CONNACK %d %s", self.user, rc.value, rc)
        self.connack = rc
        self._done(-1, rc)

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int,
                    rc: ReasonCode, properties: object = None) -> None:
        log.info("%s: PUBACK %d %s (mid %d)", self.user, rc.value, rc, mid)
        self._done(mid, rc)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      rcs: list[ReasonCode], properties: object = None) -> None:
        log.info("%s: SUBACK %s", self.user, [(r.value, str(r)) for r in rcs])
        self._done(mid, rcs)

    def _on_message(self, client: mqtt.Client, userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.received.append(msg)
            self._cond.notify_all()

    def _wait(self, key: int) -> ReasonCode | list[ReasonCode]:
        with self._cond:
            if not self._cond.wait_for(lambda: key in self._acks, WAIT):
                raise TimeoutError(f"{self.user}: no answer to {key}")
            return self._acks.pop(key)

    def connect(self) -> ReasonCode:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        rc = self._wait(-1)
        assert isinstance(rc, ReasonCode)
        return rc

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        rc = self._wait(info.mid)
        assert isinstance(rc, ReasonCode)
        return rc.value

    def subscribe(self, topic: str) -> int:
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        rcs = self._wait(mid)
        assert isinstance(rcs, list)
        return rcs[0].value

    def drop_with_will(self) -> None:
        """End the connection asking the broker to publish the will (v5 reason 4)."""
        self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        self.client.loop_stop()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def messages_on(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self._cond:
            return [m for m in self.received if m.topic == topic]


def login(broker: SecuredBroker, user: str | None, *, password: str | None = None,
          will: tuple[str, bytes] | None = None) -> V5:
    c = V5(user, password if password is not None else broker.passwords.get(user or ""),
           broker.port, will=will)
    assert c.connect() == "Success", c.connack
    return c


def barrier(observer: V5, agent: V5, topic: str) -> None:
    """Wait until ``observer`` has seen a genuine message ``agent`` publishes after what
    came before: the broker delivers in order, so anything earlier has arrived by then."""
    marker = os.urandom(4).hex().encode()
    assert agent.publish(topic, marker) == 0
    with observer._cond:
        assert observer._cond.wait_for(
            lambda: any(m.payload == marker for m in observer.received), WAIT)


def test_the_password_file_is_mosquitto_2s_own_format() -> None:
    salt = bytes(range(12))
    digest = password_hash("secret", salt=salt)
    assert digest.startswith("$7$101$AAECAwQFBgcICQoL$")
    found = subprocess.run(["/usr/bin/mosquitto_passwd", "-h"], capture_output=True, check=False)
    assert b"mosquitto_passwd" in found.stdout + found.stderr  # the tool we write instead of


def test_the_files_say_only_what_each_login_may_do(secured: SecuredBroker,
                                                   cfg: ConfigSet) -> None:
    users = set(secured.passwords)
    assert users == {cfg.hub.client_id, *cfg.agents, *(f"app-{u}" for u in cfg.units),
                     *(f"ext-{s.id}" for s in cfg.external.systems)}
    assert stat.S_IMODE((secured.folder / "credentials").stat().st_mode) == 0o600
    assert stat.S_IMODE((secured.folder / "passwd").stat().st_mode) == 0o640
    acl = (secured.folder / "acl").read_text()
    assert "topic write gridcall/v1/alerts/#" in acl
    assert acl.count("topic write gridcall/v1/alerts/#") == 1  # the hub's, nobody else's
    assert "pattern" not in acl
    assert "readwrite" not in acl


def test_a_second_run_keeps_every_password_and_adds_only_new_logins(
    secured: SecuredBroker, cfg: ConfigSet, tmp_path: Path
) -> None:
    before = (secured.folder / "credentials").read_text()
    result = CliRunner().invoke(app, ["broker", "acl", "-c", str(cfg.directory),
                                      "--out", str(secured.folder)])
    assert result.exit_code == 0, result.output
    assert "(0 new)" in result.output
    assert (secured.folder / "credentials").read_text() == before


def test_a_departments_system_publishes_on_its_own_topic_only(
    secured: SecuredBroker, cfg: ConfigSet
) -> None:
    """A business system of external.yaml (login ext-<id>) may publish its events on
    gridcall/v1/external/<id>, which the hub reads, and nothing else: not another
    system's topic, not an agent's, not an alert."""
    water, fire = (s.id for s in cfg.external.systems)
    hub = login(secured, cfg.hub.client_id)
    system = login(secured, f"ext-{water}")
    try:
        assert hub.subscribe(topics.EXTERNAL) == 1
        own = topics.external_topic(water)
        assert system.publish(own, b'{"event_id": "1"}') == 0
        for topic in (topics.external_topic(fire), topics.events_topic("edge-dongyuan"),
                      topics.alert_topic(("huangpu",), "A-X")):
            assert system.publish(topic, b"{}") == NOT_AUTHORIZED, topic
        barrier(hub, system, own)
        assert {m.topic for m in hub.received} == {own}
    finally:
        for c in (hub, system):
            c.close()


def test_anonymous_and_wrong_passwords_are_refused(secured: SecuredBroker) -> None:
    anonymous = V5(None, None, secured.port)
    assert anonymous.connect().value == NOT_AUTHORIZED
    anonymous.client.loop_stop()
    wrong = V5("edge-anle", "not-its-password", secured.port)
    assert wrong.connect().value == NOT_AUTHORIZED
    wrong.client.loop_stop()


def test_the_broker_refuses_every_forgery_it_can_see(
    secured: SecuredBroker, cfg: ConfigSet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=__name__)
    dongyuan_smoke = next(s for s in cfg.sensors.values()
                          if s.agent == "edge-dongyuan" and s.kind == "smoke")
    alert_topic = topics.alert_topic(dongyuan_smoke.path[:2], "A-TEST-1")
    hub = login(secured, cfg.hub.client_id)
    anle = login(secured, "edge-anle")
    dongyuan = login(secured, "edge-dongyuan")
    app_other = login(secured, f"app-{cfg.sensors['anle-g1-rain-1'].grid}")
    try:
        for t in (topics.STATUS, topics.EVENTS, topics.READINGS, topics.ALERTS):
            assert hub.subscribe(t) == 1
        assert hub.subscribe(f"$share/g/{topics.READINGS}") == 1  # ingest workers' filter
        assert hub.publish(alert_topic, b"{}", retain=True) == 0  # the hub alone writes alerts
        event = AnomalyEvent(agent="edge-dongyuan", seq=7, sensor=dongyuan_smoke.id,
                             kind="out_of_limits", severity="critical", score=1.0,
                             value=9.0, ts=time.time_ns())
        forged = {  # with edge-anle's password, speaking for edge-dongyuan
            "event on edge-dongyuan's topic": (topics.events_topic("edge-dongyuan"),
                                              encode(event), False),
            "readings on edge-dongyuan's topic": (topics.readings_topic("edge-dongyuan"),
                                                 b"{}", False),
            "status on edge-dongyuan's topic": (topics.status_topic("edge-dongyuan"),
                                               b'{"agent":"edge-dongyuan"}', True),
            "empty retained alert (erase)": (alert_topic, b"", True),
        }
        for what, (topic, payload, retain) in forged.items():
            assert anle.publish(topic, payload, retain=retain) == NOT_AUTHORIZED, what
        # a unit's app writes nothing, an alert topic least of all
        assert app_other.publish(alert_topic, b"", retain=True) == NOT_AUTHORIZED
        # reading every alert: mosquitto 2 grants the SUBSCRIBE (its file ACL checks
        # reads per message) but delivers nothing the login may not read: not the
        # retained alert outside the app's subtree, nothing at all to an agent
        for reader in (app_other, anle):
            for t in (topics.ALERTS, topics.EVENTS, topics.STATUS):
                log.info("%s: SUBSCRIBE %s -> %d", reader.user, t, reader.subscribe(t))
        barrier(hub, dongyuan, topics.events_topic("edge-dongyuan"))
        own_grid = topics.alert_topic(cfg.units[app_other.user.removeprefix("app-")].path,
                                      "A-MARK")
        assert hub.publish(own_grid, b"mark") == 0
        with app_other._cond:
            assert app_other._cond.wait_for(lambda: bool(app_other.messages_on(own_grid)),
                                            WAIT)
        assert [m.topic for m in app_other.received] == [own_grid]
        assert anle.received == []
        town_app = login(secured, f"app-{dongyuan_smoke.path[1]}")
        try:  # the retained alert is still the hub's: nobody erased it
            assert town_app.subscribe(topics.unit_subscription(dongyuan_smoke.path[:2])) == 1
            with town_app._cond:
                assert town_app._cond.wait_for(lambda: bool(town_app.received), WAIT)
            assert [(m.topic, m.payload) for m in town_app.received] == [(alert_topic, b"{}")]
        finally:
            town_app.close()
        assert hub.messages_on(topics.status_topic("edge-dongyuan")) == []
        assert [m.payload for m in hub.messages_on(topics.events_topic("edge-dongyuan"))
                ] == [hub.received[-1].payload]  # only edge-dongyuan's own marker
    finally:
        for c in (hub, anle, dongyuan, app_other):
            c.close()
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert f"edge-anle: PUBACK {NOT_AUTHORIZED} Not authorized" in said  # the client logs it


def test_a_forged_last_will_is_never_published(secured: SecuredBroker,
                                               cfg: ConfigSet) -> None:
    """edge-anle connects with a last will on three other agents' status topics in turn
    and drops the connection asking for its will: none reaches the hub's subscription
    (mosquitto refuses the login or drops the will), so no EDGE-OFFLINE can open."""
    hub = login(secured, cfg.hub.client_id)
    assert hub.subscribe(topics.STATUS) == 1
    victims = ["edge-dongyuan", "edge-huangpu-cun", "edge-changzhou-dao"]
    outcomes = []
    try:
        for victim in victims:
            forger = V5("edge-anle", secured.passwords["edge-anle"], secured.port,
                        will=(topics.status_topic(victim), b'{"state":"offline"}'))
            rc = forger.connect()
            outcomes.append(rc.value)
            if rc == "Success":
                forger.drop_with_will()
            else:
                forger.client.loop_stop()
        genuine = login(secured, "edge-dongyuan")
        barrier(hub, genuine, topics.status_topic("edge-dongyuan"))
        genuine.close()
        seen = [m for v in victims for m in hub.messages_on(topics.status_topic(v))]
        assert [m.payload for m in seen] == [hub.received[-1].payload]  # the marker only
    finally:
        hub.close()
    log.info("forged wills: CONNACK %s", outcomes)


def test_an_agents_own_will_is_published(secured: SecuredBroker, cfg: ConfigSet) -> None:
    hub = login(secured, cfg.hub.client_id)
    assert hub.subscribe(topics.STATUS) == 1
    try:
        agent = login(secured, "edge-anle",
                      will=(topics.status_topic("edge-anle"), b"offline-will"))
        agent.drop_with_will()
        with hub._cond:
            assert hub._cond.wait_for(lambda: any(
                m.payload == b"offline-will" for m in hub.received), WAIT)
    finally:
        hub.close()


def test_a_units_app_reads_its_subtree_and_nothing_else(secured: SecuredBroker,
                                                        cfg: ConfigSet) -> None:
    town = next(u for u in cfg.units.values() if u.level == "town")
    other = next(u for u in cfg.units.values() if u.level == "town" and u.id != town.id)
    grid = next(u for u in cfg.units.values() if u.level == "grid" and u.path[1] == town.id)
    town_app = login(secured, f"app-{town.id}")
    grid_app = login(secured, f"app-{grid.id}")
    hub = login(secured, cfg.hub.client_id)
    try:
        assert town_app.subscribe(topics.unit_subscription(town.path)) == 1
        assert grid_app.subscribe(topics.unit_subscription(grid.path)) == 1
        # outside the subtree: granted by mosquitto 2 (see above), never delivered
        town_app.subscribe(topics.unit_subscription(other.path))
        grid_app.subscribe(topics.unit_subscription(town.path))
        town_wide, theirs = (topics.alert_topic(town.path, "A-0"),
                             topics.alert_topic(other.path, "A-2"))
        mine = topics.alert_topic(grid.path, "A-1")
        assert hub.publish(theirs, b"theirs", retain=True) == 0
        assert hub.publish(town_wide, b"town", retain=True) == 0
        assert hub.publish(mine, b"mine", retain=True) == 0  # last: all came before it
        for app_ in (town_app, grid_app):
            with app_._cond:
                assert app_._cond.wait_for(lambda a=app_: bool(a.messages_on(mine)), WAIT)
        assert [m.payload for m in town_app.received] == [b"town", b"mine"]
        assert {m.payload for m in grid_app.received} == {b"mine"}  # by both its filters
    finally:
        for c in (town_app, grid_app, hub):
            c.close()


async def test_what_passes_the_broker_is_refused_by_the_hub(
    secured: SecuredBroker, cfg: ConfigSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """edge-anle on its own topics, which the broker allows: an event for edge-dongyuan's
    smoke sensor (in its own name and in edge-dongyuan's, with the seq edge-dongyuan's
    next critical event has) and 5,000 invented sensor ids in an over-long batch and a
    normal one. The hub logs in with its generated password, stores and opens nothing of
    it; edge-dongyuan's genuine event opens its FIRE-SMOKE alert, published where the
    community's app reads it."""
    monkeypatch.setenv(HUB_USER_VAR, cfg.hub.client_id)
    monkeypatch.setenv(HUB_PASSWORD_VAR, secured.passwords[cfg.hub.client_id])
    broker = BrokerSettings(url=secured.url, username_env=HUB_USER_VAR,
                            password_env=HUB_PASSWORD_VAR)
    hub_cfg = replace(cfg, hub=cfg.hub.model_copy(update={"broker": broker}))
    smoke = next(s for s in cfg.sensors.values()
                 if s.agent == "edge-dongyuan" and s.kind == "smoke")

    now = time.time_ns()  # inside the hub's ts window

    def event(agent: str) -> bytes:
        return encode(AnomalyEvent(agent=agent, seq=41, sensor=smoke.id, kind="out_of_limits",
                                   severity="critical", score=1.0, value=9.0, ts=now))

    invented = [Reading(f"ghost-{i}", now + i, 1.0) for i in range(5_000)]
    own = next(s.id for s in cfg.sensors.values() if s.agent == "edge-anle")
    batches = [ReadingBatch(agent="edge-anle", seq=1, sent_at=1, readings=invented[:50]),
               ReadingBatch(agent="edge-anle", seq=2, sent_at=1,
                            readings=invented * 3),  # 15,000 > max_batch_readings
               ReadingBatch(agent="edge-anle", seq=3, sent_at=1,
                            readings=[Reading(own, now, 1.0)])]
    async with Store(":memory:") as store:
        hub = Hub(hub_cfg, sink=store, store=store, client_id=cfg.hub.client_id,
                  flush_interval=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(hub.run(stop))
        try:
            await asyncio.wait_for(hub.subscribed.wait(), WAIT)
            anle = await asyncio.to_thread(login, secured, "edge-anle")
            dongyuan = await asyncio.to_thread(login, secured, "edge-dongyuan")
            for payload in (event("edge-anle"), event("edge-dongyuan")):
                assert anle.publish(topics.events_topic("edge-anle"), payload) == 0
            for b in batches:
                assert anle.publish(topics.readings_topic("edge-anle"), encode(b)) == 0
            assert dongyuan.publish(topics.events_topic("edge-dongyuan"),
                                    event("edge-dongyuan")) == 0
            for _ in range(500):  # bounded polling
                if hub.counters.events >= 1 and hub.ingest.counters.batches_received >= 3 \
                        and hub.counters.alerts_published >= 1:
                    break
                await asyncio.sleep(0.02)
            anle.close()
            dongyuan.close()
        finally:
            stop.set()
            await task
        (state,) = hub.desk.alerts()
        assert (state.alert.agent, state.alert.event_seq, state.alert.matter) == (
            "edge-dongyuan", 41, "FIRE-SMOKE")
        assert await store.count_readings() == 1  # edge-anle's one reading of its own
        stats = hub.stats()
    assert stats["rejected.forged"] == 1
    assert hub.decoder.malformed["forged"] == 1
    assert stats["ingest.refused.unknown_sensor"] == 50
    assert stats["ingest.refused.too_many_readings"] == 15_000
    # the unit the alert is addressed to reads it (retained) with its app's login
    unit = cfg.units[state.alert.unit]
    app_ = await asyncio.to_thread(login, secured, f"app-{unit.id}")
    try:
        assert app_.subscribe(topics.unit_subscription(unit.path)) == 1
        with app_._cond:
            assert app_._cond.wait_for(lambda: bool(app_.received), WAIT)
    finally:
        app_.close()
    alert = Decoder().alert(app_.received[0].topic, app_.received[0].payload)
    assert isinstance(alert, RiskAlert)
    assert alert.alert_id == state.alert_id


def test_the_hubs_shared_subscription_gets_readings_through_the_acl(
        secured: SecuredBroker, cfg: ConfigSet) -> None:
    """Ingest workers subscribe with `$share/<group>/gridcall/v1/readings/+`: mosquitto
    checks the hub login's read grant on the topic behind the share prefix."""
    worker = login(secured, cfg.hub.client_id)
    agent = login(secured, "edge-dongyuan")
    try:
        assert worker.subscribe(f"$share/{cfg.hub.ingest_share_group}/{topics.READINGS}") == 1
        assert agent.publish(topics.readings_topic("edge-dongyuan"), b"batch") == 0
        with worker._cond:
            assert worker._cond.wait_for(lambda: bool(worker.received), WAIT)
        assert [(m.topic, m.payload) for m in worker.received] == [
            (topics.readings_topic("edge-dongyuan"), b"batch")]
    finally:
        worker.close()
        agent.close()


class Trickle:
    """A reading every 20 ms for one sensor, as a polled sensor gives them."""

    def __init__(self, sensor: SensorSpec) -> None:
        self.sensor, self.value = sensor.id, mid_value(sensor)

    async def samples(self) -> AsyncIterator[Sample]:
        n = 0
        while True:
            await asyncio.sleep(0.02)
            n += 1
            yield Sample(self.sensor, time.time_ns() + n, self.value)


def as_login(spec: AgentSpec, broker: BrokerSettings) -> AgentSpec:
    return replace(spec, settings=spec.settings.model_copy(update={"broker": broker}))


@pytest.mark.parametrize("mqtt_version", ["5", "3.1.1"])
async def test_an_agent_run_under_anothers_login_is_refused_and_keeps_its_readings(
    secured: SecuredBroker, cfg: ConfigSet, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, mqtt_version: str
) -> None:
    """edge-dongyuan's agent started with edge-anle's login (a config naming the wrong
    login), beside edge-anle's own agent with that login. Under MQTT v5 the broker
    refuses every publish of the forger (PUBACK 0x87): its client logs the topic and the
    reason by name, counts it, keeps every reading in its outbox and says so in its
    status; the genuine agent's readings land. Under 3.1.1 (still spoken, on request)
    the genuine agent's readings land too, and the forger's are dropped by the broker
    without a word to it: what v5 is for."""
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("GRIDCALL_TEST_ACL_ANLE_USER", "edge-anle")
    monkeypatch.setenv("GRIDCALL_TEST_ACL_ANLE_PW", secured.passwords["edge-anle"])
    login_of_anle = BrokerSettings(url=secured.url, username_env="GRIDCALL_TEST_ACL_ANLE_USER",
                                   password_env="GRIDCALL_TEST_ACL_ANLE_PW",
                                   mqtt_version=mqtt_version)  # type: ignore[arg-type]
    forger_spec = as_login(cfg.agents["edge-dongyuan"], login_of_anle)
    genuine_spec = as_login(cfg.agents["edge-anle"], login_of_anle)
    forger = EdgeAgent(forger_spec, Trickle(forger_spec.sensors[0]),
                       state_dir=tmp_path / "forger")
    genuine = EdgeAgent(genuine_spec, Trickle(genuine_spec.sensors[0]))
    hub = await asyncio.to_thread(login, secured, cfg.hub.client_id)
    assert hub.subscribe(topics.READINGS) == 1
    stop = asyncio.Event()
    runs = [asyncio.create_task(a.run(stop)) for a in (forger, genuine)]
    try:
        assert await wait_until(lambda: bool(hub.messages_on(
            topics.readings_topic("edge-anle"))))
        if mqtt_version == "5":
            assert await wait_until(
                lambda: forger.counters.publishes_refused["not_authorized"] >= 2)
        else:
            assert await wait_until(lambda: forger.counters.readings_sent > 0)
        status = msgspec.json.decode(forger.status(), type=AgentStatus)
    finally:
        stop.set()
        await asyncio.wait(runs, timeout=60)
        hub.close()
    for run in runs:
        run.result()
    assert hub.messages_on(topics.readings_topic("edge-dongyuan")) == []
    kept = Outbox(tmp_path / "forger" / "edge-dongyuan.outbox.sqlite")
    try:
        left = kept.depth().readings
    finally:
        kept.close()
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if mqtt_version == "3.1.1":
        # the broker acknowledged and dropped them: the agent thinks they were sent
        assert forger.counters.readings_sent > 0
        assert not forger.counters.publishes_refused
        return
    assert forger.counters.readings_sent == 0
    assert left == forger.counters.samples > 0  # every reading kept, none sent
    assert status.refused_by_broker is not None
    assert "Not authorized (0x87)" in status.refused_by_broker
    assert status.publishes_refused["not_authorized"] >= 2
    refused_lines = [m for m in said if "'Not authorized'" in m and "0x87" in m]
    assert any(topics.readings_topic("edge-dongyuan") in m for m in refused_lines), said
    assert any(topics.status_topic("edge-dongyuan") in m for m in refused_lines), said
    assert genuine.counters.readings_sent > 0
    assert not genuine.counters.publishes_refused
