#!/usr/bin/env bash
# gridcall_edge_agent.sh: runs gridcall's edge agent (`gridcall edge run`) as the system under test
# of ../shared/bench/edge_peer_bench.py (its --agent-cmd), with --modbus rtu (every simulated device is
# one unit id on one pty bus) or --modbus tcp (device i is a Modbus TCP server on MODBUS_PORT+i: one
# gridcall agent with transport tcp, each register naming its device's host and tcp_port).
# Adapted from ../shared/bench/gridcall_edge_agent.sh (RTU only); docs/benchmarks.md has the runs.
#
#   python3 ../shared/bench/edge_peer_bench.py --modbus rtu --agent-name gridcall-edge \
#       --agent-cmd "GRIDCALL=$PWD/.venv/bin/gridcall bash $PWD/bench/gridcall_edge_agent.sh" \
#       --count-topic 'gridcall/v1/readings/+' --count-format gridcall
#
# From the harness's environment (README of edge_peer_bench.py) it reads BENCH_DEVICES_JSON,
# MODBUS_TRANSPORT, MODBUS_SERIAL_PORT, MODBUS_BAUDRATE, POLL_MS, MQTT_URL and BENCH_STATE_DIR; it writes
# a gridcall config set into $GRIDCALL_CONFIG_DIR (default $BENCH_STATE_DIR/config), checks it with
# `gridcall config check` and then execs `gridcall edge run -c DIR --agent ID`.
#
# The config set:
#   topology.yaml  one district / town / community / grid, one department
#   sensors.yaml   one kind "counter" (unit "count", interval = POLL_MS, physical range 0..65535, no alarm
#                  limits, detector "limits": with no alarm limits it scores 0 on every reading, so the
#                  harness's ever-rising counters raise no anomaly event (~0.7 us a reading); gridcall's
#                  "default" detector (~4 us) opens a "spike" episode on every sensor right after its
#                  200-reading warm-up, as a counter sets a new extreme on each read, and keeps it open
#                  (an AnomalyEvent per sensor on gridcall/v1/events/<agent>). One sensor per (device,
#                  register), id "dev000.r000".
#   agents.yaml    one agent (id $GRIDCALL_AGENT, default bench-edge) with a modbus source on
#                  MODBUS_SERIAL_PORT at MODBUS_BAUDRATE: per register {slave: unit id, table: holding
#                  (function 3; input for function 4), address, type: uint16, interval: POLL_MS}; broker
#                  url = MQTT_URL; state_dir = $BENCH_STATE_DIR (the durable SQLite outbox, sequence state
#                  and detector checkpoint, kept across the harness's kill -9 and restart);
#                  (tcp: transport tcp, each register with its device's host and tcp_port);
#                  outbox_sync: full (the project's default: an fsync per committed batch). Batch size and
#                  interval are left at the project's defaults (500 readings / 1 s).
#   matters.yaml   the three default deadlines and one matter without triggers (the hub's business;
#                  the agent does not use it, but a config set needs one).
# gridcall publishes ReadingBatch JSON on gridcall/v1/readings/<agent> ({"v":1,"agent":..,"seq":..,
# "sent_at":..,"readings":[[sensor, ts_ns, value],..]}), and status on gridcall/v1/status/<agent>.
#
# Optional environment:
#   GRIDCALL             the gridcall executable (default: $PROJECT/.venv/bin/gridcall if PROJECT is set and
#                        that exists, else `gridcall` from PATH)
#   GRIDCALL_AGENT       agent id (default bench-edge): the last level of the readings topic
#   GRIDCALL_CONFIG_DIR  where to write the config set (default $BENCH_STATE_DIR/config)
#   GRIDCALL_DETECTOR    detector of the "counter" kind (default limits; e.g. "default" to measure gridcall's
#                        default detector, which raises anomaly events on these counters)
#   GRIDCALL_VERBOSE=1   run the agent with -v (DEBUG logging, pymodbus's own lines too)
#   GRIDCALL_CHECK=1     run `gridcall config check` first (off by default here: about 0.9 s of imports on each start and restart, which
#                        the startup and kill phases count; `edge run` validates the same config anyway)
set -euo pipefail

die() { echo "gridcall_edge_agent.sh: $*" >&2; exit 2; }

: "${BENCH_DEVICES_JSON:?BENCH_DEVICES_JSON is not set (run me as edge_peer_bench.py --agent-cmd)}"
: "${BENCH_STATE_DIR:?BENCH_STATE_DIR is not set}"
: "${MQTT_URL:?MQTT_URL is not set}"
case "${MODBUS_TRANSPORT:-rtu}" in
    rtu|tcp) ;;
    *) die "MODBUS_TRANSPORT=$MODBUS_TRANSPORT: this wrapper writes rtu or tcp sources" ;;
esac
if [ -z "${GRIDCALL:-}" ]; then
    if [ -n "${PROJECT:-}" ] && [ -x "$PROJECT/.venv/bin/gridcall" ]; then
        GRIDCALL="$PROJECT/.venv/bin/gridcall"
    else
        GRIDCALL=gridcall
    fi
fi
command -v "$GRIDCALL" >/dev/null || die "no gridcall executable '$GRIDCALL' (set GRIDCALL=/path/to/venv/bin/gridcall)"
AGENT_ID=${GRIDCALL_AGENT:-bench-edge}
CONF=${GRIDCALL_CONFIG_DIR:-$BENCH_STATE_DIR/config}
mkdir -p "$CONF" "$BENCH_STATE_DIR"

