"""Write config/examples/huangpu/, the sample district, deterministically.

The sample is generated so that its geometry stays consistent (grids tile their
community, sensors sit inside their grid); the YAML it writes is what users read and
edit. Run: ``python scripts/make_example_config.py``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent.parent / "config" / "examples" / "huangpu"

DEPARTMENTS = [
    ("urban_mgmt", "城管"), ("illegal_construction", "查违"), ("police", "公安"),
    ("health_supervision", "卫监"), ("market_supervision", "市监"),
    ("fire_safety", "消防安全"), ("culture_sports_tourism", "文体旅游"),
    ("environment_water", "环保水务"), ("planning_land", "规土"),
]

TOWNS = [
    ("dasha", "大沙街道", ["dongyuan", "huangpu-cun", "dasha-dong"],
     ["东苑社区", "黄埔村社区", "大沙东社区"]),
    ("changzhou", "长洲街道", ["shenjing", "anle", "changzhou-dao"],
     ["深井社区", "安乐社区", "长洲岛社区"]),
    ("jiulong", "九龙镇", ["fenghuang", "longhu", "jiufo"],
     ["凤凰社区", "龙湖社区", "九佛社区"]),
]

KINDS: dict[str, dict[str, Any]] = {
    "smoke": {"unit": "dB/m", "interval": "2s",
              "description": "networked smoke alarm (obscuration)",
              "limits": {"physical_min": 0, "physical_max": 10, "alarm_high": 0.5,
                         "hysteresis": 0.05}},
    "gas": {"unit": "%LEL", "interval": "2s", "description": "combustible-gas monitor",
            "limits": {"physical_min": 0, "physical_max": 100, "alarm_high": 20,
                       "hysteresis": 2}},
    "water_level": {"unit": "cm", "interval": "5s", "description": "flood-point water level",
                    "limits": {"physical_min": 0, "physical_max": 300, "alarm_high": 30,
                               "hysteresis": 3}},
    "rain": {"unit": "mm/h", "interval": "5s", "description": "rain gauge",
             "limits": {"physical_min": 0, "physical_max": 300, "alarm_high": 50,
                        "hysteresis": 5}},
    "manhole_tilt": {"unit": "deg", "interval": "5s", "description": "smart manhole cover tilt",
                     "limits": {"physical_min": 0, "physical_max": 90, "alarm_high": 10,
                                "hysteresis": 1}},
    "temperature": {"unit": "degC", "interval": "5s", "description": "cold-chain / equipment room",
                    "limits": {"physical_min": -40, "physical_max": 125, "alarm_low": -25,
                               "alarm_high": 8, "hysteresis": 0.5}},
    "noise": {"unit": "dBA", "interval": "2s", "description": "street noise meter",
              "limits": {"physical_min": 20, "physical_max": 140, "alarm_high": 70,
                         "hysteresis": 2}},
    "pm25": {"unit": "ug/m3", "interval": "5s", "description": "PM2.5 dust monitor",
             "limits": {"physical_min": 0, "physical_max": 1000, "alarm_high": 150,
                        "hysteresis": 10}},
    "bridge_strain": {"unit": "ustrain", "interval": "5s", "description": "bridge strain gauge",
                      "limits": {"physical_min": -2000, "physical_max": 2000,
                                 "alarm_low": -600, "alarm_high": 600, "hysteresis": 20}},
    "water_leak": {"unit": "L/min", "interval": "5s", "description": "mains water-leak monitor",
                   "limits": {"physical_min": 0, "physical_max": 500, "alarm_high": 40,
                              "hysteresis": 4}},
}

# sensor kinds each grid gets, by the site tag of the grid
GRID_TAGS = [
    ["residential", "elderly_home"], ["school"], ["restaurant", "market"],
    ["flood_point"], ["bridge"], ["hazardous_goods"], ["construction_site"],
    ["residential"], ["hospital"],
]
TAG_KINDS = {
    "elderly_home": ["smoke", "smoke"], "residential": ["smoke", "water_leak"],
    "school": ["smoke", "noise"], "restaurant": ["gas", "gas"], "market": ["temperature"],
    "flood_point": ["water_level", "rain"], "bridge": ["bridge_strain", "bridge_strain"],
    "hazardous_goods": ["gas", "temperature"], "construction_site": ["noise", "pm25"],
    "hospital": ["temperature", "smoke"],
}
EVERY_GRID = ["manhole_tilt", "pm25"]


def square(lon: float, lat: float, half: float) -> list[list[list[float]]]:
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half],
            [lon - half, lat + half], [lon - half, lat - half]]
    return [[[round(x, 6), round(y, 6)] for x, y in ring]]


def main() -> None:
    rng = random.Random(20261126)
    OUT.mkdir(parents=True, exist_ok=True)
    towns = []
    sensors: list[dict[str, Any]] = []
    agents: list[dict[str, Any]] = []
    base_lon, base_lat = 113.43, 23.08
    gi = 0
    for t_index, (tid, tname, cids, cnames) in enumerate(TOWNS):
        t_lon, t_lat = base_lon + 0.06 * t_index, base_lat
        communities = []
        for c_index, (cid, cname) in enumerate(zip(cids, cnames, strict=True)):
            c_lon, c_lat = t_lon, t_lat + 0.018 * (c_index - 1)
            grids = []
            for g_index in range(3):
                g_lon, g_lat = c_lon + 0.006 * (g_index - 1), c_lat
                gid = f"{cid}-g{g_index + 1}"
                tags = GRID_TAGS[gi % len(GRID_TAGS)]
                gi += 1
                grids.append({"id": gid, "name": f"{cname}第{g_index + 1}网格",
                              "location": {"polygon": square(g_lon, g_lat, 0.003)},
                              "tags": tags})
                for kind in [k for tag in tags for k in TAG_KINDS[tag]] + EVERY_GRID:
                    n = sum(1 for s in sensors if s["grid"] == gid and s["kind"] == kind)
                    sensors.append({
                        "id": f"{gid}-{kind.replace('_', '')}-{n + 1}", "kind": kind,
                        "grid": gid, "agent": f"edge-{cid}",
                        "coordinates": [round(g_lon + rng.uniform(-0.0025, 0.0025), 6),
                                        round(g_lat + rng.uniform(-0.0025, 0.0025), 6)],
                    })
            communities.append({"id": cid, "name": cname,
                                "location": {"polygon": square(c_lon, c_lat, 0.009)},
                                "grids": grids})
            agents.append({"id": f"edge-{cid}", "name": f"{cname}边缘网关",
                           "grid": f"{cid}-g1", "source": "simulated"})
        towns.append({"id": tid, "name": tname,
                      "location": {"polygon": square(t_lon, t_lat, 0.028)},
                      "communities": communities})
    field_sources(agents, sensors)
    topology = {
        "district": {"id": "huangpu", "name": "黄埔区",
                     "location": {"polygon": square(base_lon + 0.06, base_lat, 0.1)},
                     "towns": towns},
        "departments": [{"id": i, "name": n} for i, n in DEPARTMENTS],
    }
    dump(OUT / "topology.yaml", topology,
         "# The governance ladder of the sample district: 区 → 镇街 → 社区 → 网格.\n")
    dump(OUT / "sensors.yaml", {"kinds": KINDS, "sensors": sensors},
         "# Sensor kinds (unit, reading interval, physical range, alarm limits, detector)\n"
         "# and every sensor, with its grid, its edge agent and [lon, lat].\n")
    dump(OUT / "agents.yaml", {
        "defaults": {"broker": {"url": "mqtt://127.0.0.1:1883"}, "batch_max_readings": 500,
                     "batch_interval": "1s", "status_interval": "30s",
                     "state_dir": "var/agent", "outbox_max_bytes": 256 * 2**20,
                     "outbox_max_age": "7d", "outbox_drop_events": False,
                     "outbox_sync": "full", "checkpoint_interval": "5m"},
        "agents": agents}, "# Edge agents: one gateway per community in the sample.\n")
    print(f"wrote {OUT}: {len(sensors)} sensors, {gi} grids, {len(agents)} agents")


SERIAL_PORT = "/tmp/gridcall-tty0"
MODBUS_PORT = "/tmp/gridcall-modbus0"
"""Where ``python -m gridcall.simulators.devices`` puts its simulated devices by default."""


def field_sources(agents: list[dict[str, Any]], sensors: list[dict[str, Any]]) -> None:
    """The first agent reads microcontrollers speaking the frame protocol (one device per
    grid, a channel per sensor), the second polls Modbus RTU (one slave per grid); the
    rest stay simulated. docs/firmware-protocol.md describes both maps."""
    serial, modbus = agents[0], agents[1]
    devices: dict[str, dict[str, Any]] = {}
    for s in (s for s in sensors if s["agent"] == serial["id"]):
        device = devices.setdefault(s["grid"], {"id": 101 + len(devices), "name": s["grid"],
                                                "channels": {}})
        device["channels"][len(device["channels"])] = s["id"]
    serial["source"] = {"type": "serial", "port": SERIAL_PORT, "baudrate": 115200,
                        "devices": list(devices.values())}
    slaves: dict[str, int] = {}
    next_address: dict[int, int] = {}
    registers = []
    for s in (s for s in sensors if s["agent"] == modbus["id"]):
        slave = slaves.setdefault(s["grid"], len(slaves) + 1)
        address = next_address.get(slave, 0)
        kind = s["kind"]
        register: dict[str, Any] = {"sensor": s["id"], "slave": slave, "address": address}
        if kind == "temperature":  # a typical transmitter: tenths of a degree, signed
            register.update(type="int16", scale=0.1)
        elif kind == "pm25":  # whole µg/m³, input registers (function 4)
            register.update(table="input", type="uint16")
        else:
            register.update(type="float32")
        register["interval"] = KINDS[kind]["interval"]
        registers.append(register)
        next_address[slave] = address + (2 if register["type"] == "float32" else 1)
    modbus["source"] = {"type": "modbus", "port": MODBUS_PORT, "baudrate": 9600,
                        "timeout": "0.5s", "registers": registers}
    local_mqtt_source(agents[-1], sensors)


def local_mqtt_source(agent: dict[str, Any], sensors: list[dict[str, Any]]) -> None:
    """The last agent reads off-the-shelf devices through mosquitto on its own box
    (config/local_mqtt.py): Zigbee2MQTT smoke alarms, a Tasmota DS18B20 for the
    temperature, and one ESPHome node per grid for the rest."""
    nodes: dict[str, dict[str, str]] = {}
    entries: list[dict[str, Any]] = []
    for s in (s for s in sensors if s["agent"] == agent["id"]):
        if s["kind"] == "smoke":
            entries.append({"preset": "zigbee2mqtt", "device": s["id"],
                            "fields": {"smoke": s["id"]}})
        elif s["kind"] == "temperature":
            entries.append({"preset": "tasmota", "device": f"{s['grid']}-cabinet",
                            "fields": {"DS18B20.Temperature": {"sensor": s["id"],
                                                               "unit": "degC"}}})
        else:
            name = s["id"].removeprefix(f"{s['grid']}-").replace("-", "_")
            nodes.setdefault(s["grid"], {})[name] = s["id"]
    entries += [{"preset": "esphome", "device": f"{grid}-node", "fields": fields}
                for grid, fields in nodes.items()]
    agent["source"] = {"type": "mqtt", "broker": {"url": "mqtt://127.0.0.1:1883"},
                       "map": entries}


def dump(path: Path, data: Any, header: str) -> None:
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100,
                          default_flow_style=None)
    path.write_text(header + text, encoding="utf-8")


if __name__ == "__main__":
    main()
