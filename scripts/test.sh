#!/usr/bin/env bash
# The README's test command. On a fresh Debian machine, as root:
#   1. pip install -e '.[dev]' (quietly; the log is shown if it fails)
#   2. scripts/servers.sh install + start: mosquitto, InfluxDB 1.6.7, VictoriaMetrics on
#      loopback ports; their URLs are exported as GRIDCALL_TEST_*
#   3. ruff check ., mypy, pytest "$@": all three run (pytest last, so that its summary
#      line closes the output); the exit status is non-zero if any failed, and pytest
#      collecting no test (exit 5) counts as a failure
#   4. the servers are stopped again, unless GRIDCALL_KEEP_SERVERS=1 or they were
#      already running before (someone else's session is using them)
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not servers" -x`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# The project installs into the interpreter that runs it; Debian marks its own python as
# externally managed, which this (a test machine) deliberately overrides.
export PIP_BREAK_SYSTEM_PACKAGES=1
work=$(mktemp -d "${TMPDIR:-/tmp}/gridcall-test.XXXXXX")

step() { printf '\n==== %s\n' "$*"; }
fail() { echo "test.sh: $*" >&2; exit 1; }

step "pip install -e '.[dev]'"
if ! "$PYTHON" -m pip --version > /dev/null 2>&1; then
  command -v apt-get > /dev/null || fail "$PYTHON has no pip and apt-get is missing"
  if ! { apt-get update -qq && apt-get install -y -qq python3-pip > /dev/null; }; then
    fail "could not install python3-pip"
  fi
fi
if ! "$PYTHON" -m pip install -q -e '.[dev]' > "$work/pip.log" 2>&1; then
  tail -n 30 "$work/pip.log" >&2
  fail "pip install -e '.[dev]' failed (log above)"
fi
"$PYTHON" -c "import gridcall, hub, wire, pytest, ruff, mypy" \
  || fail "the project or its dev tools do not import after pip install"
echo "ok"

step "servers (scripts/servers.sh)"
were_up=0
bash scripts/servers.sh status > /dev/null 2>&1 && were_up=1
bash scripts/servers.sh install || fail "could not install the servers"
bash scripts/servers.sh start > "$work/servers.env" \
  || { cat "$work/servers.env"; fail "the servers did not start (see above)"; }
cat "$work/servers.env"
while IFS= read -r line; do
  case "$line" in GRIDCALL_TEST_*=*) export "${line?}" ;; esac
done < "$work/servers.env"
for var in GRIDCALL_TEST_MQTT_URL GRIDCALL_TEST_INFLUX_V1_URL GRIDCALL_TEST_VM_URL \
           GRIDCALL_TEST_MQTT_AUTH_URL GRIDCALL_TEST_INFLUX_AUTH_URL GRIDCALL_TEST_INFLUX_READER_URL; do
  [ -n "${!var:-}" ] || fail "servers.sh start printed no $var"
done

# Decided and said now, so that pytest's own summary stays the last line of the output.
if [ "${GRIDCALL_KEEP_SERVERS:-0}" = 1 ]; then
  echo "(the servers will be left running: GRIDCALL_KEEP_SERVERS=1)"
  stop_servers=0
elif [ "$were_up" = 1 ]; then
  echo "(the servers were already running before, so they will be left running)"
  stop_servers=0
else
  stop_servers=1
fi
cleanup() {
  if [ "$stop_servers" = 1 ]; then
    bash scripts/servers.sh stop > /dev/null || echo "test.sh: stopping the servers failed" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

verdict() { if [ "$2" -eq 0 ]; then echo "$1: ok"; else echo "$1: FAILED (exit $2)"; fi; }

step "ruff check ."
"$PYTHON" -m ruff check .
ruff_rc=$?
verdict ruff "$ruff_rc"

step "mypy"
"$PYTHON" -m mypy
mypy_rc=$?
verdict mypy "$mypy_rc"

# pytest runs last and prints the closing summary line; after it, only failures speak.
step "pytest $*"
"$PYTHON" -m pytest "$@"
pytest_rc=$?
if [ "$pytest_rc" -eq 5 ]; then
  echo "test.sh: FAILED: pytest collected no tests (exit 5)" >&2
fi
if [ "$ruff_rc" -ne 0 ] || [ "$mypy_rc" -ne 0 ]; then
  echo "test.sh: FAILED: ruff exit $ruff_rc, mypy exit $mypy_rc (see above)" >&2
fi
[ "$ruff_rc" -eq 0 ] && [ "$mypy_rc" -eq 0 ] && [ "$pytest_rc" -eq 0 ]
