"""One ingest worker: readings from MQTT into the sink, nothing else.

The hub runs one in its own process by default (``Hub`` with ``readings=True``, the desk
running beside it: :meth:`IngestWorker.run`'s ``beside``); for
more throughput, ``gridcall hub ingest`` runs workers as separate processes, on one
machine or several, joined in one MQTT shared subscription. Each worker has its own
persistent session (client id), its own spool folder and its own dedup window; the
store stays exact because a batch redelivered to another worker writes the same points
again, which InfluxDB keeps once (same series and timestamp).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from gridcall.hub.deadletter import DeadLetters
from gridcall.hub.ingest.consumer import RECEIVE_MAXIMUM, ReadingsConsumer
from gridcall.hub.ingest.runner import Ingest, Unwritten
from gridcall.hub.ingest.sinks import ReadingSink
from gridcall.hub.ingest.spool import Spool
from gridcall.wire import Decoder
from gridcall.wire.broker import BrokerAddress
from gridcall.wire.errors import InvariantError
from gridcall.wire.provenance import Screen
from gridcall.wire.supervise import Supervisor


def peak_rss_kb() -> int | None:
    """This process's peak resident set (VmHWM), in KiB; None where /proc has no such line.
    (``ru_maxrss`` is no good for a worker started by a big parent: Linux carries it over
    ``fork`` and ``exec``.)"""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class IngestWorker:
    def __init__(self, sink: ReadingSink, *, address: BrokerAddress, client_id: str,
                 share_group: str | None = None, spool_dir: Path | str | None = None,
                 username: str | None = None, password: str | None = None,
                 keepalive: int = 30, max_points: int = 5000, flush_interval: float = 0.5,
                 drain_timeout: float = 10.0, decoder: Decoder | None = None,
                 retire: bool = False, screen: Screen | None = None,
                 receive_maximum: int | None = RECEIVE_MAXIMUM,
                 dead_letters: DeadLetters | None = None,
                 supervisor: Supervisor | None = None) -> None:
        self.drain_timeout = drain_timeout
        self.spool = Spool(spool_dir) if spool_dir is not None else None
        self.ingest = Ingest(sink, max_points=max_points, flush_interval=flush_interval,
                             spool=self.spool, screen=screen, dead_letters=dead_letters,
                             supervisor=supervisor)
        self.consumer = ReadingsConsumer(
            self.ingest, address=address, client_id=client_id, share_group=share_group,
            username=username, password=password, keepalive=keepalive, decoder=decoder,
            retire=retire,
            receive_maximum=receive_maximum)
        self.unwritten = Unwritten()
        self.retired = False
        """A retiring worker (``retire=True``) that settled all it was given and ended its
        session at the broker."""
        self._drained = False

    async def run(self, stop: asyncio.Event, *, beside: Awaitable[None] | None = None
                  ) -> None:
        """Ingest until ``stop``; then write out what is held (bounded by
        ``drain_timeout``; spooled if the sink is down), acknowledge it and disconnect.
        ``beside`` (the hub's desk) runs alongside and is awaited before the drain; if it
        ends before ``stop`` is set, the consumer is cancelled with it."""
        self.unwritten = await self.ingest.serve(self._consume(stop, beside), stop,
                                                 self.drain_timeout)
        self.retired = self.consumer.retire and self._drained and self.settled_all
        await self.consumer.close(end_session=self.retired)

    @property
    def settled_all(self) -> bool:
        """Nothing taken is left unwritten, unacknowledged or in the spool."""
        return (not self.unwritten and self.consumer.acks.unacked == 0
                and not self.consumer.pending and self.ingest.pending_points == 0
                and self.ingest.spooled_pending == 0)

    async def retire(self, stop: asyncio.Event, *, quiet: float = 2.0) -> None:
        """Run a retiring worker until the broker has nothing more for it: it has left
        the group, no message came for ``quiet`` s, and everything taken is settled and
        out of the spool (a sink that is down keeps it waiting: the session is never
        ended with anything unsettled). Then the session ends (:meth:`run`). ``stop``
        set from outside (Ctrl-C) ends it early, keeping the session."""
        if not self.consumer.retire:
            raise InvariantError("IngestWorker.retire needs a worker made with retire=True")

        async def until_drained() -> None:
            await self.consumer.unsubscribed.wait()
            while True:  # polled: "nothing came for a while" has no event to wait on
                if (time.monotonic() - self.consumer.last_message_at >= quiet
                        and self.settled_all):
                    break
                await asyncio.sleep(0.1)
            self._drained = True
            stop.set()

        watcher = asyncio.create_task(until_drained(), name="ingest-retire")
        try:
            await self.run(stop)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _consume(self, stop: asyncio.Event, beside: Awaitable[None] | None) -> None:
        # Under the supervisor, as every long-lived task is (issue 16): a failure taking
        # messages is restarted, counted and alarmed. Beside the desk it was a bare task,
        # and its failure stopped ingest without a word while the desk ran on.
        consume = self.ingest.supervisor.run("ingest-readings",
                                             lambda: self.consumer.run(stop), stop=stop)
        if beside is None:
            await consume
            return
        readings = asyncio.create_task(consume, name="hub-readings")
        try:
            await beside
        finally:
            if not stop.is_set():
                readings.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readings

    def stats(self) -> dict[str, Any]:
        """Counters and resource use, for people and the benchmark (JSON-ready)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "client_id": self.consumer.client_id,
            "messages": self.consumer.messages,
            "acked": self.consumer.acks.acked,
            "credentials_refused": self.consumer.credentials_refused,
            "malformed": self.consumer.decoder.malformed_total,
            **self.ingest.stats(),
            "spooled_pending": self.ingest.spooled_pending,
            "subscribed": self.consumer.subscribed.is_set(),
            "first_message_at": self.consumer.first_message_at,
            "cpu_at_first_message": self.consumer.cpu_at_first_message,
            "last_stored_at": self.ingest.last_stored_at,
            "cpu_s": time.process_time(),
            "max_rss_kb": peak_rss_kb() or usage.ru_maxrss,
            "now": time.time(),
        }
