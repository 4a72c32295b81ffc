"""Write the indicators to InfluxDB periodically, for the boards.

Every ``interval`` the runner reads the ledger, computes
:func:`gridcall.hub.desk.indicators.indicators`
for each rolling window ending now (by default the last day and the last 7 days) and
writes them as line protocol (measurement ``indicator``, tag ``period`` naming the
window) through the hub's InfluxDB sink. A failed write is logged and counted, never
raised: the indicators are recomputed from the ledger next time, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gridcall.hub.desk.indicators import Deferral, indicators, line_protocol
from gridcall.hub.desk.lifecycle import Transition
from gridcall.hub.ingest.sinks import SinkError
from gridcall.wire.clock import DAY_NS, Clock

log = logging.getLogger(__name__)

WINDOWS: Mapping[str, int] = {"1d": DAY_NS, "7d": 7 * DAY_NS}


class LineSink(Protocol):
    async def write_lines(self, body: bytes) -> None: ...


@dataclass
class IndicatorCounters:
    rounds: int = 0
    points: int = 0
    failed_writes: int = 0


async def write_indicators(sink: LineSink, transitions: Sequence[Transition], now: int, *,
                           windows: Mapping[str, int] = WINDOWS,
                           measurement: str = "indicator",
                           defer: Deferral | None = None) -> int:
    """One round: every window ending at ``now``; returns the points written. Raises the
    sink's :class:`~gridcall.hub.ingest.sinks.SinkError`. ``defer``: the desk's
    (silenced time is not counted against a unit)."""
    body = b"".join(
        line_protocol(indicators(transitions, now - span, now, defer=defer), period=name,
                      measurement=measurement)
        for name, span in windows.items())
    await sink.write_lines(body)
    return body.count(b"\n")


async def run_indicator_writer(
        sink: LineSink, transitions: Callable[[], Awaitable[Sequence[Transition]]],
        clock: Clock, stop: asyncio.Event, *, interval: float = 60.0,
        windows: Mapping[str, int] = WINDOWS,
        counters: IndicatorCounters | None = None,
        defer: Deferral | None = None,
        deferral: Callable[[Sequence[Transition]], Deferral] | None = None
) -> IndicatorCounters:
    """Write a round at once and then every ``interval`` seconds until ``stop``.
    ``deferral``, instead of ``defer``: what makes the :data:`Deferral` of each round's
    steps (the desk's :meth:`~gridcall.hub.desk.desk.Desk.deferral`, which knows the
    alerts it no longer holds by their steps)."""
    counters = counters if counters is not None else IndicatorCounters()
    while not stop.is_set():
        try:
            steps = await transitions()
            moved = deferral(steps) if deferral is not None else defer
            counters.points += await write_indicators(sink, steps, clock(),
                                                      windows=windows, defer=moved)
            counters.rounds += 1
        except SinkError as exc:
            counters.failed_writes += 1
            log.warning("indicators not written (%d failed rounds so far; next try in "
                        "%.0fs): %s", counters.failed_writes, interval, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    return counters
