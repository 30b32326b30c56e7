#!/bin/sh
# tests/lint/include_cycles.sh - no include circle among the files of dataplane/ nor among those
# of controlplane/ (docs/architecture.md, "The data plane's code" and "The control plane's code"):
# tools/include_cycles.py, where a file depends on the headers it includes and a header on the
# .c files defining what it declares, must find none. Usage: include_cycles.sh [SOURCE_DIR] | --self-test
set -u

DIRS="dataplane controlplane"
HERE=$(cd "$(dirname "$0")/../.." && pwd)

check() { # root -> 0 no circle, 1 a circle (printed), 2 a directory missing
    python3 "$HERE/tools/include_cycles.py" --root "$1" $DIRS
}

self_test_in() { # dir: the check must fail on a circle there and pass without one
    d=$1
    printf 'int a(void);\n' >"$tmp/$d/a.h"
    printf '#include "%s/a.h"\nint a(void)\n{\n    return 1;\n}\n' "$d" >"$tmp/$d/a.c"
    printf 'int b(void);\n' >"$tmp/$d/b.h"
    printf '#include "%s/a.h"\n#include "%s/b.h"\nint b(void)\n{\n    return a();\n}\n' "$d" "$d" >"$tmp/$d/b.c"
    check "$tmp" >/dev/null || { echo "self-test: $d/b.c using a.c was taken for a circle"; exit 1; }
    printf '#include "%s/a.h"\n#include "%s/b.h"\nint a(void)\n{\n    return b();\n}\n' "$d" "$d" >"$tmp/$d/a.c"
    check "$tmp" >/dev/null && { echo "self-test: $d/a.c and b.c using each other passed"; exit 1; }
    printf 'extern int shared;\n' >"$tmp/$d/a.h"
    printf '#include "%s/b.h"\nint shared = 1;\n' "$d" >"$tmp/$d/a.c"
    printf '#include "%s/a.h"\n#include "%s/b.h"\nint b(void)\n{\n    return shared;\n}\n' "$d" "$d" \
        >"$tmp/$d/b.c"
    check "$tmp" >/dev/null && { echo "self-test: a circle through a shared object in $d passed"; exit 1; }
    rm -f "$tmp/$d"/*
}

self_test() {
    tmp=$(mktemp -d) || exit 2
    trap 'rm -rf "$tmp"' EXIT
    for d in $DIRS; do
        mkdir -p "$tmp/$d"
    done
    for d in $DIRS; do
        self_test_in "$d"
    done
    echo "include_cycles self-test: a circle in $DIRS fails the check, a one-way use does not"
    exit 0
}

if [ "${1:-}" = "--self-test" ]; then
    self_test
fi
check "${1:-$HERE}"
