"""The desk's start-up against the length of its ledger: the full fold, and a snapshot
with the tail after it (hub/desk/snapshots.py).

    PYTHONPATH=$PWD nice -n 10 python bench/desk_restart.py [--rows 1000000] [--dir /var/tmp]
        [--pg postgresql://user:password@host:port/db]   # the desk store on PostgreSQL

Builds a ledger of ``--rows`` rows without the desk's event path (which would take an
hour at 1M): one real opening per sensor of the sample district is taken from a desk,
then alerts are written in its image, each ``open``, 18 ``evidence`` steps (each its own
anomaly event, so the dedup index grows with the ledger as in service) and a false
alarm, 20 rows; the last 500 alerts stay open. Then it times ``Desk.start`` folding the
whole ledger, writing a snapshot, and ``Desk.start`` from the snapshot after a tail of
``--tail`` more rows; while the snapshot is written, a 5 ms ticker on the same event loop
measures the longest the loop was held (``write_snapshot_loop_held_max_s``), and the
image's build and its msgpack encoding are timed apart. Prints a JSON object (seconds,
bytes, rows per second, the process's peak RSS in MB).

The ledger written so has no ``closed_alerts`` rows (a desk writes them with its steps):
the full fold's start writes one per closed alert, once (``closed_rows_written_at_start``,
inside ``start_full_fold_s``), as an older ledger's first start does; the last figure,
``start_full_fold_rows_there_s``, is a full fold once the rows are there. Both starts then drop
the alerts closed before the reopen window (``alerts_held_*``); ``alerts`` counts every
alert (``Desk.listing``), and the comparison with the full fold is over every alert.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from pathlib import Path

import psycopg

from gridcall.config import SAMPLE_DISTRICT, ConfigSet, load_config
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import Transition, apply, replace_alert, step
from gridcall.hub.desk.snapshots import encode
from gridcall.hub.pgstore import PgStore
from gridcall.hub.store import DeskStore, Store
from gridcall.wire import AnomalyEvent
from tests.desk_stores import pg_database

T0 = 1_800_000_000_000_000_000
SEC = 10**9
EVIDENCE = 18
OPEN_AT_END = 500


async def openings(cfg: ConfigSet, folder: Path) -> list[Transition]:
    """One real ``open`` step per sensor, as the desk writes it."""
    async with Store(folder / "template.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        for i, s in enumerate(sorted(cfg.sensors.values(), key=lambda s: s.id)):
            await desk.on_event(AnomalyEvent(
                agent=s.agent, seq=i, sensor=s.id, kind="out_of_limits", severity="minor",
                score=0.9, value=1.0, ts=T0), T0)
        return [t for t in await desk.ledger.all() if t.action == "open"]


def alerts(templates: list[Transition], first: int, count: int, *, close: bool,
           seq0: int) -> list[Transition]:
    """``count`` alerts from number ``first``: open, evidence, false alarm."""
    rows: list[Transition] = []
    seq = seq0
    for k in range(first, first + count):
        base = templates[k % len(templates)]
        at = T0 + k * 60 * SEC
        alert_id = f"AL{k + 1:07d}"
        assert base.alert is not None
        agent = base.alert.agent
        seq += 1
        t = replace(base, alert_id=alert_id, at=at, evidence=(agent, seq),
                    alert=replace_alert(base.alert, alert_id=alert_id, opened_at=at,
                                        updated_at=at, event_seq=seq))
        state = apply(None, t)
        rows.append(t)
        for e in range(EVIDENCE):
            seq += 1
            t = step(state, "evidence", at=at + (e + 1) * SEC, evidence=(agent, seq),
                     sensor=base.sensor, note="out_of_limits minor")
            state = apply(state, t)
            rows.append(t)
        if close:
            t = step(state, "false_alarm", at=at + 30 * SEC, actor=state.unit)
            rows.append(t)
    return rows


async def write(ledger: Ledger, rows: list[Transition]) -> None:
    for i in range(0, len(rows), 20_000):
        await ledger.append(*rows[i:i + 20_000])


async def loop_held(stop: asyncio.Event) -> float:
    """The longest the event loop went without running this task (a 5 ms ticker) until
    ``stop``: how long something else held the loop (the desk's snapshot write)."""
    worst = 0.0
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        worst = max(worst, now - last)
        last = now
    return worst


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(folder: Path, n_rows: int, tail: int,
              open_store: Callable[[], AbstractAsyncContextManager[DeskStore]] | None = None
              ) -> dict[str, float]:
    cfg = load_config(SAMPLE_DISTRICT)
    templates = await openings(cfg, folder)
    per = EVIDENCE + 2
    n_alerts = n_rows // per
    out: dict[str, float] = {}
    path = folder / "bench-restart.sqlite"
    if open_store is None:
        def open_store() -> AbstractAsyncContextManager[DeskStore]:
            return Store(path)
    t0 = time.perf_counter()
    async with open_store() as store:
        ledger = Ledger(store)
        for first in range(0, n_alerts, 10_000):
            count = min(10_000, n_alerts - first)
            await write(ledger, alerts(templates, first, count, close=True,
                                       seq0=first * per))
        await write(ledger, alerts(templates, n_alerts, OPEN_AT_END, close=False,
                                   seq0=n_alerts * per))
        out["ledger_rows"] = await ledger.count()
    out["build_s"] = time.perf_counter() - t0
    async with open_store() as store:
        t0 = time.perf_counter()
        desk = Desk(cfg, Ledger(store))
        desk.snapshot_every = 0
        await desk.start(snapshot=False)
        out["start_full_fold_s"] = time.perf_counter() - t0
        # the ledger here was written directly, not by a desk: this start also wrote
        # every closed alert's row (hub/desk/closed_alerts.py), once
        out["closed_rows_written_at_start"] = desk.backfilled
        out["fold_rows_per_s"] = out["ledger_rows"] / out["start_full_fold_s"]
        out["alerts"] = (await desk.listing())[0]
        out["open_alerts"] = len(desk.alerts(open_only=True))
        out["rss_after_full_fold_mb"] = rss_mb()
        t0 = time.perf_counter()
        image = desk.image(await desk.ledger.last_seq())
        out["snapshot_image_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        encode(image)
        out["snapshot_encode_s"] = time.perf_counter() - t0
        del image
        stalls = asyncio.Event()
        probe = asyncio.create_task(loop_held(stalls))
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        out["snapshot_bytes"] = await desk.write_snapshot() or 0
        out["write_snapshot_s"] = time.perf_counter() - t0
        stalls.set()
        out["write_snapshot_loop_held_max_s"] = await probe
        full_alerts = (await desk.listing())[1]  # closed ones it dropped too
        out["alerts_held_after_start"] = len(desk.alerts())
        start = n_alerts + OPEN_AT_END
        more = alerts(templates, start, tail // per, close=True, seq0=start * per + 10)
        await write(desk.ledger, more)
        del desk
    async with open_store() as store:
        t0 = time.perf_counter()
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        out["start_from_snapshot_s"] = time.perf_counter() - t0
        out["tail_rows_folded"] = desk.replayed
        out["alerts_held_from_snapshot"] = len(desk.alerts())
        out["same_alerts_as_full_fold"] = float(
            (await desk.listing())[1][:len(full_alerts)] == full_alerts)
        del desk, full_alerts
    async with open_store() as store:  # the full fold again, the closed rows there now
        t0 = time.perf_counter()
        desk = Desk(cfg, Ledger(store))
        await desk.start(snapshot=False)
        out["start_full_fold_rows_there_s"] = time.perf_counter() - t0
        out["closed_rows_written_then"] = desk.backfilled
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"),
                    help="a folder on the disk to measure (not a tmpfs)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--tail", type=int, default=10_000)
    ap.add_argument("--pg", metavar="URL", help="the desk store on PostgreSQL: a new "
                    "database made (and dropped) on this server (the user may create "
                    "databases), instead of SQLite in --dir")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        if args.pg is None:
            result = asyncio.run(run(Path(tmp), args.rows, args.tail))
            result["db_bytes"] = sum(p.stat().st_size
                                     for p in Path(tmp).glob("bench-restart.*"))
        else:
            with pg_database(args.pg, prefix="gridcall_bench") as url:
                result = asyncio.run(run(Path(tmp), args.rows, args.tail,
                                         lambda: PgStore(url)))
                with psycopg.connect(url) as conn:
                    size = conn.execute("SELECT pg_database_size(current_database())"
                                        ).fetchone()
                result["db_bytes"] = float(size[0]) if size else 0.0
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                      for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
