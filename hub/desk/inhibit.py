"""Inhibition: one state holds back alerts that would only repeat it. Pure, no I/O, no
clock.

An edge agent that is offline (``lost`` or ``silent`` on the roster, until it is back
online) makes its own sensors look faulty: they are stuck, or they drop out, because
their gateway is gone. Those alerts are the outage seen again, and the outage has its
own alert (``EDGE-OFFLINE``). So, as Alertmanager's ``inhibit/`` lets a source alert hold
back target alerts, the desk asks the :class:`Inhibitor` before grouping: an anomaly of
a sensor whose agent is offline is held back if its matter or its anomaly kind is one an
``inhibit`` rule of matters.yaml names (by default ``SENSOR-FAULT``, ``stuck`` and
``dropout``). It opens no alert and joins none; the event is stored as every event is,
and the desk keeps the latest held ones for the API (:class:`Held`).

Which agents are offline is not this module's business: the desk in service gives it
the roster's answer (``offline``: agent id → bool), a test gives it a set. The desk's
outage alert itself is never held (it is raised with its matter named, not from a
sensor's anomaly kind, and the default rules do not name ``EDGE-OFFLINE``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gridcall.config.desk_rules import InhibitRule

Offline = Callable[[str], bool]
"""Whether the edge agent with this id is offline now."""


def never(agent: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Held:
    """An anomaly event an inhibit rule held back."""

    at: int
    """When the desk held it (ns, the desk's clock)."""
    agent: str
    seq: int
    sensor: str
    matter: str
    anomaly_kind: str
    why: str
    """``edge agent edge-dongyuan is offline``."""


class Inhibitor:
    """``Inhibitor(rules, offline)``; :meth:`holds` answers for one anomaly."""

    def __init__(self, rules: Iterable[InhibitRule], offline: Offline = never) -> None:
        self.rules = tuple(rules)
        self.offline = offline
        """Settable: the desk in service points it at its roster."""

    def holds(self, *, agent: str, matter: str, anomaly_kind: str) -> str | None:
        """Why an anomaly of ``agent``'s sensor making ``matter`` is held back, or None."""
        for rule in self.rules:
            if rule.source != "agent_offline":
                continue
            if matter not in rule.matters and anomaly_kind not in rule.anomaly_kinds:
                continue
            if self.offline(agent):
                return f"edge agent {agent} is offline"
        return None


__all__ = ["Held", "Inhibitor", "Offline", "never"]
