"""The durable outbox on its own (real SQLite files): order, bounds, drop counting,
restarts and damaged files."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from gridcall.edge_agent.outbox import PLAUSIBLE_NS, Outbox, OutboxError, Priority

NOW = 1_790_000_000 * 10**9  # 2026
SECOND = 10**9


class Clock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def batch(n: int, size: int = 100) -> bytes:
    return f"batch-{n:06d}".encode().ljust(size, b".")


def fill(box: Outbox, batches: int, events: int = 0, size: int = 100) -> None:
    for i in range(batches):
        box.put(Priority.READINGS, "r", batch(i, size), 10)
        if i < events:
            box.put(Priority.EVENT, "e", f"event-{i}".encode())


def sending_order(box: Outbox) -> list[bytes]:
    """Publish everything as the agent does: peek a window, ack it, repeat."""
    out: list[bytes] = []
    while window := box.peek(4):
        out += [m.payload for m in window]
        box.ack(window)
    return out


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_events_go_first_and_each_priority_keeps_its_order_across_a_restart(
    tmp_path: Path, sync: str
) -> None:
    path = tmp_path / "a.outbox.sqlite"
    box = Outbox(path, sync=sync)  # type: ignore[arg-type]
    fill(box, 30, events=5)
    box.close()  # (a kill -9 leaves the same committed rows; see test_edge_crash)
    reopened = Outbox(path, sync=sync)  # type: ignore[arg-type]
    assert (reopened.messages, reopened.events, reopened.readings) == (35, 5, 300)
    order = sending_order(reopened)
    assert order[:5] == [f"event-{i}".encode() for i in range(5)]
    assert order[5:] == [batch(i) for i in range(30)]
    assert reopened.messages == reopened.bytes == 0


def test_an_event_put_while_readings_are_sent_overtakes_the_readings_left(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    fill(box, 10)
    first = box.peek(4)
    box.put(Priority.EVENT, "e", b"urgent")
    box.ack(first)
    assert [m.payload for m in box.peek(4)] == [b"urgent"]


def test_only_acknowledged_messages_leave_and_a_dropped_connection_keeps_them(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    fill(box, 5)
    window = box.peek(3)
    box.release()  # the connection dropped before the PUBACKs
    assert box.messages == 5
    assert box.peek(3) == window  # sent again, same order
    box.ack(window[:2])
    assert [m.payload for m in box.peek(10)] == [batch(i) for i in range(2, 5)]


def test_over_its_size_bound_the_oldest_readings_go_first_and_events_stay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=2**16)
    with caplog.at_level(logging.WARNING, logger="gridcall.edge_agent.outbox"):
        for i in range(1000):  # 1000 batches of 10 readings, 100 bytes each
            box.put(Priority.READINGS, "r", batch(i), 10)
            if i % 100 == 0:
                box.put(Priority.EVENT, "e", f"event-{i}".encode())
    assert box.bytes <= 2**16
    kept = [m for m in box.all() if m.priority == Priority.READINGS]
    dropped = 1000 - len(kept)
    assert dropped > 0
    # exactly the oldest went, and what is left is contiguous and in order
    assert [m.payload for m in kept] == [batch(i) for i in range(dropped, 1000)]
    assert box.events == 10
    assert box.drops == {"batches_size": dropped, "readings_size": 10 * dropped}
    assert "dropped" in caplog.text
    assert "over 65536 bytes" in caplog.text


def test_events_are_dropped_at_the_bound_only_when_config_says_so(tmp_path: Path) -> None:
    keep = Outbox(tmp_path / "keep.sqlite", max_bytes=2**16)
    drop = Outbox(tmp_path / "drop.sqlite", max_bytes=2**16, drop_events=True)
    for box in (keep, drop):
        for i in range(1000):
            box.put(Priority.EVENT, "e", batch(i))
    assert keep.events == 1000
    assert keep.bytes > 2**16
    assert not keep.drops
    assert drop.bytes <= 2**16
    assert drop.drops["events_size"] == 1000 - drop.events > 0
    assert [m.payload for m in drop.all()] == [batch(i) for i in range(1000 - drop.events,
                                                                        1000)]


def test_a_message_in_flight_is_not_dropped_under_it(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_bytes=2**16)
    fill(box, 10)
    window = box.peek(2)
    fill(box, 1000)
    assert {m.id for m in box.all()} >= {m.id for m in window}
    box.ack(window)


def test_messages_older_than_the_age_bound_are_dropped_and_counted(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.sqlite", max_age_ns=3600 * SECOND, clock=clock)
    for _ in range(60):
        box.put(Priority.READINGS, "r", b"x" * 50, 5)
        box.put(Priority.EVENT, "e", b"ev")
        clock.now += 60 * SECOND
    clock.now += 1800 * SECOND  # now the first 30 minutes are over an hour old
    assert box.expire()["readings_age"] == 5 * 30
    assert box.readings == 5 * 30
    assert box.events == 60  # events are kept
    assert box.depth().oldest_created == NOW  # the oldest event
    assert Outbox(tmp_path / "o.sqlite").drops == {"readings_age": 150, "batches_age": 30}


def test_messages_stamped_before_the_clock_was_set_are_not_aged_out(tmp_path: Path) -> None:
    clock = Clock(PLAUSIBLE_NS - 10**12)  # a Pi that booted in 1970-ish time
    box = Outbox(tmp_path / "o.sqlite", max_age_ns=3600 * SECOND, clock=clock)
    fill(box, 3)
    clock.now = NOW  # then NTP answered
    assert not box.expire()
    assert box.messages == 3


def test_drop_totals_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, max_bytes=2**16)
    fill(box, 1000)
    totals = dict(box.drops)
    box.close()
    assert Outbox(path, max_bytes=2**16).drops == totals


def test_a_damaged_outbox_file_is_moved_aside_by_name_and_the_agent_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"this is not sqlite at all " * 200)
    with caplog.at_level(logging.ERROR, logger="gridcall.edge_agent.outbox"):
        box = Outbox(path)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("o.sqlite.corrupt-")]
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not sqlite")
    assert str(path) in caplog.text
    assert str(aside[0]) in caplog.text
    assert box.drops["outbox_corrupt"] == 1
    fill(box, 2)
    assert box.messages == 2


def test_an_outbox_in_a_folder_it_cannot_create_is_refused_by_name(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutboxError, match=str(blocker / "state")):
        Outbox(blocker / "state" / "o.sqlite")


def test_the_file_is_sqlite_in_wal_mode_with_the_chosen_sync(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    Outbox(path, sync="full").put(Priority.EVENT, "e", b"x")
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT payload FROM messages").fetchall() == [(b"x",)]


def test_with_full_sync_a_put_after_an_ack_is_fsynced_again(tmp_path: Path) -> None:
    """The acked window's delete is committed without its own fsync (a power cut can only
    bring it back, to be sent again); every put, before and after, is synchronous=FULL."""
    box = Outbox(tmp_path / "o.sqlite", sync="full")
    full = 2  # PRAGMA synchronous: 1 NORMAL, 2 FULL
    fill(box, 3)
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == full
    box.ack(box.peek(2))
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == full
    box.put(Priority.READINGS, "r", batch(9), 10)
    box.close()
    assert sending_order(Outbox(tmp_path / "o.sqlite")) == [batch(2), batch(9)]


def committed(path: Path) -> list[bytes]:
    """What another connection sees: only committed rows."""
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT payload FROM messages ORDER BY id")]
    finally:
        db.close()


def test_puts_in_a_group_are_committed_together_when_it_ends(tmp_path: Path) -> None:
    """The agent's one commit per tick of its source (edge_agent/agent.py ``_consume``)."""
    path = tmp_path / "o.sqlite"
    box = Outbox(path, sync="full")
    box.put(Priority.READINGS, "r", batch(0), 10)
    with box.group():
        assert box.grouping
        box.put(Priority.READINGS, "r", batch(1), 10)
        box.put(Priority.EVENT, "e", b"event", 0)
        with box.group():  # a nested group joins the outer one
            box.put(Priority.READINGS, "r", batch(2), 10)
        assert committed(path) == [batch(0)]  # nothing of the group is durable yet
        assert (box.messages, box.events, box.readings) == (4, 1, 30)
    assert not box.grouping
    assert committed(path) == [batch(0), batch(1), b"event", batch(2)]
    box.close()
    assert sending_order(Outbox(path)) == [b"event", batch(0), batch(1), batch(2)]


def test_a_group_that_fails_keeps_none_of_its_puts_and_the_outbox_goes_on(
    tmp_path: Path
) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, sync="full")
    box.put(Priority.READINGS, "r", batch(0), 10)

    def tick() -> None:
        with box.group():
            box.put(Priority.READINGS, "r", batch(1), 10)
            raise RuntimeError("the agent failed mid-tick")

    with pytest.raises(RuntimeError, match="the agent failed"):
        tick()
    assert (box.messages, box.readings) == (1, 10)  # recounted from the table
    assert committed(path) == [batch(0)]
    with box.group():
        box.put(Priority.READINGS, "r", batch(2), 10)
    assert sending_order(box) == [batch(0), batch(2)]
