"""The registry of source kinds: the agent's ``source.type`` → how to build it and check it.

Each kind of source lives in one module that ends with a
:class:`~gridcall.edge_agent.kind.SourceKind` named ``KIND``: its settings model, a builder
(settings → a running :class:`Source`) and its commissioning checks (``gridcall edge
check``). :data:`SOURCES` names that module by the YAML ``type:``; the module is imported
only when an agent uses it (pyserial, pymodbus and aiomqtt load only where needed), and it
imports :mod:`~gridcall.edge_agent.kind`, not this registry.

``simulated`` is not built here: simulators are test and demo material that the runtime
never imports, so the composition root (gridcall's CLI, simulators/district.py) supplies
those itself; its commissioning is the generic read check.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gridcall.config import AgentSpec
from gridcall.config.base import SourceSettingsModel
from gridcall.edge_agent.commissioning import Check, CheckOptions, OpenSource, read_check
from gridcall.edge_agent.kind import SourceKind
from gridcall.edge_agent.sources import Source
from gridcall.wire.clock import Clock, wall_clock
from gridcall.wire.errors import InvariantError

SOURCES: Mapping[str, str] = MappingProxyType({
    "serial": "gridcall.edge_agent.serial_source",
    "modbus": "gridcall.edge_agent.modbus_source",
    "mqtt": "gridcall.edge_agent.local_mqtt",
})
"""``source.type`` → the module whose ``KIND`` builds and checks it."""


class NotBuiltHere(ValueError):
    """The agent's source is ``simulated``: the caller must supply it."""


def kind_of(settings: SourceSettingsModel) -> SourceKind[Any] | None:
    """The registered kind for these settings (None: ``simulated``, the caller's)."""
    kind_type = str(getattr(settings, "type", ""))
    module = SOURCES.get(kind_type)
    if module is None:
        return None
    kind = getattr(importlib.import_module(module), "KIND", None)
    if not isinstance(kind, SourceKind) or not isinstance(settings, kind.settings):
        raise InvariantError(f"{module}.KIND is not the SourceKind of {kind_type!r} sources")
    return kind


def build_source(spec: AgentSpec, *, clock: Clock = wall_clock) -> Source:
    kind = kind_of(spec.source)
    if kind is None:
        raise NotBuiltHere(f"agent {spec.id!r}: a {spec.source.type!r} source is supplied by "
                           "the caller (simulators are not part of the runtime)")
    return kind.build(spec, spec.source, clock)


async def source_checks(spec: AgentSpec, options: CheckOptions,
                        open_source: OpenSource | None) -> list[Check]:
    """The source's own commissioning checks (a source built by the caller: read a few)."""
    kind = kind_of(spec.source)
    if kind is None:
        return await read_check(spec.source.type, spec, options, open_source)
    return await kind.checks(spec, spec.source, options, open_source)