# Any Python 3 writes the YAML (no third-party module needed): the harness's own, else python3.
"${BENCH_PYTHON:-python3}" - "$CONF" "$AGENT_ID" <<'PY'
import json, os, sys

conf, agent = sys.argv[1], sys.argv[2]
env = os.environ
with open(env["BENCH_DEVICES_JSON"]) as f:
    devices = json.load(f)
if not devices:
    sys.exit("gridcall_edge_agent.sh: BENCH_DEVICES_JSON lists no device")
transport = devices[0].get("transport", "rtu")
if any(d.get("transport", "rtu") != transport for d in devices):
    sys.exit("gridcall_edge_agent.sh: the devices mix transports; one agent reads one")
if transport == "rtu":
    port = env.get("MODBUS_SERIAL_PORT") or devices[0]["serial_port"]
    baud = int(env.get("MODBUS_BAUDRATE") or devices[0]["baudrate"])
poll_ms = float(env.get("POLL_MS") or devices[0]["poll_ms"])
detector = env.get("GRIDCALL_DETECTOR", "limits")
q = json.dumps  # a JSON string is a valid YAML double-quoted scalar


def secs(ms):
    return f"{float(ms) / 1000:g}s"


def point(lon, lat):
    return f"{{point: [{lon}, {lat}]}}"


with open(os.path.join(conf, "topology.yaml"), "w") as f:
    f.write(f"""# written by gridcall_edge_agent.sh for edge_peer_bench.py
district:
  id: bench
  name: bench district
  location: {point(113.45, 23.10)}
  towns:
  - id: bench-town
    name: bench town
    location: {point(113.45, 23.10)}
    communities:
    - id: bench-community
      name: bench community
      location: {point(113.45, 23.10)}
      grids:
      - id: bench-grid
        name: bench grid
        location: {point(113.45, 23.10)}
departments:
- {{id: bench-dept, name: bench department}}
""")

sensors = []
registers = []
for d in devices:
    table = {3: "holding", 4: "input"}.get(int(d.get("function", 3)))
    if table is None:
        sys.exit(f"gridcall_edge_agent.sh: {d['name']}: Modbus function {d['function']} is not 3 or 4")
    for r in d["registers"]:
        sid = f"{d['name']}.{r['key']}"
        sensors.append(f"- {{id: {q(sid)}, kind: counter, grid: bench-grid, agent: {q(agent)}, "
                       f"coordinates: [113.45, 23.10]}}")
        where = "" if transport == "rtu" else (
            f"host: {q(d['host'])}, tcp_port: {int(d['port'])}, ")
        registers.append(f"    - {{sensor: {q(sid)}, {where}slave: {int(d['unit'])}, "
                         f"table: {table}, address: {int(r['address'])}, "
                         f"type: {r.get('type', 'uint16')}, "
                         f"interval: {secs(d.get('poll_ms', poll_ms))}}}")

with open(os.path.join(conf, "sensors.yaml"), "w") as f:
    f.write(f"""# written by gridcall_edge_agent.sh: one sensor per (device, register) of the harness
kinds:
  counter:
    unit: count
    interval: {secs(poll_ms)}
    description: edge_peer_bench 16-bit counter register (+1 on every read)
    limits: {{physical_min: 0, physical_max: 65535}}
    detector: {{name: {q(detector)}}}
sensors:
""" + "\n".join(sensors) + "\n")

with open(os.path.join(conf, "agents.yaml"), "w") as f:
    f.write(f"""# written by gridcall_edge_agent.sh
defaults:
  broker: {{url: {q(env["MQTT_URL"])}}}
  state_dir: {q(os.path.abspath(env["BENCH_STATE_DIR"]))}
  outbox_sync: full
agents:
- id: {q(agent)}
  name: edge_peer_bench agent
  grid: bench-grid
  source:
    type: modbus
""" + (f"""    port: {q(port)}
    baudrate: {baud}
""" if transport == "rtu" else f"""    transport: tcp
    host: {q(devices[0]["host"])}
""") + """    registers:
""" + "\n".join(registers) + "\n")

with open(os.path.join(conf, "matters.yaml"), "w") as f:
    f.write("""# written by gridcall_edge_agent.sh (the hub's catalog; the agent does not use it)
default_deadlines:
  emergency: {response: 15m, arrival: 30m, disposal: 2h}
  daily: {response: 2h, arrival: 1d, disposal: 7d}
  patrol: {response: 1d, arrival: 3d, disposal: 15d}
matters:
- {code: BENCH, name: bench matter, type: daily, base_tier: D}
""")
where = f"{port} at {baud} Bd" if transport == "rtu" else f"Modbus TCP from {devices[0]['host']}"
print(f"gridcall_edge_agent.sh: {len(devices)} devices, {len(registers)} registers on {where}, "
      f"poll {secs(poll_ms)}, detector {detector}; config in {conf}", flush=True)
PY

if [ "${GRIDCALL_CHECK:-0}" != 0 ]; then
    "$GRIDCALL" config check "$CONF"
fi
verbose=()
[ "${GRIDCALL_VERBOSE:-0}" = 1 ] && verbose=(-v)
exec "$GRIDCALL" edge run -c "$CONF" --agent "$AGENT_ID" "${verbose[@]}"
