"""The alert ledger: append-only rows that rebuild every alert after a restart, on both desk
stores (SQLite and PostgreSQL, tests/desk_stores.py)."""

from __future__ import annotations

import msgspec
import pytest

from gridcall.config import ConfigSet
from gridcall.hub.desk.ledger import Ledger, LedgerConflict
from gridcall.hub.desk.lifecycle import apply, opening, step
from gridcall.hub.store import StoreConflict
from tests.desk_stores import DeskStores
from tests.test_lifecycle import MIN, T0, drafted, take


async def test_steps_survive_a_restart_and_fold_into_the_same_state(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    alert, place = drafted(cfg)
    state = apply(None, opening(alert, place=place))
    async with desk_stores.open() as store:
        ledger = Ledger(store)
        await ledger.append(state.last)
        for i, action in enumerate(("acknowledge", "escalate", "dispatch"), start=1):
            state = take(state, action, T0 + i * MIN)
            await ledger.append(state.last)
    async with desk_stores.open() as store:  # a new process, the same database
        ledger = Ledger(store)
        history = await ledger.history("AL000007")
        assert [t.action for t in history] == ["open", "acknowledge", "escalate", "dispatch"]
        assert history[-1] == state.last
        assert await ledger.rebuild() == {"AL000007": state}
        assert await ledger.has_event("edge-x", 7) == "AL000007"
        assert await ledger.has_event("edge-x", 8) is None
        assert [t.n for t in await ledger.all(since=T0 + MIN, until=T0 + 3 * MIN)] == [2, 3]


async def test_a_step_is_written_once(cfg: ConfigSet, desk_stores: DeskStores) -> None:
    alert, place = drafted(cfg)
    first = opening(alert, place=place)
    ack = step(apply(None, first), "acknowledge", at=T0 + MIN, actor="g1")
    async with desk_stores.open() as store:
        ledger = Ledger(store)
        await ledger.append(first, ack)
        with pytest.raises(LedgerConflict, match="AL000007"):
            await ledger.append(ack)
        assert await ledger.count() == 2


async def test_the_same_anomaly_event_joins_one_alert_only(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    alert, place = drafted(cfg)
    first = opening(alert, place=place)
    state = apply(None, first)
    again = step(state, "evidence", at=T0 + MIN, evidence=first.evidence)
    async with desk_stores.open() as store:
        ledger = Ledger(store)
        await ledger.append(first)
        with pytest.raises(LedgerConflict):
            await ledger.append(again)
        assert await ledger.count() == 1


async def test_rows_cannot_be_changed_or_deleted(cfg: ConfigSet, desk_stores: DeskStores) -> None:
    alert, place = drafted(cfg)
    async with desk_stores.open() as store:
        ledger = Ledger(store)
        await ledger.append(opening(alert, place=place))
        for sql in ("UPDATE transitions SET state='resolved'", "DELETE FROM transitions"):
            with pytest.raises(StoreConflict, match="append-only"):
                await store.sql(lambda db, sql=sql: db.execute(sql))
        assert [t.state for t in await ledger.history("AL000007")] == ["opened"]


async def test_the_steps_of_some_alerts_are_read_without_the_rest(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    """What GET /v1/indicators reads: the chosen alerts' steps, in time order, up to a
    time; the same rows a filter over the whole ledger gives."""
    alert, place = drafted(cfg)
    async with desk_stores.open() as store:
        ledger = Ledger(store)
        for k in range(3):
            other = msgspec.structs.replace(alert, alert_id=f"AL00000{k}", event_seq=k,
                                            opened_at=T0 + k * MIN)
            state = apply(None, opening(other, place=place))
            await ledger.append(state.last)
            await ledger.append(take(state, "acknowledge", T0 + (10 + k) * MIN).last)
        wanted = {"AL000000", "AL000002"}
        got = await ledger.of_alerts(["AL000002", "AL000000", "AL000002"])
        assert got == [t for t in await ledger.all() if t.alert_id in wanted]
        early = await ledger.of_alerts(wanted, until=T0 + 10 * MIN + 1)
        assert [(t.alert_id, t.action) for t in early] == [
            ("AL000000", "open"), ("AL000002", "open"), ("AL000000", "acknowledge")]
        assert await ledger.of_alerts([]) == []
