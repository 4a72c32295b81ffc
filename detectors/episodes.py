"""From scores to alerts: one alert when an anomaly episode starts.

An episode starts when a score reaches the threshold and ends after ``clear_after``
scores below it in a row; only the start is an alert. The edge agent sends an event at
each start and end; the NAB runner writes ``alert = 1`` at each start.

>>> e = Episodes(threshold=0.9, clear_after=2)
>>> [e.step(s) for s in [0.1, 0.95, 0.97, 0.2, 0.93, 0.1, 0.1, 0.95]]
[None, 'start', None, None, None, None, 'end', 'start']

With a ``refractory`` period, a new episode cannot start until that many scored samples
have passed since the last start, so one incident raises one alert:

>>> e = Episodes(threshold=0.9, clear_after=1, refractory=4)
>>> [e.step(s) for s in [0.95, 0.1, 0.95, 0.1, 0.1, 0.95]]
['start', 'end', None, None, None, 'start']
"""

from __future__ import annotations

from typing import Literal

Phase = Literal["start", "end"]


class Episodes:
    __slots__ = ("active", "clear_after", "normal_run", "refractory", "since_start",
                 "threshold")

    def __init__(self, *, threshold: float = 0.9, clear_after: int = 3,
                 refractory: int = 0) -> None:
        self.threshold = threshold
        self.clear_after = clear_after
        self.refractory = refractory
        self.active = False
        self.normal_run = 0
        self.since_start = refractory

    def step(self, score: float | None) -> Phase | None:
        if score is None:
            return None
        self.since_start += 1
        if score >= self.threshold:
            self.normal_run = 0
            if self.active or self.since_start <= self.refractory:
                return None
            self.active = True
            self.since_start = 0
            return "start"
        if self.active:
            self.normal_run += 1
            if self.normal_run >= self.clear_after:
                self.active = False
                return "end"
        return None
