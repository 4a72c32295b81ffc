"""How long a wrong broker password costs after it is fixed, and how hard it knocks.

An edge agent starts against the password-protected mosquitto with a wrong password,
stays refused for ``--refused`` seconds (its backoff grows meanwhile: 0.5 s doubling to
30 s), then the right password is put in the environment. Prints the refusals (connection
attempts while refused) and the seconds from the fix to the agent's first connection.

Run: ``GRIDCALL_TEST_MQTT_AUTH_URL=mqtt://user:pw@127.0.0.1:18832
python bench/refused_login.py [--refused 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import replace
from urllib.parse import urlsplit

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.config.models import BrokerSettings
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.simulators.town import SimulatedTown

USER, PASSWORD = "GRIDCALL_BENCH_USER", "GRIDCALL_BENCH_PASSWORD"


async def run(url: str, refused_s: float) -> tuple[int, float]:
    parts = urlsplit(url)
    os.environ[USER], os.environ[PASSWORD] = parts.username or "", "not-the-password"
    cfg = load_config(SAMPLE_DISTRICT)
    spec = cfg.agents["edge-dongyuan"]
    broker = BrokerSettings(url=f"mqtt://{parts.hostname}:{parts.port}", username_env=USER,
                            password_env=PASSWORD)
    spec = replace(spec, settings=spec.settings.model_copy(update={"broker": broker}))
    agent = EdgeAgent(spec, SimulatedTown(cfg, interval_scale=0.05).source(spec.id))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await asyncio.sleep(refused_s)
    refusals = agent.counters.credentials_refused
    os.environ[PASSWORD] = parts.password or ""
    fixed = time.monotonic()
    await agent.connected.wait()
    took = time.monotonic() - fixed
    stop.set()
    await task
    return refusals, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refused", type=float, default=20.0)
    args = parser.parse_args()
    url = os.environ.get("GRIDCALL_TEST_MQTT_AUTH_URL",
                         "mqtt://gridcall:gridcall-test-pw@127.0.0.1:18832")
    refusals, took = asyncio.run(run(url, args.refused))
    print(f"refused for {args.refused:g} s: {refusals} attempts; connected "
          f"{took:.2f} s after the password was fixed")


if __name__ == "__main__":
    main()
