"""The fault matrix (issue 16, item 6): each fault strikes in the middle of a stream, and the
store is then counted by (sensor, ts): 0 readings lost, 0 duplicated, every event stored
and every alert retained on its unit's topic (tests/fault_rig.py says how it counts).

Real servers, private to the test (a restartable mosquitto, a stoppable InfluxDB 1.6.7),
and ``gridcall hub run`` as a real process. The durations are shortened for CI, and each
test says how: the real ones (InfluxDB down 60 s, the uplink down 10 minutes at 100
readings/s in real time) are run by ``bench/faults.py``, which prints the figures.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fault_rig import AgentProcess, Count, Rig, finish, recording_agent
from tests.polling import wait_until

pytestmark = pytest.mark.servers


def assert_clean(result: Count) -> None:
    assert result.sealed_readings > 0
    assert (result.lost, result.duplicated, result.misplaced) == (0, 0, 0), result
    assert result.stored_readings == result.sealed_readings, result
    assert result.events_made > 0
    assert result.events_stored == result.events_made, result
    assert result.alerts > 0
    assert result.alerts_on_own_topic == result.alerts, result


async def stream_with(rig: Rig, tmp_path: Path, fault: str, *, total: int = 3000) -> Count:
    """Stream ``total`` readings (100/s on the agent's simulated clock, so they go out as
    fast as the broker takes them); strike ``fault`` once 10 batches went out, lift it,
    let everything drain, count."""
    agent, source, _clock = recording_agent(rig.cfg, rig.uplink_url, tmp_path / "state",
                                            total=total)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    for _ in range(2400):  # bounded: the stream is under way
        if agent.counters.batches_sent >= 10:
            break
        await asyncio.sleep(0.05)
    await rig.strike(fault)
    assert await finish(agent, stop, running, source), rig.hub_log()
    assert await rig.wait_stored(agent.sealed), rig.hub_log()
    return await rig.count(agent.sealed, agent.events)


@pytest.mark.parametrize("fault", ["broker_restart", "hub_kill9", "influx_down"])
async def test_a_fault_mid_stream_loses_and_duplicates_nothing(tmp_path: Path,
                                                                 fault: str) -> None:
    async with Rig(tmp_path / "rig") as rig:
        result = await stream_with(rig, tmp_path, fault)
    assert_clean(result)


async def test_ten_minutes_without_uplink_at_100_readings_a_second_lose_and_duplicate_nothing(
    tmp_path: Path
) -> None:
    """The uplink (a relay between agent and broker) is cut mid-stream, after 1,000
    readings went through; while it is down the agent takes 60,000 readings at 100/s on
    its simulated clock (ten minutes of readings, made in seconds) and keeps them in its
    outbox; then the uplink is restored and everything is counted in the store. The real
    ten minutes: bench/faults.py --real."""
    before, during = 1000, 100 * 600
    async with Rig(tmp_path / "rig") as rig:
        agent, source, clock = recording_agent(rig.cfg, rig.uplink_url, tmp_path / "state",
                                               total=before + during, pause_at=before)
        stop = asyncio.Event()
        running = asyncio.create_task(agent.run(stop))
        assert await wait_until(lambda: source.paused.is_set() and agent.outbox_depth == 0,
                                2400), rig.hub_log()
        assert rig.uplink is not None
        rig.uplink.cut()
        started = clock()  # the outage's first reading is stamped now
        source.resume.set()
        assert await wait_until(lambda: source.done.is_set() and not agent._pending, 6000)
        assert agent.outbox.readings == during  # all of the outage's readings, held
        # its first to its last reading: ten minutes on the agent's clock, 10 ms apart
        assert clock() - started == (during - 1) * 10**7
        rig.uplink.restore()
        assert await finish(agent, stop, running, source), rig.hub_log()
        assert await rig.wait_stored(agent.sealed), rig.hub_log()
        result = await rig.count(agent.sealed, agent.events)
    assert result.sealed_readings == before + during
    assert_clean(result)


async def test_an_edge_agent_killed_with_9_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path
) -> None:
    """The agent runs as a process (tests/edge_crash_agent.py) through the uplink relay
    and is killed with SIGKILL after it sealed 60 batches; a second start on the same
    state drains what the first left and streams on. A kill between a batch's commit and
    the line announcing it leaves a batch only the outbox knows of: the rig reads it from
    there (tests/test_fault_rig.py)."""
    async with Rig(tmp_path / "rig") as rig:
        state = tmp_path / "state"
        first = AgentProcess(state, rig.uplink_url, start_at=0, total=10_000_000)
        assert await first.read_until(60), rig.hub_log()
        await first.kill9()
        second = AgentProcess(state, rig.uplink_url, start_at=20_000_000, total=2000)
        assert await second.read_readings(2000), rig.hub_log()  # it made all it will
        sealed = first.sealed | second.sealed  # each life numbers its own batches
        assert await rig.wait_stored(sealed), rig.hub_log()
        assert await second.stop() == 0
        result = await rig.count(sealed, first.events | second.events)
    assert first.proc.returncode == -9
    assert_clean(result)
