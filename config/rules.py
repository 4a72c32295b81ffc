"""The alert desk's rules, declared in ``matters.yaml`` beside the catalog they act on.

::

    rules:                     # what raises an alert above its matter's base tier
      severity: {critical: 1}                 # tiers up for the event's severity
      sites: {school: 1, elderly_home: 1, hazardous_goods: 1}   # sensor or grid tags
      spread:                                 # how far the matter reaches in the town
        window: 30m
        when:
          - {count: 3, of: sensors, up: 1}    # 3 sensors of this matter within 30 min
          - {count: 2, of: grids, up: 1}
          - {count: 2, of: communities, up: 1}
      persistence:                            # the anomaly keeps being reported
        - {longer_than: 2h, up: 1}
    grouping:
      reopen_window: 2h        # a recurrence this soon after closing reopens the alert
      evidence_gap: 1m         # repeats from one sensor closer than this add no step
    tier_deadlines:            # per matter type or matter code, per tier
      emergency: {A: {response: 10m, arrival: 30m, disposal: 2h}}
      GAS-LEAK: {A: {response: 5m, arrival: 30m, disposal: 2h}}

Each rule category adds its largest ``up`` that applies (spread: the largest among the
spread rules that hold); the categories add up, and the tier stops at A. Severity and
sites apply when an alert opens; spread and persistence whenever evidence joins it (a
rise then escalates the open alert, reason given); spread also lifts the other open
alerts of the matter in the town when an event makes it hold. Spread counts the distinct sensors,
grids and communities in the event's town whose anomalies made the same matter within the
window.

Deadlines of a matter at a tier: ``tier_deadlines[code][tier]``, else for a device fault
the ``maintenance`` section's (:mod:`gridcall.config.maintenance`), else the matter's own
``deadlines`` (at every tier), else ``tier_deadlines[type][tier]``, else
``default_deadlines[type]``. The defaults below follow DOMAIN.md's reference figures: an
emergency is answered within 1 h (Beijing 12345) and a whistle is answered on site
within 30 min, so the higher tiers of an emergency keep the 30-minute arrival; a daily
matter called up to the town is answered within 1 h and disposed of within a day rather
than the week a grid gets (general matters: 24 h dispatch, 7 days feedback).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field

from gridcall.config.audits import AuditRules, ClosureRules
from gridcall.config.base import Duration, Id, Model
from gridcall.config.desk_rules import (
    DEFAULT_INHIBIT,
    IncidentRules,
    InhibitRule,
    SilenceRules,
)
from gridcall.config.maintenance import Maintenance
from gridcall.config.models import (
    MatterDeadlines,
    MattersFile,
    MatterType,
    SiteTag,
)
from gridcall.wire.ladder import Tier

Severity = Literal["minor", "major", "critical"]
Up = int
MAX_UP = 3


class SpreadRule(Model):
    count: int = Field(ge=2)
    of: Literal["sensors", "grids", "communities"]
    up: Up = Field(default=1, ge=1, le=MAX_UP)


class Spread(Model):
    window: Duration = timedelta(minutes=30)
    when: tuple[SpreadRule, ...] = (
        SpreadRule(count=3, of="sensors"), SpreadRule(count=2, of="grids"),
        SpreadRule(count=2, of="communities"))


class PersistenceRule(Model):
    longer_than: Duration
    up: Up = Field(default=1, ge=1, le=MAX_UP)


class TierRules(Model):
    severity: dict[Severity, Annotated[Up, Field(ge=0, le=MAX_UP)]] = Field(
        default_factory=lambda: dict[Severity, Up]({"critical": 1}))
    sites: dict[SiteTag, Annotated[Up, Field(ge=0, le=MAX_UP)]] = Field(
        default_factory=lambda: dict[SiteTag, Up](
            {"school": 1, "elderly_home": 1, "hazardous_goods": 1}))
    spread: Spread = Spread()
    persistence: tuple[PersistenceRule, ...] = (
        PersistenceRule(longer_than=timedelta(hours=2)),)


class Grouping(Model):
    reopen_window: Duration = timedelta(hours=2)
    evidence_gap: Duration = timedelta(minutes=1)
    join_radius_m: float = Field(default=100.0, ge=0, le=10_000)
    """A call (a person's report, a system's event) that gives a GPS point joins an open
    alert of the same matter whose point lies within this many metres, even in the
    grid next door; 0: only the same grid joins."""


def _d(response: str, arrival: str, disposal: str) -> MatterDeadlines:
    return MatterDeadlines.model_validate(
        {"response": response, "arrival": arrival, "disposal": disposal})


DEFAULT_TIER_DEADLINES: dict[str, dict[Tier, MatterDeadlines]] = {
    "emergency": {"B": _d("15m", "30m", "2h"), "A": _d("10m", "30m", "2h")},
    "daily": {"B": _d("1h", "4h", "1d"), "A": _d("30m", "2h", "1d")},
    "patrol": {"B": _d("2h", "1d", "7d"), "A": _d("1h", "4h", "3d")},
}
"""Used for a type when ``tier_deadlines`` does not name it (see the module docstring)."""


class MatterCatalog(MattersFile):
    """``matters.yaml``: the catalog plus the desk's tier rules, grouping and deadlines."""

    rules: TierRules = TierRules()
    grouping: Grouping = Grouping()
    tier_deadlines: dict[Id, dict[Tier, MatterDeadlines]] = Field(default_factory=dict)
    """Keys are matter types (patrol, emergency, daily) or matter codes."""
    silences: SilenceRules = SilenceRules()
    """Who may silence for how long (:mod:`gridcall.config.desk_rules`)."""
    inhibit: tuple[InhibitRule, ...] = DEFAULT_INHIBIT
    """What an offline agent holds back (:mod:`gridcall.config.desk_rules`)."""
    incidents: IncidentRules = IncidentRules()
    """Which alerts join one incident (:mod:`gridcall.config.desk_rules`)."""
    maintenance: Maintenance | None = None
    """Device faults go to maintenance (:mod:`gridcall.config.maintenance`); without it
    they are matters like any other."""
    closure: ClosureRules = ClosureRules()
    """Who approves closing an alert of a tier (:mod:`gridcall.config.audits`)."""
    audits: AuditRules | None = None
    """Sampling closed alerts into the audit queue (:mod:`gridcall.config.audits`);
    None: nothing is sampled."""

    def maintained(self, code: str) -> bool:
        """Whether matter ``code`` is a device fault that goes to maintenance."""
        return self.maintenance is not None and code in self.maintenance.matters

    def top_tier(self, code: str) -> Tier:
        """The highest tier a missed deadline escalates matter ``code`` to: A, or the
        maintenance section's ``top_tier`` for a device fault."""
        return self.maintenance.top_tier if (
            self.maintenance is not None and code in self.maintenance.matters) else "A"

    def deadlines_at(self, code: str, type_: MatterType, own: MatterDeadlines | None,
                     tier: Tier) -> MatterDeadlines:
        """The deadlines of matter ``code`` (of type ``type_``, with its ``own``
        deadlines if any) at ``tier``; the order is in the module docstring."""
        by_code = self.tier_deadlines.get(code, {}).get(tier)
        if by_code is not None:
            return by_code
        if self.maintenance is not None and self.maintenance.deadlines is not None and (
                code in self.maintenance.matters):
            return self.maintenance.deadlines
        if own is not None:
            return own
        by_type = self.tier_deadlines.get(type_, DEFAULT_TIER_DEADLINES.get(type_, {}))
        return by_type.get(tier) or self.default_deadlines[type_]
