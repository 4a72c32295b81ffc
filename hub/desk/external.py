"""Calls from departments' business systems: their event, and what it means to the desk.
Pure: no I/O, no clock.

A system of ``external.yaml`` (:mod:`gridcall.config.external`) sends an
:class:`ExternalEvent`, over HTTP (``POST /v1/events/external`` with the system's token)
or MQTT (``gridcall/v1/external/<system>`` with its login), as JSON::

    {"event_id": "WL-2026-000123", "type": "WATERLOGGING_ALARM", "site": "HP-WL-0031",
     "severity": "orange", "occurred_at": 1796605200000000000,
     "description": "water 32 cm over the tunnel's alarm depth"}

:func:`translate` maps it through the system's mapping onto a matter of the catalog, a
grid (and the site's point), and the least tier its severity asks for, or raises
:class:`Unmappable` naming what the mapping lacks: the caller refuses it (422) or
dead-letters it, so nothing is dropped without a reason. The desk then takes it as any
call (:mod:`gridcall.hub.desk.intake`), numbered by :mod:`gridcall.hub.desk.external_log`
so that ``(system, event_id)`` is taken once.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from gridcall.config import ConfigSet
from gridcall.config.external import System
from gridcall.config.models import Coordinates
from gridcall.wire.ladder import Tier

MAX_ID = 200
MAX_TEXT = 2000


class ExternalEvent(BaseModel):
    """One event of a department's business system, in its own words."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=MAX_ID, description="The system's own "
                          "id of the event: a repeat of it (a retry, a redelivery) is taken "
                          "once.")
    type: str = Field(min_length=1, max_length=100, description="The system's event type: "
                      "external.yaml maps it onto a matter of the catalog.")
    site: str = Field(min_length=1, max_length=100, description="The system's site id: "
                      "external.yaml maps it onto a grid (and a point).")
    severity: str | None = Field(default=None, min_length=1, max_length=100,
                                 description="The system's severity: external.yaml maps it "
                                 "onto the least tier the alert opens at. Required when "
                                 "the system's mapping has severities.")
    occurred_at: int | None = Field(default=None, ge=0, lt=2**63, description="When the "
                                    "system saw it (ns since the epoch); default: when the "
                                    "hub received it.")
    description: str = Field(default="", max_length=MAX_TEXT, description="What the "
                             "system says about it, for the record.")
    system: str | None = Field(default=None, min_length=1, max_length=64, description=(
        "The system's id; optional, and if given it must be the token's (the topic's on "
        "MQTT)."))


class Unmappable(ValueError):
    """An event the system's mapping cannot place; the message says what is missing."""

    def __init__(self, system: str, why: str) -> None:
        super().__init__(f"event of system {system!r} cannot be mapped: {why} "
                         "(external.yaml)")
        self.system = system
        self.why = why


@dataclass(frozen=True, slots=True)
class Mapped:
    """An external event in the desk's words."""

    system: str
    event_id: str
    matter: str
    grid: str
    tier: Tier | None
    """The least tier (the system's severity), None: the matter's base tier decides."""
    point: Coordinates | None
    at: int
    """When the system saw it (ns): the alert's ``detected_at``."""
    note: str
    """The ledger's note: what, how severe, where, and the system's own words."""


def _known(words: object) -> str:
    names = sorted(str(w) for w in words)  # type: ignore[attr-defined]
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"known: {shown}" if names else "it has none"


def translate(config: ConfigSet, system_id: str, event: ExternalEvent, *,
              received_at: int) -> Mapped:
    """``event`` of ``system_id`` in the desk's words; :class:`Unmappable` if the system
    is not in external.yaml, names another system, or its type, site or severity is
    not in the system's mapping."""
    system: System | None = config.external.system(system_id)
    if system is None:
        raise Unmappable(system_id, "no such system")
    if event.system is not None and event.system != system_id:
        raise Unmappable(system_id, f"it names system {event.system!r}, but it came from "
                         f"{system_id!r}")
    matter = system.events.get(event.type)
    if matter is None:
        raise Unmappable(system_id, f"unknown event type {event.type!r} "
                         f"({_known(system.events)})")
    site = system.sites.get(event.site)
    if site is None:
        raise Unmappable(system_id, f"unknown site {event.site!r} ({_known(system.sites)})")
    tier: Tier | None = None
    if system.severities:
        if event.severity is None:
            raise Unmappable(system_id, "no severity, and the mapping needs one "
                             f"({_known(system.severities)})")
        tier = system.severities.get(event.severity)
        if tier is None:
            raise Unmappable(system_id, f"unknown severity {event.severity!r} "
                             f"({_known(system.severities)})")
    window = config.hub.decoder_window()
    if event.occurred_at is not None and window is not None and not (
            received_at - window.past <= event.occurred_at <= received_at + window.future):
        raise Unmappable(system_id, f"occurred_at {event.occurred_at} lies outside the hub's "
                         "window (hub.ts_window: 30 days back, 1 hour ahead by default): is "
                         "the system's clock right, and does it send ns since the epoch?")
    where = f"{site.name} ({event.site})" if site.name else event.site
    how = f" {event.severity}" if event.severity else ""
    said = f": {event.description}" if event.description else ""
    note = f"{system.name}: {event.type}{how} at {where}{said} [event {event.event_id}]"
    return Mapped(system=system_id, event_id=event.event_id, matter=matter, grid=site.grid,
                  tier=tier, point=site.point,
                  at=event.occurred_at if event.occurred_at is not None else received_at,
                  note=note[:MAX_TEXT + 500])


__all__ = ["ExternalEvent", "Mapped", "Unmappable", "translate"]
