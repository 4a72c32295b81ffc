"""Awaiting library calls so that cancelling the caller always ends it, within a bound.

Python 3.11's ``asyncio.wait_for`` returns the inner result instead of raising
``CancelledError`` when the result and a cancel arrive in the same loop turn (fixed in
3.12, where it is built on ``asyncio.timeout``). pymodbus awaits every connect and every
transaction through it, aiomqtt every connect, subscribe and publish. So a Modbus poller
cancelled just as its port opened went on polling as if nothing had happened: the task
never ended, ``gather`` on it waited for ever and the event loop's close
(``_cancel_all_tasks``) after it.

:func:`cancel_safe` runs such a call in a task of its own and waits for it with
``asyncio.wait``, which never eats the caller's cancel: the caller's ``CancelledError``
is raised whatever the call does with the cancel it is passed on. Before raising, the call
is given up to ``settle`` seconds to finish (a transport it just made is then fully set
up, so the caller's ``close()`` finds it); a call still running after that is left behind
and logged by name.

:func:`raise_if_cancelled` is the cheap form for a call awaited many times a second.

:func:`stop_tasks` cancels tasks and waits for them, at most ``bound`` seconds, without
swallowing a cancel of the caller (``with suppress(CancelledError): await task`` does) and
without waiting for ever on one that ignores its cancel (``gather`` does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
SETTLE = 5.0
"""Seconds a cancelled call gets to finish before it is left behind."""
STOP_BOUND = 10.0
"""Seconds a stopping component waits for one of its tasks to end once cancelled."""


def _retrieve(task: asyncio.Future[Any]) -> None:
    # a call left behind may still fail: read its outcome so asyncio does not log
    # "exception was never retrieved" at garbage collection
    if not task.cancelled():
        task.exception()


async def cancel_safe(aw: Awaitable[T], *, settle: float = SETTLE, what: str = "") -> T:
    """``await aw``, except that a cancel of the caller always raises ``CancelledError``
    here, even when ``aw`` swallows the cancel passed on to it."""
    inner: asyncio.Future[T] = asyncio.ensure_future(aw)
    inner.add_done_callback(_retrieve)
    try:
        await asyncio.wait([inner])
    except asyncio.CancelledError:
        inner.cancel()
        done, _ = await asyncio.wait([inner], timeout=settle)
        if not done:
            log.warning("%s did not end within %.0fs of being cancelled; left behind",
                        what or repr(inner), settle)
        raise
    return inner.result()


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` if the current task was asked to cancel and the call it
    just awaited swallowed the cancel (Python 3.11's ``wait_for`` returning its result).

    The cheap form of :func:`cancel_safe` for a call awaited many times a second (a
    Modbus request): ``await call(); raise_if_cancelled()``. It relies on
    ``Task.cancelling()``, which counts cancel requests nobody ``uncancel()``-ed: a cancel
    the call swallowed is still counted. Unlike :func:`cancel_safe` it does not give the
    call ``settle`` seconds after the cancel: the cancel goes into the call at once, as a
    plain ``await`` would; use it only for calls that end on a cancel (pymodbus's
    request does: it cancels its answer's future and raises)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_tasks(tasks: Iterable[asyncio.Future[Any]], bound: float, *,
                     what: str = "", raise_errors: bool = False,
                     ignore: tuple[type[BaseException], ...] = ()) -> set[asyncio.Future[Any]]:
    """Cancel ``tasks`` and wait up to ``bound`` seconds for them to end; the ones still
    running are logged by name and returned (and left behind). A cancel of the caller
    while waiting is raised, not swallowed. With ``raise_errors``, the first error a task
    ended with (other than ``ignore``) is raised once all were waited for; without, the
    tasks' outcomes are read and dropped, as ``gather(..., return_exceptions=True)``."""
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    if pending:
        _, pending = await asyncio.wait(pending, timeout=bound)
    if pending:
        names = ", ".join(sorted(_name(t) for t in pending))
        log.error("%s: %s did not end within %.0fs of being cancelled; left behind",
                  what or "stopping", names, bound)
    errors = [t.exception() for t in tasks if t.done() and not t.cancelled()]
    for error in errors:
        if raise_errors and error is not None and not isinstance(error, ignore):
            raise error
    return pending


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
