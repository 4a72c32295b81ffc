"""``gridcall demo``: the whole pipeline in one process, with a live view.

Embedded broker (or ``--broker``), the sample district's agents on simulated sensors with
labelled anomalies, the hub writing to the embedded store (or ``--influx``), and a
command-centre listener on the alert topics, so delivery is measured, not assumed.

A run lasts ``duration`` seconds, plus the time the agents' last readings take to reach
the hub, plus at most ``drain_timeout`` seconds for the hub to write what it holds: a sink
that is down does not keep it running; what it did not take is counted as unwritten.
Options are checked when :class:`DemoOptions` is made (ValueError naming the option); a
broker that is not there stops :func:`run_demo` with
:class:`~simulators.district.BrokerUnreachable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from config import ConfigSet
from gridcall.embedded import EmbeddedBroker
from hub.sinks import ReadingSink
from hub.store import Store
from simulators.district import BrokerUnreachable, InProcessDistrict
from simulators.town import demo_injections
from wire.broker import BrokerAddress

__all__ = ["BrokerUnreachable", "DemoOptions", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    config: ConfigSet
    duration: float = 60.0
    broker: str | None = None
    influx: str | None = None
    influx_api: int = 1
    influx_database: str = "gridcall"
    store_path: Path | None = None
    summary_json: Path | None = None
    seed: int = 0
    live: bool = True
    drain_timeout: float = 10.0

    def __post_init__(self) -> None:
        """Refuse what cannot work before anything starts: ValueError naming the option."""
        if self.broker is not None:
            try:
                BrokerAddress.parse(self.broker)
            except ValueError as exc:
                raise ValueError(f"--broker: {exc}") from None
        if self.influx is not None:
            from gridcall.sinks import influx_sink

            try:  # builds the sink without connecting: URL, database, token are checked
                influx_sink(self.config, url=self.influx, api=self.influx_api,
                            database=self.influx_database)
            except ValueError as exc:
                raise ValueError(f"--influx: {exc}") from None
        if self.drain_timeout < 0:
            raise ValueError(f"--drain-timeout: must be >= 0 seconds, got {self.drain_timeout}")


@contextlib.asynccontextmanager
async def broker_for(options: DemoOptions) -> AsyncIterator[str]:
    if options.broker:
        yield options.broker
        return
    async with EmbeddedBroker() as broker:
        yield broker.url


@contextlib.asynccontextmanager
async def sink_for(options: DemoOptions, store: Store) -> AsyncIterator[ReadingSink]:
    if options.influx is None:
        yield store
        return
    from gridcall.sinks import influx_sink

    async with influx_sink(options.config, url=options.influx, api=options.influx_api,
                           database=options.influx_database) as sink:
        yield sink


def view(district: InProcessDistrict, rate: float, duration: float) -> Group:
    hub = district.hub
    c = hub.counters
    head = Table.grid(padding=(0, 2))
    head.add_row("elapsed", f"{time.monotonic() - district.started:5.1f}s / {duration:.0f}s",
                 "readings/s", f"{rate:8.1f}")
    head.add_row("published", str(district.readings_published),
                 "stored", str(hub.ingest.counters.readings_stored))
    head.add_row("anomaly events", str(c.anomaly_starts), "malformed", str(hub.malformed))
    tiers = Table(title="alerts by tier  (A district+town · B town · C community · D grid)")
    for tier in "ABCD":
        tiers.add_column(tier, justify="right")
    tiers.add_row(*(str(c.alerts_by_tier.get(t, 0)) for t in "ABCD"))
    units = Table(title="alerts by responsible unit")
    units.add_column("unit")
    units.add_column("level")
    units.add_column("alerts", justify="right")
    for unit, n in c.alerts_by_unit.most_common(10):
        u = hub.config.units.get(unit)
        units.add_row(f"{u.name if u else unit} ({unit})", u.level if u else "?", str(n))
    recent = Table(title="latest alerts")
    for col in ("alert", "tier", "matter", "unit", "sensor", "severity"):
        recent.add_column(col)
    for alert in list(district.delivery.alerts.values())[-6:]:
        recent.add_row(alert.alert_id, alert.tier, f"{alert.matter_name} {alert.matter}",
                       alert.unit, alert.sensor, alert.severity)
    name = hub.config.district.name
    return Group(Panel(head, title=f"gridcall demo · {name}"), tiers, units, recent,
                 f"alerts delivered to their units: {len(district.delivery.delivered)}")


async def run_demo(options: DemoOptions) -> dict[str, Any]:
    cfg = options.config
    async with broker_for(options) as broker_url, \
            Store(options.store_path or ":memory:") as store, \
            sink_for(options, store) as sink:
        start = time.time()
        injections = demo_injections(cfg, start=start, duration=options.duration)
        district = InProcessDistrict(cfg, broker_url=broker_url, store=store, sink=sink,
                                     injections=injections, seed=options.seed,
                                     drain_timeout=options.drain_timeout)
        async with district:
            await show_live(district, options)
        summary = await district.summary()
    summary |= {
        "duration_s": options.duration,
        "broker": options.broker or "embedded",
        "store": options.influx or "embedded",
    }
    if options.summary_json:
        options.summary_json.write_text(json.dumps(summary, ensure_ascii=False, indent=2),
                                        encoding="utf-8")
    return summary


async def show_live(district: InProcessDistrict, options: DemoOptions) -> None:
    started = district.started
    last_n, last_t, rate = 0, started, 0.0
    with Live(view(district, rate, options.duration), refresh_per_second=4,
              auto_refresh=options.live) as live:
        while time.monotonic() - started < options.duration:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            n = district.hub.ingest.counters.readings_received
            rate = (n - last_n) / max(1e-6, now - last_t)
            last_n, last_t = n, now
            live.update(view(district, rate, options.duration))
