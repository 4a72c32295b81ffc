"""The desk's source-neutral intake (hub/desk/intake.py, Desk.call): a call no sensor raised
opens, joins or reopens alerts through the same tier, route, deadline and grouping path as
an anomaly, on the injected clock and on both desk stores (tests/desk_stores.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gridcall.config import ConfigSet
from gridcall.hub.desk.desk import BadAction, Desk
from gridcall.hub.desk.intake import Call, NowhereKnown, distance_m, locate
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.policy import absolute
from gridcall.wire import AnomalyEvent
from tests.desk_stores import DeskStores

T0 = 1_800_000_000_000_000_000
S = 10**9
MIN = 60 * S

G1_EDGE = (113.4269, 23.098)  # dasha-dong-g1, 10 m west of the border with g2
G2_EDGE = (113.4275, 23.098)  # dasha-dong-g2, 50 m east of it
G2_FAR = (113.4310, 23.098)


def manhole(seq: int, *, grid: str = "dasha-dong-g2", point: tuple[float, float] | None = None,
            actor: str = "dasha-dong-g2", person: str = "", matter: str = "MANHOLE-DISPLACED",
            source: str = "reports") -> Call:
    return Call(source=source, seq=seq, kind="report", matter=matter, grid=grid,
                note=f"cover lifted, report {seq}", at=T0, point=point, actor=actor,
                person=person)


async def test_a_call_opens_an_alert_as_an_anomaly_of_its_matter_would(
        desk: Desk, cfg: ConfigSet) -> None:
    out = await desk.call(manhole(1, point=G2_EDGE), T0)
    assert out.alert is not None
    a = out.alert
    matter = cfg.matters.matters[[m.code for m in cfg.matters.matters].index(
        "MANHOLE-DISPLACED")]
    assert (a.tier, a.unit, a.unit_level, a.state) == ("C", "dasha-dong", "community",
                                                       "opened")
    assert a.place == ("huangpu", "dasha", "dasha-dong", "dasha-dong-g2")
    assert a.deadlines == absolute(cfg.deadlines_for(matter, "C"), T0)
    assert a.departments == ("urban_mgmt",)
    w = a.alert
    assert (w.anomaly_kind, w.sensor, w.agent, w.event_seq, w.grid, w.point) == (
        "report", "reports", "reports", 1, "dasha-dong-g2", list(G2_EDGE))
    t = out.steps[0]
    assert (t.action, t.actor, t.evidence, t.note) == (
        "open", "dasha-dong-g2", ("reports", 1), "cover lifted, report 1")
    # the site rules judge a call as they judge a sensor: an elderly home's grid is +1,
    # and the sensor's anomaly there then joins the call's alert
    site = await desk.call(manhole(2, grid="dongyuan-g1", actor="dongyuan-g1"), T0)
    assert site.alert is not None
    assert (site.alert.tier, site.alert.unit, site.alert.alert.reason) == (
        "B", "dasha", "site elderly_home +1")
    sensor = await desk.on_event(AnomalyEvent(
        agent="edge-dongyuan", seq=1, sensor="dongyuan-g1-manholetilt-1",
        kind="out_of_limits", severity="major", score=0.9, value=30.0, ts=T0), T0 + S)
    assert sensor.alert is not None
    assert (sensor.alert.alert_id, sensor.steps[0].action) == ("AL000002", "evidence")


async def test_the_same_matter_at_the_same_place_joins_and_a_repeat_writes_nothing(
        desk: Desk) -> None:
    first = await desk.call(manhole(1), T0)
    again = await desk.call(manhole(1), T0 + S)  # the same call delivered twice
    assert first.alert is not None
    assert again.alert is not None
    assert again.duplicate
    assert again.alert.alert_id == first.alert.alert_id
    same_grid = await desk.call(manhole(2, person="he-min", actor="dongyuan"), T0 + 2 * S)
    assert same_grid.alert is not None
    assert not same_grid.duplicate
    assert (same_grid.alert.alert_id, same_grid.alert.evidence) == ("AL000001", 1)
    t = same_grid.steps[0]
    assert (t.action, t.actor, t.person, t.person_unit, t.evidence) == (
        "evidence", "dongyuan", "he-min", "dongyuan", ("reports", 2))
    history = await desk.history("AL000001")
    assert [h.action for h in history] == ["open", "evidence"]
    assert desk.counters.duplicates == 1
    assert desk.counters.calls == 2


async def test_a_point_within_the_radius_joins_across_the_grid_border(desk: Desk) -> None:
    assert 40 < distance_m(G1_EDGE, G2_EDGE) < 100 < distance_m(G1_EDGE, G2_FAR)
    await desk.call(manhole(1, grid="dasha-dong-g1", point=G1_EDGE), T0)
    near = await desk.call(manhole(2, point=G2_EDGE), T0 + S)
    assert near.alert is not None
    assert near.alert.alert_id == "AL000001"
    assert near.steps[0].action == "evidence"
    far = await desk.call(manhole(3, point=G2_FAR), T0 + 2 * S)
    assert far.alert is not None
    assert far.alert.alert_id == "AL000002"
    assert far.steps[0].action == "open"
    other = await desk.call(manhole(4, grid="dasha-dong-g1", point=G1_EDGE,
                                    matter="WATER-LEAK"), T0 + 3 * S)
    assert other.alert is not None
    assert other.alert.alert_id == "AL000003"


async def test_a_call_near_a_sensor_alert_joins_it_as_evidence(desk: Desk,
                                                               cfg: ConfigSet) -> None:
    sensor = cfg.sensors["dongyuan-g1-manholetilt-1"]
    await desk.on_event(AnomalyEvent(
        agent="edge-dongyuan", seq=1, sensor=sensor.id, kind="out_of_limits",
        severity="major", score=0.9, value=30.0, ts=T0), T0)
    out = await desk.call(manhole(1, grid="dongyuan-g1", point=sensor.coordinates), T0 + S)
    assert out.alert is not None
    assert (out.alert.alert_id, out.steps[0].action) == ("AL000001", "evidence")


async def test_an_unclassified_call_is_triaged_at_its_town_then_the_district(
        desk: Desk) -> None:
    out = await desk.call(manhole(1, matter="UNCLASSIFIED", actor=""), T0)
    assert out.alert is not None
    a = out.alert
    assert (a.tier, a.unit, a.unit_level, a.last.actor) == (
        "B", "dasha", "town", "hub")
    assert a.alert.reason.endswith("unclassified: triage at the town")
    assert a.departments[0] == "huangpu"  # the district owns what nobody owns
    late = await desk.tick(a.deadlines.response)
    assert [(c.transition.action, c.alert.unit, c.alert.tier) for c in late] == [
        ("escalate", "huangpu", "A")]


async def test_a_call_after_closing_reopens_within_the_window(desk: Desk) -> None:
    opened = await desk.call(manhole(1), T0)
    assert opened.alert is not None
    await desk.act("AL000001", "false_alarm", "dasha-dong", now=T0 + MIN)
    again = await desk.call(manhole(2), T0 + 30 * MIN)
    assert again.alert is not None
    assert (again.alert.alert_id, again.steps[0].action, again.alert.state) == (
        "AL000001", "reopen", "opened")
    assert again.alert.deadlines.response > opened.alert.deadlines.response


async def test_calls_survive_a_restart_with_and_without_a_snapshot(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        await desk.call(manhole(1, point=G2_EDGE), T0)
        joined = await desk.call(manhole(2, grid="dasha-dong-g1", point=G1_EDGE), T0 + S)
        assert joined.steps[0].action == "evidence"  # 61 m from the first, one grid over
        before = desk.get("AL000001")
        assert await desk.write_snapshot() is not None
    for snapshot in (True, False):
        async with desk_stores.open() as store:
            again = Desk(cfg, Ledger(store))
            await again.start(snapshot=snapshot)
            assert (again.restored_from is not None) == snapshot
            assert again.get("AL000001") == before
            assert (await again.call(manhole(2), T0 + 2 * S)).duplicate
    async with desk_stores.open() as store:
        folded = Desk(cfg, Ledger(store))
        await folded.start()
        near = await folded.call(manhole(3, grid="dasha-dong-g1", point=G1_EDGE), T0 + 3 * S)
        assert near.alert is not None
        assert (near.alert.alert_id, near.steps[0].n, near.alert.evidence) == (
            "AL000001", 3, 2)


async def test_refusals_write_nothing(desk: Desk, cfg: ConfigSet) -> None:
    with pytest.raises(BadAction, match="not in the catalog"):
        await desk.call(manhole(1, matter="NO-SUCH"), T0)
    with pytest.raises(BadAction, match="not a grid"):
        await desk.call(replace(manhole(1), grid="dasha-dong"), T0)
    assert desk.alerts() == []


def test_locate_finds_the_grid_of_a_point_and_refuses_what_is_nowhere(
        cfg: ConfigSet) -> None:
    assert locate(cfg, point=G1_EDGE).id == "dasha-dong-g1"
    assert locate(cfg, point=G2_EDGE).id == "dasha-dong-g2"
    assert locate(cfg, grid="anle-g2").path == ("huangpu", "changzhou", "anle", "anle-g2")
    with pytest.raises(NowhereKnown, match="not a grid"):
        locate(cfg, grid="anle")
    with pytest.raises(NowhereKnown, match="not in grid"):
        locate(cfg, grid="anle-g2", point=G1_EDGE)
    with pytest.raises(NowhereKnown, match="outside every town"):
        locate(cfg, point=(100.0, 10.0))
    with pytest.raises(NowhereKnown, match="needs a grid"):
        locate(cfg)
