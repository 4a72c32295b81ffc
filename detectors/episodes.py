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

A cooldown must not hide a much worse incident. A score far stronger than the one that
opened the last episode (``escalate`` times its strength ``1 / (1 - score)``, which for
the default detector is how far a statistic is beyond its alert level) starts a new
episode at once, inside the refractory period or inside the episode itself (scores from
0.9999 up count as equally strong); an edge agent sends it as a new event, which the hub
adds to the open alert as evidence:

>>> e = Episodes(threshold=0.9, clear_after=1, refractory=10)
>>> [e.step(s) for s in [0.95, 0.1, 0.96, 0.1, 0.999, 0.1, 1.0, 0.1, 1.0]]
['start', 'end', None, None, 'start', 'end', 'start', 'end', None]

Inside one episode a score raises again at most once while it stays above the
threshold: a fault whose score climbs (strength 11, 100, 1000, ...) is one incident, not
a new event at every doubling. Once the score has dipped below the threshold (without
the episode ending), a far stronger score may raise again:

>>> e = Episodes(threshold=0.9, clear_after=3, refractory=10)
>>> [e.step(s) for s in [0.91, 0.93, 0.95, 0.99, 0.994, 0.999, 0.9999]]
['start', None, None, 'start', None, None, None]
>>> [e.step(s) for s in [0.5, 0.9999]]
[None, 'start']
"""

from __future__ import annotations

from typing import Literal

Phase = Literal["start", "end"]

REFRACTORY = 100
"""Readings after an alert before the next may start, as benchmarked on NAB
(docs/benchmarks.md); an edge agent gets it with ``detector.refractory: 100``."""


class Episodes:
    __slots__ = ("active", "clear_after", "escalate", "normal_run", "opened", "raised",
                 "refractory", "since_start", "threshold")

    def __init__(self, *, threshold: float = 0.9, clear_after: int = 3,
                 refractory: int = 0, escalate: float = 2.0) -> None:
        self.threshold = threshold
        self.clear_after = clear_after
        self.refractory = refractory
        self.escalate = escalate
        self.opened = 0.0  # strength 1 / (1 - score) of the score that opened the last episode
        self.active = False
        self.normal_run = 0
        self.since_start = refractory
        # raised again inside the open episode, and the score has not dipped below the
        # threshold since: no further re-raise until it does
        self.raised = False

    def step(self, score: float | None) -> Phase | None:
        if score is None:
            return None
        self.since_start += 1
        if score >= self.threshold:
            self.normal_run = 0
            # from 0.9999 up, as strong as it gets: a score creeping towards 1.0 (as a
            # saturating detector's does) cannot raise again at every doubling
            strength = 1.0 / max(1.0 - score, 1e-4)
            if (self.active and self.raised) or (
                    strength < self.escalate * self.opened
                    and (self.active or self.since_start <= self.refractory)):
                return None  # the same incident, or no worse than it, in its cooldown
            self.raised = self.active
            self.active = True
            self.since_start = 0
            self.opened = strength
            return "start"
        if self.active:
            self.raised = False  # dipped back: a far stronger score may raise once more
            self.normal_run += 1
            if self.normal_run >= self.clear_after:
                self.active = False
                return "end"
        return None
