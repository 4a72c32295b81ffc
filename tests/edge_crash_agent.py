"""An edge agent process for the kill -9 test (tests/test_edge_crash.py).

``python -m tests.edge_crash_agent STATE_DIR BROKER_URL START_AT TOTAL`` runs the sample
district's edge-dongyuan on a fast synthetic source. After each batch is stored in the
outbox (``seal`` returned: the commit is done) it prints one JSON line with the batch's
sequence number and readings: what was *acknowledged to the outbox*; after each event
is stored there, a line with its ``event_seq``. SIGTERM stops it
cleanly; the test uses SIGKILL.

A batch is committed before its line is printed, so a kill can fall between the two: the
batch is then in the outbox (it cannot have been published yet: the print follows the
commit in the same call, and publishing needs the event loop) though no line said so;
``tests.fault_rig.AgentProcess`` reads the dead life's outbox for such batches. With
``GRIDCALL_TEST_DIE_UNPRINTED=N`` the process kills itself with SIGKILL exactly there,
after the Nth batch's commit (tests/test_fault_rig.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.watch import Verdict
from gridcall.simulators.steady import SimClock, SteadySource

NOW = 1_790_000_000 * 10**9


DIE_UNPRINTED = int(os.environ.get("GRIDCALL_TEST_DIE_UNPRINTED", "0"))


class PrintingAgent(EdgeAgent):
    batches = 0

    def _queue_event(self, sensor: str, v: Verdict) -> None:
        super()._queue_event(sensor, v)  # in the outbox once this returns
        print(json.dumps({"event_seq": self._event_seq.current}), flush=True)

    def seal(self) -> None:
        pending = [[r.sensor, r.ts, r.value] for r in self._pending]
        before = self._batch_seq.current
        super().seal()
        if pending:
            self.batches += 1
            if self.batches == DIE_UNPRINTED:
                os.kill(os.getpid(), signal.SIGKILL)
            print(json.dumps({"seq": self._batch_seq.current, "after": before,
                              "readings": pending}), flush=True)


async def main(state_dir: Path, broker: str, start_at: int, total: int) -> None:
    cfg = load_config(SAMPLE_DISTRICT)
    spec = cfg.agents["edge-dongyuan"]
    clock = SimClock(NOW + start_at * 10**7)
    source = SteadySource(spec.sensors, clock, total=total, start_at=start_at, yield_every=10)
    agent = PrintingAgent(spec, source, broker_url=broker, clock=clock, state_dir=state_dir)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(json.dumps({"started": True}), flush=True)
    await agent.run(stop)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
