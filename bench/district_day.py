"""A simulated day of a district's message rates: the peaks, not only the averages.

    python bench/district_day.py [--sensors 1000000] [--seed 20] [...]   (--help: all)

bench/million_rates.py is average-rate arithmetic. This simulates one day, second by
second, of a district of ``--sensors`` sensors built by tiling the sample district
(config/examples/huangpu: its kinds, reading intervals and grids, repeated), and prints,
per stream, the day's mean, the peak minute and the peak second:

- **readings**: each sensor reads at its kind's ``interval``; each edge agent of
  ``--per-agent`` sensors seals a batch every ``--batch`` seconds (at a phase of its
  own) into messages of at most ``--batch-max`` readings (``batch_max_readings``; the
  model keeps 50, the agents' default before it became 500: ten times the messages an
  outbox's flush makes now, so the flush peak below is on the safe side), and says its
  status every ``--status`` seconds;
- **an outage** of the broker (``--outage-share 1``) or of a town's uplink (a share of
  the agents) from ``--outage-at`` for ``--outage-min`` minutes: its agents' messages stay
  in their outboxes, and each agent, reconnecting within ``--reconnect-spread`` seconds
  of the end (the agents probe every 0.5 s, gridcall/wire/backoff.py), publishes its
  whole backlog at once (events and sealed batches as they were sealed; statuses are not
  kept), the catch-up peak at the broker and at ingest;
- **events** (anomaly episodes, a start and an end each, ``--episodes`` per sensor per
  day, lasting ``--episode-min`` minutes on average) and **calls** (people's reports to
  the desk through the API, ``--calls`` per sensor per day) follow a diurnal shape,
  ``1 + a cos(2 pi (t - peak) / day)``, ``a`` = ``--diurnal`` / ``--calls-diurnal``;
- **an alarm storm**: a rainstorm at ``--storm-at`` raising, in ``--storm-grids`` of the
  grids, one episode on each sensor of the ``--storm-kinds`` within its first
  ``--storm-onset`` minutes, each ending within ``--storm-min`` minutes of its end.

Against them: ingest workers at ``--worker`` readings/s each (one worker on mosquitto's
defaults, the lead's quiet run of the shared harness: 410,607, docs/benchmarks.md "Ingest
at line rate") and desks at ``--desk`` events/s (bench/alert_desk.py's anomaly events
through Desk.on_event: 2,542/s, docs/benchmarks.md "Alert desk"): the workers the peak
minute needs, and how long the catch-up queues at the broker with the fleet sized at half
load on the mean (bench/million_rates.py's sizing). Seeded: the same arguments print the
same figures. Not a measurement of anything but this model.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import yaml

from bench.million_rates import SAMPLE, _seconds

DAY = 86_400
Counts = np.ndarray  # per second of the day, float64


@dataclass(frozen=True, slots=True)
class Params:
    sensors: int = 1_000_000
    per_agent: int = 10
    batch: int = 10
    batch_max: int = 50
    status: int = 30
    episodes: float = 2.0
    episode_min: float = 20.0
    diurnal: float = 0.5
    diurnal_peak_h: float = 14.0
    calls: float = 0.02
    calls_diurnal: float = 0.9
    outage_at_h: float = 8.0
    outage_min: float = 10.0
    outage_share: float = 1.0
    reconnect_spread: int = 1
    storm_at_h: float = 17.5
    storm_onset: float = 10.0
    storm_min: float = 45.0
    storm_grids: float = 0.3
    storm_kinds: tuple[str, ...] = ("water_level", "water_leak", "rain")
    worker: float = 410_607
    desk: float = 2_542
    seed: int = 20

    def __post_init__(self) -> None:
        if self.batch < 1 or DAY % self.batch or self.status < 1 or DAY % self.status:
            raise ValueError(f"--batch {self.batch} and --status {self.status} must be "
                             f"whole seconds dividing a day ({DAY} s)")
        if not 0 <= self.outage_share <= 1 or not 0 <= self.storm_grids <= 1:
            raise ValueError("--outage-share and --storm-grids are shares, 0 to 1")
        if self.reconnect_spread < 1:
            raise ValueError("--reconnect-spread is at least 1 s")


@dataclass(frozen=True, slots=True)
class District:
    """The sample tiled to ``sensors``: each sensor's kind, grid and agent."""

    kinds: tuple[str, ...]
    interval: np.ndarray  # per kind, seconds
    kind_of: np.ndarray
    grid_of: np.ndarray
    agent_of: np.ndarray

    @property
    def agents(self) -> int:
        return int(self.agent_of.max()) + 1

    def readings_per_day(self) -> float:
        """Each sensor's day of readings: sensors x (1 / interval) x seconds."""
        return float((DAY / self.interval[self.kind_of]).sum())


