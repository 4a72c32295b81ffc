"""Write a config set holding the peer ingest harness's agents and sensors.

``../shared/bench/peer_ingest_bench.py --wire gridcall`` publishes readings of agents
``a00``, ``a01``, ... for sensors ``s<agent><n>`` (two digits each). The hub stores only
readings of configured sensors sent by their own agent, so the harness's consumer
(bench/gridcall_ingest_consumer.sh) runs on a config set made by this script: the sample
district's topology and matters, plus one grid per agent and the agents' sensors.

    python bench/ingest_bench_config.py --agents 50 --sensors 50 --out DIR
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def write_bench_config(out: Path, agents: int, sensors: int,
                       project: Path = ROOT, *, mixed_kinds: bool = False) -> Path:
    """The sample's topology, matters and notify, plus agents ``a00``.. (one grid each, in
    turn) and their sensors ``s<agent><n>`` of the sample's first kind (with
    ``mixed_kinds``, sensor ``n`` of each agent has the sample's kind ``n`` modulo their
    number, so that events on different sensors of one grid are different matters);
    no hub.yaml."""
    sample = project / "config" / "examples" / "huangpu"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("topology.yaml", "matters.yaml", "notify.yaml"):
        shutil.copy(sample / name, out / name)
    topology = yaml.safe_load((sample / "topology.yaml").read_text(encoding="utf-8"))
    sensors_yaml = yaml.safe_load((sample / "sensors.yaml").read_text(encoding="utf-8"))
    # a point inside each grid: where the sample puts one of its sensors
    where = {x["grid"]: x["coordinates"] for x in sensors_yaml["sensors"]}
    grids = [g["id"] for t in topology["district"]["towns"] for c in t["communities"]
             for g in c["grids"] if g["id"] in where]
    kinds = list(sensors_yaml["kinds"])
    agent_list, sensor_list = [], []
    for i in range(agents):
        agent, grid = f"a{i:02d}", grids[i % len(grids)]
        ids = [f"s{i:02d}{s:02d}" for s in range(sensors)]
        agent_list.append({"id": agent, "name": f"bench agent {agent}", "grid": grid,
                           "source": {"type": "serial", "port": f"/dev/null-{agent}",
                                      "devices": [{"id": 1, "name": agent,
                                                   "channels": dict(enumerate(ids))}]}})
        sensor_list += [{"id": s, "kind": kinds[n % len(kinds) if mixed_kinds else 0],
                         "grid": grid, "agent": agent, "coordinates": where[grid]}
                        for n, s in enumerate(ids)]
    (out / "agents.yaml").write_text(yaml.safe_dump({"agents": agent_list}), encoding="utf-8")
    (out / "sensors.yaml").write_text(
        yaml.safe_dump({"kinds": sensors_yaml["kinds"], "sensors": sensor_list}),
        encoding="utf-8")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--sensors", type=int, default=50, help="sensors per agent")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--project", type=Path, default=ROOT)
    a = p.parse_args()
    write_bench_config(a.out, a.agents, a.sensors, a.project)


if __name__ == "__main__":
    main()
