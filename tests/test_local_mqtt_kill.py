"""A local-MQTT reading survives a kill -9 between the agent taking the message and
journaling it (issue 19, item 5: "no loss across an agent restart"): the source
acknowledges a message only once the agent kept what it gave, so the broker still holds
it for the persistent session and sends it to the next start. Real mosquitto (private,
persistence on); the kill is at a code point (tests/edge_mqtt_kill_agent.py), not a
moment.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiomqtt

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.edge_agent.local_mqtt import LocalMqttSource
from tests.edge_mqtt_kill_agent import settings
from tests.polling import draining, wait_until
from tests.private_servers import PrivateMosquitto
from tests.servers import ROOT


async def test_a_message_taken_but_not_yet_journaled_comes_again_after_a_kill_9(
        tmp_path: Path) -> None:
    client_id = "kill-before-journal"
    with PrivateMosquitto(tmp_path / "broker") as broker:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.edge_mqtt_kill_agent", str(tmp_path / "state"),
            broker.url, client_id, cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"subscribed\n"
            host, port = broker.url.removeprefix("mqtt://").split(":")
            async with aiomqtt.Client(host, int(port)) as device:
                await device.publish("node/sensor/lvl/state", b"21.5", qos=1)
            assert await asyncio.wait_for(proc.wait(), 60) == -signal.SIGKILL
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        # the next start: the same persistent session
        sensor = load_config(SAMPLE_DISTRICT).agents["edge-jiufo"].sensors[0].id
        source = LocalMqttSource(settings(broker.url, client_id, sensor), agent_id="again")
        async with draining(source) as got:
            assert await wait_until(lambda: len(got) == 1)
    assert [(s.sensor, s.value) for s in got] == [(sensor, 21.5)]