def district(p: Params) -> District:
    doc = yaml.safe_load((SAMPLE / "sensors.yaml").read_text(encoding="utf-8"))
    kinds = tuple(doc["kinds"])
    interval = np.array([_seconds(str(doc["kinds"][k]["interval"])) for k in kinds])
    sample = doc["sensors"]
    grids = sorted({s["grid"] for s in sample})
    s_kind = np.array([kinds.index(s["kind"]) for s in sample])
    s_grid = np.array([grids.index(s["grid"]) for s in sample])
    i = np.arange(p.sensors)
    tile, at = np.divmod(i, len(sample))
    return District(kinds, interval, s_kind[at], tile * len(grids) + s_grid[at],
                    i // p.per_agent)


@dataclass(frozen=True, slots=True)
class Day:
    """Per second of the day: messages at the broker, readings at ingest, events and calls
    at the desk; and what the storm raised."""

    messages: Counts
    readings: Counts
    events: Counts
    calls: Counts
    storm_sensors: int
    outage: tuple[int, int]
    storm: tuple[int, int]

    @property
    def desk(self) -> Counts:
        both: Counts = self.events + self.calls
        return both


def _diurnal(amplitude: float, peak_h: float) -> np.ndarray:
    t = np.arange(DAY)
    w: np.ndarray = 1 + amplitude * np.cos(2 * np.pi * (t - peak_h * 3600) / DAY)
    shape: np.ndarray = w / w.sum()
    return shape


def simulate(p: Params, d: District | None = None) -> Day:
    d = d if d is not None else district(p)
    rng = {name: np.random.default_rng([p.seed, n]) for n, name in enumerate(
        ("phase", "status", "reconnect", "episodes", "storm", "calls"))}
    agents = d.agents
    rate = np.bincount(d.agent_of, weights=1 / d.interval[d.kind_of], minlength=agents)
    per_flush = rate * p.batch  # readings an agent seals every batch
    msgs_flush = np.ceil(per_flush / p.batch_max - 1e-9)
    phase = rng["phase"].integers(0, p.batch, agents)
    s_phase = rng["status"].integers(0, p.status, agents)
    readings = np.tile(np.bincount(phase, weights=per_flush, minlength=p.batch),
                       DAY // p.batch)
    messages = np.tile(np.bincount(phase, weights=msgs_flush, minlength=p.batch),
                       DAY // p.batch)
    messages += np.tile(np.bincount(s_phase, minlength=p.status).astype(float),
                        DAY // p.status)

    # the outage: the first outage_share of the agents (agents are numbered grid by grid,
    # so a block of them is a town's uplink); each one's flushes from the outage's start
    # until it reconnects are published at once when it does
    o0 = int(p.outage_at_h * 3600) % DAY
    o1 = o0 + int(p.outage_min * 60)
    hit = math.ceil(p.outage_share * agents) if p.outage_min > 0 else 0
    back = np.full(agents, -1)
    if hit:
        back[:hit] = o1 + rng["reconnect"].integers(0, p.reconnect_spread, hit)
        if back.max() >= DAY:
            raise ValueError("the outage must end before midnight")
        owed_r = np.zeros(hit)
        owed_m = np.zeros(hit)
        ph, sp, bk = phase[:hit], s_phase[:hit], back[:hit]
        for s in range(o0, int(bk.max())):
            down = bk > s
            flush = down & (ph == s % p.batch)
            said = down & (sp == s % p.status)
            owed_r += np.where(flush, per_flush[:hit], 0)
            owed_m += np.where(flush, msgs_flush[:hit], 0)
            readings[s] -= per_flush[:hit][flush].sum()
            messages[s] -= msgs_flush[:hit][flush].sum() + said.sum()  # statuses lost
        readings += np.bincount(bk, weights=owed_r, minlength=DAY)
        messages += np.bincount(bk, weights=owed_m + 1, minlength=DAY)  # + "online"

    # anomaly episodes on the diurnal shape, a start and an end each
    r = rng["episodes"]
    n = round(p.sensors * p.episodes)
    starts = r.choice(DAY, n, p=_diurnal(p.diurnal, p.diurnal_peak_h))
    ends = (starts + r.exponential(p.episode_min * 60, n).astype(int)) % DAY
    sensor = r.integers(0, p.sensors, n)
    # the storm: in storm_grids of the grids, an episode on each sensor of its kinds
    r = rng["storm"]
    t0 = int(p.storm_at_h * 3600) % DAY
    t1 = t0 + int(p.storm_min * 60)
    hit_grids = r.random(int(d.grid_of.max()) + 1) < p.storm_grids
    unknown = sorted(set(p.storm_kinds) - set(d.kinds))
    if unknown:
        raise ValueError(f"--storm-kinds {unknown}: not kinds of the sample ({d.kinds})")
    kinds = [d.kinds.index(k) for k in p.storm_kinds]
    stormed = np.flatnonzero(hit_grids[d.grid_of] & np.isin(d.kind_of, kinds))
    s_starts = t0 + r.integers(0, max(1, int(p.storm_onset * 60)), stormed.size)
    s_ends = t1 + r.integers(0, max(1, int(p.storm_min * 60)), stormed.size)
    if stormed.size and int(s_ends.max()) >= DAY:
        raise ValueError("the storm and its ending must be over before midnight")
    times = np.concatenate([starts, ends, s_starts, s_ends])
    agent = d.agent_of[np.concatenate([sensor, sensor, stormed, stormed])]
    late = (back[agent] > times) & (times >= o0)  # held in the outbox: sent on reconnect
    times = np.where(late, back[agent], times)
    events = np.bincount(times, minlength=DAY).astype(float)
    messages += events
    calls = np.bincount(rng["calls"].choice(
        DAY, round(p.sensors * p.calls), p=_diurnal(p.calls_diurnal, p.diurnal_peak_h)),
        minlength=DAY).astype(float)
    return Day(messages, readings, events, calls, int(stormed.size), (o0, o1), (t0, t1))


@dataclass(frozen=True, slots=True)
class Peaks:
    mean: float
    minute: float
    minute_at: int
    second: float
    second_at: int


def peaks(per_second: Counts) -> Peaks:
    per_minute = per_second.reshape(-1, 60).sum(axis=1) / 60
    m, s = int(per_minute.argmax()), int(per_second.argmax())
    return Peaks(float(per_second.sum() / DAY), float(per_minute[m]), m * 60,
                 float(per_second[s]), s)


def catch_up(readings: Counts, capacity: float) -> tuple[float, int]:
    """The most readings queued at the broker, and the longest time (s) a queue stood,
    with ingest taking ``capacity`` readings/s."""
    queued = top = 0.0
    run = longest = 0
    for arriving in readings.tolist():
        queued = max(0.0, queued + arriving - capacity)
        top = max(top, queued)
        run = run + 1 if queued > 0 else 0
        longest = max(longest, run)
    return top, longest


def _hm(second: int) -> str:
    return f"{second // 3600:02d}:{second % 3600 // 60:02d}:{second % 60:02d}"


def report(p: Params) -> list[str]:
    d = district(p)
    day = simulate(p, d)
    lines = [f"district: {p.sensors:,} sensors, {d.agents:,} agents, "
             f"{int(d.grid_of.max()) + 1:,} grids; batch {p.batch} s; "
             f"{'broker' if p.outage_share == 1 else 'uplink'} outage "
             f"{_hm(day.outage[0])} for {p.outage_min:g} min cutting {p.outage_share:.0%} "
             f"of the agents; storm {_hm(day.storm[0])} in {p.storm_grids:.0%} of the grids "
             f"({day.storm_sensors:,} sensors raise); seed {p.seed}"]
    for name, series in (("broker messages/s", day.messages),
                         ("ingest readings/s", day.readings),
                         ("desk events+calls/s", day.desk)):
        k = peaks(series)
        lines.append(
            f"{name:<20} mean {k.mean:>10,.0f}  peak minute {k.minute:>10,.0f} at "
            f"{_hm(k.minute_at)} ({k.minute / k.mean:.1f}x)  peak second "
            f"{k.second:>12,.0f} at {_hm(k.second_at)}")
    r = peaks(day.readings)
    fleet = math.ceil(r.mean / (p.worker / 2))
    top, stood = catch_up(day.readings, fleet * p.worker)
    lines.append(
        f"ingest at {p.worker:,.0f} readings/s a worker: the mean needs "
        f"{r.mean / p.worker:.2f} workers, the peak minute {math.ceil(r.minute / p.worker)}; "
        f"{fleet} (half load on the mean) queue at most {top:,.0f} readings at the broker "
        f"and drain them in {stood} s")
    e = peaks(day.desk)
    top, stood = catch_up(day.desk, p.desk)
    lines.append(
        f"desk at {p.desk:,.0f} events/s: the peak minute is {e.minute / p.desk:.1%} of one "
        f"desk; one desk queues at most {top:,.0f} events and drains them in {stood} s")
    t0, t1 = day.storm
    storm = day.desk[t0 - t0 % 60:t1 + 60 - t1 % 60].reshape(-1, 60).sum(axis=1) / 60
    lines.append(
        f"storm {_hm(t0)}-{_hm(t1)}: {day.storm_sensors:,} episodes start in its first "
        f"{p.storm_onset:g} min; desk peak minute {storm.max():,.0f} events/s, "
        f"{storm.max() / e.mean:.1f}x the day's mean, {storm.max() / p.desk:.1%} of one desk")
    return lines


def _args() -> Params:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    base = Params()
    for name in Params.__dataclass_fields__:
        flag = "--" + name.replace("_h", "").replace("_", "-") if name.endswith("_h") \
            else "--" + name.replace("_", "-")
        value = getattr(base, name)
        if isinstance(value, tuple):
            ap.add_argument(flag, dest=name, nargs="+", default=value)
        else:
            ap.add_argument(flag, dest=name, type=type(value), default=value,
                            help=f"default {value}")
    given: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v)
                             for k, v in vars(ap.parse_args()).items()}
    return replace(base, **given)


def main() -> None:
    for line in report(_args()):
        print(line)


if __name__ == "__main__":
    main()
