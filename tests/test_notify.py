"""Notifications per unit (config/notify.py, hub/notify/notifier.py) against a real HTTP receiver
and a real SMTP server, both on loopback."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from gridcall.config import SAMPLE_DISTRICT, ConfigError, ConfigSet, load_config
from gridcall.config.notify import NotifyFile
from gridcall.hub.desk.policy import Policy
from gridcall.hub.notify.notifier import Notifier
from gridcall.wire import AnomalyEvent, RiskAlert
from tests.polling import wait_until
from tests.servers import unused_tcp_port


def alert_in(cfg: ConfigSet, n: int = 1) -> RiskAlert:
    sensor = next(iter(cfg.sensors.values()))
    event = AnomalyEvent(agent=sensor.agent, seq=n, sensor=sensor.id, kind="out_of_limits",
                         severity="major", score=0.9, value=42.0, ts=1_700_000_000 * 10**9)
    return Policy(cfg).draft(event, alert_id=f"AL{n:06d}", now_ns=event.ts)


@dataclass
class Receiver:
    """A webhook receiver: answers each POST with the next status of ``statuses`` (then
    200) and keeps what it got."""

    url: str
    statuses: list[int]
    got: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    hits: int = 0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = unused_tcp_port()
    rec = Receiver(f"http://127.0.0.1:{port}/hooks/gridcall", [])

    async def hook(request: web.Request) -> web.Response:
        rec.hits += 1
        status = rec.statuses.pop(0) if rec.statuses else 200
        if status == 200:
            rec.got.append((dict(request.headers), await request.json()))
        return web.Response(status=status, text="ok" if status == 200 else "busy")

    app = web.Application()
    app.router.add_post("/hooks/gridcall", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield rec
    await runner.cleanup()


class Mailbox:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos),
                           message_from_bytes(envelope.original_content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    box = Mailbox()
    port = unused_tcp_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, box
    controller.stop()


def settings(units: dict[str, Any], **extra: Any) -> NotifyFile:
    return NotifyFile.model_validate({"units": units, **extra})


FAST = {"attempts": 3, "backoff": "0.01s", "timeout": "5s"}


async def test_a_webhook_gets_the_alert_as_json_with_the_bearer_token_from_the_environment(
        cfg: ConfigSet, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_TOKEN", "s3cret-token")
    alert = alert_in(cfg)
    notify = settings({alert.unit: [{"type": "webhook", "url": receiver.url,
                                     "token_env": "TEST_HOOK_TOKEN",
                                     "headers": {"X-Gridcall-Unit": alert.unit}}]})
    async with Notifier(notify) as notifier:
        assert notifier.notify(alert, [alert.unit]) == 1
        assert await wait_until(lambda: notifier.counters.sent == 1)
    headers, payload = receiver.got[0]
    assert headers["Authorization"] == "Bearer s3cret-token"
    assert headers["X-Gridcall-Unit"] == alert.unit
    assert msgspec.json.decode(payload["message"], type=RiskAlert) == alert
    assert alert.alert_id in payload["title"]
    assert alert.matter_name in payload["title"]
    assert notifier.counters.failed_attempts == 0


async def test_an_email_reaches_the_smtp_server_with_the_deadlines(
        cfg: ConfigSet, smtp: tuple[int, Mailbox]) -> None:
    port, box = smtp
    alert = alert_in(cfg)
    notify = settings({alert.unit: [{"type": "email", "to": ["duty@grid.example.org",
                                                             "chief@grid.example.org"]}]},
                      smtp={"host": "127.0.0.1", "port": port, "security": "insecure",
                            "sender": "gridcall@hub.example.org"})
    async with Notifier(notify) as notifier:
        notifier.notify(alert, [alert.unit], note="escalated: no response in time")
        assert await wait_until(lambda: notifier.counters.sent == 1)
    # apprise sends each recipient a mail of their own
    assert sorted(r for _, rcpt, _ in box.mails for r in rcpt) == [
        "chief@grid.example.org", "duty@grid.example.org"]
    sender, _, mail = box.mails[0]
    assert sender == "gridcall@hub.example.org"
    from email.header import decode_header, make_header
    assert alert.alert_id in str(make_header(decode_header(mail["Subject"])))
    text = next(part.get_payload(decode=True).decode()  # type: ignore[union-attr]
                for part in mail.walk() if part.get_content_type() == "text/plain")
    assert "Respond by 2023-11-14" in text
    assert "escalated: no response in time" in text


async def test_a_failing_webhook_is_retried_until_it_takes_the_alert(
        cfg: ConfigSet, receiver: Receiver) -> None:
    receiver.statuses = [503, 500]
    alert = alert_in(cfg)
    notify = settings({alert.unit: [{"type": "webhook", "url": receiver.url}]}, retry=FAST)
    async with Notifier(notify) as notifier:
        notifier.notify(alert, [alert.unit])
        assert await wait_until(lambda: notifier.counters.sent == 1)
    assert receiver.hits == 3
    assert notifier.counters.failed_attempts == 2
    assert notifier.counters.given_up == 0
    assert len(receiver.got) == 1


async def test_a_webhook_that_keeps_failing_is_given_up_logged_and_counted_not_raised(
        cfg: ConfigSet, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses = [500] * 10
    alert = alert_in(cfg)
    notify = settings({alert.unit: [{"type": "webhook", "url": receiver.url}]}, retry=FAST)
    with caplog.at_level(logging.WARNING, logger="gridcall.hub.notify.notifier"):
        async with Notifier(notify) as notifier:
            notifier.notify(alert, [alert.unit])
            assert await wait_until(lambda: notifier.counters.given_up == 1)
    assert receiver.hits == 3
    assert notifier.counters.failed_attempts == 3
    assert notifier.counters.given_up_by_unit == {alert.unit: 1}
    gave_up = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(gave_up) == 1
    message = gave_up[0].getMessage()
    assert f"units.{alert.unit}[0] (webhook {receiver.url})" in message
    assert "500" in message  # apprise's reason, not just "failed"


async def test_a_webhook_refusing_the_request_itself_is_not_retried(
        cfg: ConfigSet, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses = [401] * 5
    alert = alert_in(cfg)
    notify = settings({alert.unit: [{"type": "webhook", "url": receiver.url}]}, retry=FAST)
    async with Notifier(notify) as notifier:
        notifier.notify(alert, [alert.unit])
        assert await wait_until(lambda: notifier.counters.given_up == 1)
    assert receiver.hits == 1  # a wrong token stays wrong: no second try
    assert "error=401" in caplog.text


async def test_a_webhook_asking_to_slow_down_is_retried_not_given_up(
        cfg: ConfigSet, receiver: Receiver) -> None:
    """429 and 408 are 4xx but say "later", not "wrong": the channel's classify decides
    from the HTTP status httpx returns."""
    receiver.statuses = [429, 408]
    alert = alert_in(cfg)
    notify = settings({alert.unit: [{"type": "webhook", "url": receiver.url}]}, retry=FAST)
    async with Notifier(notify) as notifier:
        notifier.notify(alert, [alert.unit])
        assert await wait_until(lambda: notifier.counters.sent == 1)
    assert receiver.hits == 3
    assert notifier.counters.given_up == 0


async def test_an_unset_token_variable_fails_the_delivery_naming_the_variable(
        cfg: ConfigSet, receiver: Receiver, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_UNSET_TOKEN", raising=False)
    alert = alert_in(cfg)
    notify = settings({alert.unit: [{"type": "webhook", "url": receiver.url,
                                     "token_env": "TEST_UNSET_TOKEN"}]},
                      retry={**FAST, "attempts": 1})
    assert notify.unset_env() == [f"units.{alert.unit}[0].token_env: TEST_UNSET_TOKEN"]
    async with Notifier(notify) as notifier:
        notifier.notify(alert, [alert.unit])
        assert await wait_until(lambda: notifier.counters.given_up == 1)
    assert receiver.hits == 0
    assert "TEST_UNSET_TOKEN" in caplog.text


async def test_each_unit_gets_its_own_channels_and_units_without_any_are_counted(
        cfg: ConfigSet, receiver: Receiver, smtp: tuple[int, Mailbox]) -> None:
    port, box = smtp
    alert = alert_in(cfg)
    grid, community = alert.grid, cfg.units[alert.grid].parent
    assert community is not None
    notify = settings({grid: [{"type": "webhook", "url": receiver.url}],
                       community: [{"type": "email", "to": ["c@example.org"]}]},
                      smtp={"host": "127.0.0.1", "port": port, "security": "insecure",
                            "sender": "hub@example.org"})
    async with Notifier(notify) as notifier:
        assert notifier.notify(alert, [grid, community, cfg.district.id, grid]) == 2
        assert await wait_until(lambda: notifier.counters.sent == 2)
    assert len(receiver.got) == 1
    assert [rcpt for _, rcpt, _ in box.mails] == [["c@example.org"]]
    assert notifier.counters.without_channel == 1
    assert notifier.counters.sent_by_type == {"webhook": 1, "email": 1}


async def test_deliveries_still_waiting_when_the_hub_stops_are_counted_as_unsent(
        cfg: ConfigSet) -> None:
    alert = alert_in(cfg)
    closed = f"http://127.0.0.1:{unused_tcp_port()}/nobody-listens"
    notify = settings({alert.unit: [{"type": "webhook", "url": closed}]},
                      retry={"attempts": 5, "backoff": "1h", "timeout": "2s"})
    notifier = Notifier(notify, drain_timeout=0.05)
    async with notifier:
        notifier.notify(alert, [alert.unit])
        assert await wait_until(lambda: notifier.counters.failed_attempts == 1)
    assert notifier.counters.unsent_at_shutdown == 1
    assert notifier.pending == 0


# --------------------------------------------------------------------------- config


def config_with(tmp_path: Path, notify_yaml: str) -> Path:
    folder = tmp_path / "cfg"
    shutil.copytree(SAMPLE_DISTRICT, folder)
    (folder / "notify.yaml").write_text(notify_yaml, encoding="utf-8")
    return folder


def test_notify_yaml_is_loaded_into_the_config_set(tmp_path: Path, cfg: ConfigSet) -> None:
    grid = cfg.units_at("grid")[0].id
    folder = config_with(tmp_path, f"""
