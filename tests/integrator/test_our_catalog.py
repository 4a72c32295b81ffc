from pathlib import Path

OUR_DISTRICT = Path(__file__).parent / "district"  # our config set, with our matters.yaml
KITCHEN = "dongyuan-g3-gas-1"


async def test_a_kitchen_gas_alarm_goes_up_when_nobody_answers(sim_district):
    district = await sim_district(OUR_DISTRICT, sensors=[KITCHEN])
    district.inject(KITCHEN, shape="ramp", to="2x", over=300, lasts=3600, at=60)
    alert = await district.expect_alert(matter="KITCHEN-GAS", tier="C", unit="dongyuan",
                                        within="10m")
    await district.expect_escalation(to="dasha", within="11m", alert=alert.alert_id)
    await district.expect_escalation(to="A", within="16m", alert=alert.alert_id)


async def test_an_alarm_answered_in_time_stays_with_the_community(sim_district):
    district = await sim_district(OUR_DISTRICT, sensors=[KITCHEN])
    district.inject(KITCHEN, shape="ramp", to="2x", over=300, lasts=3600, at=60)
    alert = await district.expect_alert(matter="KITCHEN-GAS", within="10m")
    await district.act("dongyuan", "acknowledge", alert=alert.alert_id)
    await district.advance("20m")
    await district.act("dongyuan", "arrive", alert=alert.alert_id)
    await district.expect_no_alert(matter="KITCHEN-GAS", unit="town", within="1h")
