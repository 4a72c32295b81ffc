"""The hub's ingest path against the machine's limits, measured in one run.

``python bench/hub_ingest.py [--readings 1000000] [--workers 1,2,4] [--rounds 3]
[--latency-seconds 10]``

Starts a PRIVATE mosquitto (its default in-flight window, as ``../shared/bench/
peer_ingest_bench.py`` runs it) and InfluxDB 1.6.7 on free loopback ports in a temporary
folder (never the shared test servers), then measures, in this order:

- **limit A**: mosquitto → a bare paho subscriber that parses each payload (msgspec, to
  generic objects) and counts the readings;
- **limit B**: line protocol straight to InfluxDB ``/write``, 5,000 points per request,
  one writer, bodies encoded beforehand;
- **the hub**: ``gridcall hub ingest`` worker processes (MQTT → decode and validate →
  dedup → InfluxDB, acknowledged after the write), for each worker count asked for;
- **latency** from a reading to its alert on the unit's topic: ``gridcall hub run`` (the
  alert desk plus one in-process ingest) while readings flow at 10,000 readings/s and an
  anomaly event (time-stamped with its reading's time) is published every 50 ms; each
  alert's first publication counts (later ones carry the first event's time).

Workload: the shared harness's (``peer_ingest_bench.py --wire gridcall``): 50 agents
``a00``.. with sensors ``s<agent><n>``, 50 readings per MQTT message, QoS 1, gridcall's
wire format, timestamps from an hour ago 1 ms apart per agent; the hub's config set holds
those agents and sensors (``bench/ingest_bench_config.py``). As in the harness, the
consumer is subscribed first and the messages are published open loop while it runs (at
most 5,000 unacknowledged), and the rate is from the first publish to the last reading
counted (A) or stored (hub): the publisher shares the machine, as it does there. (Before
2026-12-06 this bench queued the messages first and started the consumer after, on a
broker with ``max_inflight_messages 1000``: a different measurement, which read 0.83
where the harness read 0.34.) Readings lost: per-agent counts and sums in InfluxDB
against what was published, in every run. Limits and hub are measured ``--rounds``
times, interleaved, and the best of each counts: on a shared machine the best round is
the closest to a quiet one, and a load burst then cannot favour one side of the ratio.
CPU % is the hub processes' CPU time over that window
(100 % = one core); peak RSS is the largest worker's. ``uptime``'s load is printed with
the figures: on a shared machine they move with it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest_bench_config import write_bench_config  # noqa: E402
from gridcall.config import load_config  # noqa: E402
from gridcall.hub.ingest.sinks import LineEncoder  # noqa: E402
from gridcall.wire import AnomalyEvent, Reading, ReadingBatch, RiskAlert, encode, topics  # noqa: E402
from tests.private_servers import PrivateInflux, PrivateMosquitto, publish_all  # noqa: E402

AGENTS = 50
PER_MESSAGE = 50
PUB_WINDOW = 5000  # unacknowledged PUBLISHes, as the shared harness
T0 = (time.time_ns() // 10**9 - 3600) * 10**9  # the harness's: an hour ago
CLI = [sys.executable, "-c", "from gridcall.cli import main; main()"]


def uptime_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


# --------------------------------------------------------------------------- workload

class Workload:
    def __init__(self, readings: int) -> None:
        per_agent = readings // (AGENTS * PER_MESSAGE)
        rng = random.Random(7)
        self.messages: list[tuple[str, bytes]] = []
        self.batches: list[ReadingBatch] = []
        self.count: dict[str, int] = {}
        self.sum: dict[str, float] = {}
        for seq in range(per_agent):
            for a in range(AGENTS):
                agent = f"a{a:02d}"
                base = T0 + seq * PER_MESSAGE * 1_000_000
                batch = ReadingBatch(agent=agent, seq=seq, sent_at=base, readings=[
                    Reading(f"s{a:02d}{k:02d}", base + k * 1_000_000 + a * 7 + 1,
                            round(rng.uniform(0, 100), 3))
                    for k in range(PER_MESSAGE)])
                self.batches.append(batch)
                self.messages.append((topics.readings_topic(agent), encode(batch)))
                self.count[agent] = self.count.get(agent, 0) + PER_MESSAGE
                self.sum[agent] = self.sum.get(agent, 0.0) + sum(r.value for r in batch.readings)
        self.readings = sum(self.count.values())


def make_session(url: str, client_id: str, topic_filter: str) -> None:
    """Create a persistent session subscribed to ``topic_filter``, then leave."""
    port = int(url.rsplit(":", 1)[1])
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not subscribed.wait(30):
        raise RuntimeError(f"{client_id}: no SUBACK")
    client.disconnect()
    client.loop_stop()


# --------------------------------------------------------------------------- limits

def limit_a(url: str, work: Workload, tag: str = "") -> dict[str, Any]:
    client_id = f"bench-limit-a{tag}"
    make_session(url, client_id, topics.READINGS)
    port = int(url.rsplit(":", 1)[1])
    counted = [0]
    first: list[float] = []
    last = [0.0]
    done = threading.Event()
    decode = msgspec.json.decode

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not first:
            first.append(time.perf_counter())
        counted[0] += len(decode(msg.payload)["readings"])
        if counted[0] >= work.readings:
            last[0] = time.perf_counter()
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_message = on_message
    cpu0 = time.process_time()
    client.connect("127.0.0.1", port)
    client.loop_start()
    time.sleep(0.5)  # subscribed (the session was made above)
    published = time.perf_counter()
    publish_all(url, work.messages, window=PUB_WINDOW)
    if not done.wait(600):
        raise RuntimeError(f"limit A: {counted[0]} of {work.readings} readings arrived")
    cpu = time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    seconds = last[0] - published
    return {"readings_per_s": round(work.readings / seconds), "seconds": round(seconds, 2),
            "subscriber_cpu_pct": round(100 * cpu / seconds), "load": uptime_load()}


def limit_b(influx_url: str, work: Workload, database: str = "limit_b") -> dict[str, Any]:
    encoder = LineEncoder()
    per_request = 5000 // PER_MESSAGE
    bodies = [encoder.encode(work.batches[i:i + per_request])
              for i in range(0, len(work.batches), per_request)]
    with httpx.Client(base_url=influx_url, timeout=60) as http:
        http.post("/query", data={"q": f"CREATE DATABASE {database}"}).raise_for_status()
        start = time.perf_counter()
        for body in bodies:
            resp = http.post("/write", params={"db": database, "precision": "ns"},
                             content=body)
            if resp.status_code != 204:
                raise RuntimeError(f"limit B: HTTP {resp.status_code}: {resp.text[:300]}")
        seconds = time.perf_counter() - start
    return {"readings_per_s": round(work.readings / seconds), "seconds": round(seconds, 2),
            "requests": len(bodies), "load": uptime_load()}


# --------------------------------------------------------------------------- the hub

def write_config(folder: Path, broker: str, influx: str, database: str,
                 client_id: str = "bench-hub", *, mixed_kinds: bool = False) -> Path:
    import yaml

    write_bench_config(folder, AGENTS, PER_MESSAGE, mixed_kinds=mixed_kinds)
    (folder / "hub.yaml").write_text(yaml.safe_dump({"hub": {
        "broker": {"url": broker}, "client_id": client_id,
        "ingest_share_group": f"{client_id}-group",
        "store_path": str(folder / "hub.sqlite"), "spool_dir": str(folder / "spool"),
        "influx": {"url": influx, "database": database, "batch_max_points": 5000,
                   "flush_interval": "1s"}}}), encoding="utf-8")
    return folder


def start_workers(config: Path, n: int, stats: Path) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([*CLI, "hub", "ingest", "--config", str(config), "--worker",
                              str(i), "--stats", str(stats / f"w{i}.json")],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=(stats / f"w{i}.log").open("ab"))
            for i in range(1, n + 1)]


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=120)


def read_stats(stats: Path, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(1, n + 1):
        try:
            out.append(json.loads((stats / f"w{i}.json").read_text()))
        except (OSError, ValueError):
            out.append({})
    return out


def influx_by_agent(influx_url: str, database: str) -> dict[str, tuple[int, float]]:
    with httpx.Client(base_url=influx_url, timeout=120) as http:
        resp = http.post("/query", params={"db": database}, data={
            "q": "SELECT count(value), sum(value) FROM reading GROUP BY agent"})
        resp.raise_for_status()
    result = resp.json()["results"][0]
    return {s["tags"]["agent"]: (int(s["values"][0][1]), float(s["values"][0][2]))
            for s in result.get("series", [])}


def lost(work: Workload, stored: dict[str, tuple[int, float]]) -> tuple[int, int]:
    """Readings lost (published, not stored) and agents whose sum differs."""
    missing = sum(max(0, n - stored.get(a, (0, 0.0))[0]) for a, n in work.count.items())
    bad_sums = sum(1 for a, s in work.sum.items()
                   if not math.isclose(stored.get(a, (0, 0.0))[1], s, rel_tol=1e-9))
    return missing, bad_sums


def hub_run(work: Workload, broker: str, influx: str, tmp: Path, workers: int,
            tag: str = "") -> dict[str, Any]:
    database = f"hub_w{workers}{tag}"
    httpx.post(f"{influx}/query", data={"q": f"CREATE DATABASE {database}"}).raise_for_status()
    # A fresh group and worker names per run: an earlier run's sessions stay members of
    # their shared group while offline, and mosquitto keeps giving them their share.
    config = write_config(tmp / f"cfg{workers}{tag}", broker, influx, database,
                          client_id=f"bench-hub-w{workers}{tag.replace('_', '-')}")
    stats = tmp / f"stats{workers}{tag}"
    stats.mkdir()
    procs = start_workers(config, workers, stats)
    deadline = time.monotonic() + 120
    while not all(s.get("subscribed") for s in read_stats(stats, workers)):
        if time.monotonic() > deadline:
            stop_all(procs)
            raise RuntimeError(f"{workers} workers did not subscribe: see {stats}")
        time.sleep(0.1)
    cpu_before = sum(s.get("cpu_s", 0.0) for s in read_stats(stats, workers))
    published = time.time()
    publisher = threading.Thread(target=publish_all, args=(broker, work.messages),
                                 kwargs={"window": PUB_WINDOW}, daemon=True)
    publisher.start()
    deadline = time.monotonic() + 180
    peak_rss = 0
    while True:
        snap = read_stats(stats, workers)
        peak_rss = max([peak_rss, *(s.get("max_rss_kb", 0) for s in snap)])
        if sum(s.get("readings_stored", 0) for s in snap) >= work.readings:
            break
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            stop_all(procs)
            raise RuntimeError(f"hub with {workers} workers: {snap}")
        time.sleep(0.2)
    load_now = uptime_load()
    publisher.join()
    cpu_after = sum(s.get("cpu_s", 0.0) for s in read_stats(stats, workers))
    stop_all(procs)
    snap = read_stats(stats, workers)
    last = max(s["last_stored_at"] for s in snap if s.get("last_stored_at"))
    seconds = last - published
    cpu = cpu_after - cpu_before
    stored = influx_by_agent(influx, database)
    missing, bad_sums = lost(work, stored)
    return {
        "workers": workers, "readings_per_s": round(work.readings / seconds),
        "seconds": round(seconds, 2), "readings_lost": missing,
        "agents_with_wrong_sum": bad_sums,
        "stored_in_influx": sum(n for n, _ in stored.values()),
        "duplicate_batches": sum(s.get("duplicate_batches", 0) for s in snap),
        "hub_cpu_pct": round(100 * cpu / seconds),
        "peak_rss_mb": round(max(peak_rss, *(s.get("max_rss_kb", 0) for s in snap)) / 1024, 1),
        "per_worker_readings": [s.get("readings_stored", 0) for s in snap],
        "load": load_now,
    }


# --------------------------------------------------------------------------- latency

def latency(broker: str, influx: str, tmp: Path, seconds: float, rate: int
            ) -> dict[str, Any]:
    cfg_dir = write_config(tmp / "cfg-latency", broker, influx, "latency", mixed_kinds=True)
    cfg = load_config(cfg_dir)
    # Each event on a (grid, sensor kind) of its own as long as there are such pairs, so
    # that each opens an alert (a desk groups a matter's events in a grid into one alert,
    # and only an alert's first publication carries its event's time): the sensors in
    # turn over the grids first, then over the kinds.
    by_key = {(s.grid, s.kind): s for s in cfg.sensors.values()}
    firsts: dict[str, list[Any]] = {}
    for (grid, _), s in sorted(by_key.items()):
        firsts.setdefault(grid, []).append(s)
    sensors = [row[i] for i in range(max(map(len, firsts.values())))
               for row in firsts.values() if i < len(row)]
    log = (tmp / "hub-latency.log").open("ab")
    hub = subprocess.Popen([*CLI, "hub", "run", "--config", str(cfg_dir)],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    port = int(broker.rsplit(":", 1)[1])
    lat_ms: list[float] = []
    arrivals: list[tuple[float, float]] = []  # (seconds into the run, latency ms)
    seen: set[str] = set()
    t_start = [time.time_ns()]
    alert_decoder = msgspec.json.Decoder(RiskAlert)

    def on_alert(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.time_ns()
        alert = alert_decoder.decode(msg.payload)
        # An alert's first publication only: later ones (an event joining it, a step of
        # the desk) carry the first event's detected_at, so "now - detected_at" would be
        # the alert's age, not a delay.
        if alert.alert_id in seen or msg.retain:
            return
        seen.add(alert.alert_id)
        lat_ms.append((now - alert.detected_at) / 1e6)
        arrivals.append((round((now - t_start[0]) / 1e9, 2), round(lat_ms[-1], 1)))

    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-alerts")
    watcher.on_message = on_alert
    watcher.on_connect = lambda c, *a: c.subscribe(topics.ALERTS, qos=1)
    watcher.connect("127.0.0.1", port)
    watcher.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-latency-pub")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        # wait for the hub: its readings session must exist before readings flow
        deadline = time.monotonic() + 60
        while b"bench-hub" not in (tmp / "hub-latency.log").read_bytes():
            if time.monotonic() > deadline or hub.poll() is not None:
                raise RuntimeError((tmp / "hub-latency.log").read_text())
            time.sleep(0.1)
        time.sleep(1.0)
        per_tick = PER_MESSAGE
        ticks = rate // per_tick  # messages per second
        interval = 1.0 / ticks
        event_every = max(1, ticks // 20)
        seq = 0
        events = 0
        start = time.monotonic()
        t_start[0] = time.time_ns()
        n = 0
        while time.monotonic() - start < seconds:
            now = time.time_ns()
            a = n % AGENTS
            agent = f"a{a:02d}"
            batch = ReadingBatch(agent=agent, seq=n // AGENTS, sent_at=now, readings=[
                Reading(f"s{a:02d}{k:02d}", now + k, float(k)) for k in range(per_tick)])
            pub.publish(topics.readings_topic(agent), encode(batch), qos=1)
            if n % event_every == 0:
                sensor = sensors[events % len(sensors)]
                event = AnomalyEvent(agent=sensor.agent, seq=1_000_000 + events,
                                     sensor=sensor.id, kind="out_of_limits", severity="major",
                                     score=0.99, value=99.0, ts=time.time_ns())
                pub.publish(topics.events_topic(sensor.agent), encode(event), qos=1)
                events += 1
            n += 1
            seq += 1
            sleep = start + n * interval - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)
        achieved = n * per_tick / (time.monotonic() - start)
        deadline = time.monotonic() + 10
        time.sleep(2.0)  # the last alerts
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=120)
        pub.disconnect()
        pub.loop_stop()
        watcher.disconnect()
        watcher.loop_stop()
    lat_ms.sort()

    def pct(p: float) -> float:
        return round(lat_ms[min(len(lat_ms) - 1, int(p * len(lat_ms)))], 1) if lat_ms else math.nan

    return {"readings_per_s_offered": round(achieved), "events": events,
            "alerts_opened": len(lat_ms), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "max_ms": round(lat_ms[-1], 1) if lat_ms else math.nan, "load": uptime_load(),
            "slowest": sorted(arrivals, key=lambda a: -a[1])[:3]}


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, e.g. 1,2,4")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--latency-rate", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="measure limits and hub this many times, interleaved; best "
                             "counts (0: only the latency)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",") if x]

    tmp = Path(tempfile.mkdtemp(prefix="gridcall-bench-"))
    work = Workload(args.readings)
    report: dict[str, Any] = {"readings": work.readings, "agents": AGENTS,
                              "readings_per_message": PER_MESSAGE, "cpus": os.cpu_count(),
                              "load_at_start": uptime_load()}
    try:
        # mosquitto's default in-flight window (20), as the shared harness runs it
        with PrivateMosquitto(tmp / "mosquitto", persistence=False, max_inflight=20) as broker, \
                PrivateInflux(tmp / "influx") as influx:
            if args.rounds > 0 and counts:  # --rounds 0: the latency alone
                runs: dict[str, list[dict[str, Any]]] = {"limit_a": [], "limit_b": []}
                for n in counts:
                    runs[f"hub_{n}"] = []
                # Rounds interleave the limits and the hub, so that a burst of load from
                # elsewhere hits both; each figure is the best of its rounds (the closest to
                # what the machine does when nothing else runs).
                for r in range(1, args.rounds + 1):
                    tag = f"_r{r}"
                    a = limit_a(broker.url, work, tag)
                    runs["limit_a"].append(a)
                    print(f"round {r}: limit A (mosquitto → bare paho, parse+count): "
                          f"{a['readings_per_s']:,} readings/s (load {a['load']})", flush=True)
                    b = limit_b(influx.url, work, f"limit_b{tag}")
                    runs["limit_b"].append(b)
                    print(f"round {r}: limit B (line protocol → InfluxDB /write, 5000/request, "
                          f"1 writer): {b['readings_per_s']:,} readings/s (load {b['load']})",
                          flush=True)
                    for n in counts:
                        h = hub_run(work, broker.url, influx.url, tmp, n, tag)
                        runs[f"hub_{n}"].append(h)
                        print(f"round {r}: hub, {n} worker(s): {h['readings_per_s']:,} "
                              f"readings/s, {h['readings_lost']} lost, CPU {h['hub_cpu_pct']} %, "
                              f"peak RSS {h['peak_rss_mb']} MB (load {h['load']})", flush=True)
                report["rounds"] = runs

                def best(key: str) -> dict[str, Any]:
                    return max(runs[key], key=lambda x: int(x["readings_per_s"]))

                report["limit_a"], report["limit_b"] = best("limit_a"), best("limit_b")
                lower = min(report["limit_a"]["readings_per_s"],
                            report["limit_b"]["readings_per_s"])
                report["lower_limit"] = lower
                report["readings_lost_any_run"] = sum(h["readings_lost"] + h[
                    "agents_with_wrong_sum"] for n in counts for h in runs[f"hub_{n}"])
                print(f"best of {args.rounds}: limit A {report['limit_a']['readings_per_s']:,}, "
                      f"limit B {report['limit_b']['readings_per_s']:,} readings/s")
                report["hub"] = []
                for n in counts:
                    h = dict(best(f"hub_{n}"))
                    h["ratio_to_lower_limit"] = round(h["readings_per_s"] / lower, 2)
                    report["hub"].append(h)
                    lost_all = sum(x["readings_lost"] for x in runs[f"hub_{n}"])
                    print(f"hub, {n} worker(s), best of {args.rounds}: {h['readings_per_s']:,} "
                          f"readings/s, ratio {h['ratio_to_lower_limit']} to the lower limit "
                          f"({lower:,}); readings lost in all its runs: {lost_all}; CPU "
                          f"{h['hub_cpu_pct']} %, peak RSS {h['peak_rss_mb']} MB "
                          f"(load {h['load']})", flush=True)
            if args.latency_seconds > 0:
                report["latency"] = lat = latency(broker.url, influx.url, tmp,
                                                  args.latency_seconds, args.latency_rate)
                print(f"reading → alert at {lat['readings_per_s_offered']:,} readings/s: "
                      f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} "
                      f"ms ({lat['alerts_opened']} alerts opened by {lat['events']} events; "
                      f"slowest (s into the run, ms): {lat['slowest']}; load {lat['load']})",
                      flush=True)
    finally:
        if not args.keep:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
