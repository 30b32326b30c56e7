#!/bin/sh
# tests/lint/clang_format.sh - every C source and header of the project is clang-format clean by
# the repository's .clang-format (the standard the code is written to; a review should not have
# to find a misplaced brace). Usage: clang_format.sh [SOURCE_DIR] | --self-test
set -u

DIRS="common controlplane dataplane shm tests tools bench"
HERE=$(cd "$(dirname "$0")/../.." && pwd)

check() { # root -> 0 every file clean, 1 some not (named), 2 no clang-format
    command -v clang-format >/dev/null || { echo "clang-format is not installed (tools/setup-deps.sh)"; return 2; }
    bad=0
    for d in $DIRS; do
        [ -d "$1/$d" ] || continue
        for f in $(find "$1/$d" -name '*.[ch]' -type f | sort); do
            clang-format --style=file --dry-run -Werror "$f" >/dev/null 2>&1 || { echo "not clang-format clean: $f"; bad=1; }
        done
    done
    return $bad
}

self_test() {
    tmp=$(mktemp -d) || exit 2
    trap 'rm -rf "$tmp"' EXIT
    cp "$HERE/.clang-format" "$tmp/" && mkdir -p "$tmp/shm" || exit 2
    printf 'int f(void)\n{\n    return 1;\n}\n' >"$tmp/shm/a.c"
    check "$tmp" >/dev/null || { echo "self-test: a clean file was refused"; exit 1; }
    printf 'int f(void) {   return 1; }\n' >"$tmp/shm/a.c"
    check "$tmp" >/dev/null && { echo "self-test: a misformatted file passed"; exit 1; }
    echo "clang_format self-test: a misformatted file fails the check, a clean one does not"
    exit 0
}

if [ "${1:-}" = "--self-test" ]; then
    self_test
fi
check "${1:-$HERE}"
