#!/usr/bin/env bash
# bench/run_all.sh - run the benchmark questions one after the other (about 32 minutes), each
# writing its tables and JSON (and, but for pd_vs_mixed, a PNG chart) into RESULTS (default
# bench/results/), and record the machine's load before and after each, since the figures are
# only comparable within one run. One progress line per step as it starts and as it ends (with
# how long it took), on the terminal and in RESULTS/run_all.log.
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
# the commit measured, named in the log and in every table generated from this run
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT+uncommitted"
export FD_BENCH_COMMIT=$COMMIT
STEPS=(overhead routing_quality scale pd_vs_mixed upgrade)
echo "== run_all: commit $COMMIT, binaries $BIN, ${#STEPS[@]} steps, results in $RESULTS" | tee -a "$RESULTS/run_all.log"
step=0
for q in "${STEPS[@]}"; do
  step=$((step + 1))
  t0=$(date +%s)
  echo "== [$step/${#STEPS[@]}] $q.py: start $(date -u '+%F %T UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS/run_all.log"
  python3 "bench/$q.py" --bin "$BIN" --results "$RESULTS"
  dt=$(( $(date +%s) - t0 ))
  echo "== [$step/${#STEPS[@]}] $q.py: end $(date -u '+%F %T UTC') after $((dt / 60))m$((dt % 60))s, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS/run_all.log"
done
echo "== run_all: done at $(date -u '+%F %T UTC'), commit $COMMIT" | tee -a "$RESULTS/run_all.log"
