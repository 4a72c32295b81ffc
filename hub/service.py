"""The hub: the desk in service, its ingest and its board writers, composed.

:class:`Hub` builds three parts and runs them together; it adds no behaviour of its own:

- the desk runtime (:class:`gridcall.hub.desk.runtime.DeskRuntime`): the alert desk's MQTT
  connection (events and status), the roster and agent outages, retained publishing of
  every alert step and the deadline timers;
- the ingest (:class:`gridcall.hub.ingest.worker.IngestWorker`, ``<client_id>-readings``),
  acknowledging readings only once written or spooled. With ``readings=False`` the hub
  is the alert desk alone and readings are taken by ``gridcall hub ingest`` workers (the
  hub still writes readings an older session delivers on the desk's connection);
- the board writers (:class:`gridcall.hub.board.service.Boards`), when the sink writes
  line protocol.

Two MQTT connections, each with a persistent session (fixed client id,
``clean_session=False``, QoS 1), so the broker keeps what arrives while the hub restarts.
The notifier and the HTTP API are wired beside it by :mod:`gridcall.hub.compose`.

Stopping is bounded: once ``stop`` is set the hub stops taking messages, then writes out
what it buffered for at most ``drain_timeout`` seconds; what the sink did not take by
then is logged as an error and counted
(``gridcall.hub.ingest.runner.counters.unwritten_readings``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from gridcall.config import ConfigSet
from gridcall.hub.board.service import Boards
from gridcall.hub.deadletter import DeadLetters
from gridcall.hub.desk.runtime import OUTAGE_SEQ, DeskRuntime, HubCounters
from gridcall.hub.ingest.consumer import ReadingsConsumer
from gridcall.hub.ingest.runner import Ingest, Unwritten
from gridcall.hub.ingest.sinks import ReadingSink
from gridcall.hub.ingest.spool import Spool
from gridcall.hub.ingest.worker import IngestWorker
from gridcall.hub.store import DeskStore
from gridcall.wire import Decoder, MalformedMessage, topics
from gridcall.wire.cancelsafe import STOP_BOUND, stop_tasks
from gridcall.wire.clock import Clock, wall_clock
from gridcall.wire.stats import Scalar, flatten, stats_of
from gridcall.wire.supervise import Supervisor

log = logging.getLogger(__name__)


class Hub:
    def __init__(self, config: ConfigSet, *, sink: ReadingSink, store: DeskStore,
                 broker_url: str | None = None, client_id: str | None = None,
                 clock: Clock = wall_clock, flush_interval: float | None = None,
                 drain_timeout: float = 10.0, tick_interval: float = 1.0,
                 readings: bool = True, share_group: str | None = None,
                 spool_dir: Path | str | None = None, boards: bool = True,
                 agent_clock: Clock | None = None, mqtt5: bool | None = None,
                 dead_letters: DeadLetters | None = None,
                 replay_interval: float = 2.0) -> None:
        if drain_timeout < 0:
            raise ValueError(f"hub drain_timeout must be >= 0 seconds, got {drain_timeout}")
        settings = config.hub
        self.drain_timeout = drain_timeout
        self.config = config
        self.store = store
        self.clock = clock
        self.agent_clock: Clock = agent_clock or clock
        """The clock the edge agents run on, on which the roster judges their silence
        (``clock`` unless the desk runs faster than its agents: a fast demo)."""
        self.address = settings.broker.address(broker_url)
        self.client_id = client_id or settings.client_id
        self.tick_interval = tick_interval
        influx = settings.influx
        max_points = influx.batch_max_points if influx else 5000
        flush = flush_interval if flush_interval is not None else (
            influx.flush_interval.total_seconds() if influx else 0.5)
        # the ts window is around the clock the agents stamp with: in a fast demo the
        # desk's clock runs ahead of them, and would soon refuse every reading as old
        self.decoder = Decoder(window=settings.decoder_window(), clock=self.agent_clock)
        self.supervisor = Supervisor()
        """Runs every long-lived task of the hub; restarts, counts and raises alarms."""
        self.dead_letters = dead_letters
        """Messages that decoded but could not be handled (None: logged, not kept)."""
        self.replay_interval = replay_interval
        self.worker: IngestWorker | None = None
        """The readings' own connection and ingest; None with ``readings=False``."""
        # MQTT v5 unless the config says 3.1.1 or the broker does not speak it (the
        # embedded amqtt; mqtt5=None asks the address, which knows the brokers this
        # process runs)
        v5 = (self.address.speaks_mqtt5 and settings.broker.mqtt_version == "5"
              if mqtt5 is None else mqtt5)
        if readings:
            user, password = settings.broker.credentials()
            self.worker = IngestWorker(
                sink, address=self.address, client_id=f"{self.client_id}-readings",
                share_group=share_group, spool_dir=spool_dir, username=user,
                password=password, keepalive=int(settings.broker.keepalive.total_seconds()),
                max_points=max_points, flush_interval=flush, drain_timeout=drain_timeout,
                decoder=self.decoder, screen=config.screen(),
                receive_maximum=settings.ingest_receive_maximum if v5 else None,
                dead_letters=dead_letters, supervisor=self.supervisor)
            self.ingest = self.worker.ingest
        else:
            self.ingest = Ingest(sink, max_points=max_points, flush_interval=flush,
                                 spool=Spool(spool_dir) if spool_dir is not None else None,
                                 screen=config.screen(), dead_letters=dead_letters,
                                 supervisor=self.supervisor)
        self.runtime = DeskRuntime(
            config, store, address=self.address, client_id=self.client_id, clock=clock,
            tick_interval=tick_interval, decoder=self.decoder, readings=self.ingest.put,
            agent_clock=self.agent_clock, dead_letters=dead_letters, mqtt5=v5)
        self.runtime.on_message = self.handle
        if self.worker is not None:
            self.runtime.also_subscribed = self.worker.consumer.subscribed
        self.desk = self.runtime.desk
        """The alert desk: the API and the notifier use it (``desk.add_hook``)."""
        self.roster = self.runtime.roster
        self.counters: HubCounters = self.runtime.counters
        self.agents = self.runtime.agents
        self.opened = self.runtime.opened
        self.subscribed = self.runtime.subscribed
        self.board = Boards(config, self.desk, self.roster, sink, clock=clock, enabled=boards,
                            tick_interval=tick_interval, drain_timeout=drain_timeout,
                            agent_clock=self.agent_clock)
        self.runtime.anomaly_hooks.append(self.board.anomaly)
        self.feed = self.board.feed
        self.boards = self.board.writer
        """Board data in InfluxDB: when ``boards`` and the sink writes line protocol."""
        self.indicator_counters = self.board.indicator_counters
        self.unwritten = Unwritten()
        """What the last :meth:`run` could not write to the sink before its drain timeout."""

    def stats(self) -> dict[str, Scalar]:
        """Every counter of the hub, flat (:mod:`gridcall.wire.stats`): the desk
        connection's by name, its parts' prefixed (``desk.``, ``roster.``, ``ingest.``,
        ``boards.``, ``indicators.``; the decoder's rejects by reason as
        ``decoder.malformed.<reason>``)."""
        out = flatten(self.counters)
        parts: dict[str, object] = {"desk": self.desk, "roster": self.roster,
                                    "ingest": self.ingest, "boards": self.boards,
                                    "decoder": self.decoder,
                                    "tasks": self.supervisor,
                                    "deadletter": self.dead_letters}
        for prefix, part in parts.items():
            out |= {f"{prefix}.{k}": v for k, v in stats_of(part).items()}
        out |= {f"indicators.{k}": v for k, v in flatten(self.indicator_counters).items()}
        return out

    @property
    def readings(self) -> ReadingsConsumer | None:
        return self.worker.consumer if self.worker is not None else None

    @property
    def malformed(self) -> int:
        return self.runtime.malformed

    async def handle(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        """One message from the desk's connection (events, status; stray readings)."""
        await self.runtime.handle(topic, payload, retained=retained)

    async def start_desk(self) -> None:
        """Rebuild the alerts from the ledger (once; :meth:`run` does it if not done)."""
        await self.runtime.start()

    async def tick(self, now: int | None = None) -> None:
        """One tick of the hub's timers at ``now`` (default: its clock): breached
        deadlines fire, agents fallen silent raise their outage. The timer task calls it
        every ``tick_interval``; a simulation (simulators/sim.py) as its clock moves."""
        await self.runtime.tick(now)

    async def write_boards(self, now: int | None = None) -> bool:
        """Write a board snapshot and the event points waiting; False if either failed
        (or there is no line-protocol sink). A simulation calls it as its clock moves."""
        return await self.board.write(now)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then write out what is buffered, for at most
        ``drain_timeout`` seconds, and return; :attr:`unwritten` says what was not."""
        await self.start_desk()
        if self.worker is not None:
            await self.worker.run(stop, beside=self._desk_and_boards(stop))
            self.unwritten = self.worker.unwritten
        else:
            self.unwritten = await self.ingest.serve(self._desk_and_boards(stop), stop,
                                                     self.drain_timeout)
        await self.board.last()

    async def _desk_and_boards(self, stop: asyncio.Event) -> None:
        """The desk runtime (connection and timers), the board writers and the replay of
        dead letters, each under the supervisor, until ``stop``."""
        supervise = self.supervisor.run
        others = [asyncio.create_task(supervise("board-writers", lambda: self.board.run(stop),
                                                stop=stop), name="hub-board-writers")]
        if self.dead_letters is not None:
            others.append(asyncio.create_task(
                supervise("deadletter-replay", lambda: self._replay_loop(stop), stop=stop),
                name="hub-deadletter-replay"))
        try:
            await supervise("desk", lambda: self.runtime.run(stop), stop=stop)
        finally:
            await stop_tasks(others, STOP_BOUND, what="hub", raise_errors=True)

    async def replay_dead_letters(self) -> int:
        """Take the dead letters marked for replay (``gridcall hub deadletter replay``)
        through the normal path again: readings into the ingest, events and statuses to
        the desk runtime. One that fails again is dead-lettered again. Returns how many."""
        letters = self.dead_letters
        if letters is None:
            return 0
        taken = await asyncio.to_thread(letters.take_replays)
        for i, letter in enumerate(taken):
            try:
                if letter.topic.startswith(f"{topics.PREFIX}/readings/"):
                    try:
                        batch = self.decoder.readings(letter.topic, letter.payload)
                    except MalformedMessage as exc:
                        await letters.keep(letter.topic, letter.payload, exc.reason,
                                           exc.detail)
                        continue
                    await self.ingest.put(batch)
                else:
                    await self.runtime.handle(letter.topic, letter.payload)
            except BaseException:  # the store failing (or a stop): put back what is left
                for back in taken[i:]:
                    await letters.keep(back.topic, back.payload, back.reason, back.detail)
                raise
        if taken:
            log.info("replayed %d dead letters", len(taken))
        return len(taken)

    async def _replay_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.replay_dead_letters()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.replay_interval)


__all__ = ["OUTAGE_SEQ", "Hub", "HubCounters"]