smtp: {{host: smtp.example.org, sender: hub@example.org, password_env: SMTP_PW}}
units:
  {grid}:
    - {{type: webhook, url: "https://ops.example.org/hook", token_env: HOOK_TOKEN}}
    - {{type: email, to: [duty@example.org]}}
""")
    loaded = load_config(folder)
    assert [c.type for c in loaded.notify.units[grid]] == ["webhook", "email"]
    assert loaded.notify.smtp is not None
    assert loaded.notify.smtp.security == "starttls"
    assert load_config(SAMPLE_DISTRICT).notify == NotifyFile()


def problems_of(folder: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(folder)
    return "\n".join(str(p) for p in caught.value.problems)


def test_notify_yaml_mistakes_are_reported_with_file_line_and_key(tmp_path: Path) -> None:
    text = problems_of(config_with(tmp_path, """
units:
  dasha:
    - {type: webhook, url: "https://user:pw@ops.example.org/hook"}
    - {type: pager, number: "110"}
"""))
    assert "notify.yaml:4: units.dasha[0].webhook.url: credentials in a webhook URL" in text
    assert "notify.yaml:5: units.dasha[1]: Input tag 'pager'" in text


def test_notify_yaml_names_unknown_units_and_email_without_a_server(tmp_path: Path) -> None:
    text = problems_of(config_with(tmp_path, """
