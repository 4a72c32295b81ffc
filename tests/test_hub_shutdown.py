"""Stopping the hub is bounded even when its sink is down: it stops taking messages,
tries to write what it holds for ``drain_timeout`` seconds, then reports and counts what
it did not write; with a spool (what `hub run` has when InfluxDB is configured) what it
holds goes to disk instead and nothing is lost. Against the real mosquitto, with an
InfluxDB URL nothing listens on."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aiomqtt
import pytest
import yaml

from gridcall.config import SAMPLE_DISTRICT, ConfigSet
from gridcall.hub.ingest.runner import Unwritten
from gridcall.hub.ingest.sinks import InfluxV1Sink, LineEncoder
from gridcall.hub.ingest.spool import Spool
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.wire import Reading, ReadingBatch, encode, topics
from gridcall.wire.broker import BrokerAddress
from tests.polling import wait_until
from tests.servers import unused_tcp_port

T0 = 1_795_000_000_000_000_000


def batch(agent: str, sensor: str, seq: int, n: int) -> ReadingBatch:
    return ReadingBatch(agent=agent, seq=seq, sent_at=T0,
                        readings=[Reading(sensor, T0 + seq * 100 + i, float(i)) for i in range(n)])


async def forget_session(mqtt_url: str, client_id: str) -> None:
    """Drop the persistent sessions the hub left on the shared test broker (the alert
    desk's and the readings consumer's)."""
    address = BrokerAddress.parse(mqtt_url)
    for identifier in (client_id, f"{client_id}-readings"):
        async with aiomqtt.Client(address.host, address.port, identifier=identifier,
                                  clean_session=True):
            pass


async def test_a_hub_stopped_with_its_sink_down_ends_and_counts_what_it_did_not_write(
    cfg: ConfigSet, mqtt_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sensor = next(iter(cfg.sensors.values()))
    client_id = f"test-hub-stop-{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{unused_tcp_port()}"
    async with Store(":memory:") as store, \
            InfluxV1Sink(url, database="x", encoder=LineEncoder()) as sink:
        hub = Hub(cfg, sink=sink, store=store, broker_url=mqtt_url, client_id=client_id,
                  flush_interval=0.05, drain_timeout=0.5)
        # A small buffer: the third batch waits for room that a dead sink never makes, so
        # the hub's consume loop is stuck in it when the stop comes.
        hub.ingest.max_buffered_points = 4
        stop = asyncio.Event()
        task = asyncio.create_task(hub.run(stop))
        await asyncio.wait_for(hub.subscribed.wait(), 30)
        address = BrokerAddress.parse(mqtt_url)
        async with aiomqtt.Client(address.host, address.port) as client:
            for seq in (1, 2, 3):
                await client.publish(topics.readings_topic(sensor.agent),
                                     encode(batch(sensor.agent, sensor.id, seq, 3)), qos=1)
        assert await wait_until(lambda: hub.ingest.counters.readings_received == 9)
        with caplog.at_level(logging.ERROR, logger="gridcall.hub.ingest.runner"):
            stop.set()
            await asyncio.wait_for(task, 60)  # guard against a hang, not a timing claim
    await forget_session(mqtt_url, client_id)
    assert hub.unwritten == Unwritten(batches=3, readings=9)
    c = hub.ingest.counters
    assert (c.readings_stored, c.batches_stored, c.unwritten_readings) == (0, 0, 9)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(url in m and "9 readings in 3 batches NOT written" in m for m in errors), errors


def test_hub_run_on_sigterm_with_its_sink_down_spools_what_it_holds_and_ends(
    cfg: ConfigSet, mqtt_url: str, tmp_path: Path
) -> None:
    config_dir = tmp_path / "district"
    config_dir.mkdir()
    for f in SAMPLE_DISTRICT.glob("*.yaml"):
        (config_dir / f.name).write_bytes(f.read_bytes())
    client_id = f"test-hub-sigterm-{uuid.uuid4().hex[:8]}"
    influx = f"http://127.0.0.1:{unused_tcp_port()}"
    (config_dir / "hub.yaml").write_text(yaml.safe_dump({"hub": {
        "broker": {"url": mqtt_url}, "client_id": client_id,
        "store_path": str(tmp_path / "hub.sqlite"), "spool_dir": str(tmp_path / "spool"),
        "influx": {"url": influx, "database": "gridcall"}}}), encoding="utf-8")
    sensor = next(iter(cfg.sensors.values()))
    payload = encode(batch(sensor.agent, sensor.id, 1, 5))
    # and, on the same topic before it, readings for another agent's sensor: refused
    other = next(s for s in cfg.sensors.values() if s.agent != sensor.agent)
    forged = encode(batch(sensor.agent, other.id, 2, 3))
    stderr_file = tmp_path / "stderr"
    with stderr_file.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from gridcall.cli import app; app()", "hub", "run",
             "--config", str(config_dir), "--drain-timeout", "1"],
            stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL)
    try:
        # The same (agent, seq) again and again: the hub takes it once, whenever it is
        # subscribed; its first failed write says it holds the batch.
        async def publish_until_held() -> bool:
            address = BrokerAddress.parse(mqtt_url)
            async with aiomqtt.Client(address.host, address.port) as client:
                for _ in range(300):
                    if b"sink write failed" in stderr_file.read_bytes():
                        return True
                    if proc.poll() is not None:
                        return False
                    await client.publish(topics.readings_topic(sensor.agent), forged, qos=1)
                    await client.publish(topics.readings_topic(sensor.agent), payload, qos=1)
                    await asyncio.sleep(0.1)
            return False

        held = asyncio.run(publish_until_held())
        assert held, stderr_file.read_text(encoding="utf-8")
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=120)  # guard against a hang
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    asyncio.run(forget_session(mqtt_url, client_id))
    err = stderr_file.read_text(encoding="utf-8")
    said = stdout.decode()
    # Nothing is lost: the batch waits on disk for the sink, so the stop is a clean one.
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "Traceback" not in said
    assert f"{influx}" in err
    stop_line = re.search(r"hub stopped: 0 of (\d+) readings stored, 0 rejected, "
                          r"(\d+) refused \(forged, unknown or over-long\)", said)
    assert stop_line is not None, said
    received, refused = int(stop_line[1]), int(stop_line[2])
    assert refused > 0
    assert received == 5 + refused  # the screen's refusals are said too
    assert "5 in the spool" in said
    assert Spool(tmp_path / "spool" / "readings").pending_readings() == 5
