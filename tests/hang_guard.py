"""A hang anywhere ends the test run quickly, with stacks, instead of at CI's limit.

A pytest plugin (loaded by tests/conftest.py) with three guards, each a backstop of the one
before:

1. **Stray tasks cannot hang an event loop's close.** asyncio's runner ends a loop by
   cancelling every task left and waiting for all of them without a bound; one task that
   does not end on cancel (it swallowed the ``CancelledError``, or waits in a ``finally``)
   hangs the test's teardown for ever. Here the wait is bounded (``TEARDOWN_BOUND``): the
   tasks still running are printed with their stacks and the test's teardown fails with
   :class:`StrayTasks`, naming them; the run goes on with the next test. The loop's
   async generators and its default executor's threads get the same bound.
2. **A test that hangs ends the run** (pytest-timeout's per-test ``timeout``, with
   ``timeout_method = "thread"``, covering setup, call and teardown): the timer prints
   every event loop's tasks with their stacks, then pytest-timeout prints every thread's
   stack, and the process exits (status 1). Child processes the tests started are killed
   first, so an agent started by a test cannot keep CI's log pipe open. The thread
   method does not raise into the event loop as the signal method does (which could
   leave a loop with a task nobody would ever wake: the second half of the hang that
   spent CI's 90 minutes), at the price of ending the whole run at the first hang.
3. **The session has a limit** (``GRIDCALL_TEST_SESSION_LIMIT`` seconds, default 40
   minutes, well inside CI's 90): a watchdog thread prints the stacks, kills the children
   and exits; ``faulthandler`` (a C thread, which needs no GIL) does the same a minute
   later if even that thread cannot run. After the session, the interpreter's exit is
   bounded too (``EXIT_BOUND``): a non-daemon thread or an atexit hook cannot hang it.
"""

from __future__ import annotations

import asyncio
import asyncio.runners
import contextlib
import faulthandler
import io
import os
import signal
import sys
import threading
import traceback
import types
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TextIO

import pytest

TEARDOWN_BOUND = float(os.environ.get("GRIDCALL_TEST_TEARDOWN_BOUND", "20"))
"""Seconds a closing event loop waits for its cancelled tasks (and then for its async
generators and executor threads) before it gives up on them."""
SESSION_LIMIT = 40 * 60.0
"""Default limit for the whole session, in seconds (``GRIDCALL_TEST_SESSION_LIMIT``)."""
LAST_RESORT = 60.0
"""faulthandler's exit comes this long after the session limit."""
EXIT_BOUND = 120.0
"""Seconds the interpreter may take to exit after pytest is done."""



class _Guard:
    """The session's watchdog and where the guards write (the real stderr)."""

    stderr: TextIO = sys.stderr
    session: threading.Timer | None = None
    owner: pytest.Config | None = None


_guard = _Guard()


class StrayTasks(Exception):
    """Tasks still running ``TEARDOWN_BOUND`` seconds after their loop cancelled them."""


# ------------------------------------------------------------------ 1: a loop's close

def _run_bounded(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None],
                 what: str) -> bool:
    task = loop.create_task(coro)
    loop.run_until_complete(asyncio.wait([task], timeout=TEARDOWN_BOUND))
    if task.done():
        return True
    _say(f"hang guard: {what} did not end within {TEARDOWN_BOUND:.0f}s; given up")
    task.cancel()
    return False


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio.runners._cancel_all_tasks, with a bound; it also closes the loop's async
    generators and executor within the bound (asyncio.Runner then finds nothing left)."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    stuck: list[asyncio.Task[Any]] = []
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=TEARDOWN_BOUND))
        stuck = [t for t in tasks if not t.done()]
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                loop.call_exception_handler({
                    "message": "unhandled exception during the loop's close",
                    "exception": task.exception(), "task": task})
    _run_bounded(loop, loop.shutdown_asyncgens(), "closing the loop's async generators")
    if not _run_bounded(loop, loop.shutdown_default_executor(),
                        "joining the default executor's threads"):
        loop._default_executor = None  # type: ignore[attr-defined]  # else Runner waits again
    if stuck:
        dump = _tasks_text(stuck)
        _say(dump)
        raise StrayTasks(f"{len(stuck)} task(s) did not end within {TEARDOWN_BOUND:.0f}s "
                         f"of being cancelled when the test's event loop closed (each "
                         f"swallowed a CancelledError or waits in a finally):\n{dump}")


asyncio.runners._cancel_all_tasks = _cancel_all_tasks  # type: ignore[attr-defined]


# ------------------------------------------------------------------ 2: a test that hangs