units:
  dongyuan-g1x:
    - {type: webhook, url: "https://ops.example.org/hook"}
"""))
    assert ("notify.yaml:3: units.dongyuan-g1x: unknown unit or department 'dongyuan-g1x'"
            in text)
    text = problems_of(config_with(tmp_path / "2", """
units:
  dasha:
    - {type: email, to: [duty@example.org]}
"""))
    assert "units ['dasha'] have e-mail channels but there is no 'smtp' section" in text


async def test_the_desk_hook_notifies_new_calls_and_both_levels_of_an_escalation(
        cfg: ConfigSet, receiver: Receiver, tmp_path: Path) -> None:
    from gridcall.hub.desk.desk import Desk
    from gridcall.hub.desk.ledger import Ledger
    from gridcall.hub.notify.notifier import desk_hook
    from gridcall.hub.store import Store

    sensor = cfg.sensors["dongyuan-g1-pm25-1"]  # minor pm25: tier C, the community
    community, town = sensor.path[2], sensor.path[1]
    hook = {"type": "webhook", "url": receiver.url}
    notify = settings({community: [hook], town: [{**hook, "headers": {"X-Unit": town}}]})
    t0 = 1_800_000_000 * 10**9
    async with Store(tmp_path / "hub.sqlite") as store, Notifier(notify) as notifier:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        desk.add_hook(desk_hook(notifier))
        event = AnomalyEvent(agent=sensor.agent, seq=1, sensor=sensor.id, kind="out_of_limits",
                             severity="minor", score=0.6, value=200.0, ts=t0)
        opened = (await desk.on_event(event, t0)).alert
        assert opened is not None
        assert await wait_until(lambda: notifier.counters.sent == 1)
        await desk.act(opened.alert_id, "acknowledge", community, now=t0 + 10**9)
        await desk.act(opened.alert_id, "escalate", community, now=t0 + 2 * 10**9,
                       reason="needs the town's pump truck")
        # at tier B the hub dispatches the plan's departments: the town hears of it too
        assert await wait_until(lambda: notifier.counters.sent == 4)
    alerts = [msgspec.json.decode(p["message"], type=RiskAlert) for _, p in receiver.got]
    assert sorted((a.last_action, a.unit) for a in alerts) == [
        ("dispatch", town), ("escalate", town), ("escalate", town), ("open", community)]
    # the escalation went to the community's channel and to the town's; the dispatch
    # that followed it to the town's
    assert len([h for h, _ in receiver.got if h.get("X-Unit") == town]) == 2


async def test_a_step_a_crash_left_unnotified_is_notified_at_the_next_start(
        cfg: ConfigSet, receiver: Receiver, tmp_path: Path, mqtt_url: str) -> None:
    """The hub writes a step to the ledger, then dies before its hooks ran: the next
    ``hub run`` (its services) sends that step's notifications, to both levels of an
    escalation, once; steps notified before are not sent again."""
    import dataclasses

    from gridcall.hub.compose import services
    from gridcall.hub.service import Hub
    from gridcall.hub.store import Store

    sensor = cfg.sensors["dongyuan-g1-pm25-1"]  # minor pm25: tier C, the community
    community, town = sensor.path[2], sensor.path[1]
    hook = {"type": "webhook", "url": receiver.url}
    cfg = dataclasses.replace(cfg, notify=settings({community: [hook], town: [hook]},
                                                   retry=FAST))
    t0 = 1_800_000_000 * 10**9
    db = tmp_path / "hub.sqlite"

    async def run_services(work: Any) -> list[str]:
        said: list[str] = []
        async with Store(db) as store:
            hub = Hub(cfg, sink=store, store=store, broker_url=mqtt_url, readings=False,
                      clock=lambda: t0 + 5 * 10**9)
            async with services(hub, api=None, tokens=tmp_path / "tokens",
                                say=said.append):
                await work(hub)
                assert await wait_until(lambda: hub.desk.started)
        return said

    async def open_one(hub: Hub) -> None:
        event = AnomalyEvent(agent=sensor.agent, seq=1, sensor=sensor.id,
                             kind="out_of_limits", severity="minor", score=0.6, value=200.0,
                             ts=t0)
        await hub.desk.on_event(event, t0)
        assert await wait_until(lambda: len(receiver.got) == 1)

    await run_services(open_one)
    # a "crash": the escalation reaches the ledger, the notifier never hears of it
    async with Store(db) as store:
        from gridcall.hub.desk.desk import Desk
        from gridcall.hub.desk.ledger import Ledger
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        (alert,) = desk.alerts()
        await desk.act(alert.alert_id, "escalate", community, now=t0 + 10**9,
                       reason="needs the town's pump truck")

    async def nothing(hub: Hub) -> None:
        assert await wait_until(lambda: len(receiver.got) == 4)

    # the escalation to B and the hub's dispatch of the plan's departments after it
    said = await run_services(nothing)
    assert said[0] == "notifying 2 step(s) again that the last run did not finish notifying"
    alerts = [msgspec.json.decode(p["message"], type=RiskAlert) for _, p in receiver.got]
    # each as the alert stands now, after the dispatch: the escalation to both levels,
    # then the dispatch
    assert [(a.last_action, a.unit) for a in alerts[1:]] == [("dispatch", town)] * 3
    assert (alerts[0].last_action, alerts[0].unit) == ("open", community)
    # notified now: a third start sends nothing again
    said = await run_services(nothing)
    assert not any(line.startswith("notifying") for line in said)
    assert len(receiver.got) == 4


async def test_a_ledger_from_before_the_outbox_is_not_notified_again(
        cfg: ConfigSet, tmp_path: Path) -> None:
    from gridcall.hub.desk.desk import Desk
    from gridcall.hub.desk.ledger import Ledger
    from gridcall.hub.notify.notifier import NOTIFIED_ACTIONS
    from gridcall.hub.notify.outbox import NotifyOutbox
    from gridcall.hub.store import Store

    sensor = cfg.sensors["dongyuan-g1-pm25-1"]
    t0 = 1_800_000_000 * 10**9
    async with Store(tmp_path / "hub.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        await desk.on_event(AnomalyEvent(agent=sensor.agent, seq=1, sensor=sensor.id,
                                         kind="out_of_limits", severity="minor", score=0.6,
                                         value=200.0, ts=t0), t0)
        outbox = NotifyOutbox(store)
        await outbox.setup()
        assert await outbox.pending(NOTIFIED_ACTIONS) == []
        await desk.tick(t0 + 10 * 24 * 3600 * 10**9)  # escalations after the baseline
        pending = await outbox.pending(NOTIFIED_ACTIONS)
        # the escalations, and the hub's dispatches of the plan's departments at B and A
        assert {t.action for t in pending} == {"escalate", "dispatch"}
        assert pending
        await outbox.setup()  # a second start keeps the baseline
        assert len(await outbox.pending(NOTIFIED_ACTIONS)) == len(pending)


async def test_a_dispatch_reaches_each_department_called_and_a_missed_arrival_the_district(
        cfg: ConfigSet, receiver: Receiver, tmp_path: Path) -> None:
    """吹哨报到: the dispatch goes to each department's person on duty (their contact),
    else the department's channels; the 督办 of a missed arrival to the district command
    centre, the department and the unit holding the alert."""
    from gridcall.config.duty import Person
    from gridcall.hub.desk.desk import Desk
    from gridcall.hub.desk.ledger import Ledger
    from gridcall.hub.notify.notifier import desk_hook
    from gridcall.hub.store import Store

    hook = {"type": "webhook", "url": receiver.url}
    notify = settings({who: [{**hook, "headers": {"X-To": who}}] for who in (
        "dongyuan", "huangpu", "urban_mgmt", "police-dasha")}, retry=FAST)
    # ma-li (police-dasha's person on duty) has a contact of her own; qian-lei has none
    persons = tuple(p if p.id != "ma-li" else Person.model_validate({
        **p.model_dump(), "contact": {**hook, "headers": {"X-To": "ma-li"}}})
        for p in cfg.duty.persons)
    duty = cfg.duty.model_copy(update={"persons": persons})
    cfg = dataclasses.replace(cfg, duty=duty)
    sensor = cfg.sensors["dongyuan-g1-pm25-1"]  # minor pm25: tier C, the community
    t0 = 1_800_000_000 * 10**9
    async with Store(tmp_path / "hub.sqlite") as store, \
            Notifier(notify, duty=duty) as notifier:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        desk.add_hook(desk_hook(notifier))
        opened = (await desk.on_event(AnomalyEvent(
            agent=sensor.agent, seq=1, sensor=sensor.id, kind="out_of_limits",
            severity="minor", score=0.6, value=200.0, ts=t0), t0)).alert
        assert opened is not None
        assert await wait_until(lambda: len(receiver.got) == 1)  # the community
        await desk.act(opened.alert_id, "dispatch", "dongyuan", now=t0 + 10**9,
                       departments=["police-dasha", "urban_mgmt"])
        assert await wait_until(lambda: len(receiver.got) == 4)
        dispatched = sorted(h["X-To"] for h, _ in receiver.got[1:])
        assert dispatched == ["dongyuan", "ma-li", "urban_mgmt"]
        await desk.department_act(opened.alert_id, "report_in", "police-dasha",
                                  now=t0 + 2 * 10**9, person="ma-li")
        await desk.department_act(opened.alert_id, "dept_arrive", "police-dasha",
                                  now=t0 + 3 * 10**9, person="ma-li")
        await desk.tick(t0 + 31 * 60 * 10**9)  # urban_mgmt promised 30 minutes
        assert await wait_until(lambda: len(receiver.got) == 7)
    supervised = receiver.got[4:]
    assert sorted(h["X-To"] for h, _ in supervised) == ["dongyuan", "huangpu", "urban_mgmt"]
    assert {p["title"] for _, p in supervised} == {
        f"[C] 督办 SUPERVISION urban_mgmt not on site · 扬尘污染 · {opened.alert_id} "
        "(dongyuan)"}
    assert notifier.counters.to_person == 1  # ma-li's own contact, once
