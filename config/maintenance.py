"""Device faults go to maintenance (``matters.yaml`` → ``maintenance``).

A broken sensor or a gateway that dropped off is a job for the operations and maintenance
department (运维), not a call that climbs the ladder to the district command centre::

    maintenance:
      matters: [SENSOR-FAULT, EDGE-OFFLINE]   # the device faults (matters of the catalog)
      department: operations_maintenance      # topology.yaml: leads them (its own indicators)
      deadlines: {response: 4h, arrival: 1d, disposal: 3d}   # at every tier
      top_tier: B                             # the highest tier they escalate to
      sensor_missing_after: 5                 # intervals without a reading: SENSOR-FAULT

- **department** leads every alert of these matters (the catalog's own lead and co-handlers
  follow as co-handlers), so the indicators per department give maintenance its own
  response and disposal rates;
- **deadlines** replace the matter's own and its type's at every tier (a
  ``tier_deadlines`` entry for the matter code still wins for the tier it names);
- **top_tier**: a missed deadline escalates these alerts no higher than this tier (B:
  the town). At it, a missed deadline is shown as overdue and paged, not escalated; set
  ``A`` to send them to the district like any matter. A unit's own call upward is not
  held back (whoever calls has decided the district must know);
- **sensor_missing_after**: a sensor its agent reports ``missing`` (no usable value for 5
  of its intervals, the agent's own rule) that has gone this many of its reading
  intervals without one raises a ``dropout`` anomaly of the sensor, which the catalog
  makes a ``SENSOR-FAULT`` (once per stretch of missing; 0 turns it off). Without the
  section a missing sensor is shown, and raises nothing, as before.

Without the section, device faults are matters like any other (the behaviour before it).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from gridcall.config.base import Id, Model
from gridcall.config.models import MatterDeadlines
from gridcall.wire.ladder import Tier


class Maintenance(Model):
    matters: tuple[Id, ...] = Field(min_length=1)
    department: Id
    deadlines: MatterDeadlines | None = None
    top_tier: Tier = "B"
    sensor_missing_after: int = Field(default=5, ge=0, le=1000)

    @model_validator(mode="after")
    def _distinct(self) -> Maintenance:
        twice = sorted({m for m in self.matters if self.matters.count(m) > 1})
        if twice:
            raise ValueError(f"matters names {twice} more than once")
        return self


__all__ = ["Maintenance"]
