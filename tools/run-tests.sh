#!/usr/bin/env bash
# The whole test suite: build (warnings are errors), run every unit and integration test, then
# build again with AddressSanitizer + UndefinedBehaviorSanitizer and run everything once more, then
# run every libFuzzer target of tests/fuzz for 30 s (tools/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh
jobs=$(nproc)

run_suite() { # build-dir extra-cmake-args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs")
}

echo "=== build and test (release)"
run_suite build
echo "=== build and test (ASan + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -DFD_SANITIZE=ON
echo "=== fuzz: every tests/fuzz target for 30 s (ASan + UBSan, build-fuzz)"
tools/fuzz.sh 30
