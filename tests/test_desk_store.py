"""The desk store on PostgreSQL: numbered migrations applied once, a database newer than
the hub refused, the ledgers append-only even against TRUNCATE; and what both stores
must do alike (events once per (agent, seq), the reminder log, the notify outbox)."""

from __future__ import annotations

import psycopg
import pytest

from gridcall.config import ConfigSet
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.reminder_log import ReminderLog
from gridcall.hub.desk.reminders import Reminder
from gridcall.hub.notify.notifier import NOTIFIED_ACTIONS
from gridcall.hub.notify.outbox import NotifyOutbox
from gridcall.hub.pgstore import MIGRATIONS, PgStore
from gridcall.hub.store import StoreConflict
from gridcall.wire import AnomalyEvent
from gridcall.wire.errors import InvariantError, RetryableError
from tests.desk_stores import DeskStores, pg_database

T0 = 1_800_000_000 * 10**9
SENSOR = "dongyuan-g1-pm25-1"


def event(cfg: ConfigSet, seq: int, ts: int = T0) -> AnomalyEvent:
    return AnomalyEvent(agent=cfg.sensors[SENSOR].agent, seq=seq, sensor=SENSOR,
                        kind="out_of_limits", severity="minor", score=0.6, value=200.0, ts=ts)


async def test_migrations_run_once_and_a_newer_database_is_refused(postgres_url: str) -> None:
    with pg_database(postgres_url) as url:
        async with PgStore(url) as store:
            assert store.migrated == [v for v, _, _ in MIGRATIONS]
        async with PgStore(url) as store:  # a second hub, or a restart
            assert store.migrated == []
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
            assert [r[0] for r in rows] == [v for v, _, _ in MIGRATIONS]
            conn.execute("INSERT INTO schema_migrations (version, what) VALUES (9999, 'x')")
        with pytest.raises(InvariantError, match=r"schema versions \[9999\]"):
            async with PgStore(url):
                pass


async def test_the_ledgers_refuse_truncate_too(cfg: ConfigSet, postgres_url: str) -> None:
    with pg_database(postgres_url) as url:
        async with PgStore(url) as store:
            desk = Desk(cfg, Ledger(store))
            await desk.start()
            await desk.on_event(event(cfg, 1), T0)
            for table in ("transitions", "silence_steps", "incident_steps", "reminders"):
                with pytest.raises(StoreConflict, match="append-only"):
                    await store.sql(lambda db, t=table: db.execute(f"TRUNCATE {t}"))
            assert await desk.ledger.count() == 1


async def test_an_event_is_stored_once(cfg: ConfigSet, desk_stores: DeskStores) -> None:
    async with desk_stores.open() as store:
        assert await store.record_event(event(cfg, 1), b"{}")
        assert not await store.record_event(event(cfg, 1), b"{}")
        assert await store.record_event(event(cfg, 2), b"{}")


async def test_a_reminder_is_logged_once(desk_stores: DeskStores) -> None:
    r = Reminder(alert_id="AL000001", stint=1, index=0, at=T0, unit="dongyuan-g1", tier="C",
                 person="wang-fang")
    async with desk_stores.open() as store:
        log = ReminderLog(store)
        assert await log.append(r)
        assert not await log.append(r)
    async with desk_stores.open() as store:
        assert await ReminderLog(store).of_alert("AL000001") == [r]


async def test_the_outbox_keeps_what_was_not_notified(cfg: ConfigSet,
                                                      desk_stores: DeskStores) -> None:
    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        outbox = NotifyOutbox(store)
        await outbox.setup()
        await desk.on_event(event(cfg, 1), T0)
        pending = await outbox.pending(NOTIFIED_ACTIONS)
        assert [(t.alert_id, t.action) for t in pending] == [("AL000001", "open")]
    async with desk_stores.open() as store:  # a restart before the delivery was marked
        outbox = NotifyOutbox(store)
        await outbox.setup()
        assert await outbox.pending(NOTIFIED_ACTIONS) == pending
        await outbox.done("AL000001", 1, T0)
        await outbox.done("AL000001", 1, T0)  # a second mark changes nothing
        assert await outbox.pending(NOTIFIED_ACTIONS) == []


async def test_a_lost_connection_is_retryable_and_the_next_call_connects_again(
        cfg: ConfigSet, postgres_url: str) -> None:
    """What makes the desk runtime leave the message unacknowledged (so it comes again)
    rather than dead-letter it for a fault that is the database's, not the message's."""
    with pg_database(postgres_url) as url:
        async with PgStore(url) as store:
            pid = store.conn.info.backend_pid
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(RetryableError, match="desk store"):
                await store.record_event(event(cfg, 1), b"{}")
            assert await store.record_event(event(cfg, 1), b"{}")  # connected again
            assert store.conn.info.backend_pid != pid
