#!/usr/bin/env bash
# The README's test command: install what the project needs, start the real servers on
# loopback ports, then run ruff, mypy and pytest (extra arguments go to pytest).
# Needs root for apt on a fresh machine. GRIDCALL_KEEP_SERVERS=1 leaves the servers up.
set -uo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q -e '.[dev]' 2>&1 | grep -v -E "^(WARNING|DEPRECATION)" || true
python3 -c "import gridcall, aiomqtt, msgspec" || { echo "test.sh: pip install failed" >&2; exit 1; }

bash scripts/servers.sh start > /tmp/gridcall-servers.env || {
  cat /tmp/gridcall-servers.env >&2; echo "test.sh: servers did not start" >&2; exit 1; }
set -a
# shellcheck disable=SC1091
. <(grep '^GRIDCALL_TEST_' /tmp/gridcall-servers.env)
set +a
if [ "${GRIDCALL_KEEP_SERVERS:-0}" != 1 ]; then
  trap 'bash scripts/servers.sh stop >/dev/null' EXIT
fi

status=0
echo "== ruff"; python3 -m ruff check . || status=1
echo "== mypy"; python3 -m mypy || status=1
echo "== pytest"; python3 -m pytest -q -p no:cacheprovider "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "test.sh: pytest collected no tests" >&2; fi
[ $rc -ne 0 ] && status=1
exit $status
