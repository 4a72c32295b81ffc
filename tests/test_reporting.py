"""Reports in service (hub/desk/reporting.py) on both desk stores: a report filed but not
linked when the hub stopped is taken and linked at start-up, once; notes and ratings are
ledger steps that a fold and a snapshot both restore; a rating waits for the alert to close
and is given once."""

from __future__ import annotations

import pytest

from gridcall.config import ConfigSet
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import IllegalTransition
from gridcall.hub.desk.report_ledger import ReportLedger
from gridcall.hub.desk.reporting import AlreadyRated, Reporting
from gridcall.hub.desk.reports import Filed, ReportStep
from gridcall.hub.desk.runtime import DeskRuntime
from gridcall.wire.broker import BrokerAddress
from tests.desk_stores import DeskStores

T0 = 1_800_000_000_000_000_000
S = 10**9
MIN = 60 * S


def filed(seq: int, **kw: object) -> Filed:
    base: dict[str, object] = dict(
        seq=seq, unit="dongyuan-g2", person="", matter="MANHOLE-DISPLACED",
        taken_as="MANHOLE-DISPLACED", grid="dongyuan-g2", point=None,
        description="cover lifted", photos=())
    return Filed(**{**base, **kw})  # type: ignore[arg-type]


async def test_a_report_filed_before_a_crash_is_linked_once_at_start(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    async with desk_stores.open() as store:  # the hub wrote the file step, then died
        await ReportLedger(store).append(ReportStep("R000001", 1, "file", T0,
                                                    filed=filed(1)))
    for life in (1, 2):
        async with desk_stores.open() as store:
            desk = Desk(cfg, Ledger(store))
            await desk.start()
            reporting = Reporting(desk)
            await reporting.start(T0 + S)
            report = reporting.book.get("R000001")
            assert (report.alert_id, report.joined) == ("AL000001", "open")
            nxt, new = await reporting.file(
                unit="dongyuan-g2", person="", matter="MANHOLE-DISPLACED",
                grid="dongyuan-g2", point=None, description="again", photos=(),
                now=T0 + 2 * S, client_ref="same")
            assert (nxt.report_id, nxt.joined, new) == ("R000002", "evidence", life == 1)
            # at B (a school's grid) the manhole plan's department is dispatched at once
            assert [t.action for t in await desk.history("AL000001")] == [
                "open", "dispatch", "evidence"]
            assert [(s.report_id, s.action) for s in await reporting.ledger.all()] == [
                ("R000001", "file"), ("R000001", "link"), ("R000002", "file"),
                ("R000002", "link")]


async def test_notes_and_ratings_are_steps_a_fold_and_a_snapshot_restore(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        reporting = Reporting(desk)
        report, _ = await reporting.file(
            unit="dongyuan-g2", person="", matter="MANHOLE-DISPLACED", grid="dongyuan-g2",
            point=None, description="cover lifted", photos=("a" * 40 + ".jpg",), now=T0)
        alert_id = report.alert_id
        with pytest.raises(IllegalTransition, match="once its alert is resolved"):
            await reporting.rate(report.report_id, "satisfied", now=T0 + S)
        await desk.act(alert_id, "note", "dongyuan", now=T0 + S, note="before",
                       photos=("b" * 40 + ".png",))
        # the tier-B alert is closed by its town (closure.approval in the sample's
        # matters.yaml: the community's close would wait for the town's approval)
        for i, action in enumerate(("acknowledge", "arrive", "resolve"), start=2):
            await desk.act(alert_id, action, "dasha", now=T0 + i * MIN)  # type: ignore[arg-type]
        closed = desk.get(alert_id)
        await desk.act(alert_id, "note", "dongyuan", now=T0 + 6 * MIN, note="after")
        rated = await reporting.rate(report.report_id, "dissatisfied", now=T0 + 7 * MIN)
        assert rated.rating is not None
        assert rated.rating.rating == "dissatisfied"
        with pytest.raises(AlreadyRated):
            await reporting.rate(report.report_id, "satisfied", now=T0 + 8 * MIN)
        final = desk.get(alert_id)
        assert final.closed_at == closed.closed_at  # a note or a rating closes nothing anew
        assert [t.action for t in await desk.history(alert_id)] == [  # B: the plan's dispatch
            "open", "dispatch", "note", "acknowledge", "arrive", "resolve", "sample", "note",
            "rate"]
        # (sample: the closing was drawn for audit, audits in the sample's matters.yaml)
        assert await desk.write_snapshot() is not None
    for snapshot in (True, False):
        async with desk_stores.open() as store:
            again = Desk(cfg, Ledger(store))
            await again.start(snapshot=snapshot)
            assert again.get(alert_id) == final
            view = await Reporting(again).view(report.report_id, T0 + 9 * MIN)
            assert view.rating is not None
            assert (view.rating.rating, view.rateable) == ("dissatisfied", False)


async def test_a_report_sent_twice_without_a_client_ref_is_filed_once(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    """The same reporter's same report (matter, grid, description, photos) again within
    a minute, without a client_ref: the first, nothing written. A different description,
    the same one after the minute, or another reporter's is a new report."""
    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        reporting = Reporting(desk)

        async def file(at: int, unit: str = "dongyuan-g2", description: str = "cover lifted"
                       ) -> tuple[str, bool]:
            report, new = await reporting.file(
                unit=unit, person="", matter="MANHOLE-DISPLACED", grid="dongyuan-g2",
                point=None, description=description, photos=(), now=at)
            return report.report_id, new

        first = await file(T0)
        steps = await reporting.ledger.all()
        assert await file(T0 + 30 * S) == (first[0], False)
        assert await reporting.ledger.all() == steps  # no second step
        assert await file(T0 + 31 * S, description="cover lifted, water rising") == (
            "R000002", True)
        assert await file(T0 + 32 * S, unit="dongyuan") == ("R000003", True)
        assert await file(T0 + 2 * MIN) == ("R000004", True)


async def test_the_hub_takes_an_unlinked_report_when_it_starts(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    """Without waiting for the API's first request: the desk in service starts it."""
    async with desk_stores.open() as store:
        await ReportLedger(store).append(ReportStep("R000001", 1, "file", T0,
                                                    filed=filed(1)))
        runtime = DeskRuntime(cfg, store, address=BrokerAddress.parse("mqtt://127.0.0.1:1"),
                              client_id="reports-start", clock=lambda: T0 + S)
        await runtime.start()
        (state,) = runtime.desk.alerts()
        assert (state.alert.agent, state.alert.event_seq, state.opened_at) == (
            "reports", 1, T0 + S)
        assert Reporting.of(runtime.desk).book.get("R000001").alert_id == state.alert_id


async def test_a_rating_counts_for_the_unit_and_the_departments_that_handled_it(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    from gridcall.hub.desk.indicators import indicators

    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        reporting = Reporting(desk)
        ratings = ("satisfied", "dissatisfied", "basically_satisfied")
        for i, rating in enumerate(ratings):
            at = T0 + i * 60 * MIN
            report, _ = await reporting.file(
                unit="dongyuan-g2", person="", matter="MANHOLE-DISPLACED",
                grid="dongyuan-g2", point=None, description=f"cover {i}", photos=(), now=at)
            alert_id = report.alert_id
            if not desk.get(alert_id).dept_calls:  # at B the manhole plan called it
                await desk.act(alert_id, "dispatch", "dasha", now=at + MIN,
                               departments=("urban_mgmt",))
            for j, action in enumerate(("acknowledge", "arrive", "resolve"), start=2):
                await desk.act(alert_id, action, "dasha",  # type: ignore[arg-type]
                               now=at + j * MIN)
            await reporting.rate(report.report_id, rating, now=at + 10 * MIN)  # type: ignore[arg-type]
        rows = indicators(await desk.transitions(), T0, T0 + 24 * 60 * MIN)
    got = {(r.group, r.key): (r.rated, r.satisfied, r.satisfaction_rate) for r in rows
           if r.rated}
    assert got == {("unit", "dasha"): (3, 2, 2 / 3),
                   ("department", "urban_mgmt"): (3, 2, 2 / 3)}
