"""The real servers the integration tests use, started once per test session.

``scripts/servers.sh start`` installs (apt) and starts mosquitto, InfluxDB 1.6.7 and
VictoriaMetrics on loopback ports; ``scripts/test.sh`` does that and exports the URLs in
``GRIDCALL_TEST_*``. Run alone, pytest starts them itself.
"""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "mqtt": "GRIDCALL_TEST_MQTT_URL",
    "influx_v1": "GRIDCALL_TEST_INFLUX_V1_URL",
    "victoria": "GRIDCALL_TEST_VM_URL",
}


@cache
def server_urls() -> dict[str, str]:
    if all(os.environ.get(v) for v in ENV.values()):
        return {k: os.environ[v] for k, v in ENV.items()}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "servers.sh"), "start"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"could not start the test servers:\n{result.stdout}\n{result.stderr}",
                    pytrace=False)
    found = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return {k: found[v] for k, v in ENV.items()}


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    return server_urls()["mqtt"]


@pytest.fixture(scope="session")
def influx_v1_url() -> str:
    return server_urls()["influx_v1"]


@pytest.fixture(scope="session")
def victoria_url() -> str:
    return server_urls()["victoria"]
