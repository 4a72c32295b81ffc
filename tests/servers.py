"""The real servers the integration tests use, and small helpers to use them.

``scripts/servers.sh start`` installs (apt) and starts mosquitto, InfluxDB 1.6.7 and
VictoriaMetrics on loopback ports; ``scripts/test.sh`` does that and exports the URLs as
``GRIDCALL_TEST_MQTT_URL``, ``GRIDCALL_TEST_INFLUX_V1_URL`` and ``GRIDCALL_TEST_VM_URL``,
plus the servers that demand credentials (user and password in the URL):
``GRIDCALL_TEST_MQTT_AUTH_URL`` (a mosquitto listener), ``GRIDCALL_TEST_INFLUX_AUTH_URL``
(an InfluxDB with auth-enabled, admin user) and ``GRIDCALL_TEST_INFLUX_READER_URL`` (the
same InfluxDB, a user without privileges). URLs given in the environment are used as they
are (any broker or server will do); if any is missing pytest runs ``servers.sh start``
itself, once per session.

Fixtures (imported into ``tests/conftest.py``): ``live_servers`` (all the URLs),
``mqtt_url``, ``influx_v1_url``, ``victoria_url``, ``mqtt_auth``, ``influx_auth``,
``influx_reader`` (session scope; the last three are :class:`Login`), and
``influx_database`` (a fresh InfluxDB v1 database per test, dropped afterwards). A test
that uses any of them is marked ``servers`` automatically, so ``-m "not servers"``
leaves it out.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVERS_SH = ROOT / "scripts" / "servers.sh"
ENV = {
    "mqtt": "GRIDCALL_TEST_MQTT_URL",
    "influx_v1": "GRIDCALL_TEST_INFLUX_V1_URL",
    "victoria": "GRIDCALL_TEST_VM_URL",
    "mqtt_auth": "GRIDCALL_TEST_MQTT_AUTH_URL",
    "influx_auth": "GRIDCALL_TEST_INFLUX_AUTH_URL",
    "influx_reader": "GRIDCALL_TEST_INFLUX_READER_URL",
    "postgres": "GRIDCALL_TEST_PG_URL",
}
SERVER_FIXTURES = frozenset({"live_servers", "mqtt_url", "influx_v1_url", "victoria_url",
                             "influx_database", "mqtt_auth", "influx_auth", "influx_reader",
                             "postgres_url"})


@dataclass(frozen=True)
class ServerURLs:
    mqtt: str
    """``mqtt://host:port`` of a broker that allows anonymous clients."""
    influx_v1: str
    """``http://host:port`` of an InfluxDB 1.x (``/write``, ``/query``), auth off."""
    victoria: str
    """``http://host:port`` of a VictoriaMetrics single node."""
    mqtt_auth: str
    """``mqtt://user:password@host:port`` of a broker that demands them."""
    influx_auth: str
    """``http://user:password@host:port`` of an InfluxDB 1.x with auth on; an admin."""
    influx_reader: str
    """The same InfluxDB as ``influx_auth``, as a user with no privileges."""
    postgres: str
    """``postgresql://user:password@host:port/db`` of a PostgreSQL; the user owns the
    database and may create others."""


@dataclass(frozen=True)
class Login:
    """A server URL without credentials, and the credentials it takes."""

    url: str
    username: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> Login:
        parts = urlsplit(url)
        if parts.username is None or parts.password is None:
            raise ValueError(f"{parts.scheme}://{parts.hostname}:{parts.port}: the test URL "
                             "carries no user:password")
        return cls(f"{parts.scheme}://{parts.hostname}:{parts.port}",
                   unquote(parts.username), unquote(parts.password))


class _Started:
    """Runs ``servers.sh start`` at most once per process, and remembers the outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._urls: dict[str, str] | None = None
        self._error: str | None = None

    def urls(self) -> dict[str, str]:
        with self._lock:
            if self._urls is None and self._error is None:
                self._start()
            if self._error is not None:
                pytest.fail(self._error, pytrace=False)
            assert self._urls is not None
            return self._urls

    def _start(self) -> None:
        cmd = ["bash", str(SERVERS_SH), "start"]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                    timeout=900, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            self._error = f"{' '.join(cmd)} did not finish within 900 s"
            return
        if result.returncode != 0:
            self._error = (f"could not start the test servers ({' '.join(cmd)} exited "
                           f"{result.returncode}):\n{result.stdout}{result.stderr}")
            return
        found = dict(line.split("=", 1) for line in result.stdout.splitlines()
                     if line.startswith("GRIDCALL_TEST_"))
        missing = [v for v in ENV.values() if v not in found]
        if missing:
            self._error = f"servers.sh start printed no {', '.join(missing)}:\n{result.stdout}"
            return
        self._urls = {k: found[v] for k, v in ENV.items()}


_started = _Started()


def server_urls() -> ServerURLs:
    """The servers' URLs: from the environment, else from ``servers.sh start``."""
    urls = {k: os.environ.get(v, "").strip() for k, v in ENV.items()}
    if not all(urls.values()):
        started = _started.urls()
        urls = {k: v or started[k] for k, v in urls.items()}
    return ServerURLs(**urls)


@pytest.fixture(scope="session")
def live_servers() -> ServerURLs:
    return server_urls()


