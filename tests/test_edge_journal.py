"""The unsealed readings' journal (edge_agent/journal.py): what it gives back at a start."""

from __future__ import annotations

from pathlib import Path

from gridcall.edge_agent.journal import Journal
from gridcall.wire import Reading

READINGS = [Reading("s1", 1_790_000_000 * 10**9 + i, float(i)) for i in range(6)]


def test_readings_appended_and_not_sealed_come_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "a.journal")
    assert journal.recover(0) == []
    journal.append(READINGS[:3])
    journal.append(READINGS[3:])
    journal.close()  # as a kill would leave it
    again = Journal(tmp_path / "a.journal")
    assert again.recover(0) == READINGS
    again.close()  # killed before they were sealed: the journal still has them
    third = Journal(tmp_path / "a.journal")
    assert third.recover(0) == READINGS
    sealed = third.generation  # the outbox stored the batch sealing them
    third.sealed()
    third.close()
    assert Journal(tmp_path / "a.journal").recover(sealed) == []


def test_a_sealed_generation_is_not_given_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "a.journal")
    journal.recover(0)
    journal.append(READINGS)
    sealed = journal.generation  # the outbox stored a batch sealing this generation
    journal.close()  # killed before the journal's own reset
    again = Journal(tmp_path / "a.journal")
    assert again.recover(sealed) == []
    assert again.generation > sealed


def test_a_torn_last_frame_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "a.journal"
    journal = Journal(path)
    journal.recover(0)
    journal.append(READINGS[:2])
    journal.append(READINGS[2:])
    journal.close()
    path.write_bytes(path.read_bytes()[:-3])  # killed in the middle of the second write
    assert Journal(path).recover(0) == READINGS[:2]


def test_a_file_that_is_no_journal_gives_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.journal"
    path.write_bytes(b"something else entirely")
    journal = Journal(path)
    assert journal.recover(0) == []
    journal.append(READINGS)
    journal.close()
    assert Journal(path).recover(0) == READINGS
