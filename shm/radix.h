/*
 * shm/radix.h - the prefix radix tree of the cache_aware policy, in shared memory.
 *
 * One tree serves every DP thread and process and survives DP restarts: a prompt is cut into
 * blocks of tokens, each block hashed into a chain (the hash of block i covers blocks 0..i),
 * and the tree maps hash sequences to the instances recently chosen for them. The node layout
 * is in shm/layout.h (shm_radix_node_t); this header states what each operation guarantees.
 *
 * Concurrency, following the rest of shm/ (layout.h):
 *  - radix_match and radix_cached_blocks are lock-free; callers are inside shm_read_enter/exit.
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
 * The tree's records and its eviction rule are the Go router's (docs/fastdeploy.md 10); what a
 * lookup reports (radix_cached_blocks) and the block hashing (RADIX_SEED) are not. Its deadlock
 * under capacity pressure (docs/fastdeploy.md 15) cannot happen here since eviction runs inside
 * the insert's own critical section and never retakes the lock.
 */
#ifndef FD_SHM_RADIX_H
#define FD_SHM_RADIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/shm.h"

/* Block hashes used per prompt: beyond this many blocks only the first are hashed, matched and
 * recorded (the cached part is then measured over those blocks). 8192 blocks are 512k code points with the
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

/* Segment creation (segment.c): a fresh bucket key, an empty tree of maximum capacity. The node arena
 * and the buckets are expected zero (a new segment is). */
void radix_format(shm_seg_t *s);

/* ---- block hashing ---- */

/* The seed every block-hash chain starts from: a constant, the same in every router, so two
 * routers that were never told about each other hash a prompt alike and place a new prefix on
 * the same instance (cache_aware's rendezvous placement). The tree's hash table is keyed with a
 * random per-segment bucket key on top of it, so known hashes do not let anyone flood a chain. */
#define RADIX_SEED 0x6664726f75746572ULL /* "fdrouter" */

/*
 * Chained block hashing: the hash of block i mixes the hash of block i - 1 (the first block's:
 * `seed`) with a 64-bit hash of block i's own bytes (32-byte stripes, XXH3 below 32 bytes:
 * shm/radix.c), so it stands for the whole prefix up to it; the blocks' own hashes do not depend
 * on one another, so a prompt's blocks hash in parallel.
 * Only full blocks count; with `short_tail`, an input shorter than one block is hashed as one
 * short block instead (so identical tiny prompts still match; its bytes cannot equal a full
 * block's, so it never shadows a longer prompt's prefix). At most `max` hashes are computed.
 *
 * radix_hash_text: blocks of `block_size` code points of UTF-8 text (a code point starts at each
 * byte that is not a continuation byte; hashing is over bytes, so nothing is decoded).
 * radix_hash_tokens: blocks of `block_size` token ids (the tokenizer service's).
 */
size_t radix_hash_text(uint64_t seed, const char *text, size_t len, uint32_t block_size, bool short_tail,
                       uint64_t *out, size_t max);
size_t radix_hash_tokens(uint64_t seed, const uint64_t *tok, size_t ntok, uint32_t block_size,
                         bool short_tail, uint64_t *out, size_t max);

/* ---- lookups (lock-free, inside a read-side critical section) ---- */

/* Length in blocks of the longest prefix of h[0..n) in the tree, and the node where it ends
 * (the root if nothing matched; a node whose edge matched only partly if it ended mid-edge). */
size_t radix_match(const shm_seg_t *s, const uint64_t *h, size_t n, uint32_t *node);

/* Whether the prefix h[0..depth) is in the tree and branches where it ends: at least two recorded
 * prompts continue it differently (a prefix group's shared part), unlike a conversation's history,
 * which its next turn only extends. */
bool radix_branches(const shm_seg_t *s, const uint64_t *h, size_t depth);

/* Which instance a lookup asks about, and how old a record of it may be. A record (tag) carries
 * the instance's cache-inflow stamp at the time it was made (RADIX_STAMP_UNIT prompt units per
 * step of shm_instance_t.cache_inflow); it still counts as cached while the instance has taken in
 * at most `within` stamps of new content since (its cache capacity: anything older has been
 * evicted by the instance's LRU). within = UINT32_MAX: no limit known. */
#define RADIX_STAMP_UNIT 16u
typedef struct {
    uint16_t slot;
    uint32_t gen;    /* the slot's current generation */
    uint32_t stamp;  /* the instance's stamp now */
    uint32_t within; /* its capacity in stamps */
} radix_cand_t;

static inline uint32_t radix_stamp(uint64_t cache_inflow)
{
    return (uint32_t)(cache_inflow / RADIX_STAMP_UNIT);
}

/*
 * Per candidate, the number of leading blocks of h[0..n) it is predicted to hold: the depth of
 * the deepest node on the prompt's matched path with a fresh tag of it (capped at the matched
 * length L for the node where the match ends mid-edge), 0 when none. Unlike the Go router's hit
 * ratio (only the candidates tagged on the deepest tagged node count), every candidate gets its
 * own depth: an instance holding a shorter part of the prefix is still cheaper than one holding
 * nothing. The walk stops once every candidate has its depth. Returns L.
 */
size_t radix_cached_blocks(const shm_seg_t *s, const uint64_t *h, size_t n, const radix_cand_t *cand,
                           size_t ncand, uint32_t *blocks);

