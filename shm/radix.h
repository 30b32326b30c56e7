/*
 * shm/radix.h - the prefix radix tree of the cache_aware policy, in shared memory.
 *
 * One tree serves every DP thread and process and survives DP restarts: a prompt is cut into
 * blocks of tokens, each block hashed into a chain (the hash of block i covers blocks 0..i),
 * and the tree maps hash sequences to the instances recently chosen for them. The node layout
 * is in shm/layout.h (shm_radix_node_t); this header states what each operation guarantees.
 *
 * Concurrency, following the rest of shm/ (layout.h):
 *  - radix_match and radix_hit_ratios are lock-free; callers are inside shm_read_enter/exit.
 *    A lookup racing with a change may miss a node that is being moved (a cache miss for that
 *    one request), never reads freed memory and never loops: every walk is bounded.
 *  - Every change takes the writer lock (shm_wlock) itself; no change ever waits for a grace
 *    period or for anything else while holding it, so DPs may insert from inside a read-side
 *    critical section.
 *  - Unlinked nodes go to the tree's limbo list tagged with the epoch of their unlinking and are
 *    reused only after a grace period. Every change publishes with release stores in an order
 *    that keeps concurrent readers on well-formed nodes.
 *  - A writer that dies mid-change leaves `dirty` set; the next change repairs the tree first
 *    (the tree is kept if a full validation passes, emptied otherwise: it is only a cache).
 *
 * Memory is bounded by construction: at most `capacity` nodes (reachable + limbo) are ever in
 * use, capacity <= SHM_RADIX_MAX_NODES. When an insert needs nodes that are not free, the least
 * recently used nodes go first, together with their subtrees (a node is never accessed later
 * than its parent, so this removes LRU leaves and subtrees, never the fresh part of the tree).
 *
 * The hit-ratio rule, the block hashing and the eviction rule are the Go router's (docs/fastdeploy.md
 * 10); its deadlock under capacity pressure (docs/fastdeploy.md 15) cannot happen here since
 * eviction runs inside the insert's own critical section and never retakes the lock.
 */
#ifndef FD_SHM_RADIX_H
#define FD_SHM_RADIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/shm.h"

/* Block hashes used per prompt: beyond this many blocks only the first are hashed, matched and
 * recorded (the hit ratio is then over those blocks). 8192 blocks are 512k code points with the
 * default block size of 64, and 32k with the example configuration's 4. */
#define RADIX_MAX_BLOCKS 8192

/* Sections of a mapped segment (never NULL, unlike shm_ptr of offset 0). */
static inline shm_radix_hdr_t *radix_hdr(const shm_seg_t *s)
{
    return (shm_radix_hdr_t *)((char *)s->hdr + s->hdr->radix_off);
}
static inline shm_radix_node_t *radix_node(const shm_seg_t *s, uint32_t i)
{
    return (shm_radix_node_t *)((char *)s->hdr + s->hdr->radix_nodes_off) + i;
}
static inline uint32_t *radix_buckets(const shm_seg_t *s)
{
    return (uint32_t *)((char *)s->hdr + s->hdr->radix_buckets_off);
}
static inline unsigned radix_span_start(uint32_t span)
{
    return span >> 8;
}
static inline unsigned radix_span_len(uint32_t span)
{
    return span & 0xffu;
}
static inline uint64_t radix_tag_ident(uint16_t slot, uint32_t generation)
{
    return SHM_RADIX_TAG_VALID | (uint64_t)generation << 16 | slot;
}

/* Segment creation (segment.c): a fresh seed, an empty tree of maximum capacity. The node arena
 * and the buckets are expected zero (a new segment is). */
void radix_format(shm_seg_t *s);

/* ---- block hashing ---- */

/* The seed every block-hash chain starts from, chosen at random when the segment was created so
 * every DP hashes alike and a restarted DP still matches what is in the tree. */
static inline uint64_t radix_seed(const shm_seg_t *s)
{
    return radix_hdr(s)->seed;
}

/*
 * Chained block hashing, fed one token at a time (code points, or tokenizer ids): the hash of a
 * block is FNV-1a-64 over [previous block's hash, 8 bytes little-endian][each token, 8 bytes
 * little-endian], the previous hash of the first block being the seed. Only full blocks count.
 */
typedef struct {
    uint64_t prev, cur;
    uint32_t block, filled;
    uint64_t *out;
    size_t n, max;
} radix_hasher_t;

void radix_hasher_init(radix_hasher_t *h, uint64_t seed, uint32_t block_size, uint64_t *out, size_t max);
/* Returns false once `max` hashes are out: the caller may stop feeding. */
bool radix_hasher_push(radix_hasher_t *h, uint64_t token);
/* The number of hashes. With `short_tail`, a token sequence shorter than one block is hashed as
 * one short block (so identical tiny prompts still match); otherwise it yields none. */
