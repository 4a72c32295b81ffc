"""The dead-letter store on its own (hub/deadletter.py): entries kept with what failed,
bounded, marked and taken for a replay in one go, and the file private to its owner."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridcall.cli import app
from gridcall.config import SAMPLE_DISTRICT
from gridcall.hub.deadletter import DeadLetters


def test_the_store_keeps_what_failed_and_drops_its_oldest_past_its_bound(
    tmp_path: Path,
) -> None:
    path = tmp_path / "var" / "dead.sqlite"
    clock = iter(range(1, 100))
    with DeadLetters(path, source="hub-a", clock=lambda: next(clock), max_entries=3) as dl:
        ids = [dl.put(f"gridcall/v1/readings/a{i}", b'{"seq":%d}' % i,
                      "ts_window" if i % 2 else "rejected", f"error {i}") for i in range(5)]
        kept = dl.entries()
        assert [e.id for e in kept] == ids[2:]
        first = kept[0]
        assert (first.topic, first.payload, first.reason, first.detail, first.at,
                first.source) == ("gridcall/v1/readings/a2", b'{"seq":2}', "rejected",
                                  "error 2", 3, "hub-a")
        assert dl.count_by_reason() == {"rejected": 2, "ts_window": 1}
        assert (dl.dropped, dl.counts["ts_window"], dl.counts["rejected"]) == (2, 2, 3)
        assert dl.stats()["dropped"] == 2
        assert dl.mark_replay(reason="ts_window") == 1
        assert [e.replay for e in dl.entries()] == [False, True, False]
        [taken] = dl.take_replays()
        assert (taken.id, taken.reason) == (ids[3], "ts_window")
        assert [e.id for e in dl.entries()] == [ids[2], ids[4]]
        assert dl.take_replays() == []
        assert dl.mark_replay(ids=[ids[4]]) == 1
        assert dl.mark_replay(every=True) == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with DeadLetters(path) as again:  # another process's view of the same file
        assert [e.id for e in again.entries()] == [ids[2], ids[4]]
        assert [e.id for e in again.take_replays()] == [ids[2], ids[4]]


def test_the_commands_name_the_absolute_path_when_run_outside_the_hubs_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``hub.deadletter_path`` is relative to the working directory, as ``store_path``
    is: run elsewhere, ``list`` said "no dead letters" (exit 0) while the hub's store held
    some. It now fails naming the absolute path it looked at and why."""
    hub_dir, elsewhere = tmp_path / "hub", tmp_path / "elsewhere"
    elsewhere.mkdir()
    with DeadLetters(hub_dir / "var" / "hub-deadletter.sqlite") as letters:
        letters.put("gridcall/v1/readings/a", b"{}", "rejected", "bad")
    runner = CliRunner()
    for args in (["list"], ["replay", "--all"]):
        monkeypatch.chdir(elsewhere)
        result = runner.invoke(app, ["hub", "deadletter", *args, "-c", str(SAMPLE_DISTRICT)],
                               env={"COLUMNS": "300"})
        assert result.exit_code == 1, result.output
        text = " ".join(result.output.split())
        assert str(elsewhere / "var" / "hub-deadletter.sqlite") in text
        assert "relative" in text
        assert "--store FILE" in text
        monkeypatch.chdir(hub_dir)  # where the hub runs: its store is found
        result = runner.invoke(app, ["hub", "deadletter", *args, "-c", str(SAMPLE_DISTRICT)],
                               env={"COLUMNS": "300"})
        assert result.exit_code == 0, result.output
        assert "1 rejected" in result.output or "1 dead letter(s) marked" in result.output
