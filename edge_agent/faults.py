"""Values a sensor cannot produce: its device's fault code, or a value outside the physical
range its kind declares (``limits.physical_min`` / ``physical_max`` in sensors.yaml).

Pure: no I/O, no clock. The agent passes every sample of every source through a sensor's
:class:`FaultWatch` before its detector, so the rule holds for serial, Modbus, local MQTT
and simulated sources alike. Such a value is never published as a reading: the agent
counts it by reason (``sentinel``: the source said so; ``out_of_range``: this module did)
and reports the sensor's health ``fault`` until a plausible value comes. A value outside
the physical range also opens a fault episode: one ``fault`` anomaly at its start (the
hub's catalog routes it to a device-fault matter, SENSOR-FAULT in the sample) and one
``end`` at the next plausible value, so a sensor stuck at 6553.5 ppm raises one alert,
not one per poll. A device's own fault code raises none: some devices send one while
warming up, and the health shows it.
"""

from __future__ import annotations

import math

from gridcall.config.models import Limits
from gridcall.edge_agent.watch import Verdict

OUT_OF_RANGE = "out_of_range"
SENTINEL = "sentinel"


class FaultWatch:
    """One sensor's physical range and fault episode."""

    __slots__ = ("high", "last_fault", "low", "open")

    def __init__(self, limits: Limits) -> None:
        # the physical range, bounds included (±inf where the kind declares none)
        self.low = -math.inf if limits.physical_min is None else float(limits.physical_min)
        self.high = math.inf if limits.physical_max is None else float(limits.physical_max)
        self.last_fault: int | None = None
        """When the sensor last gave a value it cannot produce (ns), if ever."""
        self.open = False
        """A fault episode is open (its start event went out, its end has not)."""

    def fault(self, ts: int, reason: str, value: float | None) -> Verdict | None:
        """A value the sensor cannot produce: the episode's start if this opens one."""
        self.last_fault = ts
        if reason != OUT_OF_RANGE or self.open:
            return None
        self.open = True
        return Verdict("fault", "start", "major", 1.0, value, ts)

    def plausible(self, ts: int, value: float) -> Verdict:
        """A value the sensor can produce, while an episode is open: the episode's end."""
        self.open = False
        return Verdict("fault", "end", "minor", 0.0, value, ts)

    def faulty(self, last_value: int | None) -> bool:
        """The latest thing the sensor gave, after ``last_value`` (its last plausible
        value's time), was a fault."""
        return self.last_fault is not None and (last_value is None
                                                or self.last_fault > last_value)
