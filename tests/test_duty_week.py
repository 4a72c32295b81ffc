"""A week at one grid on the injected clock: shifts change, reminders go to the person on
duty and then up the chain, stop when someone answers, survive a restart without being
sent twice, and the ladder escalates at the deadline as before. Deterministic: the desk
is ticked every 5 minutes of a simulated week, no sleeps."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import httpx
from typer.testing import CliRunner

from gridcall.cli import app as cli
from gridcall.config import SAMPLE_DISTRICT, ConfigSet, load_config
from gridcall.hub.api.app import create_app
from gridcall.hub.api.tokens import TokenFile, issue
from gridcall.hub.desk.desk import Desk, ReminderChange
from gridcall.hub.desk.handover import handover
from gridcall.hub.desk.indicators import indicators
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.reminders import Reminder
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent, AnomalyKind
from gridcall.wire.clock import from_iso

GRID, COMMUNITY = "dasha-dong-g1", "dasha-dong"
NOISE = "dasha-dong-g1-noise-1"  # NOISE-NUISANCE: tier D at the grid, respond within 30 min
MIN = 60 * 10**9
MONDAY = from_iso("2026-12-07T00:00+08:00")

ROSTER = f"""timezone: Asia/Shanghai
persons:
- {{id: he-ping, name: 何平, unit: {GRID}, leader: guo-jun}}
- {{id: ma-li, name: 马丽, unit: {GRID}, leader: guo-jun}}
- {{id: tian-yu, name: 田雨, unit: {GRID}, leader: guo-jun}}
- {{id: guo-jun, name: 郭军, unit: {COMMUNITY}, leader: song-bo}}
- {{id: xu-na, name: 徐娜, unit: {COMMUNITY}}}
- {{id: song-bo, name: 宋博, unit: dasha}}
shifts:
  {GRID}:
  - {{days: [mon, tue, wed, thu, fri], from: "08:00", to: "20:00", person: he-ping}}
  - {{days: [mon, tue, wed, thu, fri], from: "20:00", to: "08:00", person: ma-li}}
  {COMMUNITY}:
  - {{days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "00:00", person: xu-na}}
  - {{days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "00:00", person: guo-jun,
     role: leader}}
overrides:
- {{unit: {GRID}, from: "2026-12-09T08:00", to: "2026-12-09T20:00", person: tian-yu,
   reason: he-ping on leave}}
escalation:
  grid: {{D: [10m, 20m]}}
  community: {{C: [5m, 15m]}}
"""


def week_config(tmp_path: Path) -> ConfigSet:
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, folder)
    (folder / "roster.yaml").write_text(ROSTER, encoding="utf-8")
    return load_config(folder)


def at(day: int, clock: str) -> int:
    """Day 0 is Monday 2026-12-07; ``clock`` is local time (UTC+8)."""
    hours, minutes = clock.split(":")
    return MONDAY + day * 1440 * MIN + (int(hours) * 60 + int(minutes)) * MIN


class World:
    def __init__(self, cfg: ConfigSet, store: Store) -> None:
        self.cfg, self.store = cfg, store
        self.sent: list[Reminder] = []
        self.seq = 0

    async def desk(self) -> Desk:
        """A desk over the store, as the hub makes one at start-up."""
        desk = Desk(self.cfg, Ledger(self.store))
        await desk.start()

        async def hook(change: ReminderChange) -> None:
            self.sent.append(change.reminder)
        desk.add_reminder_hook(hook)
        return desk

    async def anomaly(self, desk: Desk, when: int, kind: AnomalyKind = "out_of_limits"
                      ) -> str:
        self.seq += 1
        outcome = await desk.on_event(AnomalyEvent(
            agent="edge-dasha-dong", seq=self.seq, sensor=NOISE, kind=kind,
            severity="major", score=0.9, value=80.0, ts=when), when)
        assert outcome.alert is not None
        return outcome.alert.alert_id


def who(reminders: list[Reminder]) -> list[tuple[str, int, int, str, str]]:
    return [(r.alert_id, r.index, r.at, r.unit, r.person) for r in reminders]


async def tick_through(desk: Desk, start: int, end: int) -> None:
    """The desk's timer loop on the injected clock: a tick every 5 minutes."""
    for now in range(start, end + 1, 5 * MIN):
        await desk.tick(now)


