"""An agent source polling Modbus RTU devices
(:class:`gridcall.firmware_bridge.modbus.ModbusPoller`).

Each configured register names its sensor, so a reading is a sample at once. Samples are
stamped with the agent's clock when the answer arrives. :meth:`ModbusSource.stats`
(for the status message) has requests, responses, timeouts, exception responses by name
(``exception_illegal_address``...), port opens / failures / disconnects / reconnects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from gridcall.config import AgentSpec
from gridcall.config.sources import ModbusSettings, silence_reopen_s
from gridcall.edge_agent.commissioning import (
    Check,
    CheckOptions,
    OpenSource,
    port_source_checks,
)
from gridcall.edge_agent.kind import SourceKind
from gridcall.edge_agent.sources import Sample
from gridcall.firmware_bridge.modbus import ModbusPoller
from gridcall.wire.clock import Clock, wall_clock

_ALWAYS = ("requests", "responses", "timeout", "opens", "open_failures", "disconnects",
           "reconnects", "silent_reopens", "samples")


class ModbusSource:
    def __init__(self, settings: ModbusSettings, *, agent_id: str,
                 clock: Clock = wall_clock, silence: float | None = None) -> None:
        """``silence``: seconds without any answer after which the port is reopened (None:
        never); :func:`gridcall.config.sources.silence_reopen_s` works it out from the config."""
        self.settings = settings
        self.poller = ModbusPoller(settings, clock=clock, silence=silence,
                                   name=f"agent {agent_id} modbus")

    def stats(self) -> dict[str, int]:
        """Flat counters for the status message; the keys in ``_ALWAYS`` are always there,
        exception responses appear once seen."""
        counts = self.poller.counts
        return {**{k: counts[k] for k in _ALWAYS}, **{k: v for k, v in counts.items()}}

    async def samples(self) -> AsyncIterator[Sample]:
        async for register, value, ts in self.poller.readings():
            self.poller.counts["samples"] += 1
            yield Sample(register.sensor, ts, value)


def _build(spec: AgentSpec, settings: ModbusSettings, clock: Clock) -> ModbusSource:
    silence = silence_reopen_s(settings.silence_reopen,
                               (r.interval.total_seconds() for r in settings.registers))
    return ModbusSource(settings, agent_id=spec.id, clock=clock, silence=silence)


async def _checks(spec: AgentSpec, settings: ModbusSettings, options: CheckOptions,
                  open_source: OpenSource | None) -> list[Check]:
    return await port_source_checks("modbus", settings.port, spec, options, open_source)


KIND = SourceKind(ModbusSettings, build=_build, checks=_checks)
