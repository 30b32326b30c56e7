/*
 * shm/radix_walk.c - the read-only walk of the prefix tree (shm/radix_walk.h).
 *
 * Memory orders follow radix.c's readers: links, depth and span are loaded with acquire (each is
 * published with a release store after the node it leads to was written); tag words and access
 * stamps are loaded relaxed (one atomic word each, nothing read through them but the slot's
 * generation, itself an acquire load).
 */
#include "shm/radix_walk.h"

#define WALK_NODE_SLOTS (SHM_RADIX_MAX_NODES + 2u) /* the node arena: 0 = none, 1 = root */

static uint32_t load32(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static uint32_t link_of(uint32_t i)
{
    return i < WALK_NODE_SLOTS ? i : SHM_RADIX_NIL;
}

int radix_tag_slot(const shm_seg_t *s, uint64_t ident)
{
    uint32_t slot = (uint32_t)(ident & 0xffff);
    if (!(ident & SHM_RADIX_TAG_VALID) || slot >= SHM_MAX_INSTANCES)
        return -1;
    uint32_t gen = (uint32_t)((ident & ~SHM_RADIX_TAG_VALID) >> 16);
    return shm_slot_generation(s, slot) == gen ? (int)slot : -1;
}

bool radix_walk_read(const shm_seg_t *s, uint32_t i, radix_walk_node_t *out)
{
    if (i == SHM_RADIX_NIL || i >= WALK_NODE_SLOTS)
        return false;
    const shm_radix_node_t *nd = radix_node(s, i);
    uint32_t span = load32(&nd->span);
    unsigned start = radix_span_start(span), len = radix_span_len(span);
    out->node = i;
    out->depth = load32(&nd->depth);
    out->first_hash =
        len > 0 && start + len <= SHM_RADIX_EDGE_MAX ? __atomic_load_n(&nd->key[start], __ATOMIC_RELAXED) : 0;
    out->last_ms = __atomic_load_n(&nd->last_ms, __ATOMIC_RELAXED);
    out->ntags = 0;
    for (int t = 0; t < SHM_RADIX_TAGS; t++) {
        int slot = radix_tag_slot(s, __atomic_load_n(&nd->tag[t].ident, __ATOMIC_RELAXED));
        if (slot >= 0)
            out->slot[out->ntags++] = (uint16_t)slot;
    }
    return true;
}

uint32_t radix_walk_first_child(const shm_seg_t *s, uint32_t i)
{
    return i != SHM_RADIX_NIL && i < WALK_NODE_SLOTS ? link_of(load32(&radix_node(s, i)->first_child))
                                                     : SHM_RADIX_NIL;
}

uint32_t radix_walk_next_sibling(const shm_seg_t *s, uint32_t i)
{
    return i != SHM_RADIX_NIL && i < WALK_NODE_SLOTS ? link_of(load32(&radix_node(s, i)->next_sibling))
                                                     : SHM_RADIX_NIL;
}

size_t radix_walk(const shm_seg_t *s, uint32_t top, uint32_t *stack, uint32_t max, radix_walk_fn fn,
                  void *ctx)
{
    size_t sp = 0, visits = 0;
    if (max == 0)
        return 0;
    stack[sp++] = top;
    while (sp && visits < max) {
        radix_walk_node_t n;
        uint32_t i = stack[--sp];
        if (!radix_walk_read(s, i, &n))
            continue;
        visits++;
        fn(&n, ctx);
        for (uint32_t c = radix_walk_first_child(s, i); c && sp < max; c = radix_walk_next_sibling(s, c))
            stack[sp++] = c;
    }
    return visits;
}
