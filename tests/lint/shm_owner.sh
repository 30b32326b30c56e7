#!/bin/sh
# tests/lint/shm_owner.sh - shm/ owns every access to segment memory (docs: shm/layout.h,
# "Concurrency rules"). Fails when, in the router's code outside shm/ (dataplane/, controlplane/,
# common/, tools/fdctl/, tools/launcher/), a source or header has
#   - an atomic builtin (__atomic_*, __sync_*) or a C11 atomic generic call (atomic_load*,
#     atomic_store*, atomic_fetch_*, atomic_exchange*, atomic_compare_exchange*,
#     atomic_thread_fence): segment fields go through shm/shm.h's accessors, and process-local
#     atomics are _Atomic variables used with plain operators (x += n), which this allows;
#   - SHM_SLOT_LIVE (use shm_slot_is_live / shm_slot_selectable / shm_slot_state_name);
#   - glibc's private mutex owner (__data.__owner: use shm_wlock_owner);
#   - an include of shm/layout.h or shm/internal.h (shm/shm.h and shm/types.h are the interface).
# Lines of tests/lint/shm_owner.allow name files still being converted, each with its owner;
# their findings are printed but allowed, and an entry whose file has none left fails the test
# (remove the line). Usage: shm_owner.sh [SOURCE_DIR] | --self-test
set -u

DIRS="dataplane controlplane common tools/fdctl tools/launcher"
PATTERN='__atomic_[a-z_]+|__sync_[a-z_]+|\batomic_(load|store|fetch_|exchange|compare_exchange|thread_fence)[a-z_]*[[:space:]]*\(|\bSHM_SLOT_LIVE\b|__data\.__owner|#[[:space:]]*include[[:space:]]*["<]shm/(layout|internal)\.h[">]'

check() { # root -> exit status 0 clean, 1 findings
    root=$1
    allow="$root/tests/lint/shm_owner.allow"
    allowed=$(if [ -f "$allow" ]; then sed -e 's/#.*//' "$allow" | awk 'NF { print $1 }'; fi)
    existing=
    for d in $DIRS; do [ -d "$root/$d" ] && existing="$existing $d"; done
    [ -n "$existing" ] || { echo "shm_owner: none of $DIRS under $root" >&2; return 2; }
    # $existing is a list of directories: split on purpose
    # shellcheck disable=SC2086
    found=$(cd "$root" && grep -rnE --include='*.c' --include='*.h' "$PATTERN" $existing)
    status=0
    echo "$found" | while IFS= read -r hit; do
        [ -n "$hit" ] || continue
        file=${hit%%:*}
        if echo "$allowed" | grep -qxF "$file"; then
            echo "allowed (tests/lint/shm_owner.allow): $hit"
        else
            echo "segment access outside shm/: $hit"
        fi
    done
    nbad=$(echo "$found" | while IFS= read -r hit; do
        [ -n "$hit" ] || continue
        echo "$allowed" | grep -qxF "${hit%%:*}" || echo x
    done)
    [ -z "$nbad" ] || status=1
    for f in $allowed; do
        if ! echo "$found" | grep -q "^$f:"; then
            echo "stale entry in tests/lint/shm_owner.allow: $f has nothing left to convert; remove its line"
            status=1
        fi
    done
    if [ $status -eq 0 ]; then
        if [ -n "$found" ]; then
            echo "shm_owner: nothing outside shm/ but the allowlisted files above"
        else
            echo "shm_owner: no segment access outside shm/"
        fi
    fi
    return $status
}

self_test() { # the check must fail on each kind of finding and pass on a clean tree
    tmp=$(mktemp -d) || exit 2
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/dataplane" "$tmp/common" "$tmp/tests/lint"
    printf 'static _Atomic int n;\nvoid f(void) { n += 1; }\n' >"$tmp/common/ok.c"
    check "$tmp" >/dev/null || { echo "self-test: a clean tree was refused"; exit 1; }
    for bad in 'x = __atomic_load_n(&p->v, __ATOMIC_ACQUIRE);' '__sync_fetch_and_add(&v, 1);' \
        'atomic_load_explicit(&v, memory_order_relaxed);' 'atomic_fetch_add(&v, 1);' \
        'atomic_compare_exchange_strong(&v, &e, 1);' 'atomic_thread_fence(memory_order_acquire);' \
        'if (in->state == SHM_SLOT_LIVE) {}' 'o = seg->hdr->wlock.__data.__owner;' \
        '#include "shm/layout.h"' '#include "shm/internal.h"'; do
        printf '%s\n' "$bad" >"$tmp/dataplane/bad.c"
        check "$tmp" >/dev/null && { echo "self-test: not caught: $bad"; exit 1; }
    done
    echo 'dataplane/bad.c  someone  being converted' >"$tmp/tests/lint/shm_owner.allow"
    check "$tmp" >/dev/null || { echo "self-test: an allowlisted file was refused"; exit 1; }
    rm "$tmp/dataplane/bad.c"
    check "$tmp" >/dev/null && { echo "self-test: a stale allowlist entry passed"; exit 1; }
    echo "shm_owner self-test: every kind of finding fails the check"
    exit 0
}

if [ "${1:-}" = "--self-test" ]; then
    self_test
fi
check "${1:-$(dirname "$0")/../..}"