@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """pytest-timeout's thread method, with the event loops' tasks printed and the
    children killed before it prints the threads' stacks and exits."""
    if settings.method != "thread":
        return None  # pytest-timeout's own handling
    import pytest_timeout

    def expired() -> None:
        if not settings.disable_debugger_detection and pytest_timeout.is_debugging():
            return
        _say(f"hang guard: {item.nodeid} still running after {settings.timeout}s "
             "(setup, call and teardown)")
        _say(_loops_text())
        _kill_children()
        pytest_timeout.timeout_timer(item, settings)  # threads' stacks, then os._exit(1)

    timer = threading.Timer(settings.timeout, expired)
    timer.name = f"hang guard {item.nodeid}"
    timer.daemon = True

    def cancel() -> None:
        timer.cancel()
        timer.join()

    item.cancel_timeout = cancel  # type: ignore[attr-defined]  # pytest-timeout's protocol
    timer.start()
    return True


# ------------------------------------------------------------------ 3: the session

def pytest_configure(config: pytest.Config) -> None:
    # only the outermost session: an in-process pytest run inside a test (pytester) that
    # loaded this plugin must not arm a second watchdog, nor bound the process's exit
    # when it ends while the outer session goes on
    if _guard.owner is not None:
        return
    _guard.owner = config
    # capture is suspended while plugins configure: fd 2 is the real stderr; keep a copy,
    # since during a test it points at the capture file, which an exit would lose
    _guard.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    limit = float(os.environ.get("GRIDCALL_TEST_SESSION_LIMIT", SESSION_LIMIT))
    if limit <= 0:
        return
    timer = _guard.session = threading.Timer(limit, _session_expired, (limit,))
    timer.name = "hang guard session"
    timer.daemon = True
    timer.start()
    faulthandler.dump_traceback_later(limit + LAST_RESORT, exit=True, file=_guard.stderr)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config is not _guard.owner:
        return
    if _guard.session is not None:
        _guard.session.cancel()
    # the tests are over; what is left is the interpreter's exit: bound it too
    faulthandler.dump_traceback_later(EXIT_BOUND, exit=True, file=_guard.stderr)


def _session_expired(limit: float) -> None:
    _say(f"hang guard: the test session ran past its limit of {limit:.0f}s "
         "(GRIDCALL_TEST_SESSION_LIMIT); stacks follow, then the run ends")
    _say(_loops_text())
    with contextlib.suppress(Exception):
        faulthandler.dump_traceback(file=_guard.stderr, all_threads=True)
    _kill_children()
    _guard.stderr.flush()
    os._exit(1)


# ------------------------------------------------------------------ helpers

def _say(text: str) -> None:
    with contextlib.suppress(Exception):
        _guard.stderr.write(text.rstrip("\n") + "\n")
        _guard.stderr.flush()


def _tasks_text(tasks: list[asyncio.Task[Any]]) -> str:
    out = io.StringIO()
    for task in tasks:
        out.write(f"--- {task!r}\n")
        with contextlib.suppress(Exception):
            task.print_stack(file=out)
        out.write(_await_chain(task))
    return out.getvalue()


def _await_chain(task: asyncio.Task[Any]) -> str:
    """Where the task's coroutine waits, through async generators and awaited coroutines
    (a task's own stack stops at an ``async for``)."""
    lines = []
    aw: Any = task.get_coro()
    for _ in range(50):
        frame = getattr(aw, "cr_frame", None) or getattr(aw, "ag_frame", None)
        if frame is not None:
            lines.append(f"    awaits in {frame.f_code.co_qualname} "
                         f"({frame.f_code.co_filename}:{frame.f_lineno})")
        nxt = (getattr(aw, "cr_await", None) or getattr(aw, "ag_await", None)
               or getattr(aw, "gi_yieldfrom", None))
        if nxt is None and type(aw).__name__ in ("async_generator_asend",
                                                 "async_generator_athrow"):
            # anext()/aclose() of an async generator: go on into the generator
            import gc
            nxt = next((r for r in gc.get_referents(aw)
                        if isinstance(r, types.AsyncGeneratorType)), None)
        if nxt is None:
            break
        aw = nxt
    return "".join(f"{line}\n" for line in lines)


def _loops_text() -> str:
    """The tasks of every open event loop, with where each waits (read from another
    thread: good enough for a post-mortem)."""
    import gc

    out = []
    try:
        loops = [o for o in gc.get_objects()
                 if isinstance(o, asyncio.AbstractEventLoop) and not o.is_closed()]
        for loop in loops:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            out.append(f"=== event loop {loop!r}: {len(tasks)} task(s) running")
            out.append(_tasks_text(tasks))
    except Exception:
        out.append("hang guard: could not list the event loops' tasks:\n"
                   + traceback.format_exc())
    return "\n".join(out)


def _kill_children() -> None:
    """SIGKILL every process descended from this one (Linux /proc; elsewhere nothing)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, seen = [os.getpid()], []
    while todo:
        for child in parents.get(todo.pop(), []):
            seen.append(child)
            todo.append(child)
    for pid in seen:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if seen:
        _say(f"hang guard: killed {len(seen)} child process(es): {seen}")
