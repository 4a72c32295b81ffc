"""Which ``(agent, seq)`` batches a worker has taken: a high-water mark and a bitmap.

An agent's ``seq`` grows by one per batch and never goes back, across restarts too
(:class:`gridcall.wire.ReadingBatch`), and a worker sees each agent's batches nearly in
order: a redelivery or an outbox replay comes back within a few thousand numbers of the
newest. So per agent it keeps the highest ``seq`` taken (the high-water mark) and one bit
for each of the ``window`` numbers below it: ``window / 8`` bytes per agent (512 B at the
default 4,096), where a window of the pairs themselves (an ``OrderedDict`` of 65,536, as
before) measured 8.1 MB per agent, about 8 GB for 1,000 agents.

A number below the window is taken again (counted in :attr:`SeenBatches.below_window`),
never dropped: writing a batch twice stores the same points again (InfluxDB and the
embedded store keep one point per series and timestamp), while dropping one would lose
it. That is the same guarantee the bounded window gave: what fell out of it was taken
again too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOW = 4096
"""Numbers below an agent's newest ``seq`` that are still told apart exactly."""


@dataclass(slots=True)
class _Agent:
    high: int
    bits: bytearray = field(repr=False)


class SeenBatches:
    """``add(agent, seq)`` is True the first time a pair is taken, False for a repeat."""

    def __init__(self, window: int = WINDOW) -> None:
        if window < 8 or window % 8:
            raise ValueError(f"dedup window must be a positive multiple of 8, got {window}")
        self.window = window
        self.below_window = 0
        """Batches taken again because their seq was more than ``window`` below the
        agent's newest (a very late redelivery or replay): stored twice, never lost."""
        self._agents: dict[str, _Agent] = {}

    def __len__(self) -> int:
        """Agents tracked."""
        return len(self._agents)

    def add(self, agent: str, seq: int) -> bool:
        state = self._agents.get(agent)
        window = self.window
        if state is None:
            state = self._agents[agent] = _Agent(seq, bytearray(window // 8))
            self._mark(state.bits, seq)
            return True
        high = state.high
        if seq > high:
            self._clear(state.bits, high + 1, seq)
            state.high = seq
            self._mark(state.bits, seq)
            return True
        if seq <= high - window:
            self.below_window += 1
            return True
        i = seq % window
        byte, bit = state.bits[i >> 3], 1 << (i & 7)
        if byte & bit:
            return False
        state.bits[i >> 3] = byte | bit
        return True

    def forget(self, agent: str, seq: int) -> None:
        """Take a pair out, so that it is taken again (a dead-lettered batch: its replay
        must not be dropped as a repeat). Only within the window: below it, a pair is
        taken again anyway."""
        state = self._agents.get(agent)
        if state is None or seq > state.high or seq <= state.high - self.window:
            return
        i = seq % self.window
        state.bits[i >> 3] &= ~(1 << (i & 7)) & 0xFF

    def _mark(self, bits: bytearray, seq: int) -> None:
        i = seq % self.window
        bits[i >> 3] |= 1 << (i & 7)

    def _clear(self, bits: bytearray, first: int, last: int) -> None:
        """Forget the numbers ``first..last`` (the positions they now take over)."""
        window = self.window
        if last - first + 1 >= window:
            bits[:] = bytes(len(bits))
            return
        for s in range(first, last + 1):
            i = s % window
            bits[i >> 3] &= ~(1 << (i & 7)) & 0xFF
