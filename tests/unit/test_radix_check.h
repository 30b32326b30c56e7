/*
 * tests/unit/test_radix_check.h - an invariant checker over the shared prefix tree, written
 * apart from shm/radix.c so that it does not trust its walks: used by test_radix.c after each
 * kind of change and by test_radix_stress.c after the concurrent run.
 *
 * Call it while nobody writes the tree (writer lock held, or writers gone). It checks that
 *  - every node is reachable at most once, with a consistent parent, span and depth, and a
 *    last access no later than its parent's;
 *  - siblings start with distinct hashes, and radix_match finds every reachable node from its
 *    own path (so the hash chains index the tree);
 *  - the hash chains hold exactly the reachable nodes, each once;
 *  - the free and limbo lists are well formed (limbo epochs newest first), disjoint from the
 *    tree, and reachable + free + limbo == every node ever used: no node leaked;
 *  - the header's counts are right and reachable + limbo <= capacity.
 */
#ifndef FD_TEST_RADIX_CHECK_H
#define FD_TEST_RADIX_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/radix.h"

#define CHECK_SLOTS (SHM_RADIX_MAX_NODES + 2u)

typedef struct {
    uint32_t reachable, free_len, limbo_len, chained;
    char why[256];
} radix_check_t;

static inline bool check_fail(radix_check_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    return false;
}

/* The path hashes of node i, root first, into out (depth entries); false if malformed. */
static inline bool check_path(const shm_seg_t *s, uint32_t i, uint64_t *out, size_t cap)
{
    uint32_t depth = radix_node(s, i)->depth;
    if (depth > cap)
        return false;
    size_t end = depth;
    while (i != SHM_RADIX_ROOT) {
        const shm_radix_node_t *n = radix_node(s, i);
        unsigned st = radix_span_start(n->span), len = radix_span_len(n->span);
        if (len > end)
            return false;
        end -= len;
        memcpy(out + end, n->key + st, len * sizeof(uint64_t));
        i = n->parent;
    }
    return end == 0;
}

static inline bool check_tree(const shm_seg_t *s, uint8_t *seen, uint32_t *stack, radix_check_t *r)
{
    const shm_radix_hdr_t *t = radix_hdr(s);
    uint64_t *path = malloc(RADIX_MAX_BLOCKS * sizeof(uint64_t));
    size_t top = 0;
    bool ok = true;
    stack[top++] = SHM_RADIX_ROOT;
    while (ok && top) {
        uint32_t p = stack[--top];
        const shm_radix_node_t *pn = radix_node(s, p);
        for (uint32_t c = pn->first_child; ok && c; c = radix_node(s, c)->next_sibling) {
            const shm_radix_node_t *cn = radix_node(s, c);
            unsigned st = radix_span_start(cn->span), len = radix_span_len(cn->span);
            if (c < 2 || c >= t->high_water)
                ok = check_fail(r, "child %u of %u out of range", c, p);
            else if (seen[c])
                ok = check_fail(r, "node %u reachable twice", c);
            else if (cn->state != SHM_RADIX_USED)
                ok = check_fail(r, "reachable node %u in state %u", c, cn->state);
            else if (cn->parent != p)
                ok = check_fail(r, "node %u: parent %u, reached from %u", c, cn->parent, p);
            else if (len == 0 || st + len > SHM_RADIX_EDGE_MAX || cn->depth != pn->depth + len)
                ok = check_fail(r, "node %u: span %u+%u depth %u under depth %u", c, st, len, cn->depth,
                                pn->depth);
            else if (p != SHM_RADIX_ROOT && cn->last_ms > pn->last_ms)
                ok = check_fail(r, "node %u accessed after its parent", c);
            if (!ok)
                break;
            for (uint32_t o = pn->first_child; o != c; o = radix_node(s, o)->next_sibling) {
                const shm_radix_node_t *on = radix_node(s, o);
                if (on->key[radix_span_start(on->span)] == cn->key[st])
                    ok = check_fail(r, "siblings %u and %u start alike", o, c);
            }
            seen[c] = 1;
            r->reachable++;
            stack[top++] = c;
        }
    }
    for (uint32_t i = 2; ok && i < t->high_water; i++) {
        if (!seen[i])
            continue;
        uint32_t at;
        size_t depth = radix_node(s, i)->depth;
        if (!check_path(s, i, path, RADIX_MAX_BLOCKS))
            ok = check_fail(r, "node %u: path does not add up", i);
        else if (radix_match(s, path, depth, &at) != depth || at != i)
            ok = check_fail(r, "node %u not found from its own path (got %u)", i, at);
    }
    free(path);
    return ok;
}

