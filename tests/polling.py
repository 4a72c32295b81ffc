"""Waiting for something asynchronous to happen, without timing assertions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(predicate: Callable[[], bool], polls: int = 400) -> bool:
    """Poll a condition every 50 ms, a bounded number of times (not a timing assertion):
    True as soon as it holds, False if it never did."""
    for _ in range(polls):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False