size_t radix_hasher_finish(radix_hasher_t *h, bool short_tail);

/* The hashes of a UTF-8 text's code points, decoded as Go decodes a string into runes (each
 * byte of an invalid sequence is one U+FFFD). At most `max` hashes are computed. */
size_t radix_hash_text(uint64_t seed, const char *text, size_t len, uint32_t block_size, bool short_tail,
                       uint64_t *out, size_t max);

/* ---- lookups (lock-free, inside a read-side critical section) ---- */

/* Length in blocks of the longest prefix of h[0..n) in the tree, and the node where it ends
 * (the root if nothing matched; a node whose edge matched only partly if it ended mid-edge). */
size_t radix_match(const shm_seg_t *s, const uint64_t *h, size_t n, uint32_t *node);

/*
 * Per-candidate hit ratio (0..100), docs/fastdeploy.md 10: from the node where the match ends,
 * walk toward the root; at each node every tag naming a candidate (slot and its current
 * generation `gens[i]`) gives it L * 100 / n (kept at its max); stop at the first node where a
 * candidate got one; one level up, L becomes that node's depth. Returns the matched length L.
 */
size_t radix_hit_ratios(const shm_seg_t *s, const uint64_t *h, size_t n, const uint16_t *slots,
                        const uint32_t *gens, size_t ncand, uint8_t *ratio);

/* ---- changes (each takes the writer lock; -1 only if the lock is unrecoverable) ---- */

/*
 * Record that (slot, generation) was chosen for h[0..n): insert the path, splitting an edge
 * where it diverges, refresh the last access of every node on it and tag each with the
 * instance at `now_ms` (a node with every tag taken loses a stale-generation tag, else its
 * oldest). `capacity` is the configured one (0 = SHM_RADIX_MAX_NODES); a change of it is
 * applied here. Room is made first (least recently used nodes go); if even so no node can be
 * had, the path is recorded as far as it fits. Returns the number of blocks recorded.
 */
long radix_insert(shm_seg_t *s, const uint64_t *h, size_t n, uint16_t slot, uint32_t generation,
                  uint64_t now_ms, uint32_t capacity);

/* CP timer: unlink every non-root node last accessed more than `ttl_ms` before `now_ms`,
 * together with its subtree (the Go router's rule). Returns the number of nodes unlinked. */
long radix_evict_ttl(shm_seg_t *s, uint64_t now_ms, uint64_t ttl_ms);

/* CP timer: keep headroom for the DPs' inserts (evicting the least recently used nodes when
 * free + limbo nodes are below 1/16 of the capacity) and move limbo nodes whose grace period
 * has passed to the free list. Returns the number of nodes unlinked. */
long radix_maintain(shm_seg_t *s);

/* Remove every tag of instance slot `slot`, whatever its generation (instance removal). The
 * generation in each tag already keeps a re-used slot from matching; this frees the tags.
 * Returns the number of tags removed. */
long radix_purge_slot(shm_seg_t *s, uint16_t slot);

/* Apply a configured capacity (0 = maximum). Shrinking evicts the least recently used nodes
 * down to it; nodes already in limbo still count until their grace period passes. */
int radix_set_capacity(shm_seg_t *s, uint32_t capacity);

/* ---- counters (lock-free reads, for /metrics and fdctl) ---- */

typedef enum {
    RADIX_DECIDED_BY_CACHE,   /* cache_aware scored the candidates */
    RADIX_FALLBACK_IMBALANCE, /* loads imbalanced: process_tokens chose */
    RADIX_FALLBACK_NO_PROMPT, /* empty prompt: process_tokens chose */
} radix_decision_t;

/* Count one cache_aware decision; `hit` = its prompt matched at least one block. */
void radix_count_decision(shm_seg_t *s, radix_decision_t d, bool hit);

typedef struct {
    uint64_t seed;
    uint32_t max_nodes, capacity;
    uint32_t nodes; /* reachable, root excluded */
    uint32_t limbo; /* waiting for their grace period */
    uint64_t evictions_ttl, evictions_pressure;
    uint64_t inserts, inserts_truncated, recoveries;
    uint64_t decided_by_cache, fallback_imbalance, fallback_no_prompt, lookups_hit;
    uint64_t session_requests, session_hits;
} radix_stats_t;

void radix_stats(const shm_seg_t *s, radix_stats_t *out);

/* A cache-scored decision for a request with a session (hash != 0) chose (slot, generation):
 * count it, and count a hit when the session's previous choice was the same instance. */
void radix_count_session(shm_seg_t *s, uint64_t session_hash, uint16_t slot, uint32_t generation);

#endif
