"""Waiting for something asynchronous to happen (without timing assertions), and what
an agent that has caught up looks like."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.sources import Sample, Source


async def wait_until(predicate: Callable[[], bool], polls: int = 400) -> bool:
    """Poll a condition every 50 ms, a bounded number of times (not a timing assertion):
    True as soon as it holds, False if it never did."""
    for _ in range(polls):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False


@asynccontextmanager
async def draining(source: Source) -> AsyncIterator[list[Sample]]:
    """Take the source's samples into the list it yields while the block runs, then stop
    taking them (the task cancelled and awaited)."""
    got: list[Sample] = []

    async def consume() -> None:
        async for sample in source.samples():
            got.append(sample)

    task = asyncio.create_task(consume())
    try:
        yield got
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def assert_every_reading_was_acknowledged(agent: EdgeAgent) -> None:
    """Every good reading the agent took was acknowledged by the broker (PUBACK) and
    nothing is left in its outbox."""
    c = agent.counters
    assert c.readings_sent == c.samples - sum(c.skipped.values()) > 0
    assert agent.outbox_depth == 0
