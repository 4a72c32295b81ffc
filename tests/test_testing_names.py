"""A misspelt name in an expectation is an error, not a match of nothing: otherwise
``expect_no_alert(matter="GAS-LEEK")`` would pass on a run where a GAS-LEAK alert opens.
The names are checked against the scenario's config before any simulated time passes, so
these tests need no broker."""

from __future__ import annotations

import pytest

from gridcall.testing import District

pytestmark = pytest.mark.asyncio


@pytest.fixture
def district() -> District:
    return District("gas-leak-spreads")


async def test_a_misspelt_matter_names_the_near_miss(district: District) -> None:
    with pytest.raises(ValueError, match=r"unknown matter 'GAS-LEEK'.*did you mean GAS-LEAK"):
        await district.expect_no_alert(matter="GAS-LEEK", within="1h")


async def test_a_misspelt_unit_names_the_near_miss(district: District) -> None:
    with pytest.raises(ValueError, match=r"unknown unit 'dongyaun-g3'.*dongyuan-g3"):
        await district.expect_no_alert(unit="dongyaun-g3")


async def test_a_level_is_a_unit_name(district: District) -> None:
    with pytest.raises(ValueError, match=r"unknown unit 'towns'.*did you mean town"):
        await district.expect_alert(matter="GAS-LEAK", unit="towns", within="1h")


async def test_a_grid_must_be_a_grid(district: District) -> None:
    with pytest.raises(ValueError, match=r"unknown grid 'huangpu'"):
        await district.expect_alert(matter="GAS-LEAK", grid="huangpu", within="1h")


async def test_a_misspelt_sensor_names_the_near_miss(district: District) -> None:
    with pytest.raises(ValueError,
                       match=r"unknown sensor 'dongyuan-g3-gas1'.*dongyuan-g3-gas-1"):
        await district.expect_no_alert(sensor="dongyuan-g3-gas1", within="1h")


async def test_an_escalation_to_a_misspelt_unit_or_matter(district: District) -> None:
    with pytest.raises(ValueError, match=r"unknown unit 'distric'.*did you mean district"):
        await district.expect_escalation(to="distric", by="00:45")
    with pytest.raises(ValueError, match=r"unknown matter 'GAS_LEAK'.*GAS-LEAK"):
        await district.expect_escalation(to="A", matter="GAS_LEAK", by="00:45")
