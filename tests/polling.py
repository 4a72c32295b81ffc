"""Waiting for something asynchronous to happen (without timing assertions), and what
an agent that has caught up looks like."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gridcall.edge_agent.agent import EdgeAgent


async def wait_until(predicate: Callable[[], bool], polls: int = 400) -> bool:
    """Poll a condition every 50 ms, a bounded number of times (not a timing assertion):
    True as soon as it holds, False if it never did."""
    for _ in range(polls):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False


def assert_every_reading_was_acknowledged(agent: EdgeAgent) -> None:
    """Every good reading the agent took was acknowledged by the broker (PUBACK) and
    nothing is left in its outbox."""
    c = agent.counters
    assert c.readings_sent == c.samples - sum(c.skipped.values()) > 0
    assert agent.outbox_depth == 0
