#!/usr/bin/env bash
# NAB on the shared files: run the default detector configuration, then score it with the
# independent scorer (reproduces NAB's published scoreboard). Prints the three profiles.
# Usage: bench/nab.sh [NAB_DIR] [OUT_DIR]
# The shared/ folder is looked for beside the checkout and beside each folder above it
# (as bench/nab_loco.py does), so the script also runs from a worktree under /work/wt/.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=../shared
for up in .. ../.. ../../..; do
    if [ -d "$up/shared/bench" ]; then SHARED=$up/shared; break; fi
done
NAB=${1:-$SHARED/datasets/nab}
OUT=${2:-$(mktemp -d)}
SCORER=${NAB_SCORER:-$SHARED/bench/nab_score.py}
python3 -m gridcall.detectors.nab --data "$NAB" --out "$OUT" | tail -n 1
python3 "$SCORER" --data "$NAB" --results "$OUT" | grep -E "^profile|NORMALIZED|windows detected"
