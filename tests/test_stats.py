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
