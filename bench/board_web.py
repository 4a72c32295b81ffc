"""What the built-in board costs the hub: the size and time of its map and state, and the
cost of a desk step with many boards open.

    PYTHONPATH=$PWD python bench/board_web.py [--streams 50] [--rounds 200]

The sample district (27 grids, 117 sensors) with one open alert per sensor's matter and
grid (the most the desk groups them into), the real FastAPI app, read as the district:

- ``/v1/board/map`` and ``/v1/board/state``: bytes and median / p95 milliseconds per call
  of the app in process (every board fetches the state once per change it hears,
  debounced; the map once per page load); likewise the silences, incidents and hand-over
  each refresh also fetches (not cached per unit);
- a desk step (a false alarm, written to the ledger in SQLite) with N event streams of the
  district open over real uvicorn on loopback, each read by httpx: median step time with
  and without the streams, and the time until all N streams hold the change.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.hub.api.app import create_app
from gridcall.hub.api.server import ApiServer
from gridcall.hub.api.tokens import TokenFile, issue
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent

T0 = 1_800_000_000 * 10**9


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(values) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


async def main(streams: int, rounds: int) -> None:
    cfg = load_config(SAMPLE_DISTRICT)
    with tempfile.TemporaryDirectory() as folder:
        async with Store(Path(folder) / "hub.sqlite") as store:
            desk = Desk(cfg, Ledger(store))
            await desk.start()
            for seq, sensor in enumerate(cfg.sensors.values()):
                await desk.on_event(AnomalyEvent(
                    agent=sensor.agent, seq=seq, sensor=sensor.id, kind="out_of_limits",
                    severity="minor", score=0.6, value=1.0, ts=T0), T0)
            open_alerts = desk.alerts(open_only=True)
            token = issue(Path(folder) / "tokens.json", "huangpu", known_units=cfg.units)
            clock = [T0 + 10**9]
            app = create_app(desk, TokenFile(Path(folder) / "tokens.json"),
                             clock=lambda: clock[0])
            headers = {"Authorization": f"Bearer {token}"}
            async with ApiServer(app, "127.0.0.1", 0) as server, httpx.AsyncClient(
                    base_url=server.url, headers=headers, timeout=60) as client:
                print(f"sample district: {len(cfg.units)} units, {len(cfg.sensors)} sensors, "
                      f"{len(open_alerts)} open alerts")
                # The app's own time, in process: over loopback TCP httpx adds ~40 ms to
                # a 24 KiB answer (delayed ACK), which curl does not see (2-4 ms).
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                             base_url="http://hub", headers=headers) as asgi:
                    feed = app.state.board_feed
                    for path, what, changed in (
                            ("/v1/board/map", "", False),
                            ("/v1/board/state", " after a change (computed)", True),
                            ("/v1/board/state", " again (the unit's cached state)", False),
                            # what else a page fetches at each refresh (not cached)
                            ("/v1/silences?current=true", "", False),
                            ("/v1/incidents?open=true", "", False),
                            ("/v1/handover", "", False)):
                        times, size = [], 0
                        for _ in range(rounds):
                            if changed:
                                feed.version += 1  # as a desk step would
                            t = time.perf_counter()
                            resp = await asgi.get(path)
                            times.append(time.perf_counter() - t)
                            size = len(resp.content)
                        print(f"GET {path}{what}: {size / 1024:.1f} KiB, {ms(times)} "
                              f"({rounds} calls, in process)")

                async def step(alert_id: str) -> float:
                    clock[0] += 10**9
                    t = time.perf_counter()
                    await desk.act(alert_id, "false_alarm", "huangpu", now=clock[0])
                    return time.perf_counter() - t

                ids = [s.alert_id for s in open_alerts]
                half = len(ids) // 2
                alone = [await step(i) for i in ids[:half]]
                print(f"desk step, no board open: {ms(alone)} ({len(alone)} steps)")

                got: list[int] = [0] * streams
                target = [0]
                arrived = asyncio.Event()  # every stream holds change number target[0]
                ready = asyncio.Event()
                started = [0]

                async def follow(k: int) -> None:
                    async with client.stream("GET", "/v1/board/events") as resp:
                        async for line in resp.aiter_lines():
                            if line.startswith("event: hello"):
                                started[0] += 1
                                if started[0] == streams:
                                    ready.set()
                            elif line.startswith("event: change"):
                                got[k] += 1
                                if min(got) >= target[0]:
                                    arrived.set()

                tasks = [asyncio.create_task(follow(k)) for k in range(streams)]
                await ready.wait()
                with_streams, spread = [], []
                for n, alert_id in enumerate(ids[half:], start=1):
                    target[0] = n
                    arrived.clear()
                    t = time.perf_counter()
                    with_streams.append(await step(alert_id))
                    if min(got) < n:
                        await arrived.wait()
                    spread.append(time.perf_counter() - t)
                print(f"desk step, {streams} boards' streams open: {ms(with_streams)} "
                      f"({len(with_streams)} steps)")
                print(f"step written -> all {streams} streams hold it: {ms(spread)}")
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.streams, args.rounds))
