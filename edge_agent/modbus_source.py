"""An agent source polling Modbus devices
(:class:`gridcall.firmware_bridge.modbus.ModbusPoller`): RTU on a serial line, Modbus
TCP, or RTU frames through a TCP serial server.

Each configured register names its sensor, so a reading is a sample at once. Samples are
stamped with the agent's clock when the answer arrives. A source reads each of its
connections (:meth:`ModbusSettings.links`: the serial line, or each TCP device) with its
own poller, side by side, so a slow device does not hold up the others.
:meth:`ModbusSource.stats` (for the status message) has requests, responses, timeouts,
exception responses by name (``exception_illegal_address``...), connection opens /
failures / disconnects / reconnects, summed over the connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator

from gridcall.config import AgentSpec
from gridcall.config.sources import (
    HIGHEST_SLAVE,
    ModbusLink,
    ModbusSettings,
    silence_reopen_s,
)
from gridcall.edge_agent.commissioning import (
    Check,
    CheckOptions,
    OpenSource,
    port_source_checks,
    read_check,
)
from gridcall.edge_agent.kind import SourceKind
from gridcall.edge_agent.sources import Sample
from gridcall.firmware_bridge.modbus import ModbusPoller, Ticks
from gridcall.wire.cancelsafe import STOP_BOUND, stop_tasks
from gridcall.wire.clock import Clock, wall_clock

log = logging.getLogger(__name__)

_ALWAYS = ("requests", "responses", "timeout", "opens", "open_failures", "disconnects",
           "reconnects", "silent_reopens", "samples")


class ModbusSource:
    def __init__(self, settings: ModbusSettings, *, agent_id: str,
                 clock: Clock = wall_clock, silence: float | None = None) -> None:
        """``silence``: seconds without any answer after which the port is reopened (None:
        never); :func:`gridcall.config.sources.silence_reopen_s` works it out from the config."""
        self.settings = settings
        self.name = f"agent {agent_id} modbus"
        self.counts: Counter[str] = Counter()
        self.ticks = Ticks()  # the connections poll on one grid: one timer a tick for all
        ticks = self.ticks
        self.pollers = tuple(
            ModbusPoller(settings, link, registers, clock=clock, silence=silence,
                         name=self.name, counts=self.counts, ticks=ticks)
            for link, registers in settings.links().items())

    @property
    def poller(self) -> ModbusPoller:
        """The first connection's poller (a serial line has only this one)."""
        return self.pollers[0]

    def stats(self) -> dict[str, int]:
        """Flat counters for the status message; the keys in ``_ALWAYS`` are always there,
        exception responses appear once seen."""
        counts = self.counts
        return {**{k: counts[k] for k in _ALWAYS}, **{k: v for k, v in counts.items()}}

    async def samples(self) -> AsyncIterator[Sample]:
        async for burst in self.bursts():
            for sample in burst:
                yield sample

    async def bursts(self) -> AsyncIterator[list[Sample]]:
        """The samples, a list at a time (:class:`~gridcall.edge_agent.sources.BurstSource`):
        one connection's answers one by one; several connections' answers a tick at a
        time: all that arrived once every connection waits for its next poll, or at the
        latest when the next tick lets any of them poll (:class:`Ticks`). The
        connections' pollers run side by side and append to one list; no queue item per
        value (at 50 devices × 10 registers that queue was a fifth of the source's CPU)."""
        counts = self.counts
        if len(self.pollers) == 1:  # one connection: nothing to join
            async for answer in self.poller.answers(Sample):
                counts["samples"] += len(answer)
                yield answer
            return
        ready: list[Sample] = []
        woken = asyncio.Event()

        def flush() -> None:
            if ready:
                woken.set()

        async def feed(poller: ModbusPoller) -> None:
            async for answer in poller.answers(Sample):
                ready.extend(answer)

        feeders = [asyncio.create_task(feed(p), name=f"{self.name} {p.where}")
                   for p in self.pollers]
        # the agent is woken once every poller waits for its next tick (a whole tick's
        # answers: one journal write and one outbox commit, not one per few devices),
        # and always before a tick lets any of them poll again (Ticks): what was read
        # is taken before its source's next poll
        self.ticks.flush, self.ticks.members = flush, len(self.pollers)
        try:
            while True:
                await woken.wait()
                woken.clear()
                burst = ready.copy()
                ready.clear()
                if burst:
                    counts["samples"] += len(burst)
                    yield burst
        finally:
            self.ticks.flush = None
            await stop_tasks(feeders, STOP_BOUND, what=self.name)


def reserved_slaves(settings: ModbusSettings) -> str:
    """Why the map's slave ids above 247 may not answer ('' if it has none)."""
    high = sorted({r.slave for r in settings.registers if r.slave > HIGHEST_SLAVE})
    if not high:
        return ""
    return (f"slave ids {', '.join(map(str, high))} are above {HIGHEST_SLAVE}: the Modbus "
            "serial line spec reserves 248-255; a device set to one answers, but some "
            "converters and gateways drop the requests")


def _build(spec: AgentSpec, settings: ModbusSettings, clock: Clock) -> ModbusSource:
    silence = silence_reopen_s(settings.silence_reopen,
                               (r.interval.total_seconds() for r in settings.registers))
    reserved = reserved_slaves(settings)
    if reserved:
        log.warning("agent %s: %s", spec.id, reserved)
    return ModbusSource(settings, agent_id=spec.id, clock=clock, silence=silence)


async def _checks(spec: AgentSpec, settings: ModbusSettings, options: CheckOptions,
                  open_source: OpenSource | None) -> list[Check]:
    reserved = reserved_slaves(settings)
    warned = [Check("modbus slave ids", "WARN", reserved,
                    "if a slave never answers, check the converter passes reserved ids, "
                    "or give the device an id of 1-247")] if reserved else []
    return warned + await _link_checks(spec, settings, options, open_source)


async def _link_checks(spec: AgentSpec, settings: ModbusSettings, options: CheckOptions,
                       open_source: OpenSource | None) -> list[Check]:
    if settings.transport == "rtu":
        return await port_source_checks("modbus", settings.port or "", spec, options,
                                        open_source)
    reached = [await _reach(link, options.timeout) for link in settings.links()]
    failed = [c for c in reached if c.status == "FAIL"]
    if failed:
        return failed
    where = ", ".join(str(link) for link in settings.links())
    return [Check("modbus devices", "PASS", f"{len(reached)} reachable: {where}"),
            *await read_check("modbus", spec, options, open_source)]


async def _reach(link: ModbusLink, within: float) -> Check:
    """A TCP device (or serial server) accepts a connection."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(link.host, link.tcp_port), within)
    except (OSError, TimeoutError) as exc:
        return Check("modbus device", "FAIL", f"cannot connect to {link}: {exc or 'timeout'}",
                     "check the device's address and port in agents.yaml, that it is "
                     "powered and on this network, and any firewall between")
    writer.close()
    return Check("modbus device", "PASS", f"{link} accepts connections")


KIND = SourceKind(ModbusSettings, build=_build, checks=_checks)
