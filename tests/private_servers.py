"""Private mosquitto and InfluxDB 1.6.7 instances on free loopback ports, in a folder of
their own: for tests that stop a server, and for the ingest benchmark, never touching the
shared test servers. Configured as ``scripts/servers.sh`` configures the shared ones, plus
the queue settings a hub's persistent sessions need (see docs/architecture.md).

Both are context managers; :meth:`PrivateInflux.stop` and :meth:`PrivateInflux.start`
may be called inside to take InfluxDB down and bring it back on the same port and data.
"""

from __future__ import annotations

import shutil
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
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PrivateMosquitto:
    """``max_inflight_messages`` is the broker's window of unacknowledged QoS 1 messages
    per client: with acknowledge-after-write it bounds how much a hub holds in memory and
    how large a write can get, so the default (20) would cap a write at 1,000 readings."""

    def __init__(self, folder: Path, *, max_inflight: int = 1000) -> None:
        self.folder = folder
        self.port = unused_tcp_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.max_inflight = max_inflight
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "mosquitto.conf"
        conf.write_text(f"""user root
listener {self.port} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages {self.max_inflight}
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
""", encoding="utf-8")
        log = self.folder / "mosquitto.log"
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT)
        _wait(self._ready, self.proc, "private mosquitto", log)
        return self

    def _ready(self) -> bool:
        import socket
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        _stop(self.proc)


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
