"""Simulated district → real mosquitto (one of the test's own: on the shared broker, other
runs' districts with the sample's agent ids publish readings this hub would store too)
→ hub → real InfluxDB 1.6.7 (v1 /write) and
VictoriaMetrics (InfluxDB v2 write through influxdb-client).

Every reading the agents published is stored exactly once with its exact value and
timestamp, and every injected anomaly produces an alert on the responsible unit's topic.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gridcall.config import ConfigSet
from gridcall.config.models import PointLayout
from gridcall.hub.desk.policy import ADDRESS_DEPTH
from gridcall.hub.store import Store
from gridcall.simulators.district import InProcessDistrict
from gridcall.simulators.streams import Injection
from gridcall.sinks import influx_sink
from gridcall.wire import topics
from tests.private_servers import PrivateMosquitto

pytestmark = pytest.mark.servers


@pytest.fixture
def mqtt_url(tmp_path: Path) -> Iterator[str]:
    with PrivateMosquitto(tmp_path / "broker") as broker:
        yield broker.url

AGENTS = ["edge-dongyuan", "edge-longhu", "edge-shenjing"]


def injections_for(cfg: ConfigSet, start: float) -> tuple[Injection, ...]:
    """One limit breach per sensor kind present on the test's agents, each a ground truth."""
    out: list[Injection] = []
    kinds: set[str] = set()
    for agent in AGENTS:
        for s in cfg.agents[agent].sensors:
            if s.kind in kinds or s.limits.alarm_high is None:
                continue
            kinds.add(s.kind)
            out.append(Injection(s.id, start + 1.0 + 0.3 * len(out), 2.0, "step",
                                 s.limits.alarm_high * 1.8, f"{s.kind} breach"))
    return tuple(out)


def published(district: InProcessDistrict) -> Counter[tuple[str, str, int, float]]:
    got: Counter[tuple[str, str, int, float]] = Counter()
    for agent, source in district.sources.items():
        for s in source.samples_seen:
            if s.value is not None:
                got[(agent, s.sensor, s.ts, s.value)] += 1
    return got


def assert_alerts_reached_their_units(cfg: ConfigSet, district: InProcessDistrict,
                                      injections: tuple[Injection, ...]) -> None:
    # one open alert per (matter, grid): a second sensor of the matter joins it as evidence
    by_place = {(a.matter, a.grid): a for a in district.delivery.alerts.values()}
    for inj in injections:
        sensor = cfg.sensors[inj.sensor]
        matter = cfg.matter_for(sensor.kind, "out_of_limits")
        assert matter is not None
        alert = by_place.get((matter.code, sensor.grid))
        assert alert is not None, f"no alert for injected {inj.label} on {inj.sensor}"
        # the tier rules may raise it (a school's grid, a critical reading): it says why
        assert "ABCD".index(alert.tier) <= "ABCD".index(matter.base_tier)
        assert alert.tier == matter.base_tier or alert.reason
        address = sensor.path[: ADDRESS_DEPTH[alert.tier]]
        assert alert.unit_path == list(address)
        assert topics.alert_topic(address, alert.alert_id) in district.delivery.seen
        assert alert.alert_id in district.delivery.delivered


async def run_district(cfg: ConfigSet, mqtt_url: str, store: Store, sink: object,
                       seconds: float) -> tuple[InProcessDistrict, tuple[Injection, ...]]:
    injections = injections_for(cfg, time.time())
    district = InProcessDistrict(cfg, broker_url=mqtt_url, store=store, sink=sink,  # type: ignore[arg-type]
                                 injections=injections, agents=AGENTS, interval_scale=0.1)
    async with district:
        await asyncio.sleep(seconds)
    return district, injections


