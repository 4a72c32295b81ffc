"""The desk's append-only log (hub/desk/appendlog.py), on both desk stores: each log's
table described as the store made it (SQLite's DDL, PostgreSQL's migration), a row
refused twice, rows that cannot be changed or deleted, and a writer that will not make
its table inside another's transaction."""

from __future__ import annotations

import pytest

from gridcall.hub.desk import (
    arrival_reminders,
    external_log,
    incident_ledger,
    ledger,
    photos,
    reminder_log,
    report_ledger,
    silence_ledger,
    snapshots,
)
from gridcall.hub.desk.appendlog import BodyLog, Table
from gridcall.hub.desk.ledger import LedgerConflict
from gridcall.hub.desk.report_ledger import ReportLedger
from gridcall.hub.desk.reports import ReportStep
from gridcall.hub.store import Db, StoreConflict
from gridcall.wire.errors import InvariantError
from tests.desk_stores import DeskStores

T0 = 1_800_000_000 * 10**9

TABLES = [m.TABLE for m in (ledger, silence_ledger, incident_ledger, reminder_log, report_ledger,
                            external_log, snapshots, arrival_reminders, photos)]


def columns_of(db: Db, table: str) -> list[str]:
    if db.dialect == "sqlite":
        sql = "SELECT name FROM pragma_table_info(?) ORDER BY cid"
    else:
        sql = ("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
               "ORDER BY ordinal_position")
    return [str(r[0]) for r in db.execute(sql, (table,)).fetchall()]


@pytest.mark.parametrize("table", TABLES, ids=[t.name for t in TABLES])
async def test_each_log_is_described_as_the_store_made_its_table(
        table: Table, desk_stores: DeskStores) -> None:
    async with desk_stores.open() as store:
        log = BodyLog(store, table)
        assert await log.bodies() == []
        found = await store.sql(lambda db: columns_of(log.db(db), table.name))
        assert sorted(found) == sorted({table.row_id, *table.columns, "body"})


async def test_a_row_is_written_once_and_never_changed(desk_stores: DeskStores) -> None:
    step = ReportStep("R000001", 1, "link", T0, alert_id="AL000001")
    async with desk_stores.open() as store:
        ledger = ReportLedger(store)
        await ledger.append(step)
        with pytest.raises(LedgerConflict, match=r"the report ledger .*R000001"):
            await ledger.append(step)
        for sql in ("UPDATE report_steps SET at = 0", "DELETE FROM report_steps"):
            with pytest.raises(StoreConflict, match="append-only"):
                await store.sql(lambda db, sql=sql: db.execute(sql))
    async with desk_stores.open() as store:  # a restart
        assert await ReportLedger(store).all() == [step]


async def test_a_writer_does_not_make_its_table_inside_a_transaction(
        desk_stores: DeskStores) -> None:
    step = ReportStep("R000001", 1, "link", T0, alert_id="AL000001")
    async with desk_stores.open() as store:
        ledger = ReportLedger(store)
        with pytest.raises(InvariantError, match="the report ledger was written before"):
            await store.sql(ledger.writer([step]))
        assert await ledger.all() == []
        await store.sql(ledger.writer([step]))  # the table is made now
        assert await ledger.all() == [step]
