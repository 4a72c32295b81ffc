"""The closed alerts' table beside the ledger (hub/desk/closed_alerts.py): each closed
alert's row is the fold of its ledger rows, written with its steps on both desk stores,
and filled at start for a ledger written before the table existed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gridcall.config import ConfigSet
from gridcall.hub.desk.closed_alerts import ClosedAlerts
from gridcall.hub.desk.desk import Desk, NotFound
from gridcall.hub.desk.indicators import indicators
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import fold
from gridcall.hub.desk.silence import Scope, deferral
from gridcall.hub.store import Store
from tests.desk_stores import DeskStores
from tests.test_desk_snapshot import T0, H, event, scenario

LATER = T0 + 40 * H


async def close_and_reopen(cfg: ConfigSet, stores: DeskStores | Path) -> list[str]:
    """The seeded scenario, then the district closes every open alert as a false alarm
    and reopens every third of them: the alerts reopened."""
    await scenario(cfg, stores)
    async with (Store(stores) if isinstance(stores, Path) else stores.open()) as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        now = LATER
        reopened = []
        for i, state in enumerate(desk.alerts(open_only=True)):
            now += 60 * 10**9
            await desk.act(state.alert_id, "false_alarm", "huangpu", now=now)
            if i % 3 == 0:
                await desk.act(state.alert_id, "reopen", "huangpu", now=now + 1,
                               reason="back again")
                reopened.append(state.alert_id)
            elif i % 3 == 1:  # a spot check that passes: the row follows the closed alert
                await desk.audit(state.alert_id, "huangpu", "pass", now=now + 1)
    return reopened


async def rows_agree_with_the_ledger(desk: Desk) -> int:
    """How many closed alerts the ledger folds to; each has its row, equal to the fold,
    and no open alert has one."""
    folded = fold(await desk.ledger.all())
    closed = [s for s in folded.values() if not s.is_open]
    got = {s.alert_id: s for s in await desk.closed.many(folded)}
    assert set(got) == {s.alert_id for s in closed}
    for s in closed:
        assert got[s.alert_id] == s
    keys = await desk.closed.keys()
    assert sorted(a for _, a in keys) == sorted(got)
    return len(closed)


async def test_each_closed_alert_has_its_row_as_the_ledger_folds_it(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    reopened = await close_and_reopen(cfg, desk_stores)
    assert reopened  # their rows were written by the close, deleted by the reopening
    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        assert await rows_agree_with_the_ledger(desk) > 10
        # by place, tier, state and audit, as the folded states say
        town = cfg.units["dasha"].path
        folded = [s for s in fold(await desk.ledger.all()).values() if not s.is_open]
        want = sorted((s.opened_at, s.alert_id) for s in folded
                      if s.place[:2] == town and s.state == "false_alarm")
        assert want
        assert sorted(await desk.closed.keys(prefix=town, states=["false_alarm"])) == want
        tier = folded[0].tier
        assert sorted(await desk.closed.keys(tier=tier)) == sorted(
            (s.opened_at, s.alert_id) for s in folded if s.tier == tier)
        assert await desk.closed.keys(audit="pass")
        counts = await desk.closed.count_by_state()
        assert sum(counts.values()) == len(folded)


async def test_a_ledger_written_before_the_table_fills_it_at_start(
        cfg: ConfigSet, tmp_path: Path) -> None:
    await close_and_reopen(cfg, tmp_path / "hub.sqlite")
    async with Store(tmp_path / "hub.sqlite") as store:
        await store.run(lambda: store.db.execute("DROP TABLE closed_alerts"))
    async with Store(tmp_path / "hub.sqlite") as store:
        assert await ClosedAlerts(store).keys() == []
        desk = Desk(cfg, Ledger(store))
        await desk.start(snapshot=False)
        assert await rows_agree_with_the_ledger(desk) > 10


DAY = 24 * H


async def both(cfg: ConfigSet, tmp_path: Path) -> Path:
    """The scenario closed and reopened, in hub.sqlite; and a copy for a desk that holds
    every alert."""
    await close_and_reopen(cfg, tmp_path / "hub.sqlite")
    shutil.copy(tmp_path / "hub.sqlite", tmp_path / "all.sqlite")
    return tmp_path


async def same_answers(lean: Desk, full: Desk) -> None:
    """What a desk that dropped its old closed alerts answers is what one holding every
    alert answers: listings by unit, tier and state, pages, counts, the audit queue,
    incidents, a department's alerts, one alert by id."""
    for unit in ("huangpu", "dasha", cfg_grid(full)):
        for kw in ({}, {"open_only": True}, {"state": "false_alarm"}, {"tier": "C"},
                   {"state": ["resolved", "opened"]}):
            got = await lean.listing(unit=unit, **kw)  # type: ignore[arg-type]
            assert got == await full.listing(unit=unit, **kw)  # type: ignore[arg-type]
    assert (await lean.listing(offset=3, limit=5)) == (await full.listing(offset=3, limit=5))
    assert lean.alert_counts() == full.alert_counts()
    for status in ("sampled", "pass"):
        assert await lean.audit_listing(status=status) == full.audit_queue(status=status)
        assert await lean.audit_count(status=status) == len(full.audit_queue(status=status))
    assert await lean.incident_listing() == await full.incident_listing()
    for dep in full.config.departments:
        assert await lean.department_listing(dep, called_only=False) == sorted(
            full.department_alerts(dep, called_only=False),
            key=lambda s: (s.opened_at, len(s.alert_id), s.alert_id))
    for state in full.alerts():
        assert await lean.find(state.alert_id) == state


