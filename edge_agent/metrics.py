"""An edge agent's Prometheus metrics, when its config asks (``settings.metrics``).

Optional on a Pi: prometheus-client is not in the edge install (``pip install
'gridcall[metrics]'`` adds it), and :func:`gridcall.cli.edge` imports this module only when
an agent has ``metrics: HOST:PORT``. The figures are the agent's own status message
(:meth:`EdgeAgent.status`, what the hub sees every heartbeat), built at scrape time: one
count of everything, the same on the wire and here. Served by a few lines of asyncio in
the agent's own loop (no thread, no web framework): ``GET /metrics`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterator

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector

from gridcall.edge_agent.agent import EdgeAgent
from gridcall.wire import AgentStatus
from gridcall.wire.messages import HEALTH_STATES

log = logging.getLogger(__name__)

MAX_REQUEST = 8192
"""Bytes of a request's head read at most; a scraper sends a few hundred."""


class AgentCollector(Collector):
    def __init__(self, agent: EdgeAgent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        s = msgspec.json.decode(self.agent.status(), type=AgentStatus)
        for name, doc, value in (
                ("samples", "Samples read from the source.", s.samples),
                ("batches_sent", "Reading batches the broker acknowledged.", s.batches_sent),
                ("readings_sent", "Readings the broker acknowledged.", s.readings_sent),
                ("events_sent", "Anomaly events the broker acknowledged.", s.events_sent)):
            yield CounterMetricFamily(f"gridcall_agent_{name}", doc, value=value)
        for name, doc, gauge in (
                ("outbox_messages", "Messages waiting in the outbox.", s.outbox_messages),
                ("outbox_events", "Events waiting in the outbox.", s.outbox_events),
                ("outbox_readings", "Readings waiting in the outbox.", s.outbox_readings),
                ("outbox_bytes", "Payload bytes in the outbox.", s.outbox_bytes),
                ("outbox_oldest_age_seconds", "Age of the oldest message in the outbox.",
                 s.outbox_oldest_age_s or 0.0),
                ("uptime_seconds", "Seconds since the agent started.", s.uptime_s)):
            yield GaugeMetricFamily(f"gridcall_agent_{name}", doc, value=gauge)
        dropped = CounterMetricFamily("gridcall_agent_dropped", "What the outbox dropped at "
                                      "its bounds, by reason (totals across restarts).",
                                      labels=["reason"])
        for reason, n in sorted(s.dropped.items()):
            dropped.add_metric([reason], n)
        yield dropped
        refused = CounterMetricFamily("gridcall_agent_publishes_refused", "Publishes the "
                                      "broker refused (its MQTT v5 PUBACK), by reason.",
                                      labels=["reason"])
        for reason, n in sorted(s.publishes_refused.items()):
            refused.add_metric([reason], n)
        yield refused
        yield GaugeMetricFamily("gridcall_agent_refused_by_broker", "1 while the outbox is "
                                "held because the broker refused a publish.",
                                value=0 if s.refused_by_broker is None else 1)
        health = GaugeMetricFamily("gridcall_agent_sensors", "Sensors by health.",
                                   labels=["state"])
        states: Counter[str] = Counter(h.state for h in s.sensor_health.values())
        for state in HEALTH_STATES:
            health.add_metric([state], states.get(state, 0))
        yield health
        source = UnknownMetricFamily("gridcall_agent_source_stat", "The source's own "
                                     "counters (bad frames by reason, reconnects...), by "
                                     "name.", labels=["name"])
        for name, n in sorted(s.source_counters.items()):
            source.add_metric([name], n)
        yield source


def agent_registry(agent: EdgeAgent) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(AgentCollector(agent))
    return registry


async def _answer(registry: CollectorRegistry, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
        words = head.split(b"\r\n", 1)[0].split(b" ")
        if len(words) >= 2 and words[0] == b"GET" and words[1].split(b"?")[0] == b"/metrics":
            body, status, kind = generate_latest(registry), b"200 OK", CONTENT_TYPE_LATEST
        else:
            body, status, kind = b"not found: GET /metrics\n", b"404 Not Found", "text/plain"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + kind.encode()
                     + b"\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            ConnectionError) as exc:
        log.debug("agent metrics: a request failed: %s", exc)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9471`` for IPv6) as (host, port); ValueError otherwise."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"metrics {text!r}: give host:port (e.g. 127.0.0.1:9471)")
    return host, int(port)


class MetricsBindError(OSError):
    """The metrics address cannot be listened on (in use, not this machine's)."""


async def start_metrics(agent: EdgeAgent, host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` for ``GET /metrics`` (use the server as ``async with``);
    :class:`MetricsBindError` if it cannot."""
    registry = agent_registry(agent)
    try:
        server = await asyncio.start_server(
            lambda r, w: _answer(registry, r, w), host, port, limit=MAX_REQUEST)
    except OSError as exc:
        raise MetricsBindError(f"agent {agent.id}: cannot serve metrics on {host}:{port}: "
                               f"{exc.strerror or exc}") from exc
    log.info("agent %s: metrics on http://%s:%d/metrics", agent.id, host, port)
    return server