async def test_a_week_of_shifts_reminders_and_escalations(tmp_path: Path) -> None:
    cfg = week_config(tmp_path)
    async with Store(tmp_path / "hub.sqlite") as store:
        world = World(cfg, store)
        desk = await world.desk()

        # Monday 09:00, day shift: he-ping is reminded at 09:10, the duty leader at 09:20;
        # he-ping acknowledges at 09:25 (no third reminder, no escalation at 09:30),
        # arrives and resolves it.
        a1 = await world.anomaly(desk, at(0, "09:00"))
        assert (await desk.history(a1))[0].on_duty == "he-ping"
        await tick_through(desk, at(0, "09:05"), at(0, "09:20"))
        await desk.act(a1, "acknowledge", GRID, now=at(0, "09:25"), person="he-ping")
        await tick_through(desk, at(0, "09:25"), at(0, "09:50"))
        await desk.act(a1, "arrive", GRID, now=at(0, "09:50"), person="he-ping")
        await desk.act(a1, "resolve", GRID, now=at(0, "10:30"), person="he-ping")
        await tick_through(desk, at(0, "10:30"), at(0, "12:00"))
        assert who(world.sent) == [(a1, 0, at(0, "09:10"), GRID, "he-ping"),
                                   (a1, 1, at(0, "09:20"), GRID, "guo-jun")]
        assert desk.get(a1).escalations == 0

        # Monday 19:55: opened on he-ping's watch, but the shift changes at 20:00, so the
        # 20:05 reminder goes to ma-li, who is on duty then. Nobody answers: the duty
        # leader at 20:15, then the ladder escalates to the community at the 20:25
        # deadline, where xu-na is on duty and the community's own policy starts.
        world.sent.clear()
        a2 = await world.anomaly(desk, at(0, "19:55"), kind="spike")
        assert a2 != a1

        # The hand-over at 19:58: he-ping hands a2 to ma-li, whose watch runs to 08:00;
        # its response deadline (20:25) falls on her watch. The community sees it below.
        h = handover(cfg, desk.alerts(open_only=True), GRID, at(0, "19:58"),
                     defer=desk.defer, on_duty_of=desk.handed_to)
        assert h.on_duty is not None
        assert h.next is not None
        assert (h.on_duty.person.id, h.next.person.id) == ("he-ping", "ma-li")
        assert (h.next.start, h.horizon) == (at(0, "20:00"), at(1, "08:00"))
        assert [(i.alert_id, i.deadline, i.due_at, i.held, i.in_shift, i.on_duty)
                for i in h.items] == [(a2, "response", at(0, "20:25"), True, True, "he-ping")]
        above = handover(cfg, desk.alerts(open_only=True), COMMUNITY, at(0, "19:58"))
        assert [(i.alert_id, i.held) for i in above.items] == [(a2, False)]
        assert above.leader is not None
        assert above.leader.id == "guo-jun"
        await tick_through(desk, at(0, "19:55"), at(0, "20:25"))
        state = desk.get(a2)
        assert (state.unit, state.tier, state.escalations) == (COMMUNITY, "C", 1)
        history = await desk.history(a2)
        assert [(t.action, t.on_duty) for t in history] == [("open", "he-ping"),
                                                            ("escalate", "xu-na")]

        # The hub restarts at 20:27, between the community's reminders.
        desk = await world.desk()
        await tick_through(desk, at(0, "20:30"), at(0, "21:00"))
        await desk.act(a2, "acknowledge", COMMUNITY, now=at(0, "21:00"), person="xu-na")
        await desk.act(a2, "arrive", COMMUNITY, now=at(0, "21:10"), person="xu-na")
        await desk.act(a2, "resolve", COMMUNITY, now=at(0, "21:30"), person="xu-na")
        # it had risen to tier B meanwhile: the community's close waits for its town
        # (closure.approval in the sample's matters.yaml), which approves it
        assert desk.get(a2).pending == "resolve"
        await desk.approve_close(a2, "dasha", now=at(0, "21:40"))
        assert who(world.sent) == [(a2, 0, at(0, "20:05"), GRID, "ma-li"),
                                   (a2, 1, at(0, "20:15"), GRID, "guo-jun"),
                                   (a2, 0, at(0, "20:30"), COMMUNITY, "xu-na"),
                                   (a2, 1, at(0, "20:40"), COMMUNITY, "guo-jun")]
        # ... and a desk started again sends none of them twice
        world.sent.clear()
        desk = await world.desk()
        await tick_through(desk, at(0, "21:00"), at(1, "00:00"))
        assert world.sent == []
        assert len(await desk.reminders_of(a2)) == 4

        # Wednesday: the override puts tian-yu on he-ping's day shift
        a3 = await world.anomaly(desk, at(2, "10:00"), kind="level_shift")
        await tick_through(desk, at(2, "10:00"), at(2, "10:10"))
        assert a3 not in (a1, a2)
        await desk.act(a3, "false_alarm", GRID, now=at(2, "10:12"), person="tian-yu")
        assert (await desk.history(a3))[0].on_duty == "tian-yu"
        assert who(world.sent) == [(a3, 0, at(2, "10:10"), GRID, "tian-yu")]

        # Saturday: the grid has no shift and its roster names nobody else (no duty
        # leader, no one to chain to), so the grid's channels get the reminders.
        world.sent.clear()
        a4 = await world.anomaly(desk, at(5, "11:00"), kind="drift")
        assert (await desk.history(a4))[0].on_duty == ""
        await tick_through(desk, at(5, "11:00"), at(5, "11:20"))
        assert who(world.sent) == [(a4, 0, at(5, "11:10"), GRID, ""),
                                   (a4, 1, at(5, "11:20"), GRID, "")]
        assert desk.counters.reminders_to_unit == 2

        # The rest of the week: every timer fires, and only the escalation of a4 sends
        # anything more (its community reminders), all at their own instants.
        world.sent.clear()
        await tick_through(desk, at(5, "11:25"), at(7, "00:00"))
        assert [(r.alert_id, r.index, r.unit, r.person) for r in world.sent] == [
            (a4, 0, COMMUNITY, "xu-na"), (a4, 1, COMMUNITY, "guo-jun")]
        assert [r.at for r in world.sent] == [at(5, "11:35"), at(5, "11:45")]

        # Indicators per person: each call counts for the person it was handed to.
        rows = {r.key: r for r in indicators(await desk.transitions(), MONDAY, at(7, "00:00"),
                                             groups=("person",))}
        he_ping = rows["he-ping"]  # a1 answered in time; a2 escalated from his watch
        assert (he_ping.calls, he_ping.responses_judged, he_ping.responses_timely,
                he_ping.breaches) == (2, 2, 1, 1)
        tian_yu = rows["tian-yu"]  # a3, closed as a false alarm in time
        assert (tian_yu.calls, tian_yu.responses_timely, tian_yu.false_alarms) == (1, 1, 1)
        assert "ma-li" not in rows  # reminded, but no call was handed to her


