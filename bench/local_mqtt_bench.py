"""How fast the local MQTT mapping turns device payloads into samples (no network).

A seeded workload of real-format payloads: Tasmota ``tele/<dev>/SENSOR`` JSON with two
DS18B20 probes, Zigbee2MQTT device state, and ESPHome plain numbers, spread over 200
devices' mappings (the 200-sensor box of the issue), plus one payload in 50 that is
garbage. Prints messages/s and µs per message through ``TopicMap.decode``, built as the
agent builds it (the sensors' units, the presets' availability topics).

Run: ``python bench/local_mqtt_bench.py [--messages N]``.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from gridcall.config.local_mqtt import LocalMqttSettings
from gridcall.edge_agent.local_mqtt import TopicMap


def workload(devices: int, messages: int, seed: int) -> tuple[TopicMap, list[tuple[str, bytes]]]:
    rng = random.Random(seed)
    entries: list[dict[str, Any]] = []
    kinds = ["tasmota", "zigbee2mqtt", "esphome"]
    for d in range(devices):
        kind = kinds[d % 3]
        if kind == "tasmota":
            entries.append({"preset": "tasmota", "device": f"cab-{d}", "fields": {
                "DS18B20-1.Temperature": f"t{d}a", "DS18B20-2.Temperature": f"t{d}b"}})
        elif kind == "zigbee2mqtt":
            entries.append({"preset": "zigbee2mqtt", "device": f"th-{d}", "fields": {
                "temperature": f"z{d}t", "humidity": f"z{d}h"}})
        else:
            entries.append({"preset": "esphome", "device": f"node-{d}",
                            "fields": {"level": f"e{d}"}})
    settings = LocalMqttSettings.model_validate({"type": "mqtt", "map": entries})
    # as the agent builds it: with the sensors' units (Tasmota's TempUnit is converted to
    # them) and the presets' availability topics
    units = {m.sensor: "%" if m.sensor.endswith("h") else "degC" for m in settings.mappings()}
    tmap = TopicMap(settings.mappings(), units=units, availability=settings.availability())
    out: list[tuple[str, bytes]] = []
    for _ in range(messages):
        d = rng.randrange(devices)
        kind = kinds[d % 3]
        if rng.random() < 0.02:
            topic = {"tasmota": f"tele/cab-{d}/SENSOR", "zigbee2mqtt": f"zigbee2mqtt/th-{d}",
                     "esphome": f"node-{d}/sensor/level/state"}[kind]
            out.append((topic, b"\x00garbage{"))
        elif kind == "tasmota":
            a, b = rng.uniform(15, 30), rng.uniform(15, 30)
            out.append((f"tele/cab-{d}/SENSOR", (
                '{"Time":"2024-03-05T14:12:03","DS18B20-1":{"Id":"3C01D075C1E5","Temperature":'
                f'{a:.1f}}},"DS18B20-2":{{"Id":"3C01D0754E6A","Temperature":{b:.1f}}},'
                '"TempUnit":"C"}').encode()))
        elif kind == "zigbee2mqtt":
            out.append((f"zigbee2mqtt/th-{d}", (
                f'{{"battery":100,"humidity":{rng.uniform(30, 90):.2f},"linkquality":156,'
                f'"pressure":1007.4,"temperature":{rng.uniform(15, 30):.2f},"voltage":3025}}'
            ).encode()))
        else:
            out.append((f"node-{d}/sensor/level/state", f"{rng.uniform(0, 300):.2f}".encode()))
    return tmap, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=200)
    args = parser.parse_args()
    tmap, messages = workload(args.devices, args.messages, seed=20261127)
    start = time.perf_counter()
    samples = 0
    for topic, payload in messages:
        samples += len(tmap.decode(topic, payload, 0))
    took = time.perf_counter() - start
    print(f"{args.messages} messages over {args.devices} devices "
          f"({len(tmap.routes)} mappings): {args.messages / took:,.0f} messages/s, "
          f"{took / args.messages * 1e6:.1f} µs/message, {samples / took:,.0f} samples/s; "
          f"skipped by reason: {dict(tmap.counters.bad)}")


if __name__ == "__main__":
    main()
