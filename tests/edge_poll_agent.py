"""An edge agent process for the kill -9 test of unsealed readings (tests/test_edge_kill.py).

``python -m tests.edge_poll_agent STATE_DIR START [bursts]`` runs the sample district's
edge-dongyuan on a polling source: each poll waits a moment for the "device" (as a Modbus or
serial poll waits for its answer), then yields one sample per sensor (``bursts``: the whole
poll as one list, as the Modbus source hands a tick's answers over, the agent's other
consuming path). Reading number ``n`` (from
``START``) is stamped ``ts = BASE + n``, so the test counts readings by sequence. Before
each poll's samples it prints ``{"read": n}``: readings ``START .. n-1`` were handed to
the agent, one poll before.
The uplink broker is unreachable on purpose: everything stays in the agent's state folder.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from gridcall.config import SAMPLE_DISTRICT, AgentSpec, load_config
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.sources import Sample
from gridcall.simulators.steady import mid_value

AGENT = "edge-dongyuan"
BASE = 1_790_000_000 * 10**9
NO_BROKER = "mqtt://127.0.0.1:9"


class PollingSource:
    def __init__(self, spec: AgentSpec, start: int = 0) -> None:
        self.values = [(s.id, mid_value(s)) for s in spec.sensors]
        self.start = start

    async def samples(self) -> AsyncIterator[Sample]:
        n = self.start
        while True:
            await asyncio.sleep(0.002)  # the device's answer
            print(json.dumps({"read": n}), flush=True)
            for sensor, value in self.values:
                yield Sample(sensor, BASE + n, value)
                n += 1


class BurstPollingSource(PollingSource):
    """The same polls, each handed over as one list (edge_agent.sources.BurstSource)."""

    async def bursts(self) -> AsyncIterator[list[Sample]]:
        n = self.start
        while True:
            await asyncio.sleep(0.002)  # the devices' answers
            print(json.dumps({"read": n}), flush=True)
            yield [Sample(sensor, BASE + n + i, value)
                   for i, (sensor, value) in enumerate(self.values)]
            n += len(self.values)


def agent_spec() -> AgentSpec:
    return load_config(SAMPLE_DISTRICT).agents[AGENT]


async def main(state_dir: Path, start: int, bursts: bool) -> None:
    spec = agent_spec()
    source = (BurstPollingSource if bursts else PollingSource)(spec, start)
    agent = EdgeAgent(spec, source, broker_url=NO_BROKER, state_dir=state_dir)
    await agent.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:] == ["bursts"]))
