#!/usr/bin/env bash
# Real servers for gridcall's tests, from Debian packages, on loopback ports:
#   mosquitto 2.0      mqtt://127.0.0.1:18831   (anonymous)
#                      mqtt://127.0.0.1:18832   (same broker, user and password required)
#   InfluxDB 1.6.7     http://127.0.0.1:18086   (v1 /write and InfluxQL /query; rpc on 18088)
#   InfluxDB 1.6.7     http://127.0.0.1:18096   (a second one with auth-enabled; rpc 18098)
#   VictoriaMetrics    http://127.0.0.1:18428   (takes InfluxDB's /write and /api/v2/write)
#   PostgreSQL 15      postgresql://127.0.0.1:18543/gridcall (user and password required;
#                      the desk's ledger on PostgreSQL, hub.yaml `desk_store`)
#
# The authenticated servers know two test-only users: an admin (GRIDCALL_TEST_USER /
# GRIDCALL_TEST_PASSWORD, default gridcall / gridcall-test-pw) and, on InfluxDB, a user
# with no privileges (reader / reader-test-pw), so that a refused write (403) is real.
# PostgreSQL knows the admin user too, as the owner of database `gridcall` (and may create
# databases, so that a test can have its own).
#
# Usage: bash scripts/servers.sh install|start|stop|restart|status|env
#   install  apt-get install what is missing, without letting the packages start their own
#            services on the default ports
#   start    install if needed, start what is not running, wait until each answers, print
#            the URLs as GRIDCALL_TEST_*=... lines (already running: fine)
#   stop     stop the servers this script started (TERM, then KILL after 10 s)
#   status   exit 0 only if all three are running and answering
#   env      print the GRIDCALL_TEST_* lines
#
# Data, configs, logs and pid files live under $GRIDCALL_SERVERS_DIR (default
# /tmp/gridcall-servers); ports can be moved with GRIDCALL_{MQTT,INFLUX,INFLUX_RPC,VM}_PORT.
# Concurrent calls (several test sessions) are serialised with a lock in that folder.
set -euo pipefail

DIR=${GRIDCALL_SERVERS_DIR:-/tmp/gridcall-servers}
MQTT_PORT=${GRIDCALL_MQTT_PORT:-18831}
INFLUX_PORT=${GRIDCALL_INFLUX_PORT:-18086}
INFLUX_RPC_PORT=${GRIDCALL_INFLUX_RPC_PORT:-18088}
VM_PORT=${GRIDCALL_VM_PORT:-18428}
MQTT_AUTH_PORT=${GRIDCALL_MQTT_AUTH_PORT:-18832}
INFLUX_AUTH_PORT=${GRIDCALL_INFLUX_AUTH_PORT:-18096}
INFLUX_AUTH_RPC_PORT=${GRIDCALL_INFLUX_AUTH_RPC_PORT:-18098}
PG_PORT=${GRIDCALL_PG_PORT:-18543}
TEST_USER=${GRIDCALL_TEST_USER:-gridcall}
TEST_PASSWORD=${GRIDCALL_TEST_PASSWORD:-gridcall-test-pw}
READER_USER=reader
READER_PASSWORD=reader-test-pw
READY_TIMEOUT=${GRIDCALL_SERVERS_TIMEOUT:-60}   # seconds each server gets to answer

PACKAGES=(mosquitto influxdb influxdb-client victoria-metrics curl postgresql)  # influxdb-client: the `influx` CLI, whose CSV export the replay reads
MOSQUITTO=/usr/sbin/mosquitto
INFLUXD=/usr/bin/influxd
VICTORIA=/usr/bin/victoria-metrics
NAMES=(mosquitto influxdb influxdb_auth victoria postgres)

# Debian's postgresql package puts the server under /usr/lib/postgresql/<major>/bin; the
# newest installed major is used.
pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && echo "$d"
}

say() { echo "servers: $*"; }
die() { echo "servers.sh: $*" >&2; exit 1; }

# --- install ---------------------------------------------------------------------------

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" \
      || echo "$p"
  done
}

