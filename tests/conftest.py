"""Fixtures shared by all of gridcall's tests.

Real servers (mosquitto, InfluxDB 1.6.7, VictoriaMetrics) come from tests/servers.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from gridcall.config import SAMPLE_DISTRICT, ConfigSet, load_config
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.store import DeskStore
from tests.desk_stores import KINDS, DeskStores, opened
from tests.servers import (
    influx_auth,
    influx_database,
    influx_reader,
    influx_v1_url,
    live_servers,
    mark_server_tests,
    mqtt_auth,
    mqtt_url,
    postgres_url,
    victoria_url,
)

# gridcall's own pytest plugin (sim_district, expectations) comes through its pytest11 entry
# point once the project is installed (pip install -e .); a checkout whose install predates
# the entry point loads it here.
GRIDCALL_PLUGIN_INSTALLED = any(ep.value == "gridcall.testing.plugin"
                                for ep in entry_points(group="pytest11"))
pytest_plugins = ["pytester", "tests.hang_guard",
                  *([] if GRIDCALL_PLUGIN_INSTALLED else ["gridcall.testing.plugin"])]

SimDistrictFactory = Callable[..., Awaitable[Any]]
"""The type of the plugin's ``sim_district`` fixture (``await sim_district(source)``)."""

__all__ = ["influx_auth", "influx_database", "influx_reader", "influx_v1_url", "live_servers",
           "mqtt_auth", "mqtt_url", "postgres_url", "victoria_url"]


@pytest.fixture(params=KINDS)
def desk_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeskStores]:
    """The desk store a test opens (and reopens), once on SQLite and once on PostgreSQL
    (a database of the test's own on the test server; marked ``servers``)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with opened(request.param, tmp_path, url) as stores:
        yield stores


@pytest.fixture(scope="session")
def cfg() -> ConfigSet:
    """The sample district (config/examples/huangpu), loaded once: frozen, so shareable."""
    return load_config(SAMPLE_DISTRICT)


@pytest.fixture
async def store(desk_stores: DeskStores) -> AsyncIterator[DeskStore]:
    """A desk store of each kind ``desk_stores`` gives, open for the test."""
    async with desk_stores.open() as s:
        yield s


@pytest.fixture
async def desk(cfg: ConfigSet, store: DeskStore) -> Desk:
    """The sample district's desk over ``store``, started (a test file may define its own
    ``desk`` or ``store``: pytest takes the nearer)."""
    d = Desk(cfg, Ledger(store))
    await d.start()
    return d


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_server_tests(items)
