"""``gridcall edge run`` as a technician watches it: a start line saying which agent
reads which source and publishes to which broker, and at the stop a summary of what it
read, what it sent and what it kept for the next start."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aiomqtt
import yaml

from gridcall.config import SAMPLE_DISTRICT
from gridcall.wire import topics
from gridcall.wire.broker import BrokerAddress
from tests.servers import ROOT

START = re.compile(r"agent (\S+): simulated source, (\d+) sensors → (mqtt://\S+); state in ")
STOP = re.compile(r"agent (\S+) stopped: (\d+) samples read, (\d+) readings in (\d+) batches "
                  r"and (\d+) anomaly events sent; (\d+) message\(s\) kept in the outbox")


def district(tmp_path: Path) -> tuple[Path, str, int]:
    """The sample set with one simulated agent renamed for this run (the test broker is
    shared), its state in tmp_path: (folder, agent id, its number of sensors)."""
    config = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, config)
    agents = yaml.safe_load((config / "agents.yaml").read_text(encoding="utf-8"))
    sensors = yaml.safe_load((config / "sensors.yaml").read_text(encoding="utf-8"))
    entry = next(a for a in agents["agents"] if a.get("source", "simulated") == "simulated")
    old, new = entry["id"], f"edge-run-{uuid.uuid4().hex[:8]}"
    entry["id"] = new
    agents["defaults"]["state_dir"] = str(tmp_path / "state")
    mine = [s for s in sensors["sensors"] if s["agent"] == old]
    for s in mine:
        s["agent"] = new
    for name, data in (("agents.yaml", agents), ("sensors.yaml", sensors)):
        (config / name).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                                   encoding="utf-8")
    return config, new, len(mine)


async def first_batch(mqtt_url: str, agent: str) -> None:
    """Wait until the agent's first readings reach the broker."""
    address = BrokerAddress.parse(mqtt_url)
    async with aiomqtt.Client(address.host, address.port) as client:
        await client.subscribe(topics.readings_topic(agent), qos=1)
        async for _ in client.messages:
            return


def test_edge_run_says_what_it_runs_and_what_it_did(tmp_path: Path, mqtt_url: str) -> None:
    config, agent, n_sensors = district(tmp_path)
    out = tmp_path / "agent.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from gridcall.cli import app; app()", "edge", "run",
             "--agent", agent, "--config", str(config), "--broker", mqtt_url],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "300"})
    try:
        asyncio.run(asyncio.wait_for(first_batch(mqtt_url, agent), 120))
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    said = out.read_text(errors="replace")
    assert code == 0, said
    start = START.search(said)
    assert start is not None, said
    assert start.groups() == (agent, str(n_sensors), mqtt_url.rstrip("/"))
    stop = STOP.search(said)
    assert stop is not None, said
    name, samples, readings, batches, _events, kept = stop.groups()
    assert name == agent
    assert int(readings) >= 1  # the batch seen at the broker
    assert int(samples) >= int(readings)
    assert 1 <= int(batches) <= int(readings)
    assert kept == "0"  # a clean stop with the broker up sends what it holds
