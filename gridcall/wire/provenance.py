"""Who may speak for a sensor: a reading or event is taken only when three agents agree.

1. the agent of the topic it came on (``gridcall/v1/readings/{agent}``): the broker's ACL
   lets an agent's login publish on its own topics only, so this is the authenticated one;
2. the agent the payload names (``agent``): :class:`gridcall.wire.Decoder` refuses a
   payload naming another agent than its topic as ``forged``;
3. the agent the sensor belongs to in the config (``sensors.yaml``): :class:`Owners`.

What fails the third check is refused here, by reason: ``forged`` (the sensor is another
agent's) or ``unknown_sensor`` (no such sensor in the config), so no series is ever
created for an invented id. A reading batch may also be refused whole as
``too_many_readings`` (more than the hub's ``max_batch_readings``).

Pure and I/O-free but for :class:`Refusals`, which logs refusals for people, at most one
line per agent and reason every ``every`` seconds (the counters are the record; the log
says who and what).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from gridcall.wire.clock import Monotonic
from gridcall.wire.messages import ReadingBatch

log = logging.getLogger(__name__)

Refusal = Literal["forged", "unknown_sensor", "too_many_readings"]
REFUSALS: tuple[Refusal, ...] = ("forged", "unknown_sensor", "too_many_readings")


@dataclass(frozen=True, slots=True)
class Owners:
    """Which agent speaks for each sensor (``agent`` of each sensor in sensors.yaml)."""

    agent_of: Mapping[str, str]
    _sensors_of: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_agent: dict[str, set[str]] = {}
        for sensor, agent in self.agent_of.items():
            by_agent.setdefault(agent, set()).add(sensor)
        object.__setattr__(self, "_sensors_of",
                           {a: frozenset(s) for a, s in by_agent.items()})

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Owners:
        """From ``(sensor, agent)`` pairs: ``Owners.of((s.id, s.agent) for s in
        config.sensors.values())``."""
        return cls(dict(pairs))

    def verdict(self, agent: str, sensor: str) -> Refusal | None:
        """None when ``agent`` speaks for ``sensor``; else why not."""
        owner = self.agent_of.get(sensor)
        if owner is None:
            return "unknown_sensor"
        return None if owner == agent else "forged"

    def sensors_of(self, agent: str) -> frozenset[str]:
        return self._sensors_of.get(agent, frozenset())


@dataclass(frozen=True, slots=True)
class Screened:
    """What a batch leaves after :meth:`Screen.batch`."""

    batch: ReadingBatch | None
    """The readings that may be stored (the batch itself when all may); None if none."""
    refused: Mapping[Refusal, int]
    """Readings refused, by reason (empty when none were)."""
    examples: Mapping[Refusal, str] = field(default_factory=dict)
    """For each reason, one refused sensor id and why, for that reason's log line."""


class Screen:
    """The hub's check of reading batches (see the module docstring). There is no
    switch to let unknown ids through: a benchmark streaming synthetic ids writes a
    config set that holds them (bench/ingest_bench_config.py)."""

    def __init__(self, owners: Owners, *, max_readings: int) -> None:
        if max_readings < 1:
            raise ValueError(f"max_readings must be at least 1, got {max_readings}")
        self.owners = owners
        self.max_readings = max_readings

    def batch(self, agent: str, batch: ReadingBatch) -> Screened:
        """``batch`` as received on ``agent``'s topic: readings of ``agent``'s own sensors
        are kept, the others refused by reason; a batch longer than ``max_readings`` is
        refused whole, before any reading is looked at."""
        readings = batch.readings
        if len(readings) > self.max_readings:
            return Screened(None, {"too_many_readings": len(readings)},
                            {"too_many_readings": f"{len(readings)} readings in one batch, at "
                             f"most {self.max_readings} taken (hub.max_batch_readings)"})
        if agent == batch.agent:  # the hot path: the batch's ids against one set, in C
            ids = [r.sensor for r in readings]  # (measured faster than a generator)
            if self.owners.sensors_of(agent).issuperset(ids):
                return Screened(batch, {})
        refused: Counter[Refusal] = Counter()
        examples: dict[Refusal, str] = {}
        kept = []
        for r in readings:
            why = self.owners.verdict(agent, r.sensor) if agent == batch.agent else "forged"
            if why is None:
                kept.append(r)
                continue
            refused[why] += 1
            if why not in examples:
                examples[why] = (f"sensor {r.sensor!r} is "
                                 + ("not in the config" if why == "unknown_sensor"
                                    else f"{self.owners.agent_of.get(r.sensor)}'s"))
        out = msgspec.structs.replace(batch, readings=kept) if kept else None
        return Screened(out, dict(refused), examples)


class Refusals:
    """Logs refusals for people: the first of each (agent, reason) at once, then at most
    one line per (agent, reason) every ``every`` seconds, saying how many came since.
    Counting is the caller's (its counters are what monitoring reads)."""

    def __init__(self, what: str, *, every: float = 60.0,
                 clock: Monotonic = time.monotonic, where: str = "from") -> None:
        """``where``: the word before the key in the line ("from" an agent, "on" a
        topic)."""
        self.what = what
        self.where = where
        self.every = every
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._since: Counter[tuple[str, str]] = Counter()

    def note(self, agent: str, reason: str, detail: str, n: int = 1) -> bool:
        """Note ``n`` refusals; True if a line was logged for them."""
        key = (agent, reason)
        self._since[key] += n
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            return False
        self._last[key] = now
        count = self._since.pop(key)
        log.warning("%d %s refused %s %s (%s): %s%s", count, self.what, self.where, agent,
                    reason,
                    detail, "" if last is None else f" ({now - last:.0f}s since the last "
                    "such line; the counters have every one)")
        return True


__all__ = ["REFUSALS", "Owners", "Refusal", "Refusals", "Screen", "Screened"]
