"""What a kind of source is: its settings model, how to build it, how to commission it.

Each source module (``serial_source``, ``modbus_source``, ``local_mqtt``) ends with a
:class:`SourceKind` named ``KIND``; the registry (:mod:`gridcall.edge_agent.source_factory`)
names those modules by the YAML ``type:`` and imports them when an agent uses one. The
source modules import this module, never the registry, so the registry's lazy imports of
them close no cycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from gridcall.config import AgentSpec
from gridcall.config.base import SourceSettingsModel
from gridcall.edge_agent.commissioning import Check, CheckOptions, OpenSource
from gridcall.edge_agent.sources import Source
from gridcall.wire.clock import Clock

S = TypeVar("S", bound=SourceSettingsModel)


@dataclass(frozen=True, slots=True)
class SourceKind(Generic[S]):
    """One kind of source: its settings model, how to build it, how to commission it."""

    settings: type[S]
    build: Callable[[AgentSpec, S, Clock], Source]
    """The source an agent with these settings reads, stamping samples with ``clock``."""
    checks: Callable[[AgentSpec, S, CheckOptions, OpenSource | None], Awaitable[list[Check]]]
    """``gridcall edge check``'s checks of this source (``OpenSource`` opens it as the agent
    would, or is None where that is not available)."""
