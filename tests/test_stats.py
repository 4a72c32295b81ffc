"""The one counters protocol: stats() is a flat mapping, whoever keeps the counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from gridcall.config import ConfigSet
from gridcall.config.notify import NotifyFile
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.hub.notify.notifier import Notifier
from gridcall.simulators.town import SimulatedTown
from gridcall.wire.stats import HasStats, flatten, stats_of


@dataclass
class Kept:
    sent: int = 0
    rate: float = 0.0
    by_reason: Counter[str] = field(default_factory=Counter)


def test_flatten_names_each_counter_of_a_mapping_by_field_and_key() -> None:
    kept = Kept(sent=3, rate=0.5)
    kept.by_reason.update({"timeout": 2, "bad_crc": 1})
    assert flatten(kept) == {"sent": 3, "rate": 0.5, "by_reason.bad_crc": 1,
                             "by_reason.timeout": 2}
    with pytest.raises(TypeError, match="dataclass instance"):
        flatten(Kept)


async def test_the_notifier_reports_through_the_protocol() -> None:
    notifier = Notifier(NotifyFile())
    assert isinstance(notifier, HasStats)
    notifier.counters.sent_by_type["webhook"] += 2
    stats = stats_of(notifier)
    assert stats["sent_by_type.webhook"] == 2
    assert stats["queued"] == stats["given_up"] == 0
    assert stats_of(object()) == {}  # keeps no counters: nothing to report


def test_the_edge_agent_reports_through_the_protocol(cfg: ConfigSet) -> None:
    spec = cfg.agents["edge-dongyuan"]
    agent = EdgeAgent(spec, SimulatedTown(cfg).source(spec.id))
    try:
        agent.ingest(spec.sensors[0].id, 1_700_000_000 * 10**9, 1.0)
        agent.counters.skipped["no_value"] += 1
        stats = stats_of(agent)
        assert stats["samples"] == agent.counters.samples == 1
        assert stats["skipped.no_value"] == 1
        assert stats["credentials_refused"] == 0
    finally:
        agent.outbox.close()


async def test_the_hub_reports_every_part_through_the_protocol(cfg: ConfigSet) -> None:
    """Hub.stats(): the desk connection's counters by name, the desk's, the roster's, the
    ingest's, the board writer's and the indicators' prefixed; all flat."""
    from gridcall.hub.service import Hub
    from gridcall.hub.store import Store
    from gridcall.wire import AnomalyEvent

    now = 1_700_000_000 * 10**9
    async with Store(":memory:") as store:
        hub = Hub(cfg, sink=store, store=store, broker_url="mqtt://127.0.0.1:1883",
                  readings=False, clock=lambda: now)
        await hub.runtime.start()
        sensor = next(iter(cfg.sensors.values()))
        await hub.desk.on_event(AnomalyEvent(
            agent=sensor.agent, seq=1, sensor=sensor.id, kind="out_of_limits",
            severity="major", score=0.9, value=80.0, ts=now), now)
        stats = stats_of(hub)
    assert stats["desk.opened"] == hub.desk.counters.opened == 1
    assert stats["desk.escalations"] == hub.desk.counters.escalations
    assert stats["roster.statuses"] == hub.roster.counters.statuses
    assert stats["ingest.readings_received"] == hub.ingest.counters.readings_received
    assert stats["indicators.rounds"] == hub.indicator_counters.rounds
    assert stats["connects"] == hub.counters.connects
    assert all(isinstance(v, int | float | str | bool) or v is None for v in stats.values())
