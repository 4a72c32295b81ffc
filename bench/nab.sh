#!/usr/bin/env bash
# NAB on the shared files: run the default detector configuration, then score it with the
# independent scorer (reproduces NAB's published scoreboard). Prints the three profiles.
# Usage: bench/nab.sh [NAB_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
NAB=${1:-../shared/datasets/nab}
OUT=${2:-$(mktemp -d)}
SCORER=${NAB_SCORER:-../shared/bench/nab_score.py}
python3 -m gridcall.detectors.nab --data "$NAB" --out "$OUT" | tail -n 1
python3 "$SCORER" --data "$NAB" --results "$OUT" | grep -E "^profile|NORMALIZED|windows detected"
