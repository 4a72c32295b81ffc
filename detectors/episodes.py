"""From scores to alerts: one alert when an anomaly episode starts.

An episode starts when a score reaches the threshold and ends after ``clear_after``
scores below it in a row; only the start is an alert. The edge agent sends an event at
each start and end; the NAB runner writes ``alert = 1`` at each start.

>>> e = Episodes(threshold=0.9, clear_after=2)
>>> [e.step(s) for s in [0.1, 0.95, 0.97, 0.2, 0.93, 0.1, 0.1, 0.95]]
[None, 'start', None, None, None, None, 'end', 'start']
"""

from __future__ import annotations

from typing import Literal

Phase = Literal["start", "end"]


class Episodes:
    __slots__ = ("active", "clear_after", "normal_run", "threshold")

    def __init__(self, *, threshold: float = 0.9, clear_after: int = 3) -> None:
        self.threshold = threshold
        self.clear_after = clear_after
        self.active = False
        self.normal_run = 0

    def step(self, score: float | None) -> Phase | None:
        if score is None:
            return None
        if score >= self.threshold:
            self.normal_run = 0
            if self.active:
                return None
            self.active = True
            return "start"
        if self.active:
            self.normal_run += 1
            if self.normal_run >= self.clear_after:
                self.active = False
                return "end"
        return None
