"""Reports from people through the hub's API, on this machine's disk: how many a hub files
per second, without and with a photo, and how long one takes end to end.

    PYTHONPATH=$PWD python bench/report_intake.py [--dir /var/tmp] [--reports 300]

The API app over a desk on SQLite (WAL, as in the hub), in process (httpx's ASGI
transport: no socket, so the figure is the hub's cost, not the network's). Each report
is one ``POST /v1/reports`` by a grid's token: the photo check, the photo written 0600 and
fsynced, the report's file step, the desk's step (open or evidence) and the link step,
each a committed transaction. Reports go round the sample district's 27 grids and 3
matters, so most join an open alert as evidence (as many people reporting one thing
would). The photo is a 200 KiB PNG built in memory, a different one per report (a new
file each time). Prints a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.hub.api.app import create_app
from gridcall.hub.api.tokens import TokenFile, issue
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.store import Store
from tests.images import png

T0 = 1_800_000_000_000_000_000
MATTERS = ("MANHOLE-DISPLACED", "WATER-LEAK", "NOISE-NUISANCE")


async def run(folder: Path, n: int, photo: bool) -> dict[str, float]:
    cfg = load_config(SAMPLE_DISTRICT)
    grids = sorted(u.id for u in cfg.units_at("grid"))
    tag = "photo" if photo else "plain"
    async with Store(folder / f"bench-reports-{tag}.sqlite") as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        path = folder / f"tokens-{tag}.json"
        tokens = {g: issue(path, g, known_units=cfg.units) for g in grids}
        clock = [T0]
        app = create_app(desk, TokenFile(path), clock=lambda: clock[0],
                         photo_dir=folder / f"photos-{tag}")
        took: list[float] = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://hub") as client:
            start = time.perf_counter()
            for i in range(n):
                grid = grids[i % len(grids)]
                body: dict[str, object] = {
                    "matter": MATTERS[i % len(MATTERS)], "grid": grid,
                    "description": f"report {i}"}
                if photo:
                    image = png(8, 8, pad=200 * 1024 + i)
                    body["photos"] = [{"data": base64.b64encode(image).decode()}]
                clock[0] += 10**9
                t = time.perf_counter()
                resp = await client.post("/v1/reports", json=body,
                                         headers={"Authorization": f"Bearer {tokens[grid]}"})
                took.append(time.perf_counter() - t)
                if resp.status_code != 201:
                    raise SystemExit(f"report {i}: {resp.status_code} {resp.text}")
            wall = time.perf_counter() - start
        alerts = len(desk.alerts())
    return {f"{tag}_reports": n, f"{tag}_alerts": alerts,
            f"{tag}_reports_per_s": round(n / wall, 1),
            f"{tag}_median_ms": round(statistics.median(took) * 1000, 2),
            f"{tag}_p95_ms": round(sorted(took)[int(0.95 * len(took))] * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--reports", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        out: dict[str, float] = {}
        for photo in (False, True):
            out.update(asyncio.run(run(Path(tmp), args.reports, photo)))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
