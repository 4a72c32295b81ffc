"""Persons at the desk (roster.yaml): a new alert names the person on duty and reaches
them, with the unit's channels as fallback; a person's token names them in every step
they take; ledgers written before persons existed still read."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from typer.testing import CliRunner

from gridcall.cli import app as cli
from gridcall.config import SAMPLE_DISTRICT, ConfigSet, load_config
from gridcall.hub.api.app import create_app
from gridcall.hub.api.tokens import TokenFile, digest, issue, read_entries
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.notify.notifier import Notifier, desk_hook, reminder_hook
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent
from gridcall.wire.clock import from_iso
from tests.polling import wait_until
from tests.servers import unused_tcp_port

NOISE = "dasha-dong-g1-noise-1"  # NOISE-NUISANCE, tier D, at grid dasha-dong-g1
GRID = "dasha-dong-g1"
MONDAY_9 = from_iso("2026-12-07T09:00+08:00")
MIN = 60 * 10**9


@dataclass
class Receiver:
    """Webhooks on loopback: a path answers with its status (default 200)."""

    base: str
    statuses: dict[str, int] = field(default_factory=dict)
    got: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = unused_tcp_port()
    rec = Receiver(f"http://127.0.0.1:{port}")

    async def hook(request: web.Request) -> web.Response:
        status = rec.statuses.get(request.path, 200)
        if status == 200:
            rec.got.append((request.path, await request.json()))
        return web.Response(status=status)

    server = web.Application()
    server.router.add_post("/{who}", hook)
    runner = web.AppRunner(server)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield rec
    await runner.cleanup()


def sent(receiver: Receiver) -> set[tuple[str, str]]:
    """(path, alert id) of every delivery received."""
    return {(path, json.loads(body["message"])["alert_id"]) for path, body in receiver.got}


def district(tmp_path: Path, receiver: Receiver) -> ConfigSet:
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, folder)
    (folder / "roster.yaml").write_text(f"""timezone: Asia/Shanghai
persons:
- {{id: he-ping, name: 何平, unit: {GRID},
   contact: {{type: webhook, url: "{receiver.base}/he-ping"}}}}
