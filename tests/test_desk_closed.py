"""The closed alerts' table beside the ledger (hub/desk/closed_alerts.py): each closed
alert's row is the fold of its ledger rows, written with its steps on both desk stores,
and filled at start for a ledger written before the table existed."""

from __future__ import annotations

from pathlib import Path

from gridcall.config import ConfigSet
from gridcall.hub.desk.closed_alerts import ClosedAlerts
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import fold
from gridcall.hub.store import Store
from tests.desk_stores import DeskStores
from tests.test_desk_snapshot import T0, H, scenario

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
