"""Fixtures shared by all of gridcall's tests.

Real servers (mosquitto, InfluxDB 1.6.7, VictoriaMetrics) come from tests/servers.py.
"""

from __future__ import annotations

import pytest

from config import SAMPLE_DISTRICT, ConfigSet, load_config
from tests.servers import (
    influx_auth,
    influx_database,
    influx_reader,
    influx_v1_url,
    live_servers,
    mark_server_tests,
    mqtt_auth,
    mqtt_url,
    victoria_url,
)

__all__ = ["influx_auth", "influx_database", "influx_reader", "influx_v1_url", "live_servers",
           "mqtt_auth", "mqtt_url", "victoria_url"]


@pytest.fixture(scope="session")
def cfg() -> ConfigSet:
    """The sample district (config/examples/huangpu), loaded once: frozen, so shareable."""
    return load_config(SAMPLE_DISTRICT)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_server_tests(items)
