#!/bin/sh
# tests/lint/include_cycles.sh - no include circle among the files of dataplane/
# (docs/architecture.md, "The data plane's code"): tools/include_cycles.py, where a file depends
# on the headers it includes and a header on the .c files defining what it declares, must find
# none. Usage: include_cycles.sh [SOURCE_DIR] | --self-test
set -u

DIRS="dataplane"
HERE=$(cd "$(dirname "$0")/../.." && pwd)

check() { # root -> 0 no circle, 1 a circle (printed)
    python3 "$HERE/tools/include_cycles.py" --root "$1" $DIRS
}

self_test() { # the check must fail on a circle and pass without one
    tmp=$(mktemp -d) || exit 2
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/dataplane"
    printf 'int a(void);\n' >"$tmp/dataplane/a.h"
    printf '#include "dataplane/a.h"\nint a(void)\n{\n    return 1;\n}\n' >"$tmp/dataplane/a.c"
    printf 'int b(void);\n' >"$tmp/dataplane/b.h"
    printf '#include "dataplane/a.h"\n#include "dataplane/b.h"\nint b(void)\n{\n    return a();\n}\n' \
        >"$tmp/dataplane/b.c"
    check "$tmp" >/dev/null || { echo "self-test: b.c using a.c was taken for a circle"; exit 1; }
    printf '#include "dataplane/a.h"\n#include "dataplane/b.h"\nint a(void)\n{\n    return b();\n}\n' \
        >"$tmp/dataplane/a.c"
    check "$tmp" >/dev/null && { echo "self-test: a.c and b.c using each other passed"; exit 1; }
    printf 'extern int shared;\n' >"$tmp/dataplane/a.h"
    printf '#include "dataplane/b.h"\nint shared = 1;\n' >"$tmp/dataplane/a.c"
    printf '#include "dataplane/a.h"\n#include "dataplane/b.h"\nint b(void)\n{\n    return shared;\n}\n' \
        >"$tmp/dataplane/b.c"
    check "$tmp" >/dev/null && { echo "self-test: a circle through a shared object passed"; exit 1; }
    echo "include_cycles self-test: a circle fails the check, a one-way use does not"
    exit 0
}

if [ "${1:-}" = "--self-test" ]; then
    self_test
fi
check "${1:-$HERE}"
