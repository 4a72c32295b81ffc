"""The fault matrix's own accounting (tests/fault_rig.py) at the kill that falls between
a batch's outbox commit and the line announcing it (no servers, no timing: the agent
process kills itself at that exact point).

That batch was sealed once, under one seq, and the next life sends it; a count that only
knew the announced batches saw its 50 points as an unknown batch's, "0 lost, 50
duplicated, 50 misplaced" (the edge kill -9 case in CI at 19e8bf3). The rig reads the
dead life's outbox for it.
"""

from __future__ import annotations

from pathlib import Path

from tests.edge_poll_agent import NO_BROKER
from tests.fault_rig import AgentProcess, Key, count, held_batches


def stored_by_a_hub(held: dict[int, list[Key]]) -> list[tuple[str, int, int]]:
    """Every held batch as the hub would store it: one point per (sensor, ts), with its
    batch's seq."""
    return [(sensor, ts, seq) for seq, keys in held.items() for sensor, ts in keys]


async def test_a_batch_committed_and_not_announced_is_counted_once(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path, NO_BROKER, start_at=0, total=10_000_000, die_unprinted=5)
    assert not await agent.read_until(5)  # it died after the fifth commit, unannounced
    announced = dict(agent.sealed)
    await agent.kill9()  # already dead: reaps it and reads its outbox
    held = held_batches(tmp_path)
    assert agent.proc.returncode == -9
    assert len(announced) == 4
    assert agent.unprinted == 1
    (unannounced,) = held.keys() - announced.keys()
    assert agent.sealed == {**announced, unannounced: held[unannounced]}
    stored = stored_by_a_hub(held)
    naive = count(announced, stored, set(), set(), {}, {})
    assert (naive.lost, naive.duplicated, naive.misplaced) == (
        0, len(held[unannounced]), len(held[unannounced]))
    result = count(agent.sealed, stored, set(), set(), {}, {})
    assert (result.lost, result.duplicated, result.misplaced) == (0, 0, 0)
    assert result.stored_readings == result.sealed_readings == sum(map(len, held.values()))
