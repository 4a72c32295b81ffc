"""The ingest dedup: a repeat of (agent, seq) is refused, nothing new is ever dropped."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gridcall.hub.ingest.dedup import SeenBatches


def test_a_redelivered_batch_is_refused_and_a_new_one_taken() -> None:
    seen = SeenBatches(window=64)
    assert seen.add("edge-a", 10)
    assert not seen.add("edge-a", 10)
    assert seen.add("edge-a", 11)
    assert seen.add("edge-b", 10)  # agents are apart
    assert not seen.add("edge-a", 11)


def test_a_gap_filled_later_is_taken_once() -> None:
    seen = SeenBatches(window=64)
    assert seen.add("edge-a", 1)
    assert seen.add("edge-a", 5)  # 2..4 went to another worker, or come later
    assert seen.add("edge-a", 3)
    assert not seen.add("edge-a", 3)
    assert seen.add("edge-a", 2)


def test_a_jump_past_the_whole_window_forgets_the_old_marks() -> None:
    seen = SeenBatches(window=64)
    assert seen.add("edge-a", 0)
    assert seen.add("edge-a", 1000)  # the old bit for 0 sits where 960.. would: cleared
    assert seen.add("edge-a", 960)
    assert not seen.add("edge-a", 960)


def test_a_seq_below_the_window_is_taken_again_and_counted_never_dropped() -> None:
    seen = SeenBatches(window=64)
    assert seen.add("edge-a", 5)
    assert seen.add("edge-a", 500)
    assert seen.add("edge-a", 5)  # stored twice (idempotent in the store), not lost
    assert seen.below_window == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=300))
def test_within_the_window_it_answers_exactly_as_a_set_of_every_pair_would(
        steps: list[int]) -> None:
    window = 64
    seen = SeenBatches(window=window)
    every: set[int] = set()
    high = -1
    for seq in steps:
        expected = seq not in every or seq <= high - window
        assert seen.add("edge-a", seq) == expected
        every.add(seq)
        high = max(high, seq)


def test_memory_per_agent_is_the_bitmap_not_the_history() -> None:
    seen = SeenBatches()
    for seq in range(100_000):
        seen.add("edge-a", seq)
    state = seen._agents["edge-a"]
    assert len(state.bits) == seen.window // 8
