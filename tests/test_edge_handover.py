"""The journal/outbox handover under kill -9 at each of its exact points (issue 19, item
2: nothing lost on kill -9, nothing sealed twice).

Readings read and not yet sealed are in the journal (edge_agent/journal.py); sealing moves
them into a batch in the outbox and records the journal's generation in the same commit;
then the journal starts over. tests/edge_crash_point.py kills the agent process with
SIGKILL at a named point of that handover (a place in the code, not a moment: nothing
here depends on timing), and the next start's outbox is counted by reading number: every
reading that was read is in exactly one batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import ROOT
from tests.test_edge_kill import sealed_numbers

BATCH = 30
"""Readings a life reads: fewer than the agent's batch_max_readings (50), so only the
crash point's own seal seals them."""


def life(state: Path, point: str, start: int = 0, count: int = BATCH) -> int:
    """One life of the agent on ``state``, ended at ``point``; its exit code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tests.edge_crash_point", str(state), point,
                           str(start), str(count)],
                          check=False, cwd=ROOT, env=env, capture_output=True, timeout=120)
    if done.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(done.stderr.decode(errors="replace")[-2000:])
    return done.returncode


def assert_each_once(numbers: list[int], read: set[int]) -> None:
    assert read - set(numbers) == set(), f"lost: {sorted(read - set(numbers))}"
    assert len(numbers) == len(set(numbers)), (
        f"sealed twice: {sorted(n for n in set(numbers) if numbers.count(n) > 1)}")
    assert set(numbers) == read


def test_killed_after_the_seal_commit_before_the_journal_reset(tmp_path: Path) -> None:
    """The batch is in the outbox and the journal still holds its readings: the next
    start must see that the outbox sealed that generation."""
    assert life(tmp_path, "seal_committed") == -signal.SIGKILL
    assert_each_once(sealed_numbers(tmp_path), set(range(BATCH)))


def test_killed_while_sealing_what_the_last_life_journaled_before_its_commit(
        tmp_path: Path) -> None:
    """The start that recovers the journal dies before the recovered batch is committed:
    the journal must still hold those readings for the start after it. (Before the
    journal kept its file until the seal, recovering emptied it first: all lost.)"""
    assert life(tmp_path, "unsealed") == -signal.SIGKILL
    assert life(tmp_path, "recover_uncommitted") == -signal.SIGKILL
    assert_each_once(sealed_numbers(tmp_path), set(range(BATCH)))


def test_killed_while_sealing_what_the_last_life_journaled_after_its_commit(
        tmp_path: Path) -> None:
    assert life(tmp_path, "unsealed") == -signal.SIGKILL
    assert life(tmp_path, "recover_committed") == -signal.SIGKILL
    assert_each_once(sealed_numbers(tmp_path), set(range(BATCH)))


@pytest.mark.parametrize("point", ["seal_committed", "unsealed"])
def test_a_life_after_a_kill_reads_on_and_seals_each_reading_once(
        tmp_path: Path, point: str) -> None:
    """The kill, then a life that recovers, reads 30 more and stops cleanly."""
    assert life(tmp_path, point) == -signal.SIGKILL
    assert life(tmp_path, "clean", start=1000) == 0
    assert_each_once(sealed_numbers(tmp_path), set(range(BATCH)) | set(range(1000, 1030)))
