"""An edge agent process that kills itself with SIGKILL at one exact point of the
journal/outbox handover, for tests/test_edge_handover.py (no timing: the crash point is
a place in the code, not a moment).

``python -m tests.edge_crash_point STATE_DIR POINT START COUNT`` opens the sample
district's edge-dongyuan on ``STATE_DIR`` (recovering what an earlier life journaled and
did not seal, as every start does), gives it readings ``START .. START+COUNT-1``
(stamped ``BASE + n``, fewer than a batch, so none is sealed by count), journals them as
a poll's end does, and then:

- ``unsealed``: dies with them in the journal only;
- ``seal_committed``: seals them, and dies once the batch's outbox commit is done, before
  the journal's reset;
- ``recover_uncommitted``: dies at the start, while sealing what the earlier life
  journaled, before that batch's outbox commit;
- ``recover_committed``: dies at the start, once that batch's commit is done, before the
  journal's reset;
- ``clean``: seals them and closes the outbox and the journal (a clean stop).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.journal import Journal
from gridcall.edge_agent.outbox import Outbox, Priority
from tests.edge_poll_agent import BASE, NO_BROKER, PollingSource, agent_spec

POINTS = ("unsealed", "seal_committed", "recover_uncommitted", "recover_committed", "clean")


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def crash_before_batch_commit() -> None:
    """Outbox.put dies on entry for a readings batch: the commit never happens."""
    put = Outbox.put

    def dying_put(self: Outbox, priority: Priority, *args: Any, **kwargs: Any) -> int:
        if priority == Priority.READINGS:
            die()
        return put(self, priority, *args, **kwargs)

    Outbox.put = dying_put  # type: ignore[method-assign]


def crash_before_journal_reset() -> None:
    """Journal.sealed dies on entry: the batch is committed, the journal not reset."""

    def dying_sealed(self: Journal) -> None:
        die()

    Journal.sealed = dying_sealed  # type: ignore[method-assign]


def main(state: Path, point: str, start: int, count: int) -> None:
    if point not in POINTS:
        raise SystemExit(f"unknown crash point {point!r}; one of {', '.join(POINTS)}")
    if point == "recover_uncommitted":
        crash_before_batch_commit()
    elif point == "recover_committed":
        crash_before_journal_reset()
    spec = agent_spec()
    agent = EdgeAgent(spec, PollingSource(spec), broker_url=NO_BROKER, state_dir=state)
    if point.startswith("recover_"):
        raise SystemExit(f"{point}: the start had nothing to recover in {state}")
    values = PollingSource(spec).values  # (sensor, a value mid-range)
    for n in range(start, start + count):
        sensor, value = values[n % len(values)]
        agent.ingest(sensor, BASE + n, value)
    agent.journal_pending()
    if point == "unsealed":
        die()
    if point == "seal_committed":
        crash_before_journal_reset()
    agent.seal()
    agent.outbox.close()
    if agent.journal is not None:
        agent.journal.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
