"""What the hub's sensor-ownership check costs per reading, beside decoding alone.

``python bench/provenance_screen.py [--agents 50] [--sensors 50] [--batch 50] [--rounds 5]``

Deterministic and network-free: ``--agents`` agents with ``--sensors`` sensors each, every
batch on its own agent's topic. Figures (ns per reading, best of ``--rounds`` rounds that
each run every case once, so a load swing hits all alike), as JSON on one line: the wire
decoder alone (``Decoder.readings``, what the hub did before the check);
:class:`gridcall.wire.provenance.Screen` on decoded batches that pass (the hot path) and
the slow path: every batch carrying one reading of another agent's sensor, which is
dropped and counted. Then decode and decode + screen as readings/s.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from gridcall.wire import Decoder, Reading, ReadingBatch, encode, topics
from gridcall.wire.provenance import Owners, Screen

T0 = 1_795_000_000_000_000_000


def sensor(a: int, s: int) -> str:
    return f"s{a:03d}-{s:03d}"


def batches(agents: int, sensors: int, per_batch: int, n: int, *, foreign: bool = False
            ) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        a = i % agents
        agent = f"edge-{a:03d}"
        ids = [sensor(a, (i + k) % sensors) for k in range(per_batch)]
        if foreign:
            ids[-1] = sensor((a + 1) % agents, 0)
        b = ReadingBatch(agent=agent, seq=i // agents, sent_at=T0, readings=[
            Reading(s, T0 + i * 1000 + k, float(k)) for k, s in enumerate(ids)])
        out.append((topics.readings_topic(agent), encode(b)))
    return out


def interleaved(rounds: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best time of each run over ``rounds`` rounds, every round running each once (so a
    load swing on a shared machine hits them all alike)."""
    out = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            out[name] = min(out[name], time.perf_counter() - start)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--sensors", type=int, default=50)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=9)
    a = p.parse_args()
    owners = Owners.of((sensor(i, s), f"edge-{i:03d}")
                       for i in range(a.agents) for s in range(a.sensors))
    strict = Screen(owners, max_readings=10_000)
    total = a.messages * a.batch
    decoder = Decoder()
    own = batches(a.agents, a.sensors, a.batch, a.messages)
    foreign = batches(a.agents, a.sensors, a.batch, a.messages, foreign=True)
    decoded = {name: [decoder.readings(t, m) for t, m in msgs]
               for name, msgs in (("own", own), ("foreign", foreign))}

    def screen_all(screen: Screen, which: str) -> Callable[[], object]:
        return lambda: [screen.batch(b.agent, b) for b in decoded[which]]

    best = interleaved(a.rounds, {
        "decode": lambda: [decoder.readings(t, m) for t, m in own],
        "screen": screen_all(strict, "own"),
        "screen_one_forged_per_batch": screen_all(strict, "foreign"),
    })
    report: dict[str, object] = {"readings_per_batch": a.batch, "readings": total}
    report |= {f"{name}_ns_per_reading": round(t * 1e9 / total, 1) for name, t in best.items()}
    report["decode_readings_per_s"] = round(total / best["decode"])
    report["decode_and_screen_readings_per_s"] = round(total / (best["decode"]
                                                                + best["screen"]))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
