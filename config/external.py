"""Departments' business systems that call the desk (``external.yaml``, optional).

Sensing comes from two sources (DOMAIN.md): the town's own IoT terminals, and the
departments' business systems: a water authority's flood-gauge platform, a fire
department's alarm platform. Each such system is declared here with how its events map
onto the desk's words: its event types onto matters of the catalog, its sites onto grids,
its severities onto tiers::

    systems:
    - id: water-flood-gauges          # an id: its token, its MQTT login and topic
      name: 区水务局内涝监测平台
      department: environment_water    # whose system it is (topology.yaml), optional
      events:                          # the system's event type -> a matter code
        WATERLOGGING_ALARM: FLOOD-POINT
        GAUGE_OFFLINE: SENSOR-FAULT
      sites:                           # the system's site id -> a grid (and a point)
        HP-WL-0031: {grid: huangpu-cun-g1, point: [113.424, 23.080], name: 黄埔村下穿隧道}
        HP-WL-0032: huangpu-cun-g2     # short form: the grid alone
      severities:                      # the system's level -> the least tier it opens at
        blue: D
        yellow: C
        orange: B
        red: A

An event whose type, site or severity the mapping lacks is refused with the reason
(HTTP 422 on ``POST /v1/events/external``; a dead letter on MQTT), never dropped. A
system without ``severities`` sends none: its events open at the matter's base tier.
The loader checks the references (matters of the catalog, grids and the department of
topology.yaml) and that a system's id is no edge agent's: both number their calls in the
ledger's ``(source, seq)``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from gridcall.config.base import Id, Model, Name
from gridcall.config.models import Coordinates
from gridcall.wire.ladder import Tier

Code = Annotated[str, StringConstraints(min_length=1, max_length=100,
                                        pattern=r"^[^\x00-\x1f]+$")]
"""A word of the system's own (an event type, a site id, a severity), as it sends it."""


class Site(Model):
    """Where a site of the system is: its grid, and a point if known."""

    grid: Id
    point: Coordinates | None = None
    name: str = ""


def _site(value: object) -> object:
    """``HP-WL-0032: huangpu-cun-g2`` is short for ``{grid: huangpu-cun-g2}``."""
    return {"grid": value} if isinstance(value, str) else value


class System(Model):
    id: Id
    name: Name
    department: Id | None = None
    """The department whose business system it is (topology.yaml); None: the district's."""
    events: dict[Code, Id] = Field(min_length=1)
    """The system's event type → a matter code of the catalog."""
    sites: dict[Code, Annotated[Site, BeforeValidator(_site)]] = Field(min_length=1)
    """The system's site id → its grid (and point)."""
    severities: dict[Code, Tier] = Field(default_factory=dict)
    """The system's severity → the least tier its event opens at; empty: the system
    sends none, and the matter's base tier (and the tier rules) decide."""
    note: str = ""
    """A word for people (e.g. that the mapping is an invented example)."""


class ExternalFile(Model):
    """``external.yaml``: the departments' systems allowed to call the desk."""

    systems: tuple[System, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> ExternalFile:
        seen: set[str] = set()
        for s in self.systems:
            if s.id in seen:
                raise ValueError(f"system {s.id!r} is declared twice")
            seen.add(s.id)
        return self

    def system(self, system_id: str) -> System | None:
        for s in self.systems:
            if s.id == system_id:
                return s
        return None


NO_EXTERNAL = ExternalFile()

__all__ = ["NO_EXTERNAL", "ExternalFile", "Site", "System"]
