"""The agent and the hub exit after SIGTERM whatever their sources and brokers are doing.

A process that ignores its stop is ended ``grace`` seconds after the first signal, or at
a second one, with status 1 and a log line saying so (gridcall.cli.common.until_signal).
Each wait below is bounded generously (``BOUND``) and fails as a hang, with the process's
output: no claim about how fast it stops."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridcall.config import SAMPLE_DISTRICT
from gridcall.firmware_bridge.pty import PtyPort
from tests.servers import ROOT

BOUND = 120.0
"""Seconds a signalled process may take to exit before the test calls it a hang."""
GRIDCALL = [sys.executable, "-c", "from gridcall.cli import app; app()"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def start(args: list[str], out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as sink:
        return subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=ENV, cwd=ROOT)


def wait_exit(proc: subprocess.Popen[bytes], out: Path, what: str) -> int:
    try:
        return proc.wait(timeout=BOUND)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{what} did not exit within {BOUND:.0f}s of SIGTERM (a hang); its "
                    f"output:\n{out.read_text(errors='replace')}")


def until(predicate: Any, proc: subprocess.Popen[bytes], out: Path, what: str) -> None:
    """Poll (every 0.1 s, up to BOUND) until ``predicate()``; fail if the process ended."""
    for _ in range(int(BOUND * 10)):
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"{what} ended early ({proc.returncode}):\n"
                        f"{out.read_text(errors='replace')}")
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    pytest.fail(f"{what} never got there:\n{out.read_text(errors='replace')}")


class MuteBroker:
    """A TCP port that accepts connections and never says a word (a wedged broker)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.url = f"mqtt://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted: list[socket.socket] = []

    def connections(self) -> int:
        """Connections taken so far (each waits for a CONNACK that never comes)."""
        with contextlib.suppress(BlockingIOError):
            while True:
                self.accepted.append(self.listener.accept()[0])
        return len(self.accepted)

    def close(self) -> None:
        for s in [*self.accepted, self.listener]:
            s.close()


@pytest.fixture
def mute_broker() -> Iterator[MuteBroker]:
    broker = MuteBroker()
    try:
        yield broker
    finally:
        broker.close()


def district(tmp_path: Path, broker: str) -> Path:
    target = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, target)
    agents = yaml.safe_load((target / "agents.yaml").read_text(encoding="utf-8"))
    agents["defaults"].update(broker={"url": broker}, state_dir=str(tmp_path / "state"))
    (target / "agents.yaml").write_text(yaml.safe_dump(agents, allow_unicode=True,
                                                       sort_keys=False), encoding="utf-8")
    return target


def set_modbus_port(config: Path, agent: str, port: Path) -> None:
    path = config / "agents.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for a in data["agents"]:
        if a["id"] == agent:
            a["source"]["port"] = str(port)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")


def test_an_agent_whose_modbus_slaves_never_answer_exits_after_sigterm(
        tmp_path: Path, mqtt_url: str) -> None:
    """Its poller is waiting for an answer (or opening the port again) when the stop
    comes: the agent seals, saves and exits cleanly."""
    config = district(tmp_path, mqtt_url)
    out = tmp_path / "agent.out"
    with PtyPort(tmp_path / "ttyMB0") as line:  # open, and nobody on it ever answers
        set_modbus_port(config, "edge-huangpu-cun", line.link)
        proc = start([*GRIDCALL, "edge", "run", "--agent", "edge-huangpu-cun",
                      "--config", str(config)], out)
        asked: list[bytes] = []
        until(lambda: asked.append(line.read()) or sum(map(len, asked)) >= 16, proc, out,
              "the agent's first Modbus requests")
        proc.send_signal(signal.SIGTERM)
        code = wait_exit(proc, out, "the agent")
    said = out.read_text(errors="replace")
    assert code == 0, said
    assert "exiting now" not in said


def test_an_agent_whose_local_broker_and_uplink_are_mute_exits_after_sigterm(
        tmp_path: Path, mute_broker: MuteBroker) -> None:
    """Both its MQTT connections wait for a CONNACK that never comes when the stop comes.
    Nothing was read, so nothing waits to be sent: the stop is a clean one."""
    config = district(tmp_path, mute_broker.url)
    path = config / "agents.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    agent = next(a for a in data["agents"]
                 if isinstance(a.get("source"), dict) and a["source"].get("type") == "mqtt")
    agent["source"]["broker"] = {"url": mute_broker.url}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    out = tmp_path / "agent.out"
    proc = start([*GRIDCALL, "edge", "run", "--agent", agent["id"], "--config", str(config)],
                 out)
    until(lambda: mute_broker.connections() >= 2, proc, out, "the agent's two connections")
    proc.send_signal(signal.SIGTERM)
    code = wait_exit(proc, out, "the agent")
    said = out.read_text(errors="replace")
    assert code == 0, said
    assert "exiting now" not in said


@pytest.mark.parametrize("command", ["run", "ingest"])
def test_the_hub_with_a_mute_broker_exits_after_sigterm(
        tmp_path: Path, mute_broker: MuteBroker, command: str) -> None:
    config = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, config)
    (config / "hub.yaml").write_text(yaml.safe_dump({"hub": {
        "broker": {"url": mute_broker.url}, "store_path": str(tmp_path / "hub.sqlite"),
        "spool_dir": str(tmp_path / "spool")}}), encoding="utf-8")
    out = tmp_path / "hub.out"
    proc = start([*GRIDCALL, "hub", command, "--config", str(config), "--drain-timeout",
                  "1"], out)
    until(lambda: mute_broker.connections() >= 1, proc, out, f"hub {command}'s connection")
    proc.send_signal(signal.SIGTERM)
    code = wait_exit(proc, out, f"hub {command}")
    said = out.read_text(errors="replace")
    assert code == 0, said
    assert "exiting now" not in said


STUBBORN = """
import asyncio, sys
from gridcall.cli.common import setup_logging, until_signal

async def main(stop):
    print("ready", flush=True)
    while True:  # ignores stop, and swallows every cancel
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass

setup_logging(False)
until_signal(main, grace=float(sys.argv[1]))
"""


@pytest.mark.parametrize(("grace", "signals", "says"), [
    (1.0, 1, "still not stopped 1s after SIGTERM: exiting now"),
    (3600.0, 2, "a second SIGTERM while stopping: exiting now"),
])
def test_a_command_that_does_not_stop_exits_hard_after_its_grace_or_a_second_signal(
        tmp_path: Path, grace: float, signals: int, says: str) -> None:
    out = tmp_path / "stubborn.out"
    proc = start([sys.executable, "-c", STUBBORN, str(grace)], out)
    until(lambda: "ready" in out.read_text(errors="replace"), proc, out, "the command")
    proc.send_signal(signal.SIGTERM)
    if signals == 2:
        until(lambda: "SIGTERM: stopping" in out.read_text(errors="replace"), proc, out,
              "the first signal's stop")
        proc.send_signal(signal.SIGTERM)
    code = wait_exit(proc, out, "the stubborn command")
    said = out.read_text(errors="replace")
    assert code == 1, said
    assert says in said
    assert ("Thread" in said) == (signals == 1)  # the stacks, after the grace only
