"""The hub's Prometheus metrics, read from its counters at scrape time.

Nothing here counts: :class:`HubCollector` is a prometheus-client collector that, at
each scrape, reads what the hub's parts already keep (their ``stats()``, the desk's
alerts, the agents' last statuses, the supervisor, the dead-letter store) and turns it
into metric families, so there is one count of everything and no second bookkeeping to
drift from it. Two kinds of metric:

- **named** ones, typed, for what an operator alerts on (docs/operations.md lists them
  with example rules): readings received, stored, rejected and dead-lettered; messages
  refused by reason; spool depth; task restarts and alarms; alerts by state;
  notifications; the agents' outbox depth and age;
- ``gridcall_stat{name}``: every number of :meth:`Hub.stats` and the notifier's
  ``stats()``, generically (untyped, one sample per counter name), so a counter a part
  adds to its ``stats()`` appears without a change here.

Served on the API server's ``/metrics`` when the API runs, else on its own port
(``gridcall hub run --metrics HOST:PORT``), in the hub's event loop: a scrape reads the
hub's state on the thread that changes it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import get_args

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector

from gridcall.hub.notify.notifier import Notifier
from gridcall.hub.service import Hub
from gridcall.wire import AlertStatus
from gridcall.wire.clock import NS
from gridcall.wire.errors import InvariantError
from gridcall.wire.provenance import REFUSALS
from gridcall.wire.stats import Scalar

log = logging.getLogger(__name__)

TASKS = ("ingest-writers", "ingest-spool", "desk", "board-writers", "deadletter-replay")
"""The supervised tasks of a hub, reported (0) before any of them failed."""


def _number(value: Scalar) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


class HubCollector(Collector):
    def __init__(self, hub: Hub, notifier: Notifier | None = None) -> None:
        self.hub = hub
        self.notifier = notifier

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        ingest = hub.ingest.counters
        yield _counter("gridcall_readings_received", "Readings taken from the broker "
                       "(duplicates not counted).", ingest.readings_received)
        yield _counter("gridcall_readings_stored", "Readings the sink confirmed.",
                       ingest.readings_stored)
        rejected = CounterMetricFamily("gridcall_readings_rejected", "Readings not stored, "
                                       "by reason: refused by the hub's screen (forged, "
                                       "unknown_sensor, too_many_readings), refused by "
                                       "the sink (400/413, a constraint), or given up at "
                                       "a stop.", labels=["reason"])
        for screened in REFUSALS:
            rejected.add_metric([screened], ingest.refused.get(screened, 0))
        rejected.add_metric(["sink"], ingest.rejected_readings)
        rejected.add_metric(["unwritten_at_stop"], ingest.unwritten_readings)
        yield rejected
        yield _counter("gridcall_duplicate_batches", "Batches taken again (a redelivery or "
                       "an agent's replay) and dropped as duplicates by (agent, seq).",
                       ingest.duplicate_batches)
        yield _counter("gridcall_readings_dead_lettered", "Readings of batches set aside in "
                       "the dead-letter store.", ingest.dead_lettered_readings)
        refused = CounterMetricFamily("gridcall_messages_refused", "Messages refused at "
                                      "decoding or by the desk, by reason (not_json, "
                                      "invalid, agent_mismatch, ts_window, unknown_sensor, "
                                      "...).", labels=["reason"])
        reasons: Counter[str] = Counter(hub.decoder.malformed)
        reasons.update(hub.counters.rejected)
        for reason, n in sorted(reasons.items()):
            refused.add_metric([reason], n)
        yield refused
        yield from self._dead_letters()
        yield _gauge("gridcall_subscribed", "1 while the hub is subscribed on both its "
                     "connections (events and readings): ready to take messages.",
                     float(hub.subscribed.is_set()))
        yield _gauge("gridcall_spool_readings", "Readings in the spool, waiting for the sink.",
                     hub.ingest.spooled_pending)
        yield _gauge("gridcall_ingest_pending_readings", "Readings taken and not yet "
                     "stored, rejected or spooled (unacknowledged).", hub.ingest.pending_points)
        yield from self._tasks()
        yield from self._alerts()
        yield from self._notifications()
        yield from self._agents()
        yield self._generic()

    def _dead_letters(self) -> Iterator[Metric]:
        letters = self.hub.dead_letters
        if letters is None:
            return
        mine = CounterMetricFamily("gridcall_dead_letters", "Messages this hub set aside in "
                                   "the dead-letter store, by reason.", labels=["reason"])
        for reason, n in sorted(letters.counts.items()):
            mine.add_metric([reason], n)
        yield mine
        try:
            entries = letters.count_by_reason()
        except (sqlite3.Error, InvariantError) as exc:
            log.warning("metrics: could not count the dead letters in %s: %s",
                        letters.path, exc)
            return
        waiting = GaugeMetricFamily("gridcall_deadletter_entries", "Entries in the "
                                    "dead-letter store now (every process's), by reason.",
                                    labels=["reason"])
        for reason, n in sorted(entries.items()):
            waiting.add_metric([reason], n)
        yield waiting

    def _tasks(self) -> Iterator[Metric]:
        supervisor = self.hub.supervisor
        names = sorted(set(TASKS) | set(supervisor.restarts) | set(supervisor.alarms))
        restarts = CounterMetricFamily("gridcall_task_restarts", "Restarts of a supervised "
                                       "task after it failed.", labels=["task"])
        alarm = GaugeMetricFamily("gridcall_task_alarm", "1 while a task is in alarm (3 "
                                  "failures within 10 minutes, until it runs 60 s).",
                                  labels=["task"])
        for name in names:
            restarts.add_metric([name], supervisor.restarts.get(name, 0))
            alarm.add_metric([name], 1 if name in supervisor.alarms else 0)
        yield restarts
        yield alarm

    def _alerts(self) -> Iterator[Metric]:
        by_state = self.hub.desk.alert_counts()  # closed ones the desk dropped too
        alerts = GaugeMetricFamily("gridcall_alerts", "Alerts by state (closed ones "
                                   "included: resolved, false_alarm).", labels=["state"])
        for state in get_args(AlertStatus):
            alerts.add_metric([state], by_state.get(state, 0))
        yield alerts

    def _notifications(self) -> Iterator[Metric]:
        notifier = self.notifier
        if notifier is None:
            return
        c = notifier.counters
        yield _counter("gridcall_notifications_sent", "Notifications delivered.", c.sent)
        yield _counter("gridcall_notifications_failed", "Notifications given up after "
                       "their attempts.", c.given_up)
        yield _counter("gridcall_notification_attempts_failed", "Failed delivery attempts "
                       "(retried or given up).", c.failed_attempts)
        yield _gauge("gridcall_notifications_pending", "Deliveries queued, under way or "
                     "waiting for a retry.", notifier.pending)

    def _agents(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("gridcall_agent_outbox_messages", "Messages waiting in an "
                                  "agent's outbox, as its last status said.",
                                  labels=["agent"])
        age = GaugeMetricFamily("gridcall_agent_outbox_oldest_age_seconds", "Age of the "
                                "oldest message in an agent's outbox, as its last status "
                                "said.", labels=["agent"])
        seen = GaugeMetricFamily("gridcall_agent_status_timestamp_seconds", "When the "
                                 "agent's last status was stamped (by its clock).",
                                 labels=["agent"])
        for agent, status in sorted(self.hub.agents.items()):
            depth.add_metric([agent], status.outbox_messages)
            age.add_metric([agent], status.outbox_oldest_age_s or 0.0)
            seen.add_metric([agent], status.ts / NS)
        yield depth
        yield age
        yield seen

    def _generic(self) -> Metric:
        stats = dict(self.hub.stats())
        if self.notifier is not None:
            stats |= {f"notify.{k}": v for k, v in self.notifier.stats().items()}
        family = UnknownMetricFamily("gridcall_stat", "Every counter of the hub's parts "
                                     "(Hub.stats() and the notifier's), by name.",
                                     labels=["name"])
        for name, value in sorted(stats.items()):
            number = _number(value)
            if number is not None:
                family.add_metric([name], number)
        return family


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def hub_registry(hub: Hub, notifier: Notifier | None = None) -> CollectorRegistry:
    """A registry of its own (not prometheus-client's global one, so that two hubs in one
    process, as in the tests, do not mix): the hub's collector and the process's CPU,
    memory and open files."""
    registry = CollectorRegistry()
    registry.register(HubCollector(hub, notifier))
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format (what ``/metrics`` answers)."""
    return generate_latest(registry)
