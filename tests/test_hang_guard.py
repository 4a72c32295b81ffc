"""The suite cannot hang (tests/hang_guard.py): a stray task that ignores its cancel fails
its test's teardown and the run goes on; a test that hangs, in its body or its teardown,
ends the run with stacks; a session past its limit ends too; children do not outlive it.

Each case runs a small pytest session in a subprocess with short limits and checks what
it printed and how it ended; the subprocess itself is bounded (120 s) so that a guard
that failed shows up as this test's failure, not as a hang."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOUND = 120.0


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("GRIDCALL_TEST_TEARDOWN_BOUND", "1")
    return pytester


def run(inner: pytest.Pytester, *args: str) -> pytest.RunResult:
    return inner.runpytest_subprocess(
        "-p", "tests.hang_guard", "-o", "asyncio_mode=auto", "-o", "timeout_method=thread",
        "-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=BOUND)


def test_a_task_that_ignores_its_cancel_fails_its_teardown_and_the_run_goes_on(
        inner: pytest.Pytester) -> None:
    inner.makepyfile(test_stray="""
        import asyncio

        async def stubborn():
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    pass  # the bug: it never ends

        async def test_leaves_a_stubborn_task():
            asyncio.get_running_loop().create_task(stubborn())
            await asyncio.sleep(0)

        def test_the_next_test_runs():
            pass
    """)
    result = run(inner, "--timeout=60")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*StrayTasks: 1 task(s) did not end within 1s*"])
    assert "stubborn" in result.stdout.str()


@pytest.mark.parametrize("where", ["body", "teardown"])
def test_a_test_that_hangs_ends_the_run_with_the_stacks_of_its_tasks(
        inner: pytest.Pytester, where: str) -> None:
    inner.makepyfile(test_hangs="""
        import asyncio
        import pytest

        async def wait_for_ever():
            await asyncio.get_running_loop().create_future()

        @pytest.fixture
        async def hangs_in_teardown():
            yield
            await wait_for_ever()

        async def test_body():
            await wait_for_ever()

        async def test_teardown(hangs_in_teardown):
            pass

        def test_never_reached():
            pass
    """)
    result = run(inner, "--timeout=3", f"test_hangs.py::test_{where}",
                 "test_hangs.py::test_never_reached")
    assert result.ret != 0
    out = result.stdout.str() + result.stderr.str()
    assert f"hang guard: test_hangs.py::test_{where} still running after 3" in out
    assert "wait_for_ever" in out  # the stuck task's await chain
    assert "Timeout" in out  # pytest-timeout's own dump of the threads
    assert "test_never_reached PASSED" not in out


def test_a_session_past_its_limit_ends_and_its_children_do_not_outlive_it(
        inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRIDCALL_TEST_SESSION_LIMIT", "3")
    pid_file = tmp_path / "child.pid"
    inner.makepyfile(test_long=f"""
        import subprocess
        import time
        from pathlib import Path

        def test_starts_a_child_and_blocks():
            child = subprocess.Popen(["sleep", "600"])
            Path({str(pid_file)!r}).write_text(Path(f"/proc/{{child.pid}}/stat").read_text())
            time.sleep(600)
    """)
    result = run(inner, "--timeout=0")
    assert result.ret != 0
    out = result.stdout.str() + result.stderr.str()
    assert "ran past its limit of 3s" in out
    assert "test_starts_a_child_and_blocks" in out  # the main thread's stack
    started = pid_file.read_text()
    pid = int(started.split()[0])
    with contextlib.suppress(FileNotFoundError):
        now = Path(f"/proc/{pid}/stat").read_text()
        # the same process (its start time, field 22, has not changed; else the pid was
        # reused) may remain only as a zombie waiting for init to reap it
        if now.rsplit(")", 1)[1].split()[19] == started.rsplit(")", 1)[1].split()[19]:
            assert now.rsplit(")", 1)[1].split()[0] == "Z", \
                f"the test's child {pid} outlived the run: {now}"
