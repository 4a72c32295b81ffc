"""An edge agent on a local MQTT bus that is killed with SIGKILL at the moment it would
journal the first reading a device sent it (tests/test_local_mqtt_kill.py): after it took
the message, before the reading is on disk anywhere.

``python -m tests.edge_mqtt_kill_agent STATE_DIR LOCAL_BROKER_URL CLIENT_ID`` runs the
sample's edge-jiufo with one ESPHome sensor (``node/sensor/lvl/state`` → its first
sensor) in a persistent session; it prints ``subscribed`` once it listens. The uplink is
unreachable on purpose.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.config.local_mqtt import LocalMqttSettings
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.journal import Journal
from gridcall.edge_agent.local_mqtt import LocalMqttSource
from gridcall.wire import Reading

NO_BROKER = "mqtt://127.0.0.1:9"


def settings(broker: str, client_id: str, sensor: str) -> LocalMqttSettings:
    return LocalMqttSettings.model_validate({
        "type": "mqtt", "broker": {"url": broker}, "client_id": client_id,
        "map": [{"preset": "esphome", "device": "node", "fields": {"lvl": sensor},
                 "availability": False}]})


def dying_append(self: Journal, readings: Sequence[Reading]) -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


async def main(state: Path, broker: str, client_id: str) -> None:
    spec = load_config(SAMPLE_DISTRICT).agents["edge-jiufo"]
    source_cfg = settings(broker, client_id, spec.sensors[0].id)
    spec = replace(spec, source=source_cfg)
    source = LocalMqttSource(source_cfg, agent_id=spec.id, sensors={s.id for s in spec.sensors})
    agent = EdgeAgent(spec, source, broker_url=NO_BROKER, state_dir=state)
    Journal.append = dying_append  # type: ignore[method-assign]
    running = asyncio.create_task(agent.run(asyncio.Event()))
    await source.connected.wait()
    print("subscribed", flush=True)
    await running


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