async def export_from_victoria(url: str, expected: int, since_ns: int
                               ) -> dict[tuple[str, str, int], list[float]]:
    """VictoriaMetrics acknowledges a write before the rows are searchable: poll (bounded)
    until the export holds at least what was written, then return it."""
    stored: dict[tuple[str, str, int], list[float]] = {}
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(100):
            (await http.get("/internal/force_flush")).raise_for_status()
            resp = await http.get("/api/v1/export", params={
                "match[]": f'{{__name__="reading_value",agent=~"{"|".join(AGENTS)}"}}',
                "start": str(since_ns // 10**9)})
            resp.raise_for_status()
            stored = {}
            for line in resp.text.splitlines():
                item = json.loads(line)
                m = item["metric"]
                for ts_ms, value in zip(item["timestamps"], item["values"], strict=True):
                    stored.setdefault((m["agent"], m["sensor"], ts_ms), []).append(value)
            if sum(len(v) for v in stored.values()) >= expected:
                break
            await asyncio.sleep(0.1)
    return stored


@pytest.mark.parametrize("points", ["lean", "rich"])
async def test_v1_every_reading_stored_once_and_every_anomaly_alerted(
    cfg: ConfigSet, mqtt_url: str, influx_v1_url: str, tmp_path: Path, points: PointLayout
) -> None:
    db = f"e2e_{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=influx_v1_url) as http:
        (await http.post("/query", data={"q": f'CREATE DATABASE "{db}"'})).raise_for_status()
        async with Store(tmp_path / "hub.sqlite") as store, influx_sink(
            cfg, url=influx_v1_url, api=1, database=db, points=points
        ) as sink:
            district, injections = await run_district(cfg, mqtt_url, store, sink, 6.0)
        expected = published(district)
        assert sum(expected.values()) == district.readings_published > 300
        resp = await http.get("/query", params={"db": db, "epoch": "ns",
                                                "q": "SELECT * FROM reading"})
        resp.raise_for_status()
        series = resp.json()["results"][0]["series"][0]
        cols = series["columns"]
        rows = [dict(zip(cols, r, strict=True)) for r in series["values"]]
    # (sensor, ts) is a point's key in InfluxDB: each reading is there once, by that key
    stored = Counter((r["agent"], r["sensor"], r["time"], r["value"]) for r in rows)
    assert stored == expected
    if points == "lean":
        assert sorted(cols) == ["agent", "sensor", "time", "value"]
    else:
        # every batch an agent sent is there, under its own sequence number, and no other
        batches = {agent: len({r["seq"] for r in rows if r["agent"] == agent})
                   for agent in {r["agent"] for r in rows}}
        assert batches == {a.id: a.counters.batches_sent for a in district.agents
                           if a.counters.batches_sent}
        assert all(r["grid"] == cfg.sensors[r["sensor"]].grid for r in rows)
    assert district.hub.malformed == 0
    assert_alerts_reached_their_units(cfg, district, injections)


async def test_v2_write_through_influxdb_client_stores_every_reading(
    cfg: ConfigSet, mqtt_url: str, victoria_url: str, tmp_path: Path
) -> None:
    bucket = f"e2e_{uuid.uuid4().hex[:8]}"
    async with Store(tmp_path / "hub.sqlite") as store, influx_sink(
        cfg, url=victoria_url, api=2, database=bucket, token="unused-by-victoriametrics"
    ) as sink:
        district, injections = await run_district(cfg, mqtt_url, store, sink, 4.0)
    expected = published(district)
    stored = await export_from_victoria(victoria_url, len(expected),
                                        min(ts for _, _, ts, _ in expected))
    # VictoriaMetrics keeps milliseconds and 12 significant digits: compare at that
    # precision. Two readings of a sensor can fall into one millisecond (a simulated source
    # catching up after the event loop stalled), so each millisecond's values are compared
    # as a sorted list.
    per_ms: dict[tuple[str, str, int], list[float]] = {}
    for (agent, sensor, ts, value), n in expected.items():
        per_ms.setdefault((agent, sensor, ts // 1_000_000), []).extend([value] * n)
    missing = []
    for key, values in per_ms.items():
        got = sorted(stored.get(key, []))
        if len(got) != len(values) or not all(
                math.isclose(g, v, rel_tol=1e-9, abs_tol=1e-9)
                for g, v in zip(got, sorted(values), strict=True)):
            missing.append((key, sorted(values), got))
    assert missing == [], f"{len(missing)} of {len(per_ms)} readings not stored once"
    assert_alerts_reached_their_units(cfg, district, injections)