# The packages' init scripts would start their own daemons on the default ports (1883,
# 8086/8088, 8428). policy-rc.d answering 101 forbids that during the install; should one
# run anyway (a policy-rc.d that allows it), stop it: only the packaged services are
# matched, by the config path on their command line, never our own servers.
stop_packaged_daemons() {
  local proc pid cmd
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    cmd=$(tr '\0' ' ' < "$proc/cmdline" 2>/dev/null) || continue
    case "$cmd" in
      *mosquitto*/etc/mosquitto/mosquitto.conf*|*influxd*/etc/influxdb/influxdb.conf*|\
      *victoria-metrics*/var/lib/victoria-metrics*|*postgres*/var/lib/postgresql/*)
        say "stopping the packaged service the install started: $cmd (pid $pid)"
        kill "$pid" 2>/dev/null || true ;;
    esac
  done
}

install() {
  local missing
  mapfile -t missing < <(missing_packages)
  if [ ${#missing[@]} -eq 0 ]; then
    say "${PACKAGES[*]} already installed"
    return 0
  fi
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
  [ "$(id -u)" -eq 0 ] || die "installing ${missing[*]} needs root (apt-get)"
  local policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# gridcall scripts/servers.sh: no service starts during install\nexit 101\n' \
      > "$policy"
    chmod +x "$policy"
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  say "installing ${missing[*]} (apt-get)"
  apt-get update -qq > "$DIR/apt.log" 2>&1 \
    || { tail -n 20 "$DIR/apt.log" >&2; die "apt-get update failed (log: $DIR/apt.log)"; }
  apt-get install -y -q --no-install-recommends "${missing[@]}" >> "$DIR/apt.log" 2>&1 \
    || { tail -n 20 "$DIR/apt.log" >&2; die "apt-get install ${missing[*]} failed (log: $DIR/apt.log)"; }
  if [ -n "$(trap -p EXIT)" ]; then rm -f "$policy"; trap - EXIT; fi
  stop_packaged_daemons
  say "installed ${missing[*]}"
}

need_binaries() {
  local b
  for b in "$MOSQUITTO" "$INFLUXD" "$VICTORIA"; do
    [ -x "$b" ] || return 1
  done
  [ -n "$(pg_bin)" ] || return 1
  command -v curl >/dev/null
}

# --- process helpers -------------------------------------------------------------------

pid_of() { cat "$DIR/$1.pid" 2>/dev/null || true; }

running() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

# Running, and really the daemon we started (not a recycled pid).
alive() {
  local pid exe
  pid=$(pid_of "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  case "$1:$exe" in
    mosquitto:*mosquitto*|influxdb:*influxd*|influxdb_auth:*influxd*) return 0 ;;
    victoria:*victoria-metrics*) return 0 ;;
    postgres:*postgres*) return 0 ;;
  esac
  return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

http_code() {  # url -> prints the status code (000 if no answer)
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
}

ready() {
  case "$1" in
    mosquitto) port_open "$MQTT_PORT" && port_open "$MQTT_AUTH_PORT" ;;
    influxdb) [ "$(http_code "http://127.0.0.1:$INFLUX_PORT/ping")" = 204 ] ;;
    influxdb_auth) [ "$(http_code "http://127.0.0.1:$INFLUX_AUTH_PORT/ping")" = 204 ] ;;
    victoria) [ "$(http_code "http://127.0.0.1:$VM_PORT/health")" = 200 ] ;;
    postgres) "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" ;;
  esac
}

port_of() {
  case "$1" in
    mosquitto) echo "$MQTT_PORT" ;;
    influxdb) echo "$INFLUX_PORT" ;;
    influxdb_auth) echo "$INFLUX_AUTH_PORT" ;;
    victoria) echo "$VM_PORT" ;;
    postgres) echo "$PG_PORT" ;;
  esac
}

log_tail() {
  echo "---- last lines of $DIR/$1.log" >&2
  tail -n 25 "$DIR/$1.log" >&2 2>/dev/null || echo "(no log)" >&2
  echo "----" >&2
}

# launch NAME CMD...: start CMD in its own session, detached from our stdio, its pid in
# $DIR/NAME.pid (written by the shell that then execs the daemon, so it is the daemon's).
launch() {
  local name=$1; shift
  rm -f "$DIR/$name.pid"
  # shellcheck disable=SC2016  # expanded by the inner bash, on purpose
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$DIR/$name.pid" "$@" \
    < /dev/null >> "$DIR/$name.log" 2>&1 9>&- &
  for _ in $(seq 1 50); do
    [ -s "$DIR/$name.pid" ] && return 0
    sleep 0.1
  done
  echo "servers.sh: $name: no pid file after 5 s" >&2
  return 1
}

wait_ready() {
  local name=$1 deadline=$((SECONDS + READY_TIMEOUT))
  while [ $SECONDS -lt $deadline ]; do
    if ready "$name"; then return 0; fi
    if ! running "$name"; then
      echo "servers.sh: $name exited during start-up" >&2
      log_tail "$name"
      return 1
    fi
    sleep 0.2
  done
  echo "servers.sh: $name did not answer on 127.0.0.1:$(port_of "$name") within ${READY_TIMEOUT}s" >&2
  log_tail "$name"
  return 1
}

# --- the servers -----------------------------------------------------------------------

write_mosquitto_conf() {
  mkdir -p "$DIR/mosquitto"
  rm -f "$DIR/mosquitto.passwd"
  (umask 077 && mosquitto_passwd -b -c "$DIR/mosquitto.passwd" "$TEST_USER" "$TEST_PASSWORD") \
    || return 1
  cat > "$DIR/mosquitto.conf" <<CONF
# Written by scripts/servers.sh: a loopback test broker.
# 'user root': the tests run as root and mosquitto would otherwise switch to 'mosquitto'.
user root
# Two listeners on one broker: anonymous, and user/password (from $DIR/mosquitto.passwd).
per_listener_settings true
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
listener $MQTT_AUTH_PORT 127.0.0.1
allow_anonymous false
password_file $DIR/mosquitto.passwd
# Persistent sessions survive a broker restart (the delivery tests rely on it).
persistence true
persistence_location $DIR/mosquitto/
autosave_interval 30
# Under load nothing may be dropped: no queue limits (the default is 1000 messages per
# client), and many QoS 1/2 messages in flight at once. No persistent_client_expiration:
# a persistent session lives until its client cleans it.
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 1000
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
log_type notice
log_timestamp_format %Y-%m-%dT%H:%M:%S
CONF
}

# write_influxdb_conf NAME HTTP_PORT RPC_PORT AUTH(true|false)
write_influxdb_conf() {
  local name=$1 port=$2 rpc=$3 auth=$4
  mkdir -p "$DIR/$name/meta" "$DIR/$name/data" "$DIR/$name/wal"
  cat > "$DIR/$name.conf" <<CONF
# Written by scripts/servers.sh: InfluxDB 1.6 on loopback (auth-enabled = $auth), no
# phoning home.
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"

[meta]
  dir = "$DIR/$name/meta"

[data]
  dir = "$DIR/$name/data"
  wal-dir = "$DIR/$name/wal"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$port"
  auth-enabled = $auth
  log-enabled = false
  # InfluxDB's default, kept so that a too large batch gets a real 413.
  max-body-size = 25000000

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[logging]
  level = "warn"
CONF
}

start_one() {
  local name=$1 port
  port=$(port_of "$name")
  if alive "$name"; then
    wait_ready "$name" || return 1
    return 0
  fi
  rm -f "$DIR/$name.pid"
  if port_open "$port"; then
    echo "servers.sh: $name: 127.0.0.1:$port is already taken by a process this script" \
      "did not start (under $DIR); stop it or set GRIDCALL_SERVERS_DIR/ports" >&2
    return 1
  fi
  echo "==== $(date -Is) start" >> "$DIR/$name.log"
  case "$name" in
    mosquitto)
      write_mosquitto_conf
      launch mosquitto "$MOSQUITTO" -c "$DIR/mosquitto.conf" ;;
    influxdb)
      write_influxdb_conf influxdb "$INFLUX_PORT" "$INFLUX_RPC_PORT" false
      launch influxdb "$INFLUXD" -config "$DIR/influxdb.conf" ;;
    influxdb_auth)
      write_influxdb_conf influxdb_auth "$INFLUX_AUTH_PORT" "$INFLUX_AUTH_RPC_PORT" true
      launch influxdb_auth "$INFLUXD" -config "$DIR/influxdb_auth.conf" ;;
    postgres)
      init_postgres || return 1
      # PostgreSQL refuses to run as root: as the package's `postgres` user, exec'd in
      # place (setpriv, no fork) so that the pid file names the server itself.
      launch postgres setpriv --reuid=postgres --regid=postgres --init-groups -- \
        "$(pg_bin)/postgres" -D "$DIR/postgres" -p "$PG_PORT" \
        -c listen_addresses=127.0.0.1 -c unix_socket_directories="$DIR/pgsock" \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off ;;
    victoria)
      mkdir -p "$DIR/victoria"
      # 100y retention: the tests write timestamps far from now, which the default (1
      # month) silently drops. No latency offset: data is readable right after a flush.
      launch victoria "$VICTORIA" -httpListenAddr "127.0.0.1:$VM_PORT" \
        -storageDataPath "$DIR/victoria" -retentionPeriod 100y \
        -search.latencyOffset 0s -loggerLevel WARN ;;
  esac || return 1
  wait_ready "$name" || return 1
  if [ "$name" = influxdb_auth ]; then add_influx_users; fi
  if [ "$name" = postgres ]; then add_pg_user; fi
}

# A cluster of our own under $DIR/postgres (owned by `postgres`, as the server insists):
# local socket connections trusted (for add_pg_user), TCP ones by password (scram).
# fsync is off (above): these are throw-away test data, and the failover tests kill the
# hub, not the database.
init_postgres() {
  [ -s "$DIR/postgres/PG_VERSION" ] && return 0
  id postgres >/dev/null 2>&1 || { echo "servers.sh: no 'postgres' user (postgresql package)" >&2; return 1; }
  rm -rf "$DIR/postgres"
  mkdir -p "$DIR/postgres" "$DIR/pgsock"
  chown postgres:postgres "$DIR/postgres" "$DIR/pgsock"
  chmod 700 "$DIR/postgres"
  chmod 755 "$DIR"
  setpriv --reuid=postgres --regid=postgres --init-groups -- "$(pg_bin)/initdb" \
    -D "$DIR/postgres" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >> "$DIR/postgres.log" 2>&1 \
    || { log_tail postgres; return 1; }
}

add_pg_user() {
  local psql
  psql=$(command -v psql || echo "$(pg_bin)/psql")
  setpriv --reuid=postgres --regid=postgres --init-groups -- "$psql" -X -q -v ON_ERROR_STOP=1 \
    -h "$DIR/pgsock" -p "$PG_PORT" -U postgres -d postgres >> "$DIR/postgres.log" 2>&1 <<SQL \
    || { echo "servers.sh: postgres: could not create the test user" >&2; log_tail postgres; return 1; }
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$TEST_USER') THEN
    CREATE ROLE "$TEST_USER" LOGIN CREATEDB PASSWORD '$TEST_PASSWORD';
  END IF;
END \$\$;
-- the tests drop their own databases WITH (FORCE), which must end every session on them,
-- an autovacuum worker's too (no role of its own: only pg_signal_backend may end it)
GRANT pg_signal_backend TO "$TEST_USER";
SELECT 'CREATE DATABASE "$TEST_USER" OWNER "$TEST_USER"'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$TEST_USER')\\gexec
SQL
}

# influx_query [USER:PASSWORD] Q -> prints the HTTP status of POST /query on the auth server
influx_query() {
  local auth=()
  if [ $# -eq 2 ]; then auth=(-u "$1"); shift; fi
  curl -s -o "$DIR/influxdb_auth.answer" -w '%{http_code}' --max-time 10 "${auth[@]}" \
    -XPOST "http://127.0.0.1:$INFLUX_AUTH_PORT/query" --data-urlencode "q=$1" || true
}

# The first admin may be created without credentials (InfluxDB allows exactly that while
# no user exists); on a restart it already exists and must log in. Then the unprivileged
# reader, which CREATE USER makes idempotently (same password: no error).
add_influx_users() {
  local admin="$TEST_USER:$TEST_PASSWORD" code
  code=$(influx_query "$admin" "SHOW USERS")
  if [ "$code" != 200 ]; then
    code=$(influx_query "CREATE USER \"$TEST_USER\" WITH PASSWORD '$TEST_PASSWORD' WITH ALL PRIVILEGES")
    [ "$code" = 200 ] || {
      echo "servers.sh: influxdb_auth: could not create the admin user (HTTP $code):" \
        "$(cat "$DIR/influxdb_auth.answer" 2>/dev/null)" >&2
      return 1
    }
  fi
  code=$(influx_query "$admin" "CREATE USER \"$READER_USER\" WITH PASSWORD '$READER_PASSWORD'")
  [ "$code" = 200 ] || {
    echo "servers.sh: influxdb_auth: could not create the reader user (HTTP $code):" \
      "$(cat "$DIR/influxdb_auth.answer" 2>/dev/null)" >&2
    return 1
  }
}

urls() {
  echo "GRIDCALL_TEST_MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT"
  echo "GRIDCALL_TEST_INFLUX_V1_URL=http://127.0.0.1:$INFLUX_PORT"
  echo "GRIDCALL_TEST_VM_URL=http://127.0.0.1:$VM_PORT"
  echo "GRIDCALL_TEST_MQTT_AUTH_URL=mqtt://$TEST_USER:$TEST_PASSWORD@127.0.0.1:$MQTT_AUTH_PORT"
  echo "GRIDCALL_TEST_INFLUX_AUTH_URL=http://$TEST_USER:$TEST_PASSWORD@127.0.0.1:$INFLUX_AUTH_PORT"
  echo "GRIDCALL_TEST_INFLUX_READER_URL=http://$READER_USER:$READER_PASSWORD@127.0.0.1:$INFLUX_AUTH_PORT"
  echo "GRIDCALL_TEST_PG_URL=postgresql://$TEST_USER:$TEST_PASSWORD@127.0.0.1:$PG_PORT/$TEST_USER"
}

start() {
  need_binaries || install
  need_binaries || die "mosquitto, influxd, victoria-metrics or postgres missing after install"
  local name failed=()
  for name in "${NAMES[@]}"; do
    start_one "$name" || failed+=("$name")
  done
  [ ${#failed[@]} -eq 0 ] || die "failed to start: ${failed[*]} (logs under $DIR)"
  say "up under $DIR"
  urls
}

stop_one() {
  local name=$1 pid
  if alive "$name"; then
    pid=$(pid_of "$name")
    # PostgreSQL's TERM waits for its clients to leave ("smart"); INT is its fast stop
    if [ "$name" = postgres ]; then kill -INT "$pid" 2>/dev/null || true
    else kill "$pid" 2>/dev/null || true; fi
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "servers.sh: $name (pid $pid) ignored TERM for 10 s; killing it" >&2
      kill -9 "$pid" 2>/dev/null || true
    fi
    say "$name stopped (pid $pid)"
  fi
  rm -f "$DIR/$name.pid"
}

stop() {
  local name
  for name in postgres victoria influxdb_auth influxdb mosquitto; do stop_one "$name"; done
  say "stopped"
}

status() {
  local name rc=0
  for name in "${NAMES[@]}"; do
    if alive "$name" && ready "$name"; then
      echo "$name: up (pid $(pid_of "$name"), 127.0.0.1:$(port_of "$name"))"
    elif alive "$name"; then
      echo "$name: running (pid $(pid_of "$name")) but not answering on 127.0.0.1:$(port_of "$name")"
      rc=1
    else
      echo "$name: down"
      rc=1
    fi
  done
  return $rc
}

# --- main ------------------------------------------------------------------------------

cmd=${1:-}
case "$cmd" in
  install|start|stop|restart|status|env) ;;
  *) echo "usage: $0 install|start|stop|restart|status|env" >&2; exit 2 ;;
esac
mkdir -p "$DIR"
if [ "$cmd" != env ] && [ "$cmd" != status ]; then
  exec 9> "$DIR/.lock"
  flock -w 300 9 || die "another servers.sh holds $DIR/.lock for over 300 s"
fi
case "$cmd" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  env) urls ;;
esac