static inline bool check_chains(const shm_seg_t *s, const uint8_t *seen, uint8_t *chained, radix_check_t *r)
{
    const uint32_t *b = radix_buckets(s);
    for (uint32_t k = 0; k < SHM_RADIX_BUCKETS; k++)
        for (uint32_t i = b[k]; i; i = radix_node(s, i)->hnext) {
            if (i >= CHECK_SLOTS || !seen[i])
                return check_fail(r, "bucket %u holds node %u, not in the tree", k, i);
            if (chained[i]++)
                return check_fail(r, "node %u chained twice", i);
            r->chained++;
        }
    return r->chained == r->reachable || check_fail(r, "%u chained, %u reachable", r->chained, r->reachable);
}

static inline bool check_lists(const shm_seg_t *s, uint8_t *seen, radix_check_t *r)
{
    const shm_radix_hdr_t *t = radix_hdr(s);
    uint64_t last_epoch = UINT64_MAX;
    for (uint32_t i = t->limbo_head; i; i = radix_node(s, i)->link) {
        const shm_radix_node_t *n = radix_node(s, i);
        if (i < 2 || i >= t->high_water || seen[i] || n->state != SHM_RADIX_LIMBO)
            return check_fail(r, "limbo node %u misplaced", i);
        if (n->retire_epoch > last_epoch || n->retire_epoch == 0)
            return check_fail(r, "limbo node %u epoch %llu out of order", i,
                              (unsigned long long)n->retire_epoch);
        last_epoch = n->retire_epoch;
        seen[i] = 2;
        r->limbo_len++;
    }
    for (uint32_t i = t->free_head; i; i = radix_node(s, i)->link) {
        if (i < 2 || i >= t->high_water || seen[i] || radix_node(s, i)->state != SHM_RADIX_FREE)
            return check_fail(r, "free node %u misplaced", i);
        seen[i] = 3;
        r->free_len++;
    }
    return true;
}

static inline bool radix_check(const shm_seg_t *s, radix_check_t *r)
{
    const shm_radix_hdr_t *t = radix_hdr(s);
    memset(r, 0, sizeof *r);
    uint8_t *seen = calloc(CHECK_SLOTS, 1), *chained = calloc(CHECK_SLOTS, 1);
    uint32_t *stack = malloc(CHECK_SLOTS * sizeof(uint32_t));
    bool ok = true;
    if (t->dirty)
        ok = check_fail(r, "tree left dirty");
    else if (t->high_water < 2 || t->high_water > CHECK_SLOTS)
        ok = check_fail(r, "high water %u", t->high_water);
    ok = ok && check_tree(s, seen, stack, r) && check_chains(s, seen, chained, r) && check_lists(s, seen, r);
    if (ok && r->reachable != t->nodes)
        ok = check_fail(r, "%u reachable, header says %u", r->reachable, t->nodes);
    if (ok && r->limbo_len != t->limbo)
        ok = check_fail(r, "%u in limbo, header says %u", r->limbo_len, t->limbo);
    if (ok && r->reachable + r->free_len + r->limbo_len != t->high_water - 2)
        ok = check_fail(r, "leak: %u reachable + %u free + %u limbo != %u used", r->reachable, r->free_len,
                        r->limbo_len, t->high_water - 2);
    if (ok && r->reachable + r->limbo_len > t->capacity)
        ok = check_fail(r, "%u nodes over capacity %u", r->reachable + r->limbo_len, t->capacity);
    free(seen);
    free(chained);
    free(stack);
    return ok;
}

#endif
