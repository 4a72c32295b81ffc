"""From anomaly event to risk alert: matter, tier, responsible unit, departments, deadlines.

Pure: a function of the config set, the event and the time. The tier starts at the
matter's base tier; the responsible unit follows the tier up the ladder from the
sensor's grid (D grid, C community, B town, A district with the town).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gridcall.config import ConfigSet, UnitLevel
from gridcall.config.models import Matter, MatterDeadlines, Responsibility
from gridcall.wire import AnomalyEvent, Deadlines, Departments, RiskAlert, Tier

UNCLASSIFIED = Matter(
    code="UNCLASSIFIED", name="未归类异常", type="daily", base_tier="B",
    departments=Responsibility(), plan="No matter in the catalog claims this anomaly; the "
    "district (区政府兜底) owns it until the catalog is extended.",
)

# How many levels of the sensor's path (district, town, community, grid) address the alert.
ADDRESS_DEPTH: dict[Tier, int] = {"D": 4, "C": 3, "B": 2, "A": 2}
RESPONSIBLE_LEVEL: dict[Tier, UnitLevel] = {
    "D": "grid", "C": "community", "B": "town", "A": "district",
}


class UnknownSensor(LookupError):
    def __init__(self, sensor: str, agent: str) -> None:
        super().__init__(f"event from agent {agent!r} names sensor {sensor!r}, "
                         "which is not in the config")
        self.sensor = sensor


@dataclass(frozen=True, slots=True)
class Route:
    unit: str
    level: UnitLevel
    address: tuple[str, ...]
    """The unit path the alert topic is built from. For tier A it is the town's path,
    so the town and the district (subscribed to its whole tree) both receive it."""


def route(tier: Tier, sensor_path: tuple[str, str, str, str]) -> Route:
    level = RESPONSIBLE_LEVEL[tier]
    address = sensor_path[: ADDRESS_DEPTH[tier]]
    unit = sensor_path[0] if tier == "A" else address[-1]
    return Route(unit, level, address)


def _ns(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1e9)


def absolute(deadlines: MatterDeadlines, opened_at: int) -> Deadlines:
    return Deadlines(response=opened_at + _ns(deadlines.response),
                     arrival=opened_at + _ns(deadlines.arrival),
                     disposal=opened_at + _ns(deadlines.disposal))


class AlertEngine:
    def __init__(self, config: ConfigSet) -> None:
        self.config = config

    def matter_for(self, sensor_kind: str, anomaly_kind: str) -> Matter:
        return self.config.matter_for(sensor_kind, anomaly_kind) or UNCLASSIFIED

    def draft(self, event: AnomalyEvent, *, alert_id: str, now_ns: int,
              matter: Matter | None = None) -> RiskAlert:
        """The alert this event opens (for an event whose phase is ``start``); of
        ``matter`` if given, else of the matter the catalog's triggers name."""
        sensor = self.config.sensors.get(event.sensor)
        if sensor is None:
            raise UnknownSensor(event.sensor, event.agent)
        matter = matter or self.matter_for(sensor.kind, event.kind)
        tier: Tier = matter.base_tier
        where = route(tier, sensor.path)
        deadlines = (self.config.deadlines_for(matter) if matter is not UNCLASSIFIED
                     else self.config.matters.default_deadlines["daily"])
        return RiskAlert(
            alert_id=alert_id, state="opened", matter=matter.code, matter_name=matter.name,
            matter_type=matter.type, tier=tier, unit=where.unit, unit_level=where.level,
            unit_path=list(where.address),
            departments=Departments(lead=matter.departments.lead or sensor.path[0],
                                    co=list(matter.departments.co)),
            sensor=sensor.id, sensor_kind=sensor.kind, grid=sensor.grid,
            anomaly_kind=event.kind, severity=event.severity, score=event.score,
            value=event.value, detected_at=event.ts, opened_at=now_ns,
            deadlines=absolute(deadlines, now_ns), agent=event.agent, event_seq=event.seq,
        )
