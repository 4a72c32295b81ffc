"""``gridcall hub ingest --retire NAME`` as an operator runs it (issue 20, item 1).

tests/test_ingest_retire.py drives :class:`IngestWorker` directly; this runs the command:
a worker process joins the shared group and is stopped with Ctrl-C (a member for good),
readings are published while it is away, and ``--retire`` with its name writes what the
broker kept for it, ends its session and exits 0.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.hub.store import Store
from gridcall.wire import Reading, ReadingBatch, encode, topics
from tests.private_servers import PrivateMosquitto, publish_all
from tests.test_ingest_retire import session_present

CLI = [sys.executable, "-c", "from gridcall.cli import app; app()", "hub", "ingest"]


def district(tmp_path: Path, mqtt_url: str) -> Path:
    """The sample district with its hub on ``mqtt_url`` and its store under ``tmp_path``."""
    folder = tmp_path / "district"
    folder.mkdir()
    for f in SAMPLE_DISTRICT.glob("*.yaml"):
        (folder / f.name).write_bytes(f.read_bytes())
    hub = (folder / "hub.yaml").read_text(encoding="utf-8")
    hub = re.sub(r'broker: \{url: "[^"]*"\}', f'broker: {{url: "{mqtt_url}"}}', hub, count=1)
    hub = re.sub(r"store_path: \S+", f"store_path: {tmp_path / 'hub.sqlite'}", hub, count=1)
    if mqtt_url not in hub or str(tmp_path / "hub.sqlite") not in hub:
        raise ValueError("the sample hub.yaml changed shape: broker url or store_path not set")
    (folder / "hub.yaml").write_text(hub, encoding="utf-8")
    return folder


def batches(agent: str, sensor: str, n: int, per: int) -> list[tuple[str, bytes]]:
    now = time.time_ns()
    return [(topics.readings_topic(agent), encode(ReadingBatch(
        agent=agent, seq=seq, sent_at=now + seq * 1000,
        readings=[Reading(sensor=sensor, ts=now + seq * 1000 + j, value=float(seq))
                  for j in range(per)]))) for seq in range(1, n + 1)]


def test_retire_writes_what_the_broker_kept_and_ends_the_session(tmp_path: Path) -> None:
    with PrivateMosquitto(tmp_path / "mosquitto", persistence=False) as broker:
        config = district(tmp_path, broker.url)
        cfg = load_config(config)
        agent = next(a for a in cfg.agents.values() if a.sensors)
        client_id = f"{cfg.hub.client_id}-ingest-gone"
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([*CLI, "--config", str(config), "--worker", "gone"],
                                    stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        try:
            for _ in range(600):
                if "subscribed to" in log.read_text(encoding="utf-8") or \
                        proc.poll() is not None:
                    break
                time.sleep(0.1)
            assert "subscribed to" in log.read_text(encoding="utf-8"), log.read_text()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()

        n, per = 30, 4
        publish_all(broker.url, batches(agent.id, agent.sensors[0].id, n, per))
        done = subprocess.run([*CLI, "--config", str(config), "--retire", "gone"],
                              check=False, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"retired: {n * per} readings written" in done.stdout, done.stdout
        # asked only now: the probe connects under the worker's id and ends its session
        assert not session_present(broker.url, client_id)

        async def stored() -> int:
            async with Store(str(tmp_path / "hub.sqlite")) as store:
                return await store.count_readings()
        assert asyncio.run(stored()) == n * per


def test_retire_refuses_a_name_that_cannot_be_a_worker() -> None:
    done = subprocess.run([*CLI, "--retire", "no such/worker"], check=False,
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "--retire 'no such/worker'" in done.stdout + done.stderr
