"""The board snapshot writes only what changed (issue 20; ``hub.boards.full_every``,
hub/board/diff.py), against a real InfluxDB 1.6.7: a full snapshot once in
``full_every`` writes, in between an open alert's point only when it has a new step, a
closing point for one that closed, a grid's risk only when it changed; and a reader
taking the latest point per alert over the boards' window (as the Grafana panels do:
the largest ``age_s``, then ``open`` = 1) sees exactly the alerts open at the desk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gridcall.config import ConfigSet
from gridcall.hub.board.service import Boards
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.roster import Roster
from gridcall.hub.store import Store
from gridcall.sinks import influx_sink
from gridcall.wire import AnomalyEvent
from tests.private_servers import PrivateInflux
from tests.servers import influxql_async

T0 = 1_800_000_000 * 10**9
S = 10**9
SENSORS = ("dongyuan-g1-pm25-1", "dongyuan-g3-pm25-1", "shenjing-g1-pm25-1")


def every(cfg: ConfigSet, n: int) -> ConfigSet:
    boards = cfg.hub.boards.model_copy(update={"full_every": n})
    return dataclasses.replace(cfg, hub=cfg.hub.model_copy(update={"boards": boards}))


async def open_alert_points(url: str, at: int) -> dict[str, int]:
    rows = await influxql_async(url, f'SELECT "open", "alert_id" FROM "open_alert" '
                                f"WHERE time = {at}", database="boards")
    return {str(r["alert_id"]): int(r["open"]) for r in rows}


async def grid_points(url: str, at: int) -> int:
    return len(await influxql_async(url, f'SELECT "risk" FROM "grid_risk" WHERE time = {at}',
                                    database="boards"))


async def test_between_full_snapshots_only_what_changed_is_written(
        cfg: ConfigSet, tmp_path: Path) -> None:
    cfg = every(cfg, 3)
    with PrivateInflux(tmp_path / "influx") as influx:
        async with Store(tmp_path / "hub.sqlite") as store, \
                influx_sink(cfg, url=influx.url, api=1, database="boards") as sink:
            desk = Desk(cfg, Ledger(store))
            await desk.start()
            ids = []
            for seq, sensor_id in enumerate(SENSORS, start=1):
                sensor = cfg.sensors[sensor_id]
                outcome = await desk.on_event(AnomalyEvent(
                    agent=sensor.agent, seq=seq, sensor=sensor.id, kind="out_of_limits",
                    severity="minor", score=0.6, value=200.0, ts=T0), T0)
                assert outcome.alert is not None
                ids.append(outcome.alert.alert_id)
            boards = Boards(cfg, desk, Roster(cfg), sink, clock=lambda: T0)
            grids = len(cfg.units_at("grid"))

            assert await boards.write(T0)  # full
            assert await open_alert_points(influx.url, T0) == dict.fromkeys(ids, 1)
            assert await grid_points(influx.url, T0) == grids

            assert await boards.write(T0 + 30 * S)  # nothing changed
            assert await open_alert_points(influx.url, T0 + 30 * S) == {}
            assert await grid_points(influx.url, T0 + 30 * S) == 0

            first, second, third = ids
            await desk.act(first, "acknowledge", desk.get(first).unit, now=T0 + 40 * S)
            await desk.act(second, "false_alarm", desk.get(second).unit, now=T0 + 40 * S)
            assert await boards.write(T0 + 60 * S)  # the changes: a step, a closing
            assert await open_alert_points(influx.url, T0 + 60 * S) == {first: 1, second: 0}
            assert await grid_points(influx.url, T0 + 60 * S) == 1  # the second's grid

            assert await boards.write(T0 + 90 * S)  # the third write: full again
            assert await open_alert_points(influx.url, T0 + 90 * S) == {first: 1, third: 1}
            assert await grid_points(influx.url, T0 + 90 * S) == grids

            # a reader over the window: the latest row per alert, then open = 1
            rows = await influxql_async(
                influx.url, 'SELECT last("open") AS "open", last("age_s") AS "age_s" FROM '
                f'"open_alert" WHERE time >= {T0} GROUP BY "alert_id", "state"',
                database="boards")
            latest: dict[str, dict[str, object]] = {}
            for row in sorted(rows, key=lambda r: float(r["age_s"])):
                latest[str(row["alert_id"])] = row
            shown = {a for a, row in latest.items() if row["open"] == 1}
            assert shown == {s.alert_id for s in desk.alerts(open_only=True)} == {first, third}
            assert boards.writer is not None
            assert boards.writer.counters.snapshots == 4


async def test_a_failed_write_makes_the_next_one_full(cfg: ConfigSet, tmp_path: Path) -> None:
    cfg = every(cfg, 10)
    with PrivateInflux(tmp_path / "influx") as influx:
        async with Store(tmp_path / "hub.sqlite") as store, \
                influx_sink(cfg, url=influx.url, api=1, database="boards") as sink:
            desk = Desk(cfg, Ledger(store))
            await desk.start()
            sensor = cfg.sensors[SENSORS[0]]
            outcome = await desk.on_event(AnomalyEvent(
                agent=sensor.agent, seq=1, sensor=sensor.id, kind="out_of_limits",
                severity="minor", score=0.6, value=200.0, ts=T0), T0)
            assert outcome.alert is not None
            boards = Boards(cfg, desk, Roster(cfg), sink, clock=lambda: T0)
            assert await boards.write(T0)
            influx.stop()
            assert not await boards.write(T0 + 30 * S)
            influx.start()
            assert await boards.write(T0 + 60 * S)
            assert await open_alert_points(influx.url, T0 + 60 * S) == {
                outcome.alert.alert_id: 1}
            assert await grid_points(influx.url, T0 + 60 * S) == len(cfg.units_at("grid"))


async def test_an_alert_closed_before_a_full_snapshot_gets_its_closing_point_there(
        cfg: ConfigSet, tmp_path: Path) -> None:
    """Its open points are still in the readers' window: without the closing point the
    panels would show it open until the window passed them."""
    cfg = every(cfg, 2)
    with PrivateInflux(tmp_path / "influx") as influx:
        async with Store(tmp_path / "hub.sqlite") as store, \
                influx_sink(cfg, url=influx.url, api=1, database="boards") as sink:
            desk = Desk(cfg, Ledger(store))
            await desk.start()
            sensor = cfg.sensors[SENSORS[0]]
            outcome = await desk.on_event(AnomalyEvent(
                agent=sensor.agent, seq=1, sensor=sensor.id, kind="out_of_limits",
                severity="minor", score=0.6, value=200.0, ts=T0), T0)
            assert outcome.alert is not None
            alert_id = outcome.alert.alert_id
            boards = Boards(cfg, desk, Roster(cfg), sink, clock=lambda: T0)
            assert await boards.write(T0)  # full
            assert await boards.write(T0 + 30 * S)  # only what changed: nothing
            assert await open_alert_points(influx.url, T0 + 30 * S) == {}
            await desk.act(alert_id, "false_alarm", outcome.alert.unit, now=T0 + 40 * S)
            assert await boards.write(T0 + 60 * S)  # full, with the closing point
            assert await open_alert_points(influx.url, T0 + 60 * S) == {alert_id: 0}
            assert await boards.write(T0 + 90 * S)  # said once
            assert await open_alert_points(influx.url, T0 + 90 * S) == {}
