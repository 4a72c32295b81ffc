"""How fast are the indicators and the HTTP API? Prints the figures; no servers needed.

    python bench/indicators_api.py [--alerts 20000] [--requests 2000]

1. ``indicators()`` over a synthetic ledger: ``--alerts`` alerts of the sample district,
   each opened, acknowledged, on site and resolved, one in four escalated by the hub
   first (about 4.5 transitions per alert), over 30 days; timed for a 7-day period and
   for the whole month.
2. The API over ASGI (httpx.ASGITransport, in process: the HTTP stack without sockets)
   on a file-backed SQLite ledger holding ``--alerts`` open alerts: ``GET /v1/alerts``
   of the district, pages of 100, 1000 and 10000, and ``POST .../acknowledge`` one after the other
   (each a ledger write), ``--requests`` of them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import msgspec  # noqa: E402

from gridcall.config import SAMPLE_DISTRICT, load_config  # noqa: E402
from gridcall.hub.api.app import create_app  # noqa: E402
from gridcall.hub.api.tokens import TokenFile, issue  # noqa: E402
from gridcall.hub.desk.desk import Desk  # noqa: E402
from gridcall.hub.desk.indicators import indicators  # noqa: E402
from gridcall.hub.desk.ledger import Ledger  # noqa: E402
from gridcall.hub.desk.lifecycle import Transition, apply, opening, step  # noqa: E402
from gridcall.hub.desk.policy import Policy  # noqa: E402
from gridcall.hub.store import Store  # noqa: E402
from gridcall.wire import AnomalyEvent, Deadlines  # noqa: E402

S = 10**9
T0 = 1_790_000_000 * S


def synthetic_ledger(n: int, *, answered: bool = True) -> list[Transition]:
    cfg = load_config(SAMPLE_DISTRICT)
    engine = Policy(cfg)
    sensors = list(cfg.sensors.values())
    out: list[Transition] = []
    span = 30 * 86400 * S
    for i in range(n):
        s = sensors[i % len(sensors)]
        at = T0 + (span * i // n if answered else i)  # open ones: all just opened
        event = AnomalyEvent(agent=s.agent, seq=i, sensor=s.id, kind="out_of_limits",
                             severity="minor", score=0.6, value=1.0, ts=at)
        draft = engine.draft(event, alert_id=f"AL{i + 1:06d}", now_ns=at)
        dl = Deadlines(response=at + 600 * S, arrival=at + 1800 * S, disposal=at + 7200 * S)
        draft = msgspec.structs.replace(draft, tier="D", unit=s.grid, unit_level="grid",
                                        unit_path=list(s.path), deadlines=dl)
        t = opening(draft, place=s.path)
        state = apply(None, t)
        steps = [t]
        now = at
        if not answered:
            out.extend(steps)
            continue
        if i % 4 == 0:
            now = dl.response
            up = Deadlines(response=now + 600 * S, arrival=now + 1800 * S,
                           disposal=now + 7200 * S)
            t = step(state, "escalate", at=now, actor="hub", tier="C", unit=s.path[2],
                     unit_level="community", unit_path=s.path[:3], deadlines=up,
                     reason="response deadline passed")
            state = apply(state, t)
            steps.append(t)
        for action, gap in (("acknowledge", 300), ("arrive", 900), ("resolve", 3600)):
            now += gap * S
            t = step(state, action, at=now, actor=s.grid)  # type: ignore[arg-type]
            state = apply(state, t)
            steps.append(t)
        out.extend(steps)
    return out


def timed(fn: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def api_figures(n_alerts: int, n_requests: int) -> None:
    cfg = load_config(SAMPLE_DISTRICT)
    with tempfile.TemporaryDirectory() as folder:
        async with Store(Path(folder) / "hub.sqlite") as store:
            desk = Desk(cfg, Ledger(store))
            await desk.ledger.append(*synthetic_ledger(n_alerts, answered=False))
            await desk.start()  # rebuilt from the ledger, as after a restart
            opened = [a.alert_id for a in desk.alerts(open_only=True)]
            tokens = Path(folder) / "tokens.json"
            district = cfg.district.id
            token = issue(tokens, district, known_units=cfg.units)
            clock = [T0 + 10 * S]
            app = create_app(desk, TokenFile(tokens), clock=lambda: clock[0])
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://hub", headers=headers) as http:
                lists = []
                for limit in (100, 1000, 10_000):
                    start = time.perf_counter()
                    for _ in range(10):
                        resp = await http.get("/v1/alerts", params={"limit": limit})
                        resp.raise_for_status()
                    lists.append((len(resp.json()["alerts"]),
                                  (time.perf_counter() - start) / 10))
                targets = opened[:n_requests]
                start = time.perf_counter()
                for alert_id in targets:
                    resp = await http.post(f"/v1/alerts/{alert_id}/acknowledge")
                    resp.raise_for_status()
                per_ack = (time.perf_counter() - start) / max(1, len(targets))
    for listed, per_list in lists:
        print(f"API GET /v1/alerts, page of {listed} (of {n_alerts}): "
              f"{per_list * 1000:.1f} ms per request")
    print(f"API POST acknowledge (ledger write each): {per_ack * 1000:.2f} ms per request, "
          f"{1 / per_ack:.0f}/s one after the other ({len(targets)} requests)")


async def indicators_api_figure(n_alerts: int) -> None:
    """GET /v1/indicators for the last 7 days and for the whole 30 days of an answered
    ledger, as the district (it reads only the alerts that can count in the period)."""
    cfg = load_config(SAMPLE_DISTRICT)
    with tempfile.TemporaryDirectory() as folder:
        async with Store(Path(folder) / "hub.sqlite") as store:
            desk = Desk(cfg, Ledger(store))
            await desk.ledger.append(*synthetic_ledger(n_alerts))
            await desk.start()
            tokens = Path(folder) / "tokens.json"
            token = issue(tokens, cfg.district.id, known_units=cfg.units)
            end = T0 + 30 * 86400 * S
            app = create_app(desk, TokenFile(tokens), clock=lambda: end)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://hub", headers=headers) as http:
                for days in (7, 30):
                    start = time.perf_counter()
                    for _ in range(3):
                        resp = await http.get("/v1/indicators",
                                              params={"period": days * 86400})
                        resp.raise_for_status()
                    per = (time.perf_counter() - start) / 3
                    print(f"API GET /v1/indicators, last {days} days of the 30-day ledger: "
                          f"{per * 1000:.0f} ms per request")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    args = parser.parse_args()
    steps = synthetic_ledger(args.alerts)
    week = timed(lambda: indicators(steps, T0, T0 + 7 * 86400 * S))
    month = timed(lambda: indicators(steps, T0, T0 + 30 * 86400 * S))
    print(f"ledger: {args.alerts} alerts, {len(steps)} transitions")
    print(f"indicators(), 7-day period: {week * 1000:.0f} ms")
    print(f"indicators(), 30-day period: {month * 1000:.0f} ms "
          f"({len(steps) / month / 1e6:.2f} M transitions/s)")
    asyncio.run(api_figures(args.alerts, args.requests))
    asyncio.run(indicators_api_figure(args.alerts))


if __name__ == "__main__":
    main()
