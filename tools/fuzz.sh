#!/bin/sh
# tools/fuzz.sh SECONDS [TARGET...] - build every libFuzzer target of tests/fuzz (fuzz_*.c) with
# clang and ASan+UBSan in build-fuzz/, then run each for SECONDS seconds on a copy of its seed
# corpus (tests/fuzz/corpus/<name without fuzz_>/). A crash leaves its input in
# build-fuzz/crashes/<target>/ and makes the script exit non-zero; add that input to the seed
# corpus and a unit test, so it stays fixed. Environment: FUZZ_BUILD_DIR, FUZZ_JOBS (default 2).
set -eu
secs=${1:?usage: tools/fuzz.sh SECONDS [TARGET...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
CC=${CC:-clang}
command -v "$CC" >/dev/null || { echo "fuzz.sh: $CC not found (tools/setup-deps.sh installs clang)" >&2; exit 2; }
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFD_FUZZ=ON >/dev/null
targets=${*:-$(cd "$root/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')}
# shellcheck disable=SC2086
nice cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target $targets >/dev/null
failed=""
for t in $targets; do
    seeds="$root/tests/fuzz/corpus/${t#fuzz_}"
    work="$build/corpus/$t"
    crashes="$build/crashes/$t"
    mkdir -p "$work" "$crashes"
    [ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null || true
    echo "fuzz.sh: $t for ${secs}s"
    if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$build/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$crashes/" -print_final_stats=1 "$work" >"$build/$t.log" 2>&1; then
        echo "fuzz.sh: $t FAILED (log: $build/$t.log, inputs: $crashes/)" >&2
        tail -30 "$build/$t.log" >&2
        failed="$failed $t"
    else
        grep -E "^stat::number_of_executed_units" "$build/$t.log" | sed "s/^/fuzz.sh: $t: /" || true
    fi
done
[ -z "$failed" ] || { echo "fuzz.sh: failed:$failed" >&2; exit 1; }
echo "fuzz.sh: every target ran ${secs}s without a crash"
