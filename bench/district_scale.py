"""What the hub's operations cost as the district grows: 100 to 100,000 sensors.

    PYTHONPATH=$PWD nice -n 10 python bench/district_scale.py [--sizes 100,1000,10000,100000]

For each size it writes a config set (``district_config``): 17 towns, a grid per 20
sensors, 8 grids per community, an edge agent per 10 sensors (2 per grid), the sensors'
kinds in turn from the sample's, the sample's catalog (matters.yaml; the catalog does not
grow with the sensors). A desk on a SQLite file (as in service) is loaded with one
anomaly from every 20th sensor (open alerts grow with the district: one per 20 sensors,
up to a (matter, grid)), then it times, per operation:

- ``event_to_alert_us``: an anomaly in a grid with no alert of its matter (opens one);
- ``evidence_us``: another sensor's anomaly joining an open alert;
- ``escalation_tick_us``: a tick a day later, per escalation it writes; ``next_tick_ms``:
  the tick a minute after it (and the escalations it still writes);
- ``board_snapshot_ms`` / ``_bytes``: the board's snapshot (hub/board/feed.py) of the
  open alerts, every grid, sensor and agent;
- ``indicators_7d_ms``: the district's indicators over 7 days, as GET /v1/indicators
  gathers them;
- ``town_list_ms``: the alerts of one town (GET /v1/alerts?unit=town: ``Desk.alerts``);
- ``config_mb``, ``desk_mb``: memory (tracemalloc) of the loaded config and of the desk
  with its alerts; ``dedup_mb``: the ingest dedup (hub/ingest/dedup.py) with every agent
  at a full window.

Prints one JSON object per size. With ``--closed 0,1000,2000,4000`` it measures instead
the desk's memory against the alerts it has closed, on the first ``--sizes``' district:
``desk_mb_at_<n>_closed`` and the growth per closed alert, for the desk as it runs (closed
alerts older than ``Desk.keep_closed`` dropped at each tick) and, as ``hold_all_*``, for
one holding every alert (``keep_closed = None``: the desk before issue 20 item 4).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

from gridcall.config import ConfigSet, load_config
from gridcall.hub.board.feed import BoardFeed
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.indicators import indicators
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.ingest.dedup import WINDOW, SeenBatches
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "config" / "examples" / "huangpu"
T0 = 1_800_000_000_000_000_000
SEC = 10**9
DAY = 86_400 * SEC
TOWNS = 17
SENSORS_PER_GRID = 20
SENSORS_PER_AGENT = 10
GRIDS_PER_COMMUNITY = 8
LON0, LAT0, SPAN = 113.39, 22.98, 0.2


def _box(lon0: float, lat0: float, lon1: float, lat1: float) -> dict[str, object]:
    return {"polygon": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1],
                         [lon0, lat0]]]}


def district_config(out: Path, sensors: int) -> Path:
    """A config set of ``sensors`` sensors (see the module docstring)."""
    grids = max(TOWNS, -(-sensors // SENSORS_PER_GRID))
    communities = max(TOWNS, -(-grids // GRIDS_PER_COMMUNITY))
    sample_sensors = yaml.safe_load((SAMPLE / "sensors.yaml").read_text(encoding="utf-8"))
    kinds = list(sample_sensors["kinds"])
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE / "matters.yaml", out / "matters.yaml")
    towns, grid_at = [], []
    w = SPAN / TOWNS
    comm_of_town = [communities // TOWNS + (t < communities % TOWNS) for t in range(TOWNS)]
    grids_of_comm = [grids // communities + (c < grids % communities)
                     for c in range(communities)]
    c_done = 0
    for t in range(TOWNS):
        tl = LON0 + t * w
        comms = []
        h = SPAN / comm_of_town[t]
        for c in range(comm_of_town[t]):
            cl = LAT0 + c * h
            n_grid = grids_of_comm[c_done + c]
            gw = w / n_grid
            gs = []
            for g in range(n_grid):
                gid = f"t{t}-c{c}-g{g}"
                gs.append({"id": gid, "name": gid, "tags": ["residential"],
                           "location": _box(tl + g * gw, cl, tl + (g + 1) * gw, cl + h)})
                grid_at.append((gid, [tl + (g + 0.5) * gw, cl + h / 2]))
            comms.append({"id": f"t{t}-c{c}", "name": f"t{t}-c{c}", "grids": gs,
                          "location": _box(tl, cl, tl + w, cl + h)})
        c_done += comm_of_town[t]
        towns.append({"id": f"t{t}", "name": f"town {t}", "communities": comms,
                      "location": _box(tl, LAT0, tl + w, LAT0 + SPAN)})
    sample_topology = yaml.safe_load((SAMPLE / "topology.yaml").read_text(encoding="utf-8"))
    topology = {"district": {"id": "huangpu", "name": "district",
                             "location": _box(LON0, LAT0, LON0 + SPAN, LAT0 + SPAN),
                             "towns": towns},
                # a town branch's area names the sample's towns: here, the district's
                "departments": [{k: v for k, v in d.items() if k != "towns"}
                                for d in sample_topology["departments"]]}
    agents, sensor_list = [], []
    for i in range(-(-sensors // SENSORS_PER_AGENT)):
        grid, where = grid_at[(i * SENSORS_PER_AGENT // SENSORS_PER_GRID) % len(grid_at)]
        ids = [f"s{i}-{k}" for k in range(SENSORS_PER_AGENT)
               if i * SENSORS_PER_AGENT + k < sensors]
        agents.append({"id": f"a{i}", "name": f"agent {i}", "grid": grid,
                       "source": {"type": "serial", "port": f"/dev/null-a{i}",
                                  "devices": [{"id": 1, "name": f"a{i}",
                                               "channels": dict(enumerate(ids))}]}})
        sensor_list += [{"id": s, "kind": kinds[(i + k) % len(kinds)], "grid": grid,
                         "agent": f"a{i}", "coordinates": where} for k, s in enumerate(ids)]
    (out / "topology.yaml").write_text(yaml.safe_dump(topology, allow_unicode=True),
                                       encoding="utf-8")
    (out / "agents.yaml").write_text(yaml.safe_dump({"agents": agents}), encoding="utf-8")
    (out / "sensors.yaml").write_text(yaml.safe_dump(
        {"kinds": sample_sensors["kinds"], "sensors": sensor_list}), encoding="utf-8")
    return out


def _us(samples: list[float]) -> float:
    return 1e6 * statistics.median(samples) if samples else 0.0


async def measure(cfg: ConfigSet, folder: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    sensors = sorted(cfg.sensors.values(), key=lambda s: s.id)
    seqs: dict[str, int] = {}

    def event(sensor_id: str, at: int) -> AnomalyEvent:
        s = cfg.sensors[sensor_id]
        seqs[s.agent] = seqs.get(s.agent, 0) + 1
        return AnomalyEvent(agent=s.agent, seq=seqs[s.agent], sensor=s.id,
                            kind="out_of_limits", severity="minor", score=0.9, value=1.0,
                            ts=at)

    async with Store(folder / "hub.sqlite") as store:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        now = T0
        load = sensors[::20]
        for s in load:
            now += SEC
            await desk.on_event(event(s.id, now), now)
        out["open_alerts"] = len(desk.alerts(open_only=True))
        # events that open: sensors whose (matter, grid) has no alert yet
        taken = {(a.alert.matter, a.place[-1]) for a in desk.alerts()}
        fresh, join = [], []
        for s in sensors:
            m = cfg.matter_for(s.kind, "out_of_limits")
            if m is None:
                continue
            if (m.code, s.grid) not in taken and len(fresh) < 200:
                fresh.append(s.id)
                taken.add((m.code, s.grid))
        times: list[float] = []
        for sid in fresh:
            now += SEC
            t0 = time.perf_counter()
            await desk.on_event(event(sid, now), now)
            times.append(time.perf_counter() - t0)
        out["event_to_alert_us"] = _us(times)
        opened = {(a.alert.matter, a.place[-1]): a for a in desk.alerts(open_only=True)}
        for s in sensors:
            m = cfg.matter_for(s.kind, "out_of_limits")
            if m is not None and (m.code, s.grid) in opened and \
                    opened[(m.code, s.grid)].alert.sensor != s.id and len(join) < 200:
                join.append(s.id)
        times = []
        for sid in join:
            now += SEC
            t0 = time.perf_counter()
            await desk.on_event(event(sid, now), now)
            times.append(time.perf_counter() - t0)
        out["evidence_us"] = _us(times)
        out["desk_mb"] = (tracemalloc.get_traced_memory()[0] - before) / 2**20
        tracemalloc.stop()
        open_alerts = desk.alerts(open_only=True)
        feed = BoardFeed(cfg)
        t0 = time.perf_counter()
        snap = feed.snapshot(open_alerts, now, evidence={
            s.alert_id: desk.sensors_of(s.alert_id) for s in open_alerts})
        out["board_snapshot_ms"] = 1000 * (time.perf_counter() - t0)
        out["board_snapshot_bytes"] = len(snap)
        t0 = time.perf_counter()
        town = sensors[0].path[1]
        _, listed = await desk.listing(unit=town)
        out["town_list_ms"] = 1000 * (time.perf_counter() - t0)
        out["town_alerts"] = len(listed)
        t0 = time.perf_counter()
        start = now - 7 * DAY
        _, maybe = await desk.listing(unit=cfg.district.id, opened_before=now,
                                      closed_since=start)
        rows = indicators(await desk.transitions_of(maybe, until=now + 1), start, now,
                          defer=desk.defer)
        out["indicators_7d_ms"] = 1000 * (time.perf_counter() - t0)
        out["indicator_rows"] = len(rows)
        t0 = time.perf_counter()
        fired = await desk.tick(now + DAY)
        dt = time.perf_counter() - t0
        out["escalations"] = len(fired)
        out["escalation_tick_us"] = 1e6 * dt / len(fired) if fired else 0.0
        t0 = time.perf_counter()
        again = await desk.tick(now + DAY + 60 * SEC)
        out["next_tick_ms"] = 1000 * (time.perf_counter() - t0)
        out["next_tick_escalations"] = len(again)
    return out


async def closed_memory(cfg: ConfigSet, folder: Path, steps: list[int], *,
                        hold_all: bool = False) -> dict[str, float]:
    """The desk's memory (tracemalloc) against the closed alerts it holds: alerts opened
    and closed as false alarms one after the other (each past the reopen window, so none
    reopens), the hub's tick after each, the memory read at each count in ``steps``;
    ``hold_all``: a desk that keeps every alert in memory."""
    out: dict[str, float] = {}
    window = int(cfg.matters.grouping.reopen_window.total_seconds()) * SEC
    sensors = [s for s in sorted(cfg.sensors.values(), key=lambda s: s.id)
               if cfg.matter_for(s.kind, "out_of_limits") is not None]
    seqs: dict[str, int] = {}
    async with Store(folder / f"closed{hold_all}.sqlite") as store:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        desk = Desk(cfg, Ledger(store))
        desk.snapshot_every = 0
        if hold_all:
            desk.keep_closed = None
        await desk.start()
        now = T0
        closed = 0
        for target in steps:
            while closed < target:
                s = sensors[closed % len(sensors)]
                seqs[s.agent] = seqs.get(s.agent, 0) + 1
                now += window + SEC
                outcome = await desk.on_event(AnomalyEvent(
                    agent=s.agent, seq=seqs[s.agent], sensor=s.id, kind="out_of_limits",
                    severity="minor", score=0.9, value=1.0, ts=now), now)
                if outcome.alert is None:
                    raise RuntimeError(f"closed_memory: no alert for {s.id}")
                await desk.act(outcome.alert.alert_id, "false_alarm", outcome.alert.unit,
                               now=now + SEC)
                await desk.tick(now + 2 * SEC)
                closed += 1
            out[f"desk_mb_at_{target}_closed"] = (
                tracemalloc.get_traced_memory()[0] - before) / 2**20
        tracemalloc.stop()
        # the API's first page of the district's alerts (GET /v1/alerts), untraced: with
        # the closed alerts read from the store, or all held
        t0 = time.perf_counter()
        count, _ = await desk.listing(unit=cfg.district.id, limit=1000)
        out["list_first_page_ms"] = 1000 * (time.perf_counter() - t0)
        out["alerts_listed"] = count  # fewer than the closings: a recurrence within the
        # reopen window (two sensors of a grid, one after the other) reopens the alert
        if len(steps) > 1 and steps[-1] > steps[0]:
            grown = out[f"desk_mb_at_{steps[-1]}_closed"] - out[f"desk_mb_at_{steps[0]}_closed"]
            out["desk_kb_per_closed_alert"] = grown * 1024 / (steps[-1] - steps[0])
    return out


def dedup_mb(agents: int) -> float:
    tracemalloc.start()
    seen = SeenBatches()
    for a in range(agents):
        for seq in (1, WINDOW + 1):
            seen.add(f"a{a}", seq)
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return used / 2**20


async def one(size: int, folder: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    district_config(folder / "cfg", size)
    gen = time.perf_counter() - t0
    tracemalloc.start()
    t0 = time.perf_counter()
    cfg = load_config(folder / "cfg")
    load_s = time.perf_counter() - t0
    config_mb = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    out: dict[str, float] = {"sensors": len(cfg.sensors), "agents": len(cfg.agents),
                             "grids": len(cfg.units_at("grid")), "generate_s": gen,
                             "load_config_s": load_s, "config_mb": config_mb}
    out.update(await measure(cfg, folder))
    out["dedup_mb"] = dedup_mb(len(cfg.agents))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="100,1000,10000,100000")
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    ap.add_argument("--closed", metavar="N,N,...", help="instead: the desk's memory against "
                    "the closed alerts it holds, at each count (on the first size's "
                    "district), e.g. 0,1000,2000,4000")
    args = ap.parse_args()
    if args.closed:
        size = int(args.sizes.split(",")[0])
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            cfg = load_config(district_config(Path(tmp) / "cfg", size))
            counts = [int(x) for x in args.closed.split(",")]
            result = asyncio.run(closed_memory(cfg, Path(tmp), counts))
            held = asyncio.run(closed_memory(cfg, Path(tmp), counts, hold_all=True))
            result.update((f"hold_all_{k}", v) for k, v in held.items())
        print(json.dumps({"sensors": size, **{k: round(v, 3) for k, v in result.items()}}),
              flush=True)
        return
    for size in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            result = asyncio.run(one(size, Path(tmp)))
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                          for k, v in result.items()}), flush=True)


if __name__ == "__main__":
    main()
