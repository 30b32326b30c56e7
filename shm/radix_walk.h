/*
 * shm/radix_walk.h - a read-only, lock-free walk of the prefix tree for inspection (fdctl cache):
 * nodes as a reader sees them, tags decoded to the instance slots they name.
 *
 * Same contract as radix_match (shm/radix.h): callers are inside shm_read_enter/exit, a walk
 * racing with a change may miss or double-count a node that is being moved, never reads outside
 * the node arena, never loops (every walk is bounded). It is a consistent-enough picture under
 * load, not a snapshot. The tree's own code (insert, lookup, eviction) is in shm/radix.c.
 */
#ifndef FD_SHM_RADIX_WALK_H
#define FD_SHM_RADIX_WALK_H

#include "shm/radix.h"

/* One node as the walk read it. */
typedef struct {
    uint32_t node;
    uint32_t depth;      /* blocks from the root to the end of its edge */
    uint64_t first_hash; /* first block hash of its edge (0 if its span was being changed) */
    uint64_t last_ms;    /* its last access */
    unsigned ntags;
    uint16_t slot[SHM_RADIX_TAGS]; /* instances tagged on it (valid tags of the slot's current generation) */
} radix_walk_node_t;

/* The slot a tag word names if it is valid and of that slot's current generation, else -1 (a
 * removed instance's tags are ignored, as cache_aware ignores them). */
int radix_tag_slot(const shm_seg_t *s, uint64_t ident);

/* Read node i; false if i is not a node of the arena (NIL or out of range). */
bool radix_walk_read(const shm_seg_t *s, uint32_t i, radix_walk_node_t *out);

/* A node's first child and its next sibling; SHM_RADIX_NIL when none (a link out of range reads
 * as none). */
uint32_t radix_walk_first_child(const shm_seg_t *s, uint32_t i);
uint32_t radix_walk_next_sibling(const shm_seg_t *s, uint32_t i);

/* Visit `top` and its subtree depth first, at most `max` nodes; `stack` has room for `max`
 * entries (a tree changing under the walk can make it stop early, never overrun). Returns the
 * number of nodes visited. */
typedef void (*radix_walk_fn)(const radix_walk_node_t *n, void *ctx);
size_t radix_walk(const shm_seg_t *s, uint32_t top, uint32_t *stack, uint32_t max, radix_walk_fn fn,
                  void *ctx);

#endif
