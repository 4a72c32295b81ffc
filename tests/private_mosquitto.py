"""A mosquitto of a test's own, on a free port in a temporary folder, that the test may
stop and start (an uplink outage) without touching the shared broker others use.

Persistence is on, so a subscriber's persistent session and the QoS 1 messages queued
for it survive a stop and start, like a real broker restart; the queue is unbounded so
a long outage's backlog is not cut at mosquitto's default 1000 messages.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.servers import unused_tcp_port

MOSQUITTO = "/usr/sbin/mosquitto"


class PrivateMosquitto:
    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or unused_tcp_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            # started as root, mosquitto drops to the user 'mosquitto', which cannot write
            # the test's folder: its persistence then failed silently (no mosquitto.db),
            # and a restart lost every session and retained message
            "user root\n"
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            "log_dest none\n", encoding="ascii")

    def start(self) -> None:
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(200):  # bounded wait for the listener, not a timing assertion
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"private mosquitto on {self.port} exited: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"private mosquitto on {self.port} did not listen")

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its sessions and queued messages, then exits."""
        if self.proc is None:
            return
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc = None

    def __enter__(self) -> PrivateMosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