def cfg_grid(desk: Desk) -> str:
    return next(s.place[-1] for s in desk.alerts())


async def test_old_closed_alerts_leave_memory_and_every_answer_stays(
        cfg: ConfigSet, tmp_path: Path) -> None:
    await both(cfg, tmp_path)
    async with Store(tmp_path / "hub.sqlite") as a, Store(tmp_path / "all.sqlite") as b:
        lean, full = Desk(cfg, Ledger(a)), Desk(cfg, Ledger(b))
        full.keep_closed = None
        await lean.start()
        await full.start()
        later = LATER + 3 * DAY
        assert await lean.tick(later) == await full.tick(later)
        closed = [s for s in full.alerts() if not s.is_open]
        assert len(closed) > 10
        assert all(lean.held_alert(s.alert_id) is None for s in closed)
        assert len(lean.alerts()) == len(full.alerts(open_only=True))
        await same_answers(lean, full)
        with pytest.raises(NotFound):
            lean.get(closed[0].alert_id)
        with pytest.raises(NotFound):
            await lean.find("AL999999")
        assert await lean.history(closed[0].alert_id) == await full.history(closed[0].alert_id)


async def test_an_alert_closed_long_ago_is_reopened_audited_and_noted_as_if_held(
        cfg: ConfigSet, tmp_path: Path) -> None:
    """A unit may reopen a closed alert however long ago it closed (the reopen window is
    the hub's own reopening on a recurrence): the same steps as a desk holding it."""
    await both(cfg, tmp_path)
    async with Store(tmp_path / "hub.sqlite") as a, Store(tmp_path / "all.sqlite") as b:
        lean, full = Desk(cfg, Ledger(a)), Desk(cfg, Ledger(b))
        full.keep_closed = None
        await lean.start()
        await full.start()
        now = LATER + 5 * DAY
        await lean.tick(now)
        await full.tick(now)
        old = [s for s in full.alerts() if not s.is_open]
        one, two = old[0].alert_id, old[1].alert_id
        standby = Desk(cfg, Ledger(a))  # a standby's read-only copy, on the same store
        standby.writes = False
        standby.snapshot_every = 0
        await standby.start()
        assert await lean.write_snapshot()  # of what it holds: the open alerts
        assert len(await lean.snapshots.latest(lean._config_key)) >= 1
        for desk in (lean, full):
            desk.snapshot_every = 0
        got = [await d.act(one, "reopen", "huangpu", now=now + 1, reason="the smell is back")
               for d in (lean, full)]
        assert got[0] == got[1]
        assert got[0].alert.is_open
        assert lean.get(one).is_open  # held again, open
        assert await lean.closed.get(one) is None  # its row went with the reopening
        notes = [await d.act(two, "note", "huangpu", now=now + 2, note="checked again")
                 for d in (lean, full)]
        assert notes[0] == notes[1]
        assert (await lean.closed.get(two)) == notes[0].alert  # the row as it stands now
        await same_answers(lean, full)
        assert standby.held_alert(one) is None
        followed = await standby.follow()  # steps of alerts it had dropped: taken back
        assert [c.transition for c in followed] == [got[0].transition, notes[0].transition]
        assert standby.get(one).is_open
        await same_answers(standby, full)
    # and a restart from the last snapshot folds those steps (their alerts were not in
    # it) to the same desk as a full fold
    async with Store(tmp_path / "hub.sqlite") as a, Store(tmp_path / "all.sqlite") as b:
        snap, whole = Desk(cfg, Ledger(a)), Desk(cfg, Ledger(b))
        whole.keep_closed = None
        await snap.start()
        await whole.start(snapshot=False)
        assert snap.restored_from is not None
        assert snap.get(one).is_open
        await same_answers(snap, whole)


async def test_the_indicators_judge_a_dropped_alert_s_deadlines_past_its_silence(
        cfg: ConfigSet, tmp_path: Path) -> None:
    """Silenced time is not counted against a unit for an alert the desk no longer
    holds either: Desk.deferral finds its scope by its open step, as the report read
    from the store alone does (silence.deferral)."""
    sensor = next(s for s in sorted(cfg.sensors.values(), key=lambda s: s.id)
                  if s.kind == "noise")
    async with Store(tmp_path / "hub.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        out = await desk.on_event(event(cfg, sensor.id, 1, T0), T0)
        assert out.alert is not None
        alert_id = out.alert.alert_id
        due = out.alert.deadlines.response
        await desk.add_silence(Scope("grid", sensor.grid), start=T0 + 1, end=due + H,
                               reason="works on the street", author="huangpu", now=T0 + 1)
        await desk.act(alert_id, "false_alarm", "huangpu", now=due + 2 * H)
        await desk.tick(due + 3 * DAY)
        assert desk.held_alert(alert_id) is None
        steps = await desk.transitions()
        truth = deferral(await desk.silence_ledger.all(), steps)
        moved = desk.deferral(steps)
        assert truth(alert_id, due) == due + H
        assert moved(alert_id, due) == truth(alert_id, due)
        assert desk.defer(alert_id, due) == due  # the held-only answer would not move it
        start, end = T0 - H, due + 3 * DAY
        assert indicators(steps, start, end, defer=moved) == indicators(
            steps, start, end, defer=truth)
