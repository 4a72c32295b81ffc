"""The hub's board settings (``hub.yaml`` → ``hub.boards``): how often the board snapshot
is written to InfluxDB, when a quiet edge agent counts as silent, and which matter an
agent outage raises (see hub/board/feed.py, hub/desk/roster.py and docs/boards.md)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from gridcall.config.base import Duration, Id, Model


class BoardSettings(Model):
    interval: Duration = timedelta(seconds=30)
    """How often (on the hub's clock) the snapshot measurements are written."""
    full_every: int = Field(default=10, ge=1, le=1000)
    """Write every point of the snapshot once in this many intervals; in between, only
    what changed (an open alert with a new step or sensor, a closing point for one that
    closed, a grid's or sensor's risk or health, and the agents). The default, 10, writes a
    district's 10,000 open alerts whole once in five minutes at the default interval and
    in between only the few that moved (bench/board_feed.py: 109 lines in 3.9 ms against
    10,153 lines in 1.07 s); 1 writes every point every interval, as before 0.x. The
    boards' "now" window is ``full_every + 1`` intervals (`gridcall boards` reads it;
    rebuild the boards when you change it)."""
    silent_after: float = Field(default=3.0, gt=0, le=1000)
    """Heartbeats (the agent's status interval) without a status before an agent that
    last said "online" counts as silent, an outage like its last will."""
    offline_matter: Id = "EDGE-OFFLINE"
    """The matter an agent outage raises (one alert listing the grids its sensors are
    in); if the catalog has no such matter, outages are shown on the boards but raise no
    alert (a warning says so at start)."""
