"""How the district behaves end to end, from a sensor's stream through its agent's
detector and the broker to the hub's desk, told on the simulated clock with gridcall's
own pytest plugin (sim_district, expect_*)."""

from __future__ import annotations

from gridcall.testing import District
from tests.conftest import SimDistrictFactory

NOISE = "dasha-dong-g1-noise-1"  # NOISE-NUISANCE: base tier D, 30 min to respond
SMOKE_ELDERLY = "dongyuan-g1-smoke-1"  # FIRE-SMOKE (base B) in a grid with a home for the elderly
MANHOLES = ["dasha-dong-g1-manholetilt-1", "dasha-dong-g2-manholetilt-1"]  # base tier C


async def noise_at_night(sim_district: SimDistrictFactory) -> District:
    district = await sim_district("huangpu", sensors=[NOISE])
    district.inject(NOISE, shape="step", to="1.25x", lasts=2 * 3600, at=60,
                    label="night-time construction noise")
    return district


async def test_an_unanswered_noise_complaint_climbs_the_ladder_at_its_deadlines(
        sim_district: SimDistrictFactory) -> None:
    district = await noise_at_night(sim_district)
    alert = await district.expect_alert(matter="NOISE-NUISANCE", tier="D",
                                        unit="dasha-dong-g1", within="5m")
    opened = (alert.opened_at - district.scenario.start_ns) / 1e9
    for minutes, unit in ((30, "dasha-dong"), (60, "dasha"), (90, "huangpu")):
        await district.expect_escalation(to=unit, by=opened + minutes * 60 + 1,
                                         alert=alert.alert_id)
        # the last escalation (at B and A the hub's dispatch of the plan follows it)
        escalation = [e for e in district.timeline if e.action == "escalate"][-1]
        assert (escalation.offset_s, escalation.text.endswith("response deadline passed")) == (
            opened + minutes * 60, True)
    assert district.alerts[alert.alert_id].tier == "A"


async def test_a_unit_that_answers_in_time_keeps_the_alert(
        sim_district: SimDistrictFactory) -> None:
    district = await noise_at_night(sim_district)
    alert = await district.expect_alert(matter="NOISE-NUISANCE", within="5m")
    await district.advance("20m")
    await district.act("dasha-dong-g1", "acknowledge", alert=alert.alert_id)
    await district.advance("1h")
    await district.act("dasha-dong-g1", "arrive", alert=alert.alert_id)
    await district.advance("30m")
    await district.act("dasha-dong-g1", "resolve", alert=alert.alert_id,
                       note="site manager stopped the night shift")
    await district.expect_no_alert(matter="NOISE-NUISANCE", unit="community", within="2h")
    assert district.alerts[alert.alert_id].state == "resolved"


async def test_smoke_in_a_home_for_the_elderly_goes_one_tier_higher_and_re_alarms(
        sim_district: SimDistrictFactory) -> None:
    district = await sim_district("huangpu", sensors=[SMOKE_ELDERLY])
    district.inject(SMOKE_ELDERLY, shape="step", to="4x", lasts=300, at=600)
    alert = await district.expect_alert(matter="FIRE-SMOKE", tier="A", unit="district",
                                        within="15m")
    assert "elderly_home +1" in alert.reason
    for action in ("acknowledge", "arrive", "resolve"):
        await district.act("dongyuan-g1", action, alert=alert.alert_id)
    # a grid's close of a tier-A alert is only a request (closure.approval in the sample's
    # matters.yaml): the district's own resolve approves it
    await district.act("huangpu", "resolve", alert=alert.alert_id)
    district.inject(SMOKE_ELDERLY, shape="step", to="4x", lasts=300, at=3600,
                    label="it flares up again")
    await district.advance("1h")
    steps = [e.action for e in district.timeline if e.alert_id == alert.alert_id]
    after = [s for s in steps[steps.index("resolve") + 1:] if s != "sample"]  # audit draw
    assert after[0] == "reopen", district.describe()
    assert list(district.alerts) == [alert.alert_id]  # the same alert, not a new one


async def test_a_manhole_cover_opened_in_two_grids_is_one_incident_for_the_town(
        sim_district: SimDistrictFactory) -> None:
    district = await sim_district("huangpu", sensors=MANHOLES)
    for i, sensor in enumerate(MANHOLES):
        district.inject(sensor, shape="step", to="1.3x", lasts=1800, at=300 + 120 * i)
    first = await district.expect_alert(matter="MANHOLE-DISPLACED", tier="C",
                                        unit="dasha-dong", within="10m")
    await district.expect_escalation(to="dasha", within="10m", alert=first.alert_id)
    await district.expect_alert(matter="MANHOLE-DISPLACED", tier="B", unit="town",
                                grid="dasha-dong-g2", within="5m")
    await district.expect_no_alert(matter="MANHOLE-DISPLACED", tier="A", within="10m")
