#!/usr/bin/env bash
# Detector speed and state size on one core: prints a JSON object.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m gridcall.detectors.bench --json
