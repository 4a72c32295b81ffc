"""Closure control and audits (issue 18 item 5), on the injected clock: a tier-A close by
a grid waits for the district's approval; a rejection sends it back with its deadlines;
closings are drawn into the audit queue by a seeded hash; a failed audit reopens the
alert with its reason; all of it is ledger steps that a restart (and a snapshot) folds
back, and the indicators count the audits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from gridcall.config import SAMPLE_DISTRICT, ConfigSet, load_config
from gridcall.config.audits import AuditRules, ClosureRules
from gridcall.hub.desk.audits import NotPermitted
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.indicators import indicators
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import IllegalTransition
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent
from tests.desk_stores import DeskStores
from tests.test_notify import Receiver, receiver

__all__ = ["receiver"]

T0 = 1_800_000_000_000_000_000
MIN = 60 * 10**9
GAS = "dongyuan-g3-gas-1"          # GAS-LEAK, tier A at the district huangpu
NOISE = "dongyuan-g2-noise-1"      # NOISE-NUISANCE, tier D at its grid


def config_with(tmp: Path, **sections: object) -> ConfigSet:
    """The sample district with ``sections`` added to its matters.yaml."""
    folder = tmp / "cfg"
    shutil.copytree(SAMPLE_DISTRICT, folder)
    path = folder / "matters.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc.update(sections)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return load_config(folder)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> ConfigSet:
    return config_with(tmp_path_factory.mktemp("audited"),
                       closure={"approval": {"A": "district", "B": "town"}},
                       audits={"seed": 7, "tiers": {"A": 1.0, "C": 0.0}, "by": "district"})


def event(cfg: ConfigSet, sensor: str, seq: int, at: int) -> AnomalyEvent:
    s = cfg.sensors[sensor]
    return AnomalyEvent(agent=s.agent, seq=seq, sensor=sensor, kind="out_of_limits",
                        severity="major", score=0.9, value=40.0, ts=at)


async def opened(desk: Desk, cfg: ConfigSet, sensor: str, seq: int, at: int) -> str:
    out = await desk.on_event(event(cfg, sensor, seq, at), at)
    assert out.alert is not None
    return out.alert.alert_id


def test_rules_table() -> None:
    closure = ClosureRules.model_validate({"approval": {"A": "district", "B": "town"}})
    table = [  # (tier, closing unit's level) -> level that must approve
        ("A", "grid", "district"), ("A", "community", "district"), ("A", "town", "district"),
        ("A", "district", None), ("B", "grid", "town"), ("B", "community", "town"),
        ("B", "town", None), ("B", "district", None), ("C", "grid", None),
        ("D", "grid", None),
    ]
    for tier, level, need in table:
        assert closure.needs_approval(tier, level) == need, (tier, level)
    rules = AuditRules.model_validate({"seed": 1, "tiers": {"B": 0.5},
                                       "matters": {"GAS-LEAK": 0.9}})
    assert rules.rate("B", "NOISE-NUISANCE") == 0.5
    assert rules.rate("B", "GAS-LEAK") == 0.9   # the higher of the two
    assert rules.rate("C", "NOISE-NUISANCE") == 0.0
    draws = [rules.draw(f"AL{i:06d}", 5) for i in range(1, 2001)]
    assert draws == [rules.draw(f"AL{i:06d}", 5) for i in range(1, 2001)]  # replayable
    assert all(0 <= d < 1 for d in draws)
    share = sum(d < 0.5 for d in draws) / len(draws)
    assert 0.45 < share < 0.55  # a hash, not a counter: about the rate over many alerts
    other = AuditRules.model_validate({"seed": 2, "tiers": {"B": 0.5}})
    assert [other.draw(f"AL{i:06d}", 5) for i in range(1, 50)] != draws[:49]
    from gridcall.hub.desk.audits import resumed
    from gridcall.wire import Deadlines
    d = Deadlines(response=100, arrival=200, disposal=300)
    # asked at 150, rejected at 190: what was ahead at 150 moves on by 40, not the rest
    assert resumed(d, 150, 190) == Deadlines(response=100, arrival=240, disposal=340)
    assert resumed(d, 150, 150) == d
    with pytest.raises(ValueError, match="less than or equal to 1"):
        AuditRules.model_validate({"tiers": {"A": 1.5}})


def test_config_refuses_an_unknown_matter(tmp_path: Path) -> None:
    from gridcall.config.loader import ConfigError
    with pytest.raises(ConfigError, match=r"audits.*GAS-LEEK"):
        config_with(tmp_path, audits={"matters": {"GAS-LEEK": 1.0}})


async def test_a_grid_closing_a_tier_a_alert_needs_the_districts_approval(
        audited: ConfigSet) -> None:
    cfg = audited
    async with Store(":memory:") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        alert = await opened(desk, cfg, GAS, 1, T0)
        assert desk.get(alert).tier == "A"
        # the grid marks the district's gas leak a false alarm: only a request
        asked = await desk.act(alert, "false_alarm", "dongyuan-g3", now=T0 + MIN,
                               note="smell gone")
        t = asked.transition
        # (dispatched: at tier A the gas plan's departments were called in at once)
        assert (t.action, t.request, t.actor, t.state) == (
            "request_close", "false_alarm", "dongyuan-g3", "dispatched")
        state = desk.get(alert)
        assert state.is_open
        assert state.pending == "false_alarm"
        assert state.due() is None  # the deadlines wait for the approver
        assert [s.alert_id for s in desk.pending_approvals(unit="dasha")] == [alert]
        # nothing escalates or pages meanwhile, however late it gets
        await desk.tick(T0 + 600 * MIN)
        # (the departments the gas plan called in at A promised to arrive and did not:
        # each is supervised, 督办, which is about them, not the alert's deadlines)
        assert [t.action for t in await desk.history(alert)] == [
            "open", "dispatch", "request_close", *["supervise"] * 4]
        for unit in ("dongyuan-g3", "dasha"):  # below the district: asked once is enough
            with pytest.raises(IllegalTransition, match="needs approval by a district or "
                               "above; the false_alarm requested by dongyuan-g3 awaits it"):
                await desk.act(alert, "false_alarm", unit, now=T0 + 601 * MIN)
        # the town may not approve a tier-A close; nor the grid
        for unit in ("dasha", "dongyuan-g3"):
            with pytest.raises(NotPermitted, match="needs approval by a district"):
                await desk.approve_close(alert, unit, now=T0 + 602 * MIN)
        # the district rejects: the deadlines run again, moved on by the 602 minutes the
        # request waited (the approver's wait is not the grid's)
        before = desk.get(alert).deadlines
        back = await desk.reject_close(alert, "huangpu", now=T0 + 603 * MIN,
                                       reason="the detector still reads 40 ppm")
        assert back.transition.action == "reject_close"
        assert desk.get(alert).pending == ""
        after = desk.get(alert).deadlines
        for name in ("response", "arrival", "disposal"):
            assert getattr(after, name) == getattr(before, name) + 602 * MIN
        assert desk.get(alert).due() == ("response", after.response)
        assert await desk.tick(after.response - MIN) == []
        changes = await desk.tick(after.response)
        assert desk.get(alert).alert.overdue == "response"  # tier A: paged, not escalated
        assert changes
        late = after.response
        with pytest.raises(IllegalTransition, match="needs a close awaiting approval"):
            await desk.reject_close(alert, "huangpu", now=late + MIN, reason="again")
        with pytest.raises(IllegalTransition, match="no close awaits approval"):
            await desk.approve_close(alert, "huangpu", now=late + MIN)
        # asked again and approved: the approver's own false_alarm, the request's kind
        await desk.act(alert, "false_alarm", "dongyuan-g3", now=late + 2 * MIN)
        done = await desk.approve_close(alert, "huangpu", now=late + 3 * MIN, note="ok")
        closed = desk.get(alert)
        assert closed.state == "false_alarm"
        assert closed.pending == ""
        history = await desk.history(alert)
        steps = [(h.action, h.actor) for h in history]
        assert ("false_alarm", "huangpu") in steps
        assert history[-2].reason == "approved: false_alarm requested by dongyuan-g3"
        # tier A is sampled at rate 1: the closing is in the audit queue, same instant
        assert done.transition.action == "sample"
        assert history[-1].action == "sample"
        assert history[-1].at == late + 3 * MIN
        assert [s.alert_id for s in desk.audit_queue(unit="huangpu")] == [alert]
        assert desk.counters.close_requests == 2
        assert desk.counters.close_approvals == 1
        assert desk.counters.close_rejections == 1


async def test_the_district_closes_its_own_tier_a_alert_without_approval(
        audited: ConfigSet) -> None:
    cfg = audited
    async with Store(":memory:") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        alert = await opened(desk, cfg, GAS, 1, T0)
        change = await desk.act(alert, "false_alarm", "huangpu", now=T0 + MIN)
        assert desk.get(alert).state == "false_alarm"
        assert change.transition.action == "sample"
        # a low-tier alert closes by its grid at once and, at rate 0, is never sampled
        noise = await opened(desk, cfg, NOISE, 2, T0 + 2 * MIN)
        assert desk.get(noise).tier in ("C", "D")
        await desk.act(noise, "acknowledge", "dongyuan-g2", now=T0 + 3 * MIN)
        await desk.act(noise, "arrive", "dongyuan-g2", now=T0 + 4 * MIN)
        await desk.act(noise, "resolve", "dongyuan-g2", now=T0 + 5 * MIN)
        assert desk.get(noise).state == "resolved"
        assert desk.get(noise).audit == ""


async def test_a_failed_audit_reopens_the_alert_with_its_reason(
        audited: ConfigSet, desk_stores: DeskStores) -> None:
    """On both desk stores: SQLite and PostgreSQL (the steps are alert-ledger rows)."""
    cfg = audited
    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        alert = await opened(desk, cfg, GAS, 1, T0)
        for i, action in enumerate(("acknowledge", "arrive", "resolve")):
            await desk.act(alert, action, "huangpu", now=T0 + (i + 1) * MIN)
        assert desk.get(alert).audit == "sampled"
        for unit in ("dasha", "dongyuan-g3"):  # audits.by: district
            with pytest.raises(NotPermitted, match="recorded by a district"):
                await desk.audit(alert, unit, "pass", now=T0 + 10 * MIN)
        with pytest.raises(ValueError, match="needs a note"):
            await desk.audit(alert, "huangpu", "fail", now=T0 + 10 * MIN)
        reopened = await desk.audit(alert, "huangpu", "fail", now=T0 + 10 * MIN,
                                    note="valve not replaced, photo shows the old one")
        t = reopened.transition
        assert (t.action, t.actor, t.state) == ("reopen", "huangpu", "opened")
        assert t.reason == "audit failed: valve not replaced, photo shows the old one"
        assert t.deadlines.response > T0 + 10 * MIN  # new deadlines, counted from now
        state = desk.get(alert)
        assert state.is_open
        assert state.audit == ""
        assert state.reopened == 1
        assert desk.audit_queue(unit="huangpu") == []
        history = await desk.history(alert)
        assert [h.action for h in history[-3:]] == ["sample", "audit", "reopen"]
        assert history[-2].verdict == "fail"
        # handled again, closed again, drawn again, and passed this time
        for i, action in enumerate(("acknowledge", "arrive", "resolve")):
            await desk.act(alert, action, "huangpu", now=T0 + (11 + i) * MIN)
        assert desk.get(alert).audit == "sampled"
        await desk.audit(alert, "huangpu", "pass", now=T0 + 20 * MIN, note="checked on site")
        assert desk.get(alert).audit == "pass"
        with pytest.raises(IllegalTransition, match="audited already"):
            await desk.audit(alert, "huangpu", "pass", now=T0 + 21 * MIN)
        assert [s.alert_id for s in desk.audit_queue(unit="huangpu", status="pass")] == [alert]

        # the indicators: two audits of the district's stints, one passed
        rows = indicators(await desk.transitions(), T0 - MIN, T0 + 60 * MIN,
                          groups=("unit", "matter", "tier"))
        district = next(r for r in rows if r.key == "huangpu")
        assert (district.audits, district.audits_passed) == (2, 1)
        assert district.audit_pass_rate == 0.5
        gas = next(r for r in rows if r.group == "matter")
        assert (gas.key, gas.audits, gas.audit_pass_rate) == ("GAS-LEAK", 2, 0.5)
        tier = next(r for r in rows if r.group == "tier")
        # one call, reopened once by the failed audit: not two calls (indicators.py)
        assert (tier.key, tier.calls, tier.reopens) == ("A", 1, 1)

        await desk.write_snapshot()
        final = desk.get(alert)
    # a restart folds it all back, from the snapshot or from the whole ledger
    for snapshot in (True, False):
        async with desk_stores.open() as store:
            again = Desk(cfg, Ledger(store))
            await again.start(snapshot=snapshot)
            assert (again.restored_from is not None) == snapshot
            assert again.get(alert) == final
            assert [s.alert_id for s in again.audit_queue(status="pass")] == [alert]


def test_hub_report_shows_units_departments_matters_and_tiers_with_audits(
        cfg: ConfigSet, tmp_path: Path) -> None:
    """``gridcall hub report --period 7d`` over a ledger with audits (the sample's rules:
    tier A always drawn): a section per group, the audit-pass column filled."""
    import asyncio
    import csv
    import io
    from datetime import UTC, datetime

    from typer.testing import CliRunner

    from gridcall.cli import app

    store_path = tmp_path / "hub.sqlite"

    async def a_week() -> None:
        async with Store(store_path) as store:
            desk = Desk(cfg, Ledger(store))
            await desk.start()
            for seq in (1, 2):
                at = T0 + (seq - 1) * 600 * MIN
                alert = await opened(desk, cfg, GAS, seq, at)
                # (dispatched as it opened: at tier A the gas plan calls its departments)
                assert desk.get(alert).dept_calls
                for i, action in enumerate(("acknowledge", "arrive", "resolve"), start=1):
                    await desk.act(alert, action, "huangpu", now=at + i * MIN)
                verdict = "pass" if seq == 1 else "fail"
                await desk.audit(alert, "huangpu", verdict, now=at + 10 * MIN,
                                 note="checked on site")
    asyncio.run(a_week())
    until = datetime.fromtimestamp((T0 + 7 * 1440 * MIN) / 1e9, UTC).isoformat()
    runner = CliRunner()
    shown = runner.invoke(app, ["hub", "report", "--period", "7d", "--store",
                                str(store_path), "--until", until])
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    for heading in ("units", "departments", "matters", "tiers"):
        assert heading in text
    assert "audits" in text
    assert "satisfied" in text
    tier_line = next(line for line in text.splitlines() if "│ A " in line)
    assert "tier" in tier_line
    assert "50%" in tier_line  # one audit of two passed
    as_csv = runner.invoke(app, ["hub", "report", "--period", "7d", "--csv", "--store",
                                 str(store_path), "--until", until])
    rows = {(r["group"], r["key"]): r for r in csv.DictReader(io.StringIO(as_csv.stdout))}
    assert rows[("tier", "A")]["audits"] == "2"
    assert float(rows[("tier", "A")]["audit_pass_rate"]) == 0.5
    assert rows[("matter", "GAS-LEAK")]["audits_passed"] == "1"
    assert rows[("unit", "huangpu")]["audits"] == "2"
    assert rows[("department", "fire_safety")]["audits"] == "2"  # called to both closings
    assert {g for g, _ in rows} >= {"unit", "department", "matter", "tier"}


async def test_the_approving_unit_hears_of_a_close_request(
        cfg: ConfigSet, receiver: Receiver) -> None:
    """A grid's false alarm of a tier-A alert is sent to the district's channels
    (notify.yaml), titled as awaiting approval: nobody has to watch the board for it."""
    from gridcall.hub.notify.notifier import Notifier, desk_hook
    from tests.polling import wait_until
    from tests.test_notify import settings

    notify = settings({"huangpu": [{"type": "webhook", "url": receiver.url}]},
                      retry={"attempts": 2, "backoff": "0.01s", "timeout": "5s"})
    async with Store(":memory:") as store, Notifier(notify, duty=cfg.duty) as notifier:
        desk = Desk(cfg, Ledger(store))
        desk.add_hook(desk_hook(notifier))
        await desk.start()
        alert = await opened(desk, cfg, GAS, 1, T0)
        # the new alert, and the hub's dispatch of the gas plan's departments at A
        assert await wait_until(lambda: notifier.counters.sent == 2)
        await desk.act(alert, "false_alarm", "dongyuan-g3", now=T0 + MIN, note="no smell")
        assert await wait_until(lambda: notifier.counters.sent == 3)
    title = receiver.got[2][1]["title"]
    assert title.startswith("[A] CLOSE AWAITS APPROVAL (false_alarm)")
    assert f"{alert} (asked by dongyuan-g3)" in title
    assert '"last_action":"request_close"' in receiver.got[2][1]["message"]
