#!/usr/bin/env bash
# gridcall's hub ingest as a --consumer-cmd of ../shared/bench/peer_ingest_bench.py (run it
# with --wire gridcall). Adapted from ../shared/bench/gridcall_ingest_consumer.sh:
#  - the config set is generated to hold the harness's agents a00.. and their sensors
#    s<agent><n> (BENCH_AGENTS x BENCH_SENSORS, default 50 x 50, the harness's default
#    workload): the hub stores only readings of configured sensors, sent by their own agent;
#  - GRIDCALL may be a command with arguments (e.g. "python3 -m gridcall").
# WORKERS=N starts N `gridcall hub ingest` workers on one $share group; PROJECT is the checkout.
set -u
N=${WORKERS:-1}
GC=${GRIDCALL:-gridcall}
PY=${PYTHON:-python3}
d=$(mktemp -d)
"$PY" "$PROJECT/bench/ingest_bench_config.py" --agents "${BENCH_AGENTS:-50}" \
    --sensors "${BENCH_SENSORS:-50}" --out "$d" --project "$PROJECT" || exit 1
cat >"$d/hub.yaml" <<YAML
hub:
  broker: {url: "$MQTT_URL"}
  client_id: bench-hub-$$
  ingest_share_group: bench-hub-$$-group
  store_path: $d/hub.sqlite
  spool_dir: $d/spool
  influx: {url: "$INFLUX_URL", database: "$INFLUX_DB", batch_max_points: 5000, flush_interval: 1s}
YAML
pids=()
for i in $(seq 1 "$N"); do
  # shellcheck disable=SC2086  # GC may be a command with its arguments
  $GC hub ingest --config "$d" --worker "$i" >"$d/w$i.out" 2>&1 & pids+=($!)
done
for _ in $(seq 1 600); do
  n=$(cat "$d"/w*.out 2>/dev/null | grep -c "subscribed to")
  [ "$n" -ge "$N" ] && break
  sleep 0.1
done
# (a paho subscriber: Debian's mosquitto package has no mosquitto_sub, that is mosquitto-clients)
"$PY" -c 'import sys, time, paho.mqtt.client as m
c = m.Client(m.CallbackAPIVersion.VERSION2)
c.on_connect = lambda c, u, f, rc, p: c.subscribe(sys.argv[3])
c.connect(sys.argv[1], int(sys.argv[2])); c.loop_forever()' "$MQTT_HOST" "$MQTT_PORT" "bench-ready/$$" \
    >/dev/null 2>&1 & pids+=($!)
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait; cat "$d"/w*.out >&2; rm -rf "$d"' TERM INT
wait