@pytest.fixture(scope="session")
def postgres_url(live_servers: ServerURLs) -> str:
    return live_servers.postgres


@pytest.fixture(scope="session")
def mqtt_url(live_servers: ServerURLs) -> str:
    return live_servers.mqtt


@pytest.fixture(scope="session")
def influx_v1_url(live_servers: ServerURLs) -> str:
    return live_servers.influx_v1


@pytest.fixture(scope="session")
def victoria_url(live_servers: ServerURLs) -> str:
    return live_servers.victoria


@pytest.fixture(scope="session")
def mqtt_auth(live_servers: ServerURLs) -> Login:
    return Login.from_url(live_servers.mqtt_auth)


@pytest.fixture(scope="session")
def influx_auth(live_servers: ServerURLs) -> Login:
    return Login.from_url(live_servers.influx_auth)


@pytest.fixture(scope="session")
def influx_reader(live_servers: ServerURLs) -> Login:
    return Login.from_url(live_servers.influx_reader)


def mark_server_tests(items: list[pytest.Item]) -> None:
    """Add the ``servers`` marker to every test that uses a server fixture, or runs on the
    PostgreSQL desk store (``desk_stores``, tests/desk_stores.py)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pg = callspec is not None and callspec.params.get("desk_stores") == "postgresql"
        if on_pg or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


# --- InfluxDB v1 ------------------------------------------------------------------------

class InfluxQLError(AssertionError):
    """A query that InfluxDB refused; the message has the query and InfluxDB's reason."""


def quote_ident(name: str) -> str:
    """``name`` as an InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unique_name(prefix: str = "t") -> str:
    """A database/measurement name no other test uses: ``prefix_<12 hex>``."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", prefix)[:40] or "t"
    return f"{clean}_{uuid.uuid4().hex[:12]}"


def _rows(query: str, answer: dict[str, Any]) -> list[dict[str, Any]]:
    if "error" in answer:
        raise InfluxQLError(f"{query!r}: {answer['error']}")
    rows: list[dict[str, Any]] = []
    for result in answer.get("results", []):
        if "error" in result:
            raise InfluxQLError(f"{query!r}: {result['error']}")
        for series in result.get("series", []):
            extra = {"_measurement": series.get("name"), **series.get("tags", {})}
            rows.extend({**extra, **dict(zip(series["columns"], values, strict=True))}
                        for values in series.get("values", []))
    return rows


def influxql(url: str, query: str, *, database: str | None = None) -> list[dict[str, Any]]:
    """Run an InfluxQL statement (POST ``/query``, ``epoch=ns``) and return its rows.

    Each row is ``{column: value}`` plus ``_measurement`` and the series' tags (for
    ``GROUP BY``); times are integer nanoseconds. Raises :class:`InfluxQLError` if
    InfluxDB reports an error.
    """
    params = {"epoch": "ns", **({"db": database} if database else {})}
    with httpx.Client(base_url=url, timeout=30) as http:
        resp = http.post("/query", params=params, data={"q": query})
    if resp.status_code != 200:
        raise InfluxQLError(f"{query!r}: HTTP {resp.status_code}: {resp.text[:500]}")
    return _rows(query, resp.json())


async def influxql_async(url: str, query: str, *,
                         database: str | None = None) -> list[dict[str, Any]]:
    """:func:`influxql` for async tests."""
    params = {"epoch": "ns", **({"db": database} if database else {})}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        resp = await http.post("/query", params=params, data={"q": query})
    if resp.status_code != 200:
        raise InfluxQLError(f"{query!r}: HTTP {resp.status_code}: {resp.text[:500]}")
    return _rows(query, resp.json())


def create_influx_database(url: str, prefix: str = "t") -> str:
    """Create a database with a fresh unique name on an InfluxDB v1 and return the name."""
    name = unique_name(prefix)
    influxql(url, f"CREATE DATABASE {quote_ident(name)}")
    return name


def drop_influx_database(url: str, name: str) -> None:
    influxql(url, f"DROP DATABASE {quote_ident(name)}")


@pytest.fixture
async def influx_database(influx_v1_url: str, request: pytest.FixtureRequest
                          ) -> AsyncIterator[str]:
    """A fresh, empty InfluxDB v1 database for this test (named after it), then dropped."""
    name = unique_name(request.node.name[:30])
    await influxql_async(influx_v1_url, f"CREATE DATABASE {quote_ident(name)}")
    yield name
    await influxql_async(influx_v1_url, f"DROP DATABASE {quote_ident(name)}")


# --- VictoriaMetrics --------------------------------------------------------------------

async def victoria_export(url: str, match: str) -> list[dict[str, Any]]:
    """Every series matching the selector ``match``, after a flush, as VictoriaMetrics'
    ``/api/v1/export`` gives them: ``{"metric": {labels}, "values": [...],
    "timestamps": [ms, ...]}``."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        (await http.get("/internal/force_flush")).raise_for_status()
        resp = await http.post("/api/v1/export", data={"match[]": match, "start": "0"})
        resp.raise_for_status()
    return [json.loads(line) for line in resp.text.splitlines() if line.strip()]


# --- misc -------------------------------------------------------------------------------

def unused_tcp_port() -> int:
    """A loopback port nothing listens on (free when this returns)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
