"""Build the source an agent's config names (serial frames, Modbus RTU, local MQTT).

``simulated`` is not built here: simulators are test and demo material that the runtime
never imports, so the composition root (gridcall/cli.py, simulators/district.py) supplies
those itself.
"""

from __future__ import annotations

from gridcall.config import AgentSpec
from gridcall.config.local_mqtt import LocalMqttSource as LocalMqttSettings
from gridcall.config.sources import ModbusSource as ModbusSettings
from gridcall.config.sources import SerialSource as SerialSettings
from gridcall.config.sources import silence_reopen_s
from gridcall.edge_agent.sources import Source
from gridcall.wire.clock import Clock, wall_clock


class NotBuiltHere(ValueError):
    """The agent's source is ``simulated``: the caller must supply it."""


def build_source(spec: AgentSpec, *, clock: Clock = wall_clock) -> Source:
    settings = spec.source
    if isinstance(settings, SerialSettings):
        from gridcall.edge_agent.serial_source import SerialFrameSource

        silence = silence_reopen_s(settings.silence_reopen,
                                   (s.interval_s for s in spec.sensors))
        return SerialFrameSource(settings, agent_id=spec.id, clock=clock, silence=silence)
    if isinstance(settings, ModbusSettings):
        from gridcall.edge_agent.modbus_source import ModbusSource

        silence = silence_reopen_s(settings.silence_reopen,
                                   (r.interval.total_seconds() for r in settings.registers))
        return ModbusSource(settings, agent_id=spec.id, clock=clock, silence=silence)
    if isinstance(settings, LocalMqttSettings):
        from gridcall.edge_agent.local_mqtt import LocalMqttSource

        return LocalMqttSource(settings, agent_id=spec.id, clock=clock,
                               sensors={s.id for s in spec.sensors})
    raise NotBuiltHere(f"agent {spec.id!r}: a {settings.type!r} source is supplied by the "
                       "caller (simulators are not part of the runtime)")
