"""The edge agent runtime: source → detectors → outbox → MQTT.

One agent owns one MQTT connection and one reconnect loop. Readings are sealed into
batches (by count or by time) with a per-agent sequence number and written to the
durable outbox (:mod:`gridcall.edge_agent.outbox`, SQLite under ``state_dir``) together with
anomaly events; events go out before readings. A message leaves the outbox only after
the broker acknowledged it (PUBACK, QoS 1), so neither an uplink outage nor a crash or a
power cut loses what was sealed. Readings not yet sealed (at most one batch) are appended
to the journal (:mod:`gridcall.edge_agent.journal`) each time the source waits for its
next answer, so they are on disk before the source's next poll: a kill -9 loses nothing
that was read, and the next start seals them. Detector state is checkpointed
(:mod:`gridcall.edge_agent.checkpoint`), and the retained status message carries the
outbox, drops, the source's counters and per-sensor health.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from gridcall.config import AgentSpec
from gridcall.edge_agent import checkpoint
from gridcall.edge_agent.faults import OUT_OF_RANGE, FaultWatch
from gridcall.edge_agent.journal import Journal, JournalError
from gridcall.edge_agent.outbox import Outbox, Priority
from gridcall.edge_agent.sequence import Sequence
from gridcall.edge_agent.sources import (
    BurstSource,
    DeviceEvent,
    Sample,
    Source,
    availability_of,
)
from gridcall.edge_agent.watch import SensorWatch, Verdict, detector_for
from gridcall.wire import (
    AgentStatus,
    AnomalyEvent,
    HealthState,
    Reading,
    ReadingBatch,
    SensorHealth,
    encode,
    topics,
)
from gridcall.wire.backoff import Outcome, Reconnect
from gridcall.wire.broker import (
    MQTT_RECONNECT,
    describe_failure,
    mqtt_outcome,
)
from gridcall.wire.cancelsafe import cancel_safe, stop_tasks
from gridcall.wire.clock import Clock, ns, wall_clock
from gridcall.wire.mqttclient import MqttClient, PublishRefused, protocol_for
from gridcall.wire.provenance import Refusals
from gridcall.wire.stats import Scalar, flatten, stats_of

log = logging.getLogger(__name__)

PUBLISH_WINDOW = 16
"""Messages in flight at once; each publish awaits its PUBACK."""
MISSING_AFTER_INTERVALS = 5
"""A sensor is ``missing`` after this many of its configured intervals without a value."""
STATUS_MIN_GAP_S = 1.0
"""A change of what the devices say about being online (a local-MQTT preset's
availability) publishes the status at once rather than at the next heartbeat, but at most
once per this many seconds: a flapping device costs one status a second, not one per
message."""
REFUSED_HOLD_S = 60.0
"""After the broker refused a publish (MQTT v5 PUBACK with a failure reason: its ACL does
not let our login publish there), the outbox is held this long before its head is tried
again; status heartbeats go on meanwhile (see :meth:`EdgeAgent._refused`)."""
TASK_STOP_S = 10.0
"""Seconds a stopping agent waits for each of its tasks (source, publisher...) to end once
cancelled; one still running after that is logged and left behind."""


@dataclass
class AgentCounters:
    samples: int = 0
    readings_sent: int = 0
    batches_sent: int = 0
    events_sent: int = 0
    events_made: int = 0
    anomaly_starts: int = 0
    connects: int = 0
    publish_failures: int = 0
    credentials_refused: int = 0
    publishes_refused: Counter[str] = field(default_factory=Counter)
    """Publishes the broker refused (MQTT v5 PUBACK), by reason (``not_authorized``...)."""
    checkpoints_saved: int = 0
    checkpoint_failures: int = 0
    journal_writes: int = 0
    journal_failures: int = 0
    recovered_readings: int = 0
    status_on_availability: int = 0
    """Status messages published early because a device went offline or came back."""
    device_events: int = 0
    """Episode starts and ends a device announced (a local-MQTT mapping's ``events``)."""
    skipped: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    """Values the sensor cannot produce, by reason (:mod:`gridcall.edge_agent.faults`)."""


class EdgeAgent:
    """Run with ``await agent.run(stop)``; set ``stop`` to flush, say goodbye and return."""

    def __init__(self, spec: AgentSpec, source: Source, *, broker_url: str | None = None,
                 clock: Clock = wall_clock, seed: int = 0,
                 state_dir: Path | None = None) -> None:
        """``state_dir`` holds the outbox, the detector checkpoint and the sequence state
        (see :mod:`gridcall.edge_agent.sequence`); None keeps them in memory (demo, tests): nothing
        then survives the process."""
        self.spec = spec
        self.id = spec.id
        self.settings = spec.settings
        self.source = source
        self.clock = clock
        self.address = self.settings.broker.address(broker_url)
        self.watches: dict[str, SensorWatch] = {}
        self.faults: dict[str, FaultWatch] = {}
        for s in spec.sensors:
            self.watches[s.id] = SensorWatch(s, detector_for(s, seed=seed))
            self.faults[s.id] = FaultWatch(s.limits)
        self.counters = AgentCounters()
        now = self.started = clock()
        self._last_value: dict[str, int] = {}
        self._batch_seq = Sequence(state_dir / f"{self.id}.batches.seq" if state_dir else None,
                                   now)
        self._event_seq = Sequence(state_dir / f"{self.id}.events.seq" if state_dir else None,
                                   now)
        st = self.settings
        self.outbox = Outbox(state_dir / f"{self.id}.outbox.sqlite" if state_dir else None,
                             max_bytes=st.outbox_max_bytes,
                             max_age_ns=ns(st.outbox_max_age),
                             drop_events=st.outbox_drop_events, sync=st.outbox_sync,
                             clock=clock)
        self.checkpoint_path = state_dir / f"{self.id}.checkpoint" if state_dir else None
        self.restored: checkpoint.Restored | None = None
        if self.checkpoint_path is not None:
            self._restore(self.checkpoint_path)
        self._pending: list[Reading] = []
        self._batch_max = self.settings.batch_max_readings
        self._wake = asyncio.Event()
        self._last_sealed = asyncio.Event()
        """Set by :meth:`run` once it sealed what was pending at stop: only then may the
        publisher finish, or the last partial batch would stay behind."""
        self.connected = asyncio.Event()
        self._counters_failed = False
        self.journal = Journal(state_dir / f"{self.id}.journal") if state_dir else None
        """None without a state folder: nothing survives the process anyway."""
        self._journaled = 0
        """How many of ``_pending`` (its head) are in the journal."""
        self._journal_due = False
        self._reset_due = False
        """A batch sealed inside an outbox group sealed the journal's readings: reset the
        journal once that group has committed (:meth:`_consume`)."""
        self.refused_by_broker: str | None = None
        """While the outbox is held after a refused publish: the topic and the reason."""
        self._refusals = Refusals(f"publishes of agent {self.id}", where="on",
                                  every=REFUSED_HOLD_S)
        if self.journal is not None:
            self._recover(self.journal)

    def _recover(self, journal: Journal) -> None:
        """Seal what the previous run read and journaled but did not seal (a kill, a
        crash), under this run's next sequence number. The journal keeps them until that
        batch's commit has recorded their generation (:meth:`seal`, then
        :meth:`Journal.sealed`): a kill before the commit finds them again, one after it
        finds them sealed."""
        found = journal.recover(self.outbox.sealed_generation())
        if not found:
            return
        self.counters.recovered_readings += len(found)
        log.info("agent %s: recovered %d readings the last run read but did not seal "
                 "(from %s)", self.id, len(found), journal.path)
        self._pending = found
        self._journaled = len(found)
        self.seal()

    def _restore(self, path: Path) -> None:
        try:
            self.restored = checkpoint.load(path, self.id, self.watches)
        except checkpoint.CheckpointRefused as exc:
            log.warning("agent %s: %s; starting every detector fresh", self.id, exc)
            return
        if self.restored is not None:
            log.info("agent %s: restored %d detectors from %s", self.id,
                     len(self.restored.restored), path)
            for sid, why in self.restored.fresh.items():
                log.info("agent %s: sensor %s starts fresh: %s", self.id, sid, why)

    def save_checkpoint(self) -> int:
        """Write the detector checkpoint now; its size (0 without a state folder, or when
        it could not be written: logged and counted, never raised)."""
        if self.checkpoint_path is None:
            return 0
        try:
            size = checkpoint.save(self.checkpoint_path, self.id, self.watches, self.clock())
        except OSError as exc:  # a full or read-only disk must not stop the agent
            self.counters.checkpoint_failures += 1
            log.warning("agent %s: cannot write checkpoint %s (%s); detectors keep running, "
                        "a restart would start them from the previous checkpoint", self.id,
                        self.checkpoint_path, exc)
            return 0
        self.counters.checkpoints_saved += 1
        return size

    # ------------------------------------------------------------------ pure-ish core

    def ingest(self, sensor: str, ts: int, value: float | None,
               fault: str = "", event: DeviceEvent | None = None) -> Verdict | None:
        """Take one sample: detect, queue an event if an episode starts or ends, buffer it.
        A value the sensor cannot produce (``fault``: the source's reason, else outside its
        kind's physical range) is counted and marks the sensor faulty, never buffered. An
        episode the device announced (``event``) is queued as it is; with no value it is
        all the sample says."""
        self.counters.samples += 1
        watch = self.watches.get(sensor)
        if watch is None:
            self.counters.skipped["unknown_sensor"] += 1
            return None
        if event is not None:
            self.counters.device_events += 1
            self._queue_event(sensor, Verdict(event.kind, event.phase, event.severity, 1.0,
                                              value, ts))
            if value is None:
                return None
        guard = self.faults[sensor]
        # the bounds are floats (±inf when a kind declares none) and a NaN compares false,
        # so a possible value costs two comparisons here
        if not fault and value is not None and (
                value < guard.low or value > guard.high) and math.isfinite(value):
            fault = OUT_OF_RANGE
        if fault:
            self.counters.faults[fault] += 1
            started = guard.fault(ts, fault, value)
            if started is not None:
                self._queue_event(sensor, started)
            return started
        verdict = watch.observe(ts, value)
        if value is None or not math.isfinite(value):
            self.counters.skipped["no_value" if value is None else "non_finite"] += 1
        else:
            self._last_value[sensor] = ts
            self._pending.append(Reading(sensor, ts, value))
            if len(self._pending) >= self._batch_max:
                self.seal()
            if guard.open:
                self._queue_event(sensor, guard.plausible(ts, value))
        if verdict is not None:
            self._queue_event(sensor, verdict)
        return verdict

    def ingest_burst(self, burst: Iterable[Sample]) -> None:
        """:meth:`ingest` each sample, in order, with the same outcome; the lookups are
        made once a burst, and a plain reading (a value, no fault, no event) that is finite
        and inside its sensor's physical range goes the short way: the detector does not
        check again what the range check here already did
        (:meth:`SensorWatch.observe_plausible`). Anything else goes through
        :meth:`ingest` whole."""
        watches, faults, last_value = self.watches, self.faults, self._last_value
        counters, ingest, isfinite = self.counters, self.ingest, math.isfinite
        batch_max = self._batch_max
        for sample in burst:
            sensor, ts, value, fault, event = sample
            guard = faults.get(sensor)
            if (fault or event is not None or value is None or guard is None
                    or not guard.low <= value <= guard.high or not isfinite(value)):
                ingest(*sample)
                continue
            counters.samples += 1
            verdict = watches[sensor].observe_plausible(ts, value)
            last_value[sensor] = ts
            pending = self._pending  # seal() starts a new list
            pending.append(Reading(sensor, ts, value))
            if len(pending) >= batch_max:
                self.seal()
            if guard.open:
                self._queue_event(sensor, guard.plausible(ts, value))
            if verdict is not None:
                self._queue_event(sensor, verdict)

    def _queue_event(self, sensor: str, v: Verdict) -> None:
        self.counters.events_made += 1
        if v.phase == "start":
            self.counters.anomaly_starts += 1
        event = AnomalyEvent(agent=self.id, seq=self._event_seq.next(), sensor=sensor, kind=v.kind,
                             phase="start" if v.phase == "start" else "end",
                             severity=v.severity, score=min(1.0, max(0.0, v.score)),
                             value=v.value if v.value is None or math.isfinite(v.value) else None,
                             ts=v.ts)
        self.outbox.put(Priority.EVENT, topics.events_topic(self.id), encode(event))
        self._wake.set()

    def seal(self) -> None:
        """Close the pending readings into a batch with the next sequence number and
        store it in the outbox (durable once this returns)."""
        if not self._pending:
            return
        batch = ReadingBatch(agent=self.id, seq=self._batch_seq.next(), sent_at=self.clock(),
                             readings=self._pending)
        journal = self.journal if self._journaled else None
        self.outbox.put(Priority.READINGS, topics.readings_topic(self.id), encode(batch),
                        len(batch.readings), created=batch.sent_at,
                        sealed_generation=journal.generation if journal else None)
        self._pending = []
        self._journaled = 0
        if journal is not None:
            if self.outbox.grouping:  # the journal is reset once the group's commit is done
                self._reset_due = True
            else:
                self._journal_reset(journal)
        self._wake.set()

    def _journal_reset(self, journal: Journal) -> None:
        try:
            journal.sealed()
        except JournalError as exc:
            self._journal_failed(exc)

    def _journal_failed(self, exc: JournalError) -> None:
        self.counters.journal_failures += 1
        if self.counters.journal_failures == 1:
            log.warning("agent %s: %s; readings are still sealed into the outbox each "
                        "batch, but a kill may lose the unsealed ones (counted as "
                        "journal_failures)", self.id, exc)

    def journal_pending(self) -> None:
        """Append the readings read since the last append to the journal (the agent calls
        this when its source waits; tests may call it directly)."""
        self._journal_due = False
        if self.journal is None or len(self._pending) <= self._journaled:
            return
        try:
            self.journal.append(self._pending[self._journaled:])
        except JournalError as exc:
            self._journal_failed(exc)
            return
        self._journaled = len(self._pending)
        self.counters.journal_writes += 1

    @property
    def outbox_depth(self) -> int:
        """Messages not yet acknowledged by the broker, counting unsealed readings as one."""
        return self.outbox.messages + (1 if self._pending else 0)

    def health(self, now: int) -> dict[str, SensorHealth]:
        """Each sensor's state (definitions in :class:`wire.SensorHealth`)."""
        out: dict[str, SensorHealth] = {}
        said = availability_of(self.source)
        for sid, watch in self.watches.items():
            last = self._last_value.get(sid)
            limit = MISSING_AFTER_INTERVALS * watch.spec.interval_s * 1e9
            guard = self.faults[sid]
            online, since = said.get(sid, (True, 0))
            state: HealthState = "ok"
            if not online:
                state = "offline"
            elif guard.faulty(last) and now - (guard.last_fault or 0) <= limit:
                state = "fault"
            elif now - max(last if last is not None else self.started, since) > limit:
                state = "missing"
            elif watch.active and watch.kind == "stuck":
                state = "stuck"
            out[sid] = SensorHealth(state=state, last_ts=last)
        return out

    def stats(self) -> dict[str, Scalar]:
        """The agent's own counters (samples, sent, connects, refused logins, skipped by
        reason...), flat (:mod:`gridcall.wire.stats`)."""
        return flatten(self.counters)

    def source_counters(self) -> dict[str, int]:
        """The source's ``stats()`` (bad frames by reason...), if it keeps any; they go
        out as the status message's ``source_counters``."""
        try:
            return {str(k): int(v) for k, v in stats_of(self.source).items()
                    if isinstance(v, int | float)}
        except Exception as exc:  # a broken counter must not stop the heartbeat
            if not self._counters_failed:
                self._counters_failed = True
                log.warning("agent %s: the source's stats() failed (%s); status goes "
                            "out without them", self.id, exc)
            return {}

    def status(self, state: str = "online") -> bytes:
        c = self.counters
        now = self.clock()
        box = self.outbox.depth()
        return encode(AgentStatus(
            agent=self.id, state="online" if state == "online" else "offline", ts=now,
            sensors=len(self.watches), batches_sent=c.batches_sent,
            readings_sent=c.readings_sent, events_sent=c.events_sent,
            heartbeat_s=self.settings.status_interval.total_seconds(),
            uptime_s=max(0.0, (now - self.started) / 1e9), samples=c.samples,
            outbox_messages=box.messages, outbox_events=box.events,
            outbox_readings=box.readings, outbox_bytes=box.bytes,
            outbox_oldest_age_s=None if box.oldest_created is None
            else max(0.0, (now - box.oldest_created) / 1e9),
            dropped=dict(self.outbox.drops), source_counters=self.source_counters(),
            faults=dict(c.faults),
            sensor_health=self.health(now),
            publishes_refused=dict(c.publishes_refused),
            refused_by_broker=self.refused_by_broker))

    # ------------------------------------------------------------------ I/O

    async def _consume(self) -> None:
        # The journal write is scheduled after the first sample of a burst and runs when
        # the source next waits (for its next answer or poll): one append per poll, and
        # before the next one. Nothing to do without a state folder.
        later = asyncio.get_running_loop().call_soon
        journal = self.journal is not None
        ingest = self.ingest
        if isinstance(self.source, BurstSource):
            # a list at a time (all the devices that answered in one tick): the batches
            # and events it seals share one outbox commit, and the readings left over
            # are journaled at once; no await in between, so all of it is on disk before
            # the source can run its next poll
            group = self.outbox.group
            async for burst in self.source.bursts():
                with group():
                    self.ingest_burst(burst)
                if self._reset_due and self.journal is not None:
                    self._reset_due = False
                    self._journal_reset(self.journal)
                if journal and len(self._pending) > self._journaled:
                    self.journal_pending()
            return
        async for sample in self.source.samples():
            ingest(*sample)  # Sample is (sensor, ts, value, fault, event): ingest's
            if journal and not self._journal_due and self._pending:
                self._journal_due = True
                later(self.journal_pending)

    async def _sealer(self) -> None:
        interval = self.settings.batch_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            self.seal()
            self.outbox.expire()

    async def _checkpointer(self) -> None:
        interval = self.settings.checkpoint_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            self.save_checkpoint()

    def _client(self) -> MqttClient:
        """MQTT v5 unless the config says 3.1.1 (or the broker is the embedded amqtt):
        only a v5 PUBACK says when the broker refuses a publish (wire/mqttclient.py)."""
        user, password = self.settings.broker.credentials()
        offline = encode(AgentStatus(agent=self.id, state="offline", ts=0))
        client = MqttClient(
            self.address, protocol=protocol_for(self.address, self.settings.broker.mqtt_version),
            username=user, password=password, identifier=f"gridcall-agent-{self.id}",
            keepalive=int(self.settings.broker.keepalive.total_seconds()),
            will=aiomqtt.Will(topics.status_topic(self.id), offline, qos=1, retain=True),
            max_inflight_messages=PUBLISH_WINDOW * 2,
        )
        client.pending_calls_threshold = PUBLISH_WINDOW * 2  # a full window is expected
        return client

    async def _drain(self, client: MqttClient) -> None:
        """Publish the outbox's head (events first, then batches) a window at a time;
        delete from the outbox only what the broker acknowledged and took.
        :class:`PublishRefused` if it refused any (those stay in the outbox)."""
        while window := self.outbox.peek(PUBLISH_WINDOW):
            try:
                results = await asyncio.gather(
                    *(client.publish(m.topic, m.payload, qos=1) for m in window),
                    return_exceptions=True)
            except BaseException:
                self.outbox.release()
                raise
            taken = [m for m, r in zip(window, results, strict=True) if r is None]
            self.outbox.ack(taken)
            for m in taken:
                if m.priority == Priority.EVENT:
                    self.counters.events_sent += 1
                else:
                    self.counters.batches_sent += 1
                    self.counters.readings_sent += m.readings
            if len(taken) == len(window):
                self.refused_by_broker = None
                continue
            self.outbox.release()
            refused = [r for r in results if isinstance(r, PublishRefused)]
            for r in refused:
                self.counters.publishes_refused[r.key] += 1
            other = next((r for r in results
                          if isinstance(r, BaseException) and not isinstance(r, PublishRefused)),
                         None)
            raise other if other is not None else refused[0]

    def _refused(self, exc: PublishRefused, *, held: bool = True) -> None:
        """The broker refused a publish: its ACL does not let our login publish on that
        topic (a login or an ACL that does not match this agent's id). Sending the same
        message again will be refused again until someone fixes the ACL or the login, and
        dropping it would lose readings without a word. So the message stays in the
        outbox (bounded by its size and age limits, drops counted), the outbox is held for
        :data:`REFUSED_HOLD_S` before its head is tried again (a fixed ACL is picked up
        then; a fixed login takes a restart with its new variables, after which the
        outbox goes out as usual), the refusal is counted by
        reason and logged (WARNING, the first at once, then at most one a minute), and
        the status says ``refused_by_broker`` until a publish is taken again."""
        self.refused_by_broker = f"{exc.topic}: {exc.name} ({exc.code:#04x})"
        then = (f"{self.outbox_depth} messages kept in the outbox, tried again in "
                f"{REFUSED_HOLD_S:.0f}s" if held else "the status is sent again at the "
                "next heartbeat")
        self._refusals.note(exc.topic, exc.key, (
            f"broker {self.address} answered PUBACK {exc.code:#04x} {exc.name!r}: its ACL "
            f"does not let this agent's login publish there (`gridcall broker acl`, "
            f"docs/security.md); {then}"))

    async def _publish_loop(self) -> None:
        # the probe: after a long outage the first attempt comes within ~0.5 s of the
        # broker's return, not at the end of a 30 s backoff (wire/backoff.py)
        retry = Reconnect(MQTT_RECONNECT, mqtt_outcome, config=self.settings.broker.credentials,
                          probe=self.address.port_open)
        status_every = self.settings.status_interval.total_seconds()
        last_warned = 0.0
        while True:
            try:
                async with contextlib.AsyncExitStack() as session:
                    # cancel_safe: aiomqtt's connect and publish wait through
                    # asyncio.wait_for, which on Python 3.11 may swallow a cancel
                    client = await cancel_safe(session.enter_async_context(self._client()),
                                               what=f"agent {self.id}: connect")
                    self.counters.connects += 1
                    retry.connected()
                    said = dict(availability_of(self.source))
                    await self._publish_status(client, "online")
                    self.connected.set()
                    last_status = time.monotonic()
                    next_status = last_status + status_every
                    held_until = 0.0  # the outbox is held after a refused publish
                    while True:
                        if time.monotonic() >= held_until:
                            try:
                                await self._drain(client)
                            except PublishRefused as exc:
                                self._refused(exc)
                                held_until = time.monotonic() + REFUSED_HOLD_S
                        if self._last_sealed.is_set():
                            await self._publish_status(client, "offline")
                            return
                        now = time.monotonic()
                        saying = availability_of(self.source)
                        changed = saying != said and now - last_status >= STATUS_MIN_GAP_S
                        if now >= next_status or changed:
                            said = dict(saying)
                            await self._publish_status(client, "online")
                            if changed:
                                self.counters.status_on_availability += 1
                            last_status = time.monotonic()
                            next_status = last_status + status_every
                        self._wake.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self.counters.publish_failures += 1
                failure = retry.failed(exc)
                if failure.refused:
                    self.counters.credentials_refused += 1
                if self._last_sealed.is_set() and not self.outbox_depth:
                    return
                # a relay or proxy whose broker is down is tried at the probe's pace
                # (UNANSWERED, wire/backoff.py): say so at the backoff's pace, not each time
                now = time.monotonic()
                quiet = failure.outcome is Outcome.UNANSWERED and failure.in_a_row > 1 \
                    and now - last_warned < failure.delay
                if not quiet:
                    last_warned = now
                log.log(logging.DEBUG if quiet else logging.WARNING,
                        "agent %s: %s; retrying in %.1fs, %d messages kept", self.id,
                        describe_failure(self.address, exc), failure.delay,
                        self.outbox_depth)
                await retry.pause(failure)

    async def _publish_status(self, client: MqttClient, state: str) -> None:
        """The retained status; a refusal of it is counted and logged, not raised."""
        try:
            await cancel_safe(client.publish(topics.status_topic(self.id), self.status(state),
                                             qos=1, retain=True))
        except PublishRefused as exc:
            self.counters.publishes_refused[exc.key] += 1
            self._refused(exc, held=False)

    async def run(self, stop: asyncio.Event, *, drain_timeout: float = 30.0) -> None:
        """Read, detect and publish until ``stop`` is set; then seal what is pending,
        save a checkpoint, publish what it can within ``drain_timeout`` and close the
        outbox (what is left stays in it for the next start)."""
        self._last_sealed.clear()
        consumer = asyncio.create_task(self._consume(), name=f"{self.id}-consume")
        sealer = asyncio.create_task(self._sealer(), name=f"{self.id}-seal")
        saver = asyncio.create_task(self._checkpointer(), name=f"{self.id}-checkpoint")
        publisher = asyncio.create_task(self._publish_loop(), name=f"{self.id}-publish")
        stopper = asyncio.create_task(stop.wait())
        try:
            try:
                done, _ = await asyncio.wait({consumer, publisher, stopper},
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done - {stopper}:
                    task.result()  # a source or publisher failure surfaces here
                stop.set()
            finally:
                # bounded: a source that ignores its cancel must not keep the agent from
                # sealing, saving its checkpoint and draining (it is logged and left)
                await stop_tasks((consumer, sealer, saver, stopper), TASK_STOP_S,
                                 what=f"agent {self.id}")
            self.seal()
            self._last_sealed.set()
            self.save_checkpoint()
            self._wake.set()
            # asyncio.wait, not wait_for: at the timeout wait_for cancels the publisher and
            # then waits for it without a bound
            await asyncio.wait([publisher], timeout=drain_timeout)
            if not publisher.done():
                log.error("agent %s: stopped with %d messages not acknowledged by %s; they "
                          "stay in the outbox for the next start", self.id,
                          self.outbox_depth, self.address)
        finally:
            await stop_tasks([publisher], TASK_STOP_S, what=f"agent {self.id}")
            self.outbox.close()
            if self.journal is not None:
                self.journal.close()