- {{id: ma-li, name: 马丽, unit: {GRID}}}
shifts:
  {GRID}:
  - {{days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00", person: he-ping}}
  - {{days: [mon, tue, wed, thu, fri], from: "20:00", to: "08:00", person: ma-li}}
escalation:
  default: {{D: [10m]}}
""", encoding="utf-8")
    (folder / "notify.yaml").write_text(f"""retry: {{attempts: 2, backoff: 0.01s}}
units:
  {GRID}: [{{type: webhook, url: "{receiver.base}/grid"}}]
""", encoding="utf-8")
    return load_config(folder)


def event(seq: int, at: int) -> AnomalyEvent:
    return AnomalyEvent(agent="edge-dasha-dong", seq=seq, sensor=NOISE, kind="out_of_limits",
                        severity="major", score=0.9, value=80.0, ts=at)


async def test_a_new_alert_goes_to_the_person_on_duty_not_the_units_channel(
        tmp_path: Path, receiver: Receiver) -> None:
    cfg = district(tmp_path, receiver)
    async with Store(":memory:") as store, Notifier(cfg.notify, duty=cfg.duty) as notifier:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        desk.add_hook(desk_hook(notifier))
        day = await desk.on_event(event(1, MONDAY_9), MONDAY_9)
        assert day.alert is not None
        assert day.steps[0].on_duty == "he-ping"
        assert await wait_until(lambda: len(receiver.got) == 1)
        assert receiver.got[0][0] == "/he-ping"
        # at night ma-li is on duty: she has no contact, so the grid's channel gets it
        night = MONDAY_9 + 12 * 60 * MIN
        other = await desk.on_event(AnomalyEvent(
            agent="edge-dasha-dong", seq=2, sensor="dasha-dong-g1-noise-1", kind="stuck",
            severity="major", score=0.9, value=80.0, ts=night), night)
        assert other.alert is not None
        assert other.alert.alert_id != day.alert.alert_id
        history = await desk.history(other.alert.alert_id)
        assert history[0].on_duty == "ma-li"
        # (the day alert's escalation at 09:30 went to the grid's channel too)
        assert await wait_until(lambda: ("/grid", other.alert.alert_id) in sent(receiver))
        assert ("/he-ping", other.alert.alert_id) not in sent(receiver)
        assert notifier.counters.to_person == 1


async def test_a_delivery_to_the_person_given_up_falls_back_to_the_unit(
        tmp_path: Path, receiver: Receiver) -> None:
    cfg = district(tmp_path, receiver)
    receiver.statuses["/he-ping"] = 404  # the person's hook refuses: given up at once
    async with Store(":memory:") as store, Notifier(cfg.notify, duty=cfg.duty) as notifier:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        desk.add_hook(desk_hook(notifier))
        await desk.on_event(event(1, MONDAY_9), MONDAY_9)
        assert await wait_until(lambda: len(receiver.got) == 1)
        assert receiver.got[0][0] == "/grid"
        assert notifier.counters.person_fallbacks == 1


async def test_a_persons_token_names_them_and_their_unit_in_the_steps_they_take(
        tmp_path: Path, receiver: Receiver) -> None:
    cfg = district(tmp_path, receiver)
    tokens = tmp_path / "api-tokens.json"
    issued = CliRunner().invoke(cli, ["hub", "token", "issue", "--person", "he-ping",
                                      "--config", str(cfg.directory), "--tokens",
                                      str(tokens)])
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip().splitlines()[-1]
    (entry,) = read_entries(tokens)
    assert (entry.unit, entry.person) == (GRID, "he-ping")
    async with Store(":memory:") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        opened = await desk.on_event(event(1, MONDAY_9), MONDAY_9)
        assert opened.alert is not None
        api = create_app(desk, TokenFile(tokens), clock=lambda: MONDAY_9 + MIN)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                     base_url="http://hub") as client:
            auth = {"Authorization": f"Bearer {token}"}
            me = (await client.get("/v1/me", headers=auth)).json()
            assert (me["unit"], me["person"]) == (GRID, "he-ping")
            resp = await client.post(f"/v1/alerts/{opened.alert.alert_id}/acknowledge",
                                     headers=auth)
            assert resp.status_code == 200, resp.text
            last = resp.json()["history"][-1]
            assert (last["action"], last["actor"], last["person"], last["person_unit"]) == (
                "acknowledge", GRID, "he-ping", GRID)
            assert resp.json()["history"][0]["on_duty"] == "he-ping"
    unknown = CliRunner().invoke(cli, ["hub", "token", "issue", "--person", "nobody",
                                       "--config", str(cfg.directory), "--tokens",
                                       str(tokens)])
    assert unknown.exit_code == 2
    assert "'nobody' is not a person of roster.yaml" in unknown.output


async def test_a_ledger_written_before_persons_still_reads(cfg: ConfigSet) -> None:
    rows = (Path(__file__).parent / "data" / "ledger-before-persons.jsonl").read_bytes()
    async with Store(":memory:") as store:
        ledger = Ledger(store)
        await ledger.count()  # makes the table
        store.db.executemany(
            "INSERT INTO transitions (alert_id, n, at, action, actor, state, tier, unit, "
            "ev_agent, ev_seq, body) VALUES ('AL000001', ?, 0, '', '', '', '', '', NULL, "
            "NULL, ?)", [(n, line) for n, line in enumerate(rows.splitlines(), 1)])
        desk = Desk(cfg, ledger)
        await desk.start()
        state = desk.get("AL000001")
        assert state.state == "acknowledged"
        history = await desk.history("AL000001")
        assert [(t.person, t.person_unit, t.on_duty) for t in history] == [("", "", "")] * 2
        after = await desk.act("AL000001", "arrive", GRID, now=state.last.at + MIN,
                               person="someone")
        assert after.transition.person == "someone"
        assert after.transition.person_unit == GRID  # not in roster.yaml: the acting unit


async def test_a_reminder_reaches_the_person_on_duty_through_their_contact(
        tmp_path: Path, receiver: Receiver) -> None:
    cfg = district(tmp_path, receiver)
    async with Store(":memory:") as store, Notifier(cfg.notify, duty=cfg.duty) as notifier:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        desk.add_hook(desk_hook(notifier))
        desk.add_reminder_hook(reminder_hook(notifier))
        opened = await desk.on_event(event(1, MONDAY_9), MONDAY_9)
        assert opened.alert is not None
        await desk.tick(MONDAY_9 + 10 * MIN)
        assert await wait_until(lambda: len(receiver.got) == 2)
        titles = [(path, body["title"]) for path, body in receiver.got]
        assert ("/he-ping", f"Reminder 1 · [D] 噪声扰民 · opened · {opened.alert.alert_id} "
                f"({GRID})") in titles
        assert desk.counters.reminders == 1
        # the alert's detail lists the reminders the desk sent (the log, not its steps)
        tokens = tmp_path / "api-tokens.json"
        token = issue(tokens, GRID, known_units=cfg.units)
        api = create_app(desk, TokenFile(tokens), clock=lambda: MONDAY_9 + 11 * MIN)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                     base_url="http://hub") as client:
            body = (await client.get(f"/v1/alerts/{opened.alert.alert_id}",
                                     headers={"Authorization": f"Bearer {token}"})).json()
        assert [(r["index"], r["at"], r["person"], r["respond_by"])
                for r in body["reminders"]] == [
            (0, MONDAY_9 + 10 * MIN, "he-ping", MONDAY_9 + 30 * MIN)]
        assert [t["action"] for t in body["history"]] == ["open"]


async def test_a_leaders_reminder_without_contact_goes_to_the_leaders_own_unit(
        tmp_path: Path, receiver: Receiver) -> None:
    """The second reminder goes to ma-li's leader, a person of the community with no
    contact: the community's channel gets it, not the grid's again."""
    cfg = district(tmp_path, receiver)
    folder = cfg.directory
    roster = (folder / "roster.yaml").read_text(encoding="utf-8")
    (folder / "roster.yaml").write_text(roster.replace(
        "- {id: ma-li, name: 马丽, unit: dasha-dong-g1}",
        "- {id: ma-li, name: 马丽, unit: dasha-dong-g1, leader: guo-jun}\n"
        "- {id: guo-jun, name: 郭军, unit: dasha-dong}").replace(
        "default: {D: [10m]}", "default: {D: [10m, 20m]}"), encoding="utf-8")
    (folder / "notify.yaml").write_text(f"""retry: {{attempts: 2, backoff: 0.01s}}
units:
  {GRID}: [{{type: webhook, url: "{receiver.base}/grid"}}]
  dasha-dong: [{{type: webhook, url: "{receiver.base}/community"}}]
""", encoding="utf-8")
    cfg = load_config(folder)
    night = MONDAY_9 + 12 * 60 * MIN  # 21:00: ma-li on duty
    async with Store(":memory:") as store, Notifier(cfg.notify, duty=cfg.duty) as notifier:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        desk.add_reminder_hook(reminder_hook(notifier))
        opened = await desk.on_event(event(1, night), night)
        assert opened.alert is not None
        await desk.tick(night + 20 * MIN)
        assert await wait_until(lambda: len(receiver.got) == 2)
        assert sorted(path for path, body in receiver.got) == ["/community", "/grid"]
        assert [r.person for r in await desk.reminders_of(opened.alert.alert_id)] == [
            "ma-li", "guo-jun"]


def test_a_tokens_file_from_before_persons_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "api-tokens.json"
    path.write_text(json.dumps({"tokens": [{"unit": GRID, "sha256": digest("gct_old"),
                                            "issued_at": "2026-11-27T03:00:00Z",
                                            "label": "phone"}]}), encoding="utf-8")
    entry = TokenFile(path).entry_of("gct_old")
    assert entry is not None
    assert (entry.unit, entry.person) == (GRID, "")
