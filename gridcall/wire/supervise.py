"""The one supervisor of long-lived tasks: restart on failure, count, and raise an alarm.

Every long-lived task of the hub (the ingest writers and the spool's write-back, the
readings consumer, the desk's connection and timers, the board writers, the notifier's
replay of dead letters) runs as ``await supervisor.run(name, factory)``. A task that
raises is logged with its traceback, counted (``restarts.<name>``), and started again
after a backoff (the one :class:`~gridcall.wire.backoff.Backoff`: 0.5 s doubling to
30 s, jittered); one that returns is done. Nothing a task raises ends the process; a
cancel does (it is how a stop reaches the task).

**The alarm.** A task that failed ``alarm_after`` times (3) within ``window`` seconds
(600) is *in alarm*: an ERROR log line that names it, its failures and its last error;
a counter (``alarms.<name>``); and :attr:`Supervisor.alarms`, read by the hub's metrics
as ``gridcall_task_alarm{task=...} 1`` (docs/operations.md has the Prometheus rule). It
clears once the task has run ``healthy_after`` seconds (60) without failing. Not an alert
on the desk: the failing task may be the desk itself, or its store, and the alarm must
reach people when the desk cannot; the metrics endpoint and the log are outside both.

A leaf of :mod:`gridcall.wire` (it imports only the backoff and the stats protocol), so
the edge agent can run its tasks under it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gridcall.wire.backoff import Backoff
from gridcall.wire.clock import Monotonic
from gridcall.wire.stats import Scalar

log = logging.getLogger(__name__)

RESTART = Backoff(initial=0.5, cap=30.0)
"""Waits before restarting a failed task (reset once it has run ``healthy_after`` s)."""


@dataclass(frozen=True, slots=True)
class Alarm:
    """A task that keeps failing: raised after ``failures`` within the window."""

    task: str
    failures: int
    last_error: str
    since: float
    """Monotonic time the alarm was raised."""


class Supervisor:
    def __init__(self, *, alarm_after: int = 3, window: float = 600.0,
                 healthy_after: float = 60.0, backoff: Backoff = RESTART,
                 clock: Monotonic = time.monotonic) -> None:
        if alarm_after < 1:
            raise ValueError(f"a supervisor alarms after >= 1 failures, got {alarm_after}")
        self.alarm_after = alarm_after
        self.window = window
        self.healthy_after = healthy_after
        self.backoff = backoff
        self._clock = clock
        self.restarts: Counter[str] = Counter()
        self.raised: Counter[str] = Counter()
        """Alarms raised, per task (a counter: an alarm that cleared stays counted)."""
        self.alarms: dict[str, Alarm] = {}
        """Tasks in alarm now."""
        self.running: set[str] = set()
        self._failures: dict[str, deque[float]] = {}

    async def run(self, name: str, factory: Callable[[], Awaitable[None]], *,
                  stop: asyncio.Event | None = None) -> None:
        """Run ``factory()`` until it returns; restart it whenever it raises. A task's
        name is its identity in the counters and the metrics: keep it stable. With
        ``stop``, a failure once it is set is not restarted, and it cuts the wait before
        a restart short, so that a stop is never held up by the backoff."""
        delays = self.backoff.delays()
        while True:
            self.running.add(name)
            task = asyncio.ensure_future(factory())
            try:
                done, _ = await asyncio.wait({task}, timeout=self.healthy_after)
                if not done:  # it has run long enough: whatever failed before is over
                    delays.reset()
                    self._clear(name)
                await task
            except asyncio.CancelledError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            except Exception as exc:
                self._failed(name, exc)
                delay = delays.jittered(next(delays))
                if stop is not None and stop.is_set():
                    return
                log.warning("task %s: restarting in %.1fs (%d restarts so far)", name,
                            delay, self.restarts[name])
                if stop is None:
                    await asyncio.sleep(delay)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    if stop.is_set():
                        return
                continue
            finally:
                self.running.discard(name)
            return

    def _failed(self, name: str, exc: Exception) -> None:
        self.restarts[name] += 1
        now = self._clock()
        log.error("task %s failed: %s: %s", name, type(exc).__name__, exc, exc_info=exc)
        failures = self._failures.setdefault(name, deque())
        failures.append(now)
        while failures and now - failures[0] > self.window:
            failures.popleft()
        if len(failures) >= self.alarm_after and name not in self.alarms:
            self.alarms[name] = Alarm(name, len(failures), f"{type(exc).__name__}: {exc}",
                                      now)
            self.raised[name] += 1
            log.error("ALARM: task %s failed %d times in %.0fs (last: %s: %s); it keeps "
                      "being restarted, but something needs a person", name, len(failures),
                      self.window, type(exc).__name__, exc)

    def _clear(self, name: str) -> None:
        self._failures.pop(name, None)
        if self.alarms.pop(name, None) is not None:
            log.warning("task %s runs again (alarm cleared)", name)

    def stats(self) -> dict[str, Scalar]:
        """``restarts.<task>``, ``alarms.<task>`` (raised so far) and ``in_alarm``, flat."""
        names = sorted(set(self.restarts) | set(self.raised) | self.running)
        out: dict[str, Scalar] = {f"restarts.{n}": self.restarts.get(n, 0) for n in names}
        out |= {f"alarms.{n}": self.raised.get(n, 0) for n in names}
        out["in_alarm"] = len(self.alarms)
        return out
