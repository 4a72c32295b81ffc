"""kill -9 mid-poll loses no reading that was read: each poll's readings reach the
journal before the source's next poll, and the next start seals them (issue 19, item 2).

The agent runs as a real subprocess (tests/edge_poll_agent.py) and is killed with SIGKILL
while polling; readings are counted by their sequence number (their timestamp), in the
outbox the next start leaves behind, and at a real mosquitto the restarted agent publishes
to. No timing is asserted: the kill lands wherever it lands, and the check is on what the
process had announced as read.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import msgspec
import pytest

from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.outbox import Priority
from gridcall.edge_agent.sources import Sample
from gridcall.wire import ReadingBatch, topics
from gridcall.wire.broker import BrokerAddress
from tests.edge_poll_agent import BASE, NO_BROKER, PollingSource, agent_spec
from tests.polling import wait_until
from tests.private_servers import PrivateMosquitto
from tests.servers import ROOT


def run_and_kill(state: Path, polls: int, start: int = 0, *, bursts: bool = False) -> int:
    """Start the agent (its readings numbered from ``start``; ``bursts``: its source hands
    each poll over as one list), SIGKILL it once it announced ``polls`` polls; the number
    below which it announced every reading read."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.edge_poll_agent", str(state),
                             str(start), *(["bursts"] if bursts else [])],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    read, seen = start, 0
    try:
        for line in proc.stdout:
            read = max(read, json.loads(line)["read"])
            seen += 1
            if seen >= polls:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        rest = proc.communicate(timeout=60)[0]
    for line in rest.splitlines():  # printed before it died: read too
        read = max(read, json.loads(line)["read"])
    assert proc.returncode == -signal.SIGKILL
    return read


def sealed_numbers(state: Path) -> list[int]:
    """Open the agent's state as its next start does (sealing what the journal holds);
    the reading numbers of every batch in the outbox."""
    spec = agent_spec()
    agent = EdgeAgent(spec, PollingSource(spec), broker_url=NO_BROKER, state_dir=state)
    try:
        batches = [msgspec.json.decode(m.payload, type=ReadingBatch)
                   for m in agent.outbox.all() if m.priority == Priority.READINGS]
    finally:
        agent.outbox.close()
        if agent.journal is not None:
            agent.journal.close()
    return [r.ts - BASE for b in batches for r in b.readings]


@pytest.mark.parametrize("bursts", [False, True], ids=["samples", "bursts"])
@pytest.mark.parametrize("polls", [7, 60, 150])
def test_kill_9_mid_poll_loses_no_reading_that_was_read(tmp_path: Path, polls: int,
                                                        bursts: bool) -> None:
    """Both ways the agent takes a source's readings: one sample at a time (serial, local
    MQTT) and a poll's list at once (Modbus's ``bursts``)."""
    read = run_and_kill(tmp_path, polls, bursts=bursts)
    numbers = sealed_numbers(tmp_path)
    assert read > 0
    missing = set(range(read)) - set(numbers)
    assert not missing, f"{len(missing)} of {read} readings read before the kill were lost"
    assert len(numbers) == len(set(numbers)), "a reading was sealed twice"


def test_two_kills_in_a_row_seal_each_reading_once(tmp_path: Path) -> None:
    first = run_and_kill(tmp_path, 40)
    start = 10**6  # the second run's numbers, apart from the first's
    second = run_and_kill(tmp_path, 40, start)  # restarts on the first's journal and outbox
    numbers = sealed_numbers(tmp_path)
    assert first > 0
    assert second > start
    assert set(range(first)) | set(range(start, second)) <= set(numbers)
    assert len(numbers) == len(set(numbers)), "a reading was sealed twice"


class Idle:
    """A source that reads nothing more: the restarted agent only sends what it kept."""

    async def samples(self) -> AsyncIterator[Sample]:
        await asyncio.Event().wait()
        for sample in ():  # an async generator that never yields
            yield sample


async def delivered(state: Path, broker: PrivateMosquitto, read: int) -> set[int]:
    """Restart the agent on ``state`` against ``broker``; the reading numbers that reach
    the broker, once those below ``read`` all did (or the bounded wait ends)."""
    spec = agent_spec()
    agent = EdgeAgent(spec, Idle(), broker_url=broker.url, state_dir=state)
    got: set[int] = set()
    stop = asyncio.Event()
    address = BrokerAddress.parse(broker.url)
    async with aiomqtt.Client(address.host, address.port) as client:
        await client.subscribe(topics.readings_topic(spec.id), qos=1)

        async def collect() -> None:
            async for msg in client.messages:
                if isinstance(msg.payload, bytes) and msg.payload:
                    batch = msgspec.json.decode(msg.payload, type=ReadingBatch)
                    got.update(r.ts - BASE for r in batch.readings)

        collecting = asyncio.create_task(collect())
        running = asyncio.create_task(agent.run(stop))
        try:
            await wait_until(lambda: set(range(read)) <= got, polls=1200)
        finally:
            stop.set()
            await asyncio.wait([running], timeout=60)
            collecting.cancel()
            await asyncio.gather(collecting, return_exceptions=True)
    return got


@pytest.mark.parametrize("bursts", [False, True], ids=["samples", "bursts"])
def test_what_was_read_before_a_kill_9_reaches_the_broker_after_the_restart(
        tmp_path: Path, bursts: bool) -> None:
    """Issue 19, done when: 'kill ... behaviour tested ... against real mosquitto'."""
    read = run_and_kill(tmp_path / "state", 60, bursts=bursts)
    broker = PrivateMosquitto(tmp_path / "broker")
    broker.start()
    try:
        got = asyncio.run(delivered(tmp_path / "state", broker, read))
    finally:
        broker.stop()
    assert read > 0
    missing = set(range(read)) - got
    assert not missing, f"{len(missing)} of {read} readings read before the kill never arrived"
