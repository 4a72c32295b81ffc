"""The pytest plugin as a user meets it: a test file in a fresh project (pytest-asyncio
in its default strict mode), run by pytest in a subprocess."""

from __future__ import annotations

import pytest

from tests.conftest import GRIDCALL_PLUGIN_INSTALLED

USER_TESTS = '''
import pytest

pytestmark = pytest.mark.asyncio


async def test_the_leak_is_raised_at_tier_a(sim_district):
    district = await sim_district("gas-leak-spreads")
    alert = await district.expect_alert(matter="GAS-LEAK", tier="A", unit="district",
                                        within="20m")
    assert alert.grid == "dongyuan-g3"
    assert district.elapsed_s < 20 * 60  # time stopped where the alert came


async def test_a_wrong_expectation_shows_the_timeline(sim_district):
    district = await sim_district("gas-leak-spreads")
    await district.expect_alert(matter="GAS-LEAK", tier="D", within="25m")
'''


def run_user_tests(pytester: pytest.Pytester) -> pytest.RunResult:
    pytester.makepyfile(test_user=USER_TESTS)
    plugin = [] if GRIDCALL_PLUGIN_INSTALLED else ["-p", "gridcall.testing.plugin"]
    return pytester.runpytest_subprocess(*plugin, "-p", "no:cacheprovider")


def test_a_failed_expectation_explains_what_happened_instead(
        pytester: pytest.Pytester) -> None:
    result = run_user_tests(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*ExpectationFailed: expected an alert matter=GAS-LEAK tier=D between +00:00:00 "
        "and +00:25:00, but none came.",
        "*What happened instead (sim time +00:25:00):",
        "*alerts (2):",
        # at tier A the gas plan's departments were dispatched by the hub at once
        "*AL000001 GAS-LEAK tier A dispatched at huangpu (district), grid dongyuan-g3*",
        "*timeline (*",
        "*+00:10:00  anomaly injected on dongyuan-g3-gas-1: gas leak in a restaurant kitchen*",
        # seconds into the ramp, as the detector setting decides; its deadline 5 min later
        "*+00:10:??  AL000001 GAS-LEAK opened, tier A to district huangpu*",
        "*+00:15:??  AL000001 GAS-LEAK response deadline passed at tier A*",
    ])


def test_loading_the_plugin_does_not_load_the_simulator() -> None:
    """The entry point loads the plugin into every pytest session of a project that
    installed gridcall; the agents, hub and detectors wait until a test asks."""
    import subprocess
    import sys

    code = ("import sys, gridcall.testing.plugin; "
            "print(sorted(m for m in ('gridcall.simulators.sim', 'gridcall.hub.service', "
            "'gridcall.edge_agent.agent') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
