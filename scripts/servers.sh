#!/usr/bin/env bash
# Real servers for gridcall's tests, from Debian packages, on loopback ports:
#   mosquitto 2.0       mqtt://127.0.0.1:18831
#   InfluxDB 1.6.7      http://127.0.0.1:18086   (v1 /write and InfluxQL /query)
#   VictoriaMetrics     http://127.0.0.1:18428   (accepts InfluxDB's /api/v2/write)
# Usage: scripts/servers.sh install|start|stop|status|env
# Data and logs live under $GRIDCALL_SERVERS_DIR (default /tmp/gridcall-servers).
set -euo pipefail

DIR=${GRIDCALL_SERVERS_DIR:-/tmp/gridcall-servers}
MQTT_PORT=${GRIDCALL_MQTT_PORT:-18831}
INFLUX_PORT=${GRIDCALL_INFLUX_PORT:-18086}
INFLUX_RPC_PORT=${GRIDCALL_INFLUX_RPC_PORT:-18088}
VM_PORT=${GRIDCALL_VM_PORT:-18428}
PACKAGES=(mosquitto influxdb victoria-metrics)

die() { echo "servers.sh: $*" >&2; exit 1; }

install() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && { echo "servers: ${PACKAGES[*]} already installed"; return; }
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
  # Keep the packages' own services from starting on the default ports: we start our own.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created=1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
  [ $created -eq 1 ] && rm -f "$policy"
  # Stop anything the packages may still have started.
  pkill -x mosquitto 2>/dev/null || true
  echo "servers: installed ${missing[*]}"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # name, check command..., log file
  local name=$1 log=$2; shift 2
  for _ in $(seq 1 150); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  echo "servers.sh: $name did not become ready; last lines of $log:" >&2
  tail -n 20 "$log" >&2 || true
  return 1
}

alive() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

start_mosquitto() {
  alive mosquitto && return 0
  mkdir -p "$DIR/mosquitto"
  cat > "$DIR/mosquitto.conf" <<CONF
# Loopback test broker. 'user root' because tests run as root; queues raised so QoS 0/1
# bursts are not dropped (mosquitto's default max_queued_messages is 1000).
user root
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $DIR/mosquitto/
autosave_interval 60
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 1000
max_packet_size 268435455
log_dest file $DIR/mosquitto.log
log_type error
log_type warning
log_type notice
CONF
  mosquitto -c "$DIR/mosquitto.conf" -d
  wait_for mosquitto "$DIR/mosquitto.log" port_open "$MQTT_PORT" || return 1
  pgrep -n -f "mosquitto -c $DIR/mosquitto.conf" > "$DIR/mosquitto.pid"
}

start_influxdb() {
  alive influxdb && return 0
  mkdir -p "$DIR/influxdb/meta" "$DIR/influxdb/data" "$DIR/influxdb/wal"
  cat > "$DIR/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"
[meta]
  dir = "$DIR/influxdb/meta"
[data]
  dir = "$DIR/influxdb/data"
  wal-dir = "$DIR/influxdb/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:$INFLUX_PORT"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
CONF
  nohup influxd -config "$DIR/influxdb.conf" > "$DIR/influxdb.log" 2>&1 &
  echo $! > "$DIR/influxdb.pid"
  wait_for influxdb "$DIR/influxdb.log" \
    curl -sf -o /dev/null "http://127.0.0.1:$INFLUX_PORT/ping"
}

start_victoria() {
  alive victoria && return 0
  mkdir -p "$DIR/victoria"
  nohup victoria-metrics -httpListenAddr "127.0.0.1:$VM_PORT" \
    -storageDataPath "$DIR/victoria" -retentionPeriod 100y \
    -search.latencyOffset 0s -loggerLevel WARN > "$DIR/victoria.log" 2>&1 &
  echo $! > "$DIR/victoria.pid"
  wait_for victoria-metrics "$DIR/victoria.log" \
    curl -sf -o /dev/null "http://127.0.0.1:$VM_PORT/health"
}

urls() {
  echo "GRIDCALL_TEST_MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT"
  echo "GRIDCALL_TEST_INFLUX_V1_URL=http://127.0.0.1:$INFLUX_PORT"
  echo "GRIDCALL_TEST_VM_URL=http://127.0.0.1:$VM_PORT"
}

start() {
  command -v mosquitto >/dev/null && command -v influxd >/dev/null \
    && command -v victoria-metrics >/dev/null || install
  mkdir -p "$DIR"
  start_mosquitto || die "mosquitto failed to start"
  start_influxdb || die "influxdb failed to start"
  start_victoria || die "victoria-metrics failed to start"
  echo "servers: up under $DIR"
  urls
}

stop() {
  for name in victoria influxdb mosquitto; do
    if alive "$name"; then
      local pid; pid=$(cat "$DIR/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/$name.pid"
  done
  echo "servers: stopped"
}

status() {
  local ok=0
  for name in mosquitto influxdb victoria; do
    if alive "$name"; then echo "$name: up (pid $(cat "$DIR/$name.pid"))"; else echo "$name: down"; ok=1; fi
  done
  return $ok
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) urls ;;
  *) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