/* ---- changes (each takes the writer lock; -1 only if the lock is unrecoverable) ---- */

/*
 * Record that (slot, generation) was chosen for h[0..n): insert the path, splitting an edge
 * where it diverges, refresh the last access of every node on it and tag each with the
 * instance at `now_ms` and its cache-inflow `stamp` (a node with every tag taken loses a
 * stale-generation tag, else its oldest). An insert never evicts nor reclaims (that is
 * radix_upkeep's, on the control plane): when the free nodes run out, the path is recorded as
 * far as they go and inserts_truncated counts it, which makes the next upkeep keep a larger
 * reserve. Returns the number of blocks recorded.
 */
long radix_insert(shm_seg_t *s, const uint64_t *h, size_t n, uint16_t slot, uint32_t generation,
                  uint32_t stamp, uint64_t now_ms);

/*
 * The control plane's eviction, as a sweep advanced by bounded steps (each a short writer-lock
 * hold: SCAN_CHUNK nodes read or WALK_CHUNK visited, well under a millisecond), so that no insert
 * waits behind a pass over the whole tree. Process-local state, zero-initialised; one per
 * segment; its fields are radix.c's.
 */
#define RADIX_HIST_BUCKETS 64
typedef struct {
    int phase;
    uint32_t next;                           /* next node index of a cut-off scan */
    uint32_t at;                             /* walk cursor: node whose link is next */
    bool into;                               /* the link is at's first_child, else next_sibling */
    uint64_t ttl_before, ttl_pending;        /* TTL cut-off of this sweep, of the next one */
    uint64_t lru_target, lru_evicted;        /* least recently used nodes to take, taken */
    uint64_t lru_below, lru_upto, lru_older; /* the LRU cut-off range being narrowed */
    uint64_t cut_ms, lru_shift;              /* when it was found; how far it moved since */
    uint64_t hist[RADIX_HIST_BUCKETS];
    uint64_t truncated_seen; /* inserts_truncated at the last sweep's start */
} radix_sweep_t;

/*
 * One step of upkeep: apply a changed `capacity` (0 = SHM_RADIX_MAX_NODES; shrinking evicts at
 * once), move limbo nodes whose grace period passed to the free list, start a sweep when fewer
 * than 2/16 of the capacity are free or on their way (5/16 once an insert ran out) or a TTL pass
 * is asked for (ttl_before != 0: unlink every node last accessed before it, with its subtree;
 * the Go router's rule; queued if a sweep is under way), and advance the sweep by one chunk.
 * `now_ms` is the clock the inserts stamp nodes with (shm_now_ms() in a router; a test's own
 * clock in tests, so that a slow step cannot move the LRU cut-off). Returns 1 while a sweep is
 * under way (step again soon), 0 when idle, -1 if the lock is unrecoverable.
 */
int radix_upkeep(shm_seg_t *s, radix_sweep_t *w, uint32_t capacity, uint64_t ttl_before, uint64_t now_ms);

/* The TTL pass at once, in one writer-lock hold (tests, tools): unlink every non-root node last
 * accessed more than `ttl_ms` before `now_ms`, with its subtree. Returns the nodes unlinked. */
long radix_evict_ttl(shm_seg_t *s, uint64_t now_ms, uint64_t ttl_ms);

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

/* How much this router's traffic reuses prefixes: the share of its recent cache-scored decisions
 * whose prompt was mostly cached somewhere, an exponentially weighted average over about
 * RADIX_REUSE_SPAN decisions, in [0, 1]. A new segment starts at 1 (until traffic shows otherwise,
 * a new prefix is assumed to come back: see cache_aware.c). The DP threads share one average and
 * update it without a lock: an update lost to a race only delays it. */
#define RADIX_REUSE_SPAN 32
double radix_reuse(const shm_seg_t *s);
void radix_note_reuse(shm_seg_t *s, bool reused);

/* Re-homing budget: the prefixes cache_aware may still move off the instances a placement made
 * without knowing whether the router is alone left over-full (cache_aware.c, rehome()). The
 * control plane grants it when its verdict turns to alone; each move takes one, atomically, so
 * the DP threads never move more than granted. */
void radix_moves_grant(shm_seg_t *s, uint32_t n);
bool radix_moves_take(shm_seg_t *s);
uint32_t radix_moves_left(const shm_seg_t *s);

/* How much of this router's recent traffic shares a prompt's head: of the last SHM_RADIX_RECENT
 * prompts noted (radix_note_prompt, one per cache-scored decision), how many began with the same
 * 2^k blocks as h[0..depth), for the largest 2^k <= depth (at most 512 blocks). A prompt that
 * shares the whole prefix of `depth` blocks shares that head too, so `same` counts every recent
 * prompt through the prefix, plus those that share at least half of it (or its first 512 blocks).
 * This is the prefix's share of the traffic, which tells a prefix one instance can serve from one
 * that needs several (cache_aware's hot prefixes). Heads are 32-bit fingerprints: two different
 * heads match one time in 2^32. The DP threads note without a lock; a race only loses a note. */
typedef struct {
    unsigned same; /* recent prompts with the same head */
    unsigned seen; /* prompts remembered, at most SHM_RADIX_RECENT */
} radix_share_t;
void radix_note_prompt(shm_seg_t *s, const uint64_t *h, size_t n);
radix_share_t radix_share(const shm_seg_t *s, const uint64_t *h, size_t depth);

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
