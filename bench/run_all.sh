#!/usr/bin/env bash
# bench/run_all.sh - run the four benchmark questions one after the other (about 30 minutes),
# each writing its tables, JSON and PNG chart into RESULTS (default bench/results/), and record
# the machine's load before and after each, since the figures are only comparable within one run.
#
# Usage: bench/run_all.sh [RESULTS] [BIN]   (BIN: the binaries, default build-bench2/bin, then build/bin)
# Build first, as a release build:
#   cmake -S . -B build-bench2 -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-bench2 -j2 --target fd-router fd-router-cp fd-router-dp fdctl fd-sim bench_selection
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-bench/results}
BIN=${2:-}
[ -n "$BIN" ] || { [ -x build-bench2/bin/fd-router ] && BIN=build-bench2/bin || BIN=build/bin; }
mkdir -p "$RESULTS"
for q in overhead routing_quality scale upgrade; do
  echo "== $q: start $(date -u '+%F %T UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS/run_all.log"
  python3 "bench/$q.py" --bin "$BIN" --results "$RESULTS"
  echo "== $q: end $(date -u '+%F %T UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS/run_all.log"
done