def test_the_handover_from_the_command_line_and_the_api(tmp_path: Path) -> None:
    """``gridcall hub handover --unit`` reads the store; ``GET /v1/handover`` the desk;
    both say the same."""
    cfg = week_config(tmp_path)
    path = tmp_path / "hub.sqlite"
    tokens = tmp_path / "api-tokens.json"
    token = issue(tokens, COMMUNITY, known_units=cfg.units)

    async def setup() -> dict[str, object]:
        async with Store(path) as store:
            world = World(cfg, store)
            desk = await world.desk()
            alert = await world.anomaly(desk, at(1, "07:50"))
            api = create_app(desk, TokenFile(tokens), clock=lambda: at(1, "07:55"))
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                         base_url="http://hub") as client:
                resp = await client.get("/v1/handover", params={"unit": GRID},
                                        headers={"Authorization": f"Bearer {token}"})
                assert resp.status_code == 200, resp.text
                refused = await client.get("/v1/handover", params={"unit": "dasha"},
                                           headers={"Authorization": f"Bearer {token}"})
                assert refused.status_code == 403
                rows = (await client.get(
                    "/v1/indicators", params={"persons": "true", "until": at(1, "08:00"),
                                              "period": 86400},
                    headers={"Authorization": f"Bearer {token}"})).json()["rows"]
                assert [(r["key"], r["calls"]) for r in rows if r["group"] == "person"] == [
                    ("ma-li", 1)]
                body: dict[str, object] = resp.json()
                assert body["alerts"][0]["alert_id"] == alert  # type: ignore[index]
                return body

    api_body = asyncio.run(setup())
    result = CliRunner().invoke(cli, [
        "hub", "handover", "--unit", GRID, "--json", "--at", "2026-12-07T23:55:00Z",
        "-c", str(cfg.directory), "--store", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == api_body
    assert api_body["on_duty"]["person"]["id"] == "ma-li"  # type: ignore[index]
    assert api_body["next"]["person"]["id"] == "he-ping"  # type: ignore[index]
    table = CliRunner().invoke(cli, [
        "hub", "handover", "--unit", GRID, "--at", "2026-12-07T23:55:00Z",
        "-c", str(cfg.directory), "--store", str(path)])
    assert table.exit_code == 0, table.output
    assert "马丽 (ma-li)" in table.stdout
    assert "this watch" in table.stdout
