"""Build the hub's reading sink from config or command-line options."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from gridcall.config import ConfigSet
from gridcall.config.models import PointLayout
from gridcall.hub.ingest.sinks import InfluxV1Sink, InfluxV2Sink, LineEncoder, ReadingSink
from gridcall.hub.store import Store
from gridcall.wire.https import HttpsSettings


def encoder_for(config: ConfigSet, measurement: str = "reading",
                points: PointLayout = "lean") -> LineEncoder:
    """The stored reading's layout (hub.yaml ``influx.points``): ``lean`` tags it with its
    agent and sensor only (the boards find a sensor's place from the config's snapshot
    measurements); ``rich`` adds its kind and place on the ladder as tags and the batch's
    ``seq`` as a field, as every point was written before issue 20."""
    if points == "lean":
        return LineEncoder(measurement=measurement)
    tags = {s.id: {"kind": s.kind, "town": s.path[1], "community": s.path[2], "grid": s.grid}
            for s in config.sensors.values()}
    return LineEncoder(tags, measurement=measurement, seq_field=True)


def influx_sink(config: ConfigSet, *, url: str, api: int = 1, database: str = "gridcall",
                retention_policy: str | None = None, username: str | None = None,
                password: str | None = None, org: str = "gridcall",
                token: str | None = None, measurement: str = "reading",
                https: HttpsSettings | None = None,
                points: PointLayout | None = None) -> InfluxV1Sink | InfluxV2Sink:
    """A sink for InfluxDB; ``points`` defaults to hub.yaml's ``influx.points`` (lean
    without an ``influx`` section)."""
    if points is None:
        points = config.hub.influx.points if config.hub.influx is not None else "lean"
    encoder = encoder_for(config, measurement, points)
    if api == 1:
        return InfluxV1Sink(url, database=database, encoder=encoder,
                            retention_policy=retention_policy, username=username,
                            password=password, https=https)
    token = token if token is not None else os.environ.get("INFLUX_TOKEN")
    if not token:
        raise ValueError("InfluxDB API 2 needs a token: set INFLUX_TOKEN")
    return InfluxV2Sink(url, org=org, bucket=database, token=token, encoder=encoder,
                        https=https)


@contextlib.asynccontextmanager
async def sink_from_settings(config: ConfigSet, store: Store) -> AsyncIterator[ReadingSink]:
    """The sink hub.yaml asks for: InfluxDB if configured, else the embedded store."""
    influx = config.hub.influx
    if influx is None:
        yield store
        return
    username, password = influx.credentials() if influx.api == 1 else (None, None)
    sink = influx_sink(
        config, url=influx.url, api=influx.api,
        database=influx.database if influx.api == 1 else influx.bucket,
        retention_policy=influx.retention_policy, username=username, password=password,
        org=influx.org, token=influx.token() if influx.api == 2 else None,
        measurement=influx.measurement, https=influx.https())
    async with sink:
        yield sink
