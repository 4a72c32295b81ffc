"""What does a board snapshot cost? Prints the figures.

    python bench/board_feed.py [--alerts 10000] [--rounds 20] [--influx http://127.0.0.1:8086]

For the sample district (117 sensors, 27 grids, 9 agents all reporting every sensor's
health) the snapshot the hub writes every ``boards.interval``
(:meth:`gridcall.hub.board.feed.BoardFeed.snapshot`: open_alert, grid_risk, sensor_risk,
agent_state), with

1. the open alerts a busy sample district can have (one per matter and grid at most:
   here 20, the desk groups the rest), and
2. ``--alerts`` open alerts (10,000 by default; built with the lifecycle functions, not
   through the desk, since the sample's 27 grids cannot hold that many at once), each
   with two evidence sensors.

Each is built ``--rounds`` times; the median and the worst are printed with the lines and
bytes. With ``--influx`` each snapshot is also written to that InfluxDB 1.x (a fresh
database, dropped afterwards) through the hub's own v1 sink, in the writer's requests of
5,000 lines, and the write is timed. Last, what a hub with ``boards.full_every`` > 1
writes between full snapshots when ``--changed`` of the ``--alerts`` took a step since
the last write (hub/board/diff.py): built and, with ``--influx``, written the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from gridcall.config import SAMPLE_DISTRICT, ConfigSet, load_config  # noqa: E402
from gridcall.hub.board.diff import SnapshotDiff  # noqa: E402
from gridcall.hub.board.feed import BoardFeed  # noqa: E402
from gridcall.hub.board.writer import BoardWriter  # noqa: E402
from gridcall.hub.desk.lifecycle import AlertState, apply, opening, step  # noqa: E402
from gridcall.hub.desk.policy import Policy  # noqa: E402
from gridcall.hub.desk.roster import Roster  # noqa: E402
from gridcall.sinks import influx_sink  # noqa: E402
from gridcall.wire import AgentStatus, AnomalyEvent, SensorHealth  # noqa: E402

S = 10**9
T0 = 1_790_000_000 * S


def open_alerts(cfg: ConfigSet, n: int, *, one_per_place: bool
                ) -> tuple[list[AlertState], dict[str, tuple[str, ...]]]:
    """``n`` open alerts on the sample's sensors (at most one per matter and grid if
    ``one_per_place``), and two evidence sensors for each."""
    engine = Policy(cfg)
    sensors = list(cfg.sensors.values())
    states: list[AlertState] = []
    evidence: dict[str, tuple[str, ...]] = {}
    places: set[tuple[str, str]] = set()
    i = 0
    while len(states) < n and i < n * 10:
        s = sensors[i % len(sensors)]
        i += 1
        matter = engine.matter_for(s.kind, "out_of_limits")
        if one_per_place and (matter.code, s.grid) in places:
            continue
        places.add((matter.code, s.grid))
        alert_id = f"AL{len(states) + 1:06d}"
        event = AnomalyEvent(agent=s.agent, seq=i, sensor=s.id, kind="out_of_limits",
                             severity="major", score=0.9, value=1.0, ts=T0)
        draft = engine.draft(event, alert_id=alert_id, now_ns=T0 + i)
        states.append(apply(None, opening(draft, place=s.path)))
        evidence[alert_id] = (sensors[(i + 1) % len(sensors)].id,
                              sensors[(i + 2) % len(sensors)].id)
    return states, evidence


def roster_all_reporting(cfg: ConfigSet, now: int) -> Roster:
    roster = Roster(cfg)
    for spec in cfg.agents.values():
        roster.observe(AgentStatus(
            agent=spec.id, state="online", ts=now, heartbeat_s=30.0, outbox_messages=3,
            outbox_oldest_age_s=1.5,
            sensor_health={s.id: SensorHealth(state="ok") for s in spec.sensors}), now)
    return roster


def measure(feed: BoardFeed, states: list[AlertState], evidence: dict[str, tuple[str, ...]],
            roster: Roster, rounds: int) -> tuple[list[float], bytes]:
    times: list[float] = []
    body = b""
    now = T0 + 60 * S
    for _ in range(rounds):
        started = time.perf_counter()
        body = feed.snapshot(states, now, evidence=evidence, agents=roster.views(now))
        times.append(time.perf_counter() - started)
    return times, body


def changed_only(feed: BoardFeed, states: list[AlertState],
                 evidence: dict[str, tuple[str, ...]], roster: Roster, changed: int,
                 rounds: int) -> tuple[list[float], bytes]:
    """What a hub with ``boards.full_every`` > 1 writes between full snapshots when
    ``changed`` of the alerts took a step since the last write (acknowledged): built
    ``rounds`` times, each after a full write."""
    now = T0 + 60 * S
    moved = [apply(st, step(st, "acknowledge", at=T0 + 30 * S, actor=st.unit))
             if i < changed else st for i, st in enumerate(states)]
    times: list[float] = []
    body = b""
    names = (f"{feed.names['grid_risk']},", f"{feed.names['sensor_risk']},")
    for _ in range(rounds):
        diff = SnapshotDiff(10, diffed=names)
        plan = diff.plan(states, evidence)
        diff.lines(plan, feed.snapshot(states, now, evidence=evidence,
                                       agents=roster.views(now)))
        diff.written(plan, True)
        started = time.perf_counter()
        plan = diff.plan(moved, evidence)
        body = diff.lines(plan, feed.snapshot(moved, now + 30 * S, evidence=evidence,
                                              agents=roster.views(now), only=plan.alerts))
        times.append(time.perf_counter() - started)
    return times, body


async def write(cfg: ConfigSet, url: str, body: bytes, rounds: int) -> list[float]:
    db = f"bench_boards_{uuid.uuid4().hex[:8]}"
    times: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        (await http.post("/query", data={"q": f'CREATE DATABASE "{db}"'})).raise_for_status()
        try:
            async with influx_sink(cfg, url=url, api=1, database=db) as sink:
                writer = BoardWriter(sink)
                for _ in range(rounds):
                    started = time.perf_counter()
                    if not await writer.snapshot(body):
                        raise SystemExit("the snapshot was not written (see the log)")
                    times.append(time.perf_counter() - started)
        finally:
            await http.post("/query", data={"q": f'DROP DATABASE "{db}"'})
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--influx", help="an InfluxDB 1.x URL to time the writes against")
    parser.add_argument("--changed", type=int, default=100,
                        help="of the --alerts, how many took a step since the last write "
                             "(the snapshot that writes only what changed)")
    args = parser.parse_args()
    cfg = load_config(SAMPLE_DISTRICT)
    feed = BoardFeed(cfg)
    roster = roster_all_reporting(cfg, T0)
    print(f"sample district: {len(cfg.sensors)} sensors, {len(cfg.units_at('grid'))} grids, "
          f"{len(cfg.agents)} agents; {args.rounds} rounds each")
    for label, n, one in (("sample district", 20, True),
                          (f"{args.alerts:,} open alerts", args.alerts, False)):
        states, evidence = open_alerts(cfg, n, one_per_place=one)
        times, body = measure(feed, states, evidence, roster, args.rounds)
        lines = body.count(b"\n")
        print(f"{label:>22} ({len(states):>6} open): build median "
              f"{statistics.median(times) * 1e3:8.2f} ms, worst {max(times) * 1e3:8.2f} ms; "
              f"{lines:>6} lines, {len(body) / 1024:8.1f} KiB "
              f"({statistics.median(times) / lines * 1e6:.2f} µs/line)")
        if args.influx:
            w = asyncio.run(write(cfg, args.influx, body, max(3, args.rounds // 4)))
            print(f"{'':>22}   write to InfluxDB ({args.influx}): median "
                  f"{statistics.median(w) * 1e3:8.1f} ms, worst {max(w) * 1e3:8.1f} ms")
    states, evidence = open_alerts(cfg, args.alerts, one_per_place=False)
    times, body = changed_only(feed, states, evidence, roster, args.changed, args.rounds)
    label = f"{args.changed:,} of them changed"
    lines = body.count(b"\n")
    print(f"{label:>22} (only what changed): build median "
          f"{statistics.median(times) * 1e3:8.2f} ms, worst {max(times) * 1e3:8.2f} ms; "
          f"{lines:>6} lines, {len(body) / 1024:8.1f} KiB")
    if args.influx:
        w = asyncio.run(write(cfg, args.influx, body, max(3, args.rounds // 4)))
        print(f"{'':>22}   write to InfluxDB ({args.influx}): median "
              f"{statistics.median(w) * 1e3:8.1f} ms, worst {max(w) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
