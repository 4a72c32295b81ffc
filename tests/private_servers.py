"""Private mosquitto and InfluxDB 1.6.7 instances on free loopback ports, in a folder of
their own: for tests that stop a server, and for the benchmarks, never touching the shared
test servers. Configured as ``scripts/servers.sh`` configures the shared ones, plus the
queue settings a hub's persistent sessions need (see docs/architecture.md). The one place
that starts and stops such processes (tests/private_tls.py's TLS mosquitto is a
:class:`PrivateMosquitto` with another listener).

Both are context managers, and ``stop()`` and ``start()`` may be called inside to take the
server down and bring it back on the same port and data.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from tests.servers import unused_tcp_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"


def _wait(ready: object, proc: subprocess.Popen[bytes], what: str, log: Path,
          polls: int = 600) -> None:
    assert callable(ready)
    for _ in range(polls):
        if ready():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start-up:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer within {polls * 0.05:.0f}s:\n"
                       f"{log.read_text(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PrivateMosquitto:
    """A mosquitto of a test's own on a free loopback port (or ``port``), in ``folder``,
    that a test may stop and start again on the same port and data (a broker restart, an
    uplink outage), or use as a context manager.

    - ``persistence`` (on by default, as deployed): sessions, their queued QoS 1
      messages and retained messages survive a :meth:`stop` and :meth:`start`. The queue
      is unbounded, so a long outage's backlog is not cut at mosquitto's default 1000.
    - ``max_inflight``: the broker's window of unacknowledged QoS 1 messages per 3.1.1
      client (0: unlimited). With acknowledge-after-write it bounds how much a hub holds
      in memory and how large a write can get (mosquitto's own default, 20, would cap a
      write at 1,000 readings); the ingest tests set it.

    Runs as root (``user root``): dropped to the user ``mosquitto``, it could not write
    the test's folder, and its persistence then failed silently (no mosquitto.db), so a
    restart lost every session and retained message. Errors and warnings go to
    ``mosquitto.log`` in the folder, which a failed start quotes.
    """

    scheme = "mqtt"

    def __init__(self, folder: Path, *, port: int | None = None, persistence: bool = True,
                 max_inflight: int = 0) -> None:
        self.folder = folder
        self.port = port or unused_tcp_port()
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.persistence = persistence
        self.max_inflight = max_inflight
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        self.conf.write_text(self._conf(), encoding="utf-8")

    def _listener(self) -> str:
        """The listener's lines (a subclass adds TLS)."""
        return f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"

    def _conf(self) -> str:
        keep = (f"persistence true\npersistence_location {self.folder}/\n"
                if self.persistence else "persistence false\n")
        return ("user root\n" + self._listener() + keep
                + "max_queued_messages 0\n"
                  "max_queued_bytes 0\n"
                  f"max_inflight_messages {self.max_inflight}\n"
                  "set_tcp_nodelay true\n"
                  "log_dest stderr\n"
                  "log_type error\n"
                  "log_type warning\n")

    def start(self) -> None:
        if self.proc is not None:
            raise RuntimeError(f"private mosquitto on {self.port} is already running")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT)
        _wait(self._ready, self.proc, f"private mosquitto on {self.port}", self.log)

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its sessions and queued messages, then exits."""
        _stop(self.proc)
        self.proc = None

    def _ready(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class PrivateInflux:
    """``max_body_size`` is ``[http] max-body-size``: a write over it is answered 413.
    ``https`` (a certificate and its key) serves HTTPS only (``https-enabled``)."""

    def __init__(self, folder: Path, *, max_body_size: int = 25_000_000,
                 https: tuple[Path, Path] | None = None) -> None:
        self.folder = folder
        self.max_body_size = max_body_size
        self.https = https
        self.port = unused_tcp_port()
        self.rpc_port = unused_tcp_port()
        self.url = f"{'https' if https else 'http'}://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        for sub in ("meta", "data", "wal"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        (self.folder / "influxdb.conf").write_text(f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.folder}/meta"
[data]
  dir = "{self.folder}/data"
  wal-dir = "{self.folder}/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = {self.max_body_size}
{self._https_lines()}
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
""", encoding="utf-8")
        self.start()
        return self

    def _https_lines(self) -> str:
        if self.https is None:
            return ""
        cert, key = self.https
        return (f'  https-enabled = true\n  https-certificate = "{cert}"\n'
                f'  https-private-key = "{key}"')

    def start(self) -> None:
        log = self.folder / "influxd.log"
        self.proc = subprocess.Popen([INFLUXD, "-config", str(self.folder / "influxdb.conf")],
                                     stdin=subprocess.DEVNULL, stdout=log.open("ab"),
                                     stderr=subprocess.STDOUT)
        _wait(self._ready, self.proc, "private influxd", log)

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def _ready(self) -> bool:
        try:
            # readiness only: the TLS tests check the certificate themselves
            return httpx.get(f"{self.url}/ping", timeout=1,
                             verify=False).status_code == 204
        except httpx.HTTPError:
            return False

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def publish_all(url: str, messages: Sequence[tuple[str, bytes]], *,
                client_id: str | None = None, window: int = 1000) -> None:
    """Publish with QoS 1, up to ``window`` in flight (an open-loop flood), and return once
    the broker acknowledged every message."""
    import os
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    port = int(url.rsplit(":", 1)[1])
    done = threading.Event()
    acked = [0]

    def on_publish(client: mqtt.Client, userdata: object, mid: int, rc: object,
                   props: object) -> None:
        acked[0] += 1
        if acked[0] == len(messages):
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"publisher-{os.getpid()}-{time.time_ns()}")
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1)
        if messages and not done.wait(600):
            raise RuntimeError(f"publisher: {acked[0]} of {len(messages)} acknowledged")
    finally:
        client.disconnect()
        client.loop_stop()
