#!/usr/bin/env bash
# The README's test command. On a fresh Debian machine, as root:
#   1. pip install -e '.[dev]' (quietly; the log is shown if it fails)
#   2. apt: chromium, chromium-driver and CJK fonts for the board's browser test
#   3. scripts/servers.sh install + start: mosquitto, InfluxDB 1.6.7, VictoriaMetrics and
#      PostgreSQL on loopback ports; their URLs are exported as GRIDCALL_TEST_*
#   4. ruff check ., mypy, pytest "$@": all three run (pytest last, so that its summary
#      line closes the output, followed only by failures and the folder of the browser
#      test's screenshots when there is one); the exit status is non-zero if any failed,
#      and pytest collecting no test (exit 5) counts as a failure
#   5. the servers are stopped again, unless GRIDCALL_KEEP_SERVERS=1 or they were
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
"$PYTHON" -c "import gridcall.hub, gridcall.wire, pytest, ruff, mypy" \
  || fail "the project or its dev tools do not import after pip install"
echo "ok"

# The built-in board's browser test (tests/test_board_web.py) drives Debian's chromium
# through Playwright (pip, the dev extra; never `playwright install`, which downloads a
# browser); CJK fonts so the screenshots show the Chinese names. Under CI=true that test
# fails rather than skips when chromium is missing.
step "chromium for the board's browser test (apt: ${BROWSER_PACKAGES:=chromium chromium-driver fonts-noto-cjk fonts-liberation})"
missing_browser=()
for pkg in $BROWSER_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing_browser+=("$pkg")
done
if [ ${#missing_browser[@]} -gt 0 ]; then
  command -v apt-get > /dev/null || fail "apt-get is missing: install ${missing_browser[*]} by hand"
  [ "$(id -u)" -eq 0 ] || fail "installing ${missing_browser[*]} needs root (apt-get)"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
              "${missing_browser[@]}"; } > "$work/apt-browser.log" 2>&1; then
    tail -n 30 "$work/apt-browser.log" >&2
    fail "apt-get install ${missing_browser[*]} failed (log above)"
  fi
fi
/usr/bin/chromium --version 2> /dev/null || fail "/usr/bin/chromium does not run"
"$PYTHON" -c "import playwright.async_api" || fail "playwright does not import"

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
           GRIDCALL_TEST_MQTT_AUTH_URL GRIDCALL_TEST_INFLUX_AUTH_URL GRIDCALL_TEST_INFLUX_READER_URL \
           GRIDCALL_TEST_PG_URL; do
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
# Where the board's browser test (tests/test_board_web.py) left its screenshots.
screenshots="${GRIDCALL_ARTIFACTS_DIR:-test-artifacts}/board"
if [ -d "$screenshots" ]; then
  echo "browser test screenshots: $(cd "$screenshots" && pwd)"
fi
[ "$ruff_rc" -eq 0 ] && [ "$mypy_rc" -eq 0 ] && [ "$pytest_rc" -eq 0 ]
