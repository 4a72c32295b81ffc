"""What carrying a plan (一事一预案) costs the desk: memory per alert in the desk's
states, and the open step's ledger row, for N alerts folded from their ledger rows.

    PYTHONPATH=$PWD python bench/plan_memory.py [--alerts 5000]

Three folds of the same N open steps of FIRE-SMOKE (the sample's plan of five steps):
without a plan (the catalog before plans), with a plan each alert decodes its own copy
of, and with the desk's PlanPool (hub/desk/plans.py) sharing one copy of each plan.
Memory is tracemalloc's count of what the fold kept. Prints a JSON object.
"""

from __future__ import annotations

import argparse
import json
import tracemalloc

import msgspec

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.hub.desk.lifecycle import AlertState, Transition, apply, opening
from gridcall.hub.desk.plans import PlanPool, wire_plan
from gridcall.hub.desk.policy import Policy
from gridcall.wire import AnomalyEvent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=5000)
    n = parser.parse_args().alerts
    cfg = load_config(SAMPLE_DISTRICT)
    policy = Policy(cfg)
    sensor = cfg.sensors["dongyuan-g1-smoke-1"]
    (smoke,) = [m for m in cfg.matters.matters if m.code == "FIRE-SMOKE"]
    event = AnomalyEvent(agent=sensor.agent, seq=1, sensor=sensor.id, kind="out_of_limits",
                         severity="major", score=0.9, value=1.0, ts=1)
    decoder = msgspec.json.Decoder(Transition)

    def rows(plan: bool) -> list[bytes]:
        out = []
        for i in range(n):
            alert = policy.draft(event, alert_id=f"AL{i:06d}", now_ns=1, matter=smoke)
            alert = msgspec.structs.replace(alert, plan=wire_plan(smoke.plan) if plan
                                            else None)
            out.append(msgspec.json.encode(opening(alert, place=sensor.path)))
        return out

    result: dict[str, float] = {"alerts": n}
    for label, plan, pool in (("no_plan", False, None), ("plan_own_copies", True, None),
                              ("plan_pool", True, PlanPool())):
        body = rows(plan)
        tracemalloc.start()
        states: list[AlertState] = []
        for row in body:
            state = apply(None, decoder.decode(row))
            states.append(pool.share(state) if pool is not None else state)
        kept, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result[f"{label}_bytes_per_alert"] = round(kept / n)
        result[f"{label}_open_row_bytes"] = len(body[0])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
