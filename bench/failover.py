"""Time for a standby hub to take the desk over after the active one is killed (kill -9).

Two ``gridcall hub run`` processes on one PostgreSQL desk store and one mosquitto
(hub/lease.py). Each round: the active hub folds a first event, the standby waits, the
active one gets SIGKILL, and an anomaly event is published at once. Printed per round,
from the kill: when the standby holds the desk's lock, and when the event published
after the kill is in the desk store (the standby started, rebuilt the desk from the
ledger, took over the MQTT session and folded what the broker queued for it).

Run (the test servers, docs/testing.md)::

    GRIDCALL_TEST_MQTT_URL=mqtt://127.0.0.1:18831 \\
    GRIDCALL_TEST_PG_URL=postgresql://gridcall:gridcall-test-pw@127.0.0.1:18543/gridcall \\
    PYTHONPATH=$PWD nice -n 10 python3 bench/failover.py --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiomqtt

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.hub.pgstore import PgStore
from gridcall.wire import encode, topics
from gridcall.wire.broker import BrokerAddress
from tests.desk_stores import pg_database
from tests.test_failover import (
    events_of,
    forget_session,
    hub_config,
    lease_sessions,
    lock_holder,
    query,
    start_hub,
)


def count(url: str) -> int:
    return int(str(query(url, "SELECT count(*) FROM events")[0][0]))


async def until(predicate: Callable[[], bool], limit: float = 120.0,
                step: float = 0.01) -> None:
    """Return once ``predicate()`` holds (polling every ``step``); raise after ``limit``."""
    t0 = time.perf_counter()
    while not predicate():
        if time.perf_counter() - t0 > limit:
            raise TimeoutError(f"not within {limit} s")
        await asyncio.sleep(step)


async def one_round(mqtt_url: str, postgres_url: str, folder: Path) -> tuple[float, float]:
    cfg = load_config(SAMPLE_DISTRICT)
    client_id = f"bench-failover-{uuid.uuid4().hex[:8]}"
    config = hub_config(folder, mqtt_url, client_id)
    events = events_of(cfg)
    address = BrokerAddress.parse(mqtt_url)
    procs: list[subprocess.Popen[bytes]] = []
    with pg_database(postgres_url, prefix="gridcall_bench") as url:
        async with PgStore(url):
            pass
        try:
            procs.append(start_hub(config, url, folder / "a.log"))
            async with aiomqtt.Client(address.host, address.port) as client:
                first = events[0]
                t0 = time.perf_counter()
                while count(url) < 1:  # the same (agent, seq) until the active hub has it
                    if time.perf_counter() - t0 > 120:
                        raise TimeoutError((folder / "a.log").read_text())
                    await client.publish(topics.events_topic(first.agent), encode(first),
                                         qos=1)
                    await asyncio.sleep(0.1)
                procs.append(start_hub(config, url, folder / "b.log"))
                await until(lambda: lease_sessions(url) == 2)
                active = lock_holder(url, client_id)
                procs[0].send_signal(signal.SIGKILL)
                killed = time.perf_counter()
                after = events[1]
                await client.publish(topics.events_topic(after.agent), encode(after), qos=1)
                await until(lambda: lock_holder(url, client_id) not in ([], active))
                lock = time.perf_counter() - killed
                await until(lambda: count(url) >= 2)
                folded = time.perf_counter() - killed
            return lock, folded
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    p.wait(60)
            await forget_session(mqtt_url, client_id)


ENVIRONMENT = ("GRIDCALL_TEST_MQTT_URL", "GRIDCALL_TEST_PG_URL")


def servers_from_environment() -> tuple[str, str]:
    """The broker's and PostgreSQL's URLs, or exit 2 naming what to set."""
    missing = [name for name in ENVIRONMENT if not os.environ.get(name)]
    if missing:
        print(f"bench/failover.py: set {' and '.join(missing)} (the test servers' URLs, "
              "docs/testing.md), e.g. GRIDCALL_TEST_MQTT_URL=mqtt://127.0.0.1:18831 "
              "GRIDCALL_TEST_PG_URL=postgresql://gridcall:gridcall-test-pw@127.0.0.1:18543/gridcall",
              file=sys.stderr)
        sys.exit(2)
    return os.environ[ENVIRONMENT[0]], os.environ[ENVIRONMENT[1]]


async def main(mqtt_url: str, postgres_url: str, rounds: int) -> None:
    locks: list[float] = []
    serving: list[float] = []
    for i in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            lock, folded = await one_round(mqtt_url, postgres_url, Path(tmp))
        locks.append(lock)
        serving.append(folded)
        print(f"round {i + 1}: lock taken {lock:.2f} s after the kill, "
              f"first event after the kill folded at {folded:.2f} s", flush=True)
    print(f"median of {rounds}: lock {statistics.median(locks):.2f} s, "
          f"desk serving {statistics.median(serving):.2f} s "
          f"(max {max(serving):.2f} s); load average {os.getloadavg()[0]:.1f}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(*servers_from_environment(), args.rounds))


if __name__ == "__main__":
    cli()
