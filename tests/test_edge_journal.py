"""The unsealed readings' journal (edge_agent/journal.py): what it gives back at a start."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec

from gridcall.config import ConfigSet
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.journal import Journal
from gridcall.edge_agent.outbox import Priority
from gridcall.edge_agent.sources import BurstSource, Sample
from gridcall.wire import Reading, ReadingBatch

READINGS = [Reading("s1", 1_790_000_000 * 10**9 + i, float(i)) for i in range(6)]


def test_readings_appended_and_not_sealed_come_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "a.journal")
    assert journal.recover(0) == []
    journal.append(READINGS[:3])
    journal.append(READINGS[3:])
    journal.close()  # as a kill would leave it
    again = Journal(tmp_path / "a.journal")
    assert again.recover(0) == READINGS
    again.close()  # killed before they were sealed: the journal still has them
    third = Journal(tmp_path / "a.journal")
    assert third.recover(0) == READINGS
    sealed = third.generation  # the outbox stored the batch sealing them
    third.sealed()
    third.close()
    assert Journal(tmp_path / "a.journal").recover(sealed) == []


def test_a_sealed_generation_is_not_given_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "a.journal")
    journal.recover(0)
    journal.append(READINGS)
    sealed = journal.generation  # the outbox stored a batch sealing this generation
    journal.close()  # killed before the journal's own reset
    again = Journal(tmp_path / "a.journal")
    assert again.recover(sealed) == []
    assert again.generation > sealed


def test_a_torn_last_frame_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "a.journal"
    journal = Journal(path)
    journal.recover(0)
    journal.append(READINGS[:2])
    journal.append(READINGS[2:])
    journal.close()
    path.write_bytes(path.read_bytes()[:-3])  # killed in the middle of the second write
    assert Journal(path).recover(0) == READINGS[:2]


def test_a_file_that_is_no_journal_gives_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.journal"
    path.write_bytes(b"something else entirely")
    journal = Journal(path)
    assert journal.recover(0) == []
    journal.append(READINGS)
    journal.close()
    assert Journal(path).recover(0) == READINGS


class TickSource:
    """A source whose devices all answer in one tick (a Modbus TCP poll round): one burst
    of ``n`` readings, then it waits for its next poll, which never comes."""

    def __init__(self, sensor: str, n: int, value: float) -> None:
        self.burst = [Sample(sensor, 1_790_000_000 * 10**9 + i, value) for i in range(n)]
        self.waiting = asyncio.Event()

    async def samples(self) -> AsyncIterator[Sample]:
        for sample in self.burst:
            yield sample
        self.waiting.set()
        await asyncio.Event().wait()

    async def bursts(self) -> AsyncIterator[list[Sample]]:
        yield self.burst
        self.waiting.set()
        await asyncio.Event().wait()


async def test_one_tick_s_batches_are_committed_and_the_rest_journaled_before_the_next_poll(
    cfg: ConfigSet, tmp_path: Path
) -> None:
    """Several batches sealed by one burst share one outbox commit (Outbox.group); when
    the source next waits, each reading of the burst is either in a committed batch or in
    the journal (which then holds only the unsealed rest): a kill there loses none and
    seals none twice."""
    spec = next(iter(cfg.agents.values()))
    sensor = spec.sensors[0]
    limits = sensor.limits
    low = limits.physical_min if limits.physical_min is not None else 0.0
    high = limits.physical_max if limits.physical_max is not None else low + 2.0
    per_batch = spec.settings.batch_max_readings
    source = TickSource(sensor.id, 2 * per_batch + 7, (low + high) / 2)
    assert isinstance(source, BurstSource)
    agent = EdgeAgent(spec, source, broker_url="mqtt://127.0.0.1:1",  # nobody: kept
                      state_dir=tmp_path)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop, drain_timeout=0.5))
    await asyncio.wait_for(source.waiting.wait(), 30)
    await asyncio.sleep(0)  # the consumer's end of the burst
    db = sqlite3.connect(tmp_path / f"{spec.id}.outbox.sqlite")  # what a restart finds
    batches = [msgspec.json.decode(p, type=ReadingBatch) for (p,) in db.execute(
        "SELECT payload FROM messages WHERE priority = ? ORDER BY id",
        (int(Priority.READINGS),))]
    (sealed,) = db.execute("SELECT coalesce(max(sealed), 0) FROM journal").fetchone()
    db.close()
    rest = Journal(tmp_path / f"{spec.id}.journal").recover(sealed)
    in_batches = [r for b in batches for r in b.readings]
    assert [len(b.readings) for b in batches] == [per_batch, per_batch]
    assert [r.ts for r in in_batches + rest] == [s.ts for s in source.burst]
    stop.set()
    await asyncio.wait_for(running, 60)
