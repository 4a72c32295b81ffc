"""An edge agent's optional Prometheus metrics (agents.yaml settings.metrics): its own
status message at scrape time, served in its loop; the setting's address is checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pydantic
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gridcall.config import ConfigSet
from gridcall.config.models import AgentSettings
from gridcall.edge_agent.agent import EdgeAgent
from gridcall.edge_agent.metrics import MetricsBindError, parse_address, start_metrics
from gridcall.edge_agent.sources import Sample
from gridcall.simulators.steady import SimClock
from tests.servers import unused_tcp_port

NOW = 1_790_000_000 * 10**9


class CountingSource:
    """A source with counters of its own, like the firmware bridge's bad frames."""

    def stats(self) -> dict[str, int]:
        return {"bad_crc": 3, "resync": 1}

    async def samples(self) -> AsyncIterator[Sample]:
        await asyncio.Event().wait()
        yield Sample("", 0, None)  # pragma: no cover - never reached


async def test_the_agents_metrics_are_its_status_at_scrape_time(cfg: ConfigSet) -> None:
    spec = cfg.agents["edge-dongyuan"]
    clock = SimClock(NOW)
    agent = EdgeAgent(spec, CountingSource(), clock=clock)
    sensor = spec.sensors[0]
    for i in range(30):
        clock.now += 10**9
        agent.ingest(sensor.id, clock.now, 5.0 + 0.01 * (i % 3))
    port = unused_tcp_port()
    async with await start_metrics(agent, "127.0.0.1", port), \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        resp = await http.get("/metrics")
        assert resp.status_code == 200
        got = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(resp.text) for s in f.samples}
        assert got[("gridcall_agent_samples_total", ())] == agent.counters.samples == 30
        assert got[("gridcall_agent_source_stat", (("name", "bad_crc"),))] == 3
        assert got[("gridcall_agent_sensors", (("state", "ok"),))] >= 1
        assert got[("gridcall_agent_outbox_messages", ())] == agent.outbox.depth().messages
        clock.now += 10**9
        agent.ingest(sensor.id, clock.now, 5.0)
        again = {s.name: s.value for f in text_string_to_metric_families(
            (await http.get("/metrics")).text) for s in f.samples if not s.labels}
        assert again["gridcall_agent_samples_total"] == 31
        assert (await http.get("/")).status_code == 404
        with pytest.raises(MetricsBindError, match=f"127.0.0.1:{port}"):
            await start_metrics(agent, "127.0.0.1", port)  # taken by the first


def test_the_metrics_setting_is_a_host_and_port() -> None:
    assert AgentSettings(metrics="127.0.0.1:9471").metrics == "127.0.0.1:9471"
    assert parse_address("[::1]:9471") == ("::1", 9471)
    assert AgentSettings().metrics is None
    for bad in ("nowhere", "127.0.0.1", ":9471", "host:port"):
        with pytest.raises(pydantic.ValidationError):
            AgentSettings(metrics=bad)
