"""gridcall's pytest plugin (entry point ``pytest11``: ``gridcall = gridcall.testing.plugin``).

Fixtures:

- ``sim_district``: a factory. ``district = await sim_district(source, **options)`` starts
  a :class:`gridcall.testing.District` (embedded broker, hub and agents on the simulated
  clock) from a scenario file or name, a :class:`~gridcall.simulators.scenario.Scenario`, a config
  folder or a :class:`~config.ConfigSet`; options as :class:`gridcall.simulators.sim.SimDistrict`
  (``sensors``, ``seed``, ``broker_url``, ``warmup_s``...). Every district it started is
  stopped when the test ends.

The fixture is async (pytest-asyncio, which gridcall's own tests use; the ``testing``
extra installs it). Imports of the simulator happen when a test asks for the fixture, so
a pytest session that does not use it pays nothing for the plugin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from gridcall.testing import District

Factory = Callable[..., Awaitable["District"]]


async def _districts() -> AsyncIterator[Factory]:
    from contextlib import AsyncExitStack

    from gridcall.testing import District

    async with AsyncExitStack() as stack:
        async def start(source: Any, **options: Any) -> District:
            return await stack.enter_async_context(District(source, **options))

        yield start


if find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    sim_district = pytest_asyncio.fixture(_districts, name="sim_district")
    """``district = await sim_district("my-scenario.yaml")``: see the module docstring."""
else:  # pragma: no cover - the plugin must not break a pytest session without it
    @pytest.fixture(name="sim_district")
    def _sim_district_needs_pytest_asyncio() -> Factory:
        pytest.fail("gridcall's sim_district fixture is async: install pytest-asyncio "
                    "(pip install 'gridcall[testing]')")
