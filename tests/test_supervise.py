"""The one supervisor (gridcall/wire/supervise.py): a failing task is restarted and
counted, never ends its caller; repeated failures raise an alarm that clears once the
task runs; a stop cuts the wait before a restart short; a cancel goes through."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gridcall.wire.backoff import Backoff
from gridcall.wire.supervise import Supervisor
from tests.polling import wait_until

QUICK = Backoff(initial=0.01, cap=0.01, jitter=0.0)


class Flaky:
    """Fails ``failures`` times (a real exception out of a real coroutine), then runs
    until ``release`` is set."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.starts = 0
        self.release = asyncio.Event()

    async def __call__(self) -> None:
        self.starts += 1
        if self.starts <= self.failures:
            raise OverflowError(f"int too big to convert (start {self.starts})")
        await self.release.wait()


async def test_a_failing_task_is_restarted_and_counted_without_an_alarm() -> None:
    supervisor = Supervisor(backoff=QUICK, alarm_after=3)
    task = Flaky(failures=2)
    run = asyncio.create_task(supervisor.run("ingest-writers", task))
    assert await wait_until(lambda: task.starts == 3)
    assert supervisor.restarts["ingest-writers"] == 2
    assert supervisor.alarms == {}
    assert "ingest-writers" in supervisor.running
    task.release.set()
    await asyncio.wait_for(run, 10)  # a task that returns is done
    assert supervisor.stats() == {"restarts.ingest-writers": 2, "alarms.ingest-writers": 0,
                                  "in_alarm": 0}


async def test_repeated_failures_raise_an_alarm_that_clears_once_the_task_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(backoff=QUICK, alarm_after=3, healthy_after=0.05)
    task = Flaky(failures=3)
    with caplog.at_level(logging.ERROR, "gridcall.wire.supervise"):
        run = asyncio.create_task(supervisor.run("desk", task))
        assert await wait_until(lambda: task.starts == 4)
    assert supervisor.raised["desk"] == 1
    [alarm] = [r.message for r in caplog.records if r.message.startswith("ALARM")]
    assert alarm.startswith("ALARM: task desk failed 3 times")
    assert "OverflowError: int too big to convert (start 3)" in alarm
    assert await wait_until(lambda: "desk" not in supervisor.alarms)  # ran 0.05 s
    assert supervisor.stats()["in_alarm"] == 0
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert "desk" not in supervisor.running


async def test_a_stop_cuts_the_wait_before_a_restart_short() -> None:
    supervisor = Supervisor(backoff=Backoff(initial=3600.0, cap=3600.0))
    stop = asyncio.Event()
    task = Flaky(failures=1)
    run = asyncio.create_task(supervisor.run("board-writers", task, stop=stop))
    assert await wait_until(lambda: supervisor.restarts["board-writers"] == 1)
    stop.set()
    await asyncio.wait_for(run, 10)  # a bound for a hang, not a timing assertion
    assert task.starts == 1


async def test_a_cancel_reaches_the_task_and_goes_through() -> None:
    supervisor = Supervisor(backoff=QUICK)
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    run = asyncio.create_task(supervisor.run("ingest-spool", forever))
    assert await wait_until(lambda: "ingest-spool" in supervisor.running)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert cancelled.is_set()
    assert supervisor.restarts["ingest-spool"] == 0
