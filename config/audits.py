"""Closure control and audits (效果抽查、结果稽查), declared in ``matters.yaml``::

    closure:                   # closing a high-tier alert needs the responsible level
      approval: {A: district, B: town}   # tier -> the level that approves its closing
    audits:                    # the district samples closed alerts into an audit queue
      seed: 2026               # the draw is a hash of (seed, alert, step): replayable
      tiers: {A: 1.0, B: 0.5, C: 0.2, D: 0.1}   # the share of closings sampled per tier
      matters: {GAS-LEAK: 1.0} # per matter; where both name a rate, the higher holds
      by: district             # the level whose units record pass or fail

Without ``closure`` a tier-A alert closes, as before, when any unit of its subtree
closes it; with it, a unit below the level that tier names only *requests* the
closing, and a unit at that level or above it approves or rejects the request
(docs/desk.md, "Closure control and audits"). Without ``audits`` nothing is sampled;
an auditor may still audit a closed alert by hand.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from pydantic import Field

from gridcall.config.base import Id, Model
from gridcall.wire.ladder import LEVELS, Tier, UnitLevel

Rate = Annotated[float, Field(ge=0, le=1)]
"""A share of closings sampled, 0..1."""


class ClosureRules(Model):
    """``closure``: who must approve closing (resolve, false alarm) an alert of a tier."""

    approval: dict[Tier, UnitLevel] = Field(default_factory=dict)
    """Tier -> the level whose unit (in whose subtree the alert lies) approves its closing.
    A tier not named closes without approval."""

    def approver_level(self, tier: Tier) -> UnitLevel | None:
        return self.approval.get(tier)

    def needs_approval(self, tier: Tier, level: UnitLevel) -> UnitLevel | None:
        """The level that must approve a closing by a unit of ``level`` at ``tier``, or
        None when that unit may close it itself (at or above the approving level)."""
        need = self.approval.get(tier)
        if need is None or LEVELS.index(level) <= LEVELS.index(need):
            return None
        return need


class AuditRules(Model):
    """``audits``: sampling closed alerts into the audit queue, and who audits."""

    seed: int = 0
    tiers: dict[Tier, Rate] = Field(default_factory=dict)
    matters: dict[Id, Rate] = Field(default_factory=dict)
    by: UnitLevel = "district"
    """Units of this level or above (in whose subtree the alert lies) record verdicts."""

    def rate(self, tier: Tier, matter: str) -> float:
        """The share of closings of ``matter`` at ``tier`` sampled: the higher of the
        tier's and the matter's rate (0 if neither is named)."""
        return max(self.tiers.get(tier, 0.0), self.matters.get(matter, 0.0))

    def draw(self, alert_id: str, n: int) -> float:
        """The alert's draw for its closing at step ``n``, uniform in [0, 1): a hash of
        the seed, the alert and the step, so a replay samples the same closings."""
        digest = hashlib.sha256(f"{self.seed}|{alert_id}|{n}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def sampled(self, alert_id: str, n: int, tier: Tier, matter: str) -> bool:
        return self.draw(alert_id, n) < self.rate(tier, matter)

    def may_audit(self, level: UnitLevel) -> bool:
        return LEVELS.index(level) <= LEVELS.index(self.by)
