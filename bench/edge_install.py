"""The edge install as a field box has it: its size, the agent's start and its memory.

    python bench/edge_install.py [--venv DIR] [--sensors 200] [--runs 3]

- **Install size**: a bare venv and a venv with ``pip install PROJECT`` (the edge install,
  no ``[hub]``), both made here in a temporary folder (``--venv DIR`` measures an existing
  edge venv instead, against a bare one made here); ``du`` of each and the difference.
- **Start to first value**: ``gridcall edge run`` of the edge venv, spawned as a field box
  runs it, until the first reading batch arrives at a private mosquitto
  (tests/private_servers.py) on loopback; each run on a fresh state folder.
- **RSS with N sensors**: the same process's resident memory (``VmRSS``, and its peak
  ``VmHWM``) after it ran ``--hold`` seconds with ``--sensors`` sensors (the sample
  district's simulated agent ``edge-dasha-dong``, its sensors repeated under new ids, each
  read every second, the sample's detectors), from /proc.

Run from the repository (it imports tests.private_servers and copies
config/examples/huangpu). Needs mosquitto and a pip that can install the project.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.private_servers import PrivateMosquitto

ROOT = Path(__file__).resolve().parent.parent
AGENT = "edge-dasha-dong"


def du_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def make_venv(path: Path, install: str | None) -> float:
    """A venv at ``path`` (with ``pip install install`` if given); seconds it took."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    if install is not None:
        subprocess.run([str(path / "bin" / "pip"), "install", "-q", install], check=True,
                       stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def config_set(dest: Path, sensors: int, state: Path) -> None:
    """The sample district with ``sensors`` sensors on AGENT, each read every second."""
    shutil.copytree(ROOT / "config" / "examples" / "huangpu", dest)
    doc = yaml.safe_load((dest / "sensors.yaml").read_text(encoding="utf-8"))
    own = [s for s in doc["sensors"] if s.get("agent") == AGENT]
    many = [{**own[i % len(own)], "id": f"bench-s{i:03d}"} for i in range(sensors)]
    doc["sensors"] = [s for s in doc["sensors"] if s.get("agent") != AGENT] + many
    for kind in doc["kinds"].values():
        kind["interval"] = "1s"
    (dest / "sensors.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True),
                                       encoding="utf-8")
    agents = yaml.safe_load((dest / "agents.yaml").read_text(encoding="utf-8"))
    agents.setdefault("defaults", {})["state_dir"] = str(state)
    (dest / "agents.yaml").write_text(yaml.safe_dump(agents, allow_unicode=True),
                                      encoding="utf-8")


def status_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0])
    return out


async def one_run(gridcall: Path, conf: Path, broker: str, hold: float
                  ) -> tuple[float, dict[str, int]]:
    """Spawn → first reading batch at the broker (s), and /proc figures after ``hold``."""
    port = int(broker.rsplit(":", 1)[1])
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"gridcall/v1/readings/{AGENT}", qos=1)
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            str(gridcall), "edge", "run", "-c", str(conf), "--agent", AGENT, "--broker", broker,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            async with asyncio.timeout(60):
                async for _ in client.messages:
                    break
            first = time.perf_counter() - t0
            await asyncio.sleep(max(0.0, hold - first))
            figures = status_kib(proc.pid)
        finally:
            proc.terminate()
            try:
                async with asyncio.timeout(60):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
    return first, figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--venv", type=Path, help="an existing edge venv (default: make one)")
    ap.add_argument("--sensors", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hold", type=float, default=20.0,
                    help="seconds the agent runs before its RSS is read")
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        bare_s = make_venv(root / "bare", None)
        bare = du_mib(root / "bare")
        venv = args.venv
        if venv is None:
            venv = root / "edge"
            took = make_venv(venv, str(ROOT))
            print(f"edge venv made in {took:.1f} s (venv {bare_s:.1f} s; pip's cache decides "
                  "most of it)")
        edge = du_mib(venv)
        print(f"install size: edge venv {edge:.1f} MiB, bare venv {bare:.1f} MiB, "
              f"the edge install adds {edge - bare:.1f} MiB")
        firsts, rss, hwm = [], [], []
        with PrivateMosquitto(root / "broker") as broker:
            for run in range(args.runs):
                conf = root / f"conf{run}"
                config_set(conf, args.sensors, root / f"state{run}")
                first, figures = asyncio.run(one_run(venv / "bin" / "gridcall", conf,
                                                     broker.url, args.hold))
                firsts.append(first)
                rss.append(figures.get("VmRSS", 0) / 1024)
                hwm.append(figures.get("VmHWM", 0) / 1024)
                print(f"run {run + 1}: start to first value {first:.2f} s; after "
                      f"{args.hold:g} s with {args.sensors} sensors RSS {rss[-1]:.1f} MiB "
                      f"(peak {hwm[-1]:.1f} MiB)")
        print(f"median of {args.runs}: start to first value {statistics.median(firsts):.2f} s, "
              f"RSS {statistics.median(rss):.1f} MiB (peak {statistics.median(hwm):.1f} MiB) "
              f"with {args.sensors} sensors")
        with contextlib.suppress(OSError):
            os.sync()


if __name__ == "__main__":
    main()
