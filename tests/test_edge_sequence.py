"""An agent's sequence numbers only grow, across restarts, even on a Pi whose clock
restarts in 1970: otherwise the hub would drop its new readings as duplicates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gridcall.cli import app
from gridcall.config import SAMPLE_DISTRICT
from gridcall.edge_agent.sequence import Sequence, SequenceStateError

NOW_NS = 1_790_000_000_000_000_000  # 2026
BOOTED_IN_1970_NS = 5_000_000_000


def test_without_a_state_file_numbers_start_at_the_clock_in_microseconds() -> None:
    seq = Sequence(None, NOW_NS)
    assert [seq.next(), seq.next()] == [NOW_NS // 1000 + 1, NOW_NS // 1000 + 2]
    assert seq.ceiling is None


def test_a_restart_with_the_clock_back_in_1970_continues_above_every_number_used(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edge-1.batches.seq"
    first = Sequence(path, NOW_NS, block=10)
    used = [first.next() for _ in range(25)]  # crosses two block boundaries
    # no goodbye: the process dies here (power loss); the file is all that is left
    second = Sequence(path, BOOTED_IN_1970_NS, block=10)
    after = [second.next() for _ in range(5)]
    assert min(after) > max(used)
    assert after == sorted(set(after))


def test_the_state_file_is_written_once_per_block_not_per_number(tmp_path: Path) -> None:
    path = tmp_path / "a.seq"
    seq = Sequence(path, 0, block=100)
    ceilings = set()
    for _ in range(1000):
        seq.next()
        ceilings.add(int(path.read_text()))
    assert len(ceilings) == 10
    assert seq.ceiling == int(path.read_text()) > seq.current


def test_a_clock_ahead_of_the_stored_ceiling_wins(tmp_path: Path) -> None:
    path = tmp_path / "a.seq"
    path.write_text("1000\n")
    assert Sequence(path, NOW_NS).next() == NOW_NS // 1000 + 1


@pytest.mark.parametrize("content", ["", "12ab", "-5", "\xff\xfe"])
def test_a_damaged_state_file_is_refused_by_name_rather_than_guessed_around(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "a.seq"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(SequenceStateError, match=str(path)):
        Sequence(path, BOOTED_IN_1970_NS)


def test_edge_run_names_a_damaged_state_file_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, config)
    agents = yaml.safe_load((config / "agents.yaml").read_text(encoding="utf-8"))
    agents["defaults"]["state_dir"] = str(tmp_path / "state")
    (config / "agents.yaml").write_text(yaml.safe_dump(agents, allow_unicode=True),
                                        encoding="utf-8")
    agent = next(a["id"] for a in agents["agents"] if a.get("source") == "simulated")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / f"{agent}.batches.seq").write_text("garbage")
    result = CliRunner().invoke(app, ["edge", "run", "--agent", agent, "-c", str(config)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"{agent}.batches.seq: expected one non-negative integer" in result.output
