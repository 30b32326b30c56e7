/*
 * shm/shm.h - the shared-memory core: segment life, writer lock, arena, RCU-style views,
 * reader registry and grace periods, per-DP load counters, instance slots.
 *
 * The layout itself (and the concurrency contract) is in shm/layout.h. This header states what
 * each operation guarantees; the implementation is split by concern:
 *   shm/segment.c   create / attach / version check / unlink
 *   shm/wlock.c     robust writer lock and allocator recovery after a writer died
 *   shm/arena.c     fixed-size blocks, free list, limbo list, reclamation
 *   shm/reader.c    reader registry, epochs, grace periods, reaping dead readers
 *   shm/view.c      building and publishing the per-role views of selectable instances
 *   shm/counters.c  per-DP rows: claim, release, inc/dec with generation check, sums
 *   shm/instance.c  slot lookup / allocation / retirement, metrics, status buckets
 *   shm/models.c    the models each instance serves, and the fleet's index of them
 *   shm/proc.c      process identity (pid + start time) and liveness
 *
 * Errors: functions returning int return 0 (or an index >= 0) on success and -1 on failure,
 * with a human-readable reason in `err` when the caller passes one.
 */
#ifndef FD_SHM_SHM_H
#define FD_SHM_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

typedef struct {
    shm_header_t *hdr; /* NULL when not mapped */
    size_t size;
    int fd;
    char name[64];
} shm_seg_t;

/* ---- segment (segment.c) ---- */

/* Default name for a port: "/fd-router-<port>". */
void shm_default_name(char *out, size_t outlen, unsigned port);

typedef enum { SHM_OPEN_CREATED, SHM_OPEN_REUSED, SHM_OPEN_REBUILT } shm_open_result_t;

/*
 * CP: open the named segment, creating it if absent. An existing segment whose magic and layout
 * version match is reused with all its state (instances, counters, views). An incompatible one
 * is refused (-1) unless `rebuild` is true, in which case it is unlinked and created afresh.
 * `*how` tells which happened.
 */
int shm_open_cp(shm_seg_t *s, const char *name, bool rebuild, shm_open_result_t *how, char *err,
                size_t errlen);

/* DP / fdctl: attach an existing segment; fails if absent or incompatible. */
int shm_attach(shm_seg_t *s, const char *name, char *err, size_t errlen);

/* DP / CP, once after attaching: map every page of the segment into this process's page tables
 * now (MADV_POPULATE_WRITE; the pages themselves were allocated when the segment was created),
 * then read a byte of each page (a hypervisor may still trap each page's first access), so no
 * request takes a fault or trap the first time it touches a tree node or counter page. A few
 * ms once (about 75 ms per 64 MB where each page traps), instead of a fault per 4 KiB page on
 * the request path while the tree first fills (in bench_selection, 16k-character prompts cost
 * 2x more while it did). Returns false if the kernel
 * could not (before Linux 5.14: the pages then fault in on first touch, as without this call). */
bool shm_prefault(shm_seg_t *s);

void shm_detach(shm_seg_t *s);
int shm_destroy(const char *name); /* shm_unlink */

static inline void *shm_ptr(const shm_seg_t *s, uint64_t off)
{
    return off ? (char *)s->hdr + off : NULL;
}
static inline uint64_t shm_off(const shm_seg_t *s, const void *p)
{
    return p ? (uint64_t)((const char *)p - (const char *)s->hdr) : 0;
}
static inline shm_instance_t *shm_instance(const shm_seg_t *s, unsigned slot)
{
    return (shm_instance_t *)shm_ptr(s, s->hdr->instances_off) + slot;
}
static inline shm_reader_t *shm_reader(const shm_seg_t *s, unsigned i)
{
    return (shm_reader_t *)shm_ptr(s, s->hdr->readers_off) + i;
}
static inline shm_dp_row_t *shm_dp_row(const shm_seg_t *s, unsigned i)
{
    return (shm_dp_row_t *)shm_ptr(s, s->hdr->dps_off) + i;
}

/* ---- configuration (segment.c) ---- */
/* Single writer (the CP). Safe to call after a previous writer died in the middle of it. */
void shm_config_publish(shm_seg_t *s, const shm_config_t *c);
/* Copy the configuration whole. Returns false (and leaves `out` alone) if it stayed mid-write
 * for too long, i.e. a CP died while publishing it: keep the previous copy and try later. */
bool shm_config_read(const shm_seg_t *s, shm_config_t *out);
static inline uint32_t shm_config_seq(const shm_seg_t *s)
{
    return __atomic_load_n(&s->hdr->config_seq, __ATOMIC_ACQUIRE);
}

/* ---- writer lock (wlock.c) ---- */

/*
 * Take the writer lock. If the previous owner died holding it, the allocator is rebuilt (every
 * block reachable from the views or the limbo list is kept, the rest is freed after a grace
 * period) and the lock is made consistent; hdr.wlock_recovered counts these recoveries.
 * Returns -1 only if the lock is unrecoverable (the segment must be rebuilt).
 */
int shm_wlock(shm_seg_t *s);
void shm_wunlock(shm_seg_t *s);
/* Pid of the process holding the writer lock, 0 if it is free. shm_wlock records it in the
 * segment once it holds the lock and shm_wunlock clears it (relaxed: a label for status views,
 * not a synchronisation). A holder that died keeps its pid here until the next writer recovers
 * the lock. */
int32_t shm_wlock_owner(const shm_seg_t *s);

/* ---- arena (arena.c); writer lock held for all of these ---- */

/* A free block's payload (SHM_ARENA_BLOCK_SIZE - header bytes), reclaiming limbo first if
 * needed. Returns its offset, or 0 if the arena is exhausted. */
uint64_t shm_block_alloc(shm_seg_t *s);
/* Return a block that was never published. */
void shm_block_free(shm_seg_t *s, uint64_t payload_off);
/* A block that was reachable before the last publication: freed after a grace period. */
void shm_block_retire(shm_seg_t *s, uint64_t payload_off);
/* Move limbo blocks whose grace period has passed to the free list; returns how many. */
size_t shm_reclaim(shm_seg_t *s);
#define SHM_BLOCK_PAYLOAD (SHM_ARENA_BLOCK_SIZE - sizeof(shm_block_hdr_t))

/* ---- readers and grace periods (reader.c) ---- */

/* Claim a reader slot for the calling thread's process; returns its index or -1 if full. */
int shm_reader_register(shm_seg_t *s);
void shm_reader_unregister(shm_seg_t *s, int idx);
/* Free the slots of readers whose process is gone; returns how many. */
int shm_reader_reap_dead(shm_seg_t *s);

/* Enter a read-side critical section: announce the current epoch, full barrier. */
static inline void shm_read_enter(shm_seg_t *s, int idx)
{
    shm_reader_t *r = shm_reader(s, (unsigned)idx);
    __atomic_store_n(&r->active_epoch, __atomic_load_n(&s->hdr->gp_epoch, __ATOMIC_RELAXED),
                     __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
static inline void shm_read_exit(shm_seg_t *s, int idx)
{
    __atomic_store_n(&shm_reader(s, (unsigned)idx)->active_epoch, 0, __ATOMIC_RELEASE);
}

/* Inside a critical section: the current view of a role (never NULL once the CP published). */
static inline const shm_view_t *shm_view(const shm_seg_t *s, shm_role_t role)
{
    return (const shm_view_t *)shm_ptr(s, __atomic_load_n(&s->hdr->view_off[role], __ATOMIC_ACQUIRE));
}

/* A view's entries a reader may read: its count, but never more than a view block holds (a
 * corrupt segment's count would read past the block). A slot of the view can still be out of
 * range (>= SHM_MAX_INSTANCES) in such a segment: readers check it where it indexes. */
static inline uint32_t shm_view_len(const shm_view_t *v)
{
    return v->count < SHM_VIEW_MAX_SLOTS ? v->count : (uint32_t)SHM_VIEW_MAX_SLOTS;
}

/* Bump the epoch after a publication; returns the new epoch (full barrier). */
uint64_t shm_epoch_advance(shm_seg_t *s);
/* True if every live reader is quiescent or entered at/after `epoch`. Dead readers (pid gone or
 * reused) are reaped on the way. */
bool shm_grace_passed(shm_seg_t *s, uint64_t epoch);
/* Wait (polling, bounded by timeout_ms) until shm_grace_passed; returns true if it did. */
bool shm_grace_wait(shm_seg_t *s, uint64_t epoch, unsigned timeout_ms);

/* ---- views (view.c) ---- */

/*
 * Writer lock held. Rebuild every role's view from the slot table (LIVE, HEALTHY, not drained;
 * sorted by URL), publish each with a release store, advance the epoch and retire the old
 * blocks. Also stamps hdr.table_updated_ms. Returns -1 if the arena is exhausted (the old
 * views stay published).
 */
int shm_publish_views(shm_seg_t *s);

/* ---- DP rows and load counters (counters.c) ---- */

/* Claim a free DP row for `pid` (reaping rows of dead DPs first); returns its index or -1. */
int shm_dp_claim(shm_seg_t *s, int pid, uint64_t version_hash);
/* Release a row (its counters are zeroed). Used by a DP on clean exit and by the CP when a DP died. */
void shm_dp_release(shm_seg_t *s, int row);
/* CP: release rows and reader slots whose process is gone; returns how many rows were reaped. */
int shm_reap_dead(shm_seg_t *s);

static inline void shm_dp_inc(shm_seg_t *s, int row, unsigned slot, uint64_t tokens)
{
    shm_dp_row_t *r = shm_dp_row(s, (unsigned)row), *total = shm_dp_row(s, SHM_MAX_DPS);
    __atomic_add_fetch(&r->inflight[slot], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&total->inflight[slot], 1, __ATOMIC_RELAXED);
    if (tokens) {
        __atomic_add_fetch(&r->tokens[slot], tokens, __ATOMIC_RELAXED);
        __atomic_add_fetch(&total->tokens[slot], tokens, __ATOMIC_RELAXED);
    }
}
/* Release what shm_dp_inc took, only if the slot still has generation `gen` and the counters are
 * positive (a counter never wraps). Tokens may be released separately (release_request = false). */
void shm_dp_dec(shm_seg_t *s, int row, unsigned slot, uint32_t gen, bool release_request, uint64_t tokens);

/* "free" / "starting" / "serving" / "draining" (SHM_DP_*), for status views. */
const char *shm_dp_state_name(uint32_t state);

/* Totals over the DP rows: one load each, from the totals row kept alongside the rows (inline:
 * a policy reads one per candidate). */
static inline uint64_t shm_inflight(const shm_seg_t *s, unsigned slot)
{
    return slot < SHM_MAX_INSTANCES
               ? __atomic_load_n(&shm_dp_row(s, SHM_MAX_DPS)->inflight[slot], __ATOMIC_RELAXED)
               : 0;
}
/* cache_aware's inflow clock of an instance (shm_instance_t.cache_inflow); add returns the new value */
static inline uint64_t shm_cache_inflow(const shm_seg_t *s, unsigned slot)
{
    return slot < SHM_MAX_INSTANCES ? __atomic_load_n(&shm_instance(s, slot)->cache_inflow, __ATOMIC_RELAXED)
                                    : 0;
}
static inline uint64_t shm_cache_inflow_add(shm_seg_t *s, unsigned slot, uint64_t units)
{
    return slot < SHM_MAX_INSTANCES
               ? __atomic_add_fetch(&shm_instance(s, slot)->cache_inflow, units, __ATOMIC_RELAXED)
               : 0;
}
static inline uint64_t shm_tokens(const shm_seg_t *s, unsigned slot)
{
    return slot < SHM_MAX_INSTANCES
               ? __atomic_load_n(&shm_dp_row(s, SHM_MAX_DPS)->tokens[slot], __ATOMIC_RELAXED)
               : 0;
}

/* A set of instance slots as a bitmap (bit i of word i / 64: slot i), in ascending slot order. */
#define SHM_SLOT_WORDS (SHM_MAX_INSTANCES / 64)
typedef struct {
    uint64_t w[SHM_SLOT_WORDS];
} shm_slotset_t;

/* The slots of a set holding its smallest total (requests, or tokens), for a policy's argmin
 * (loads.c). Each member's total is read once, a snapshot of counters that move under the reader:
 * relaxed loads, or in the AVX2 loop plain 256-bit loads of a whole word's totals (aligned 8-byte
 * counters, each read whole on x86-64). Why a bitmap and not the candidates' list: the totals
 * are an array indexed by slot, so members are read in address order, four at a time with AVX2
 * in a word of 16 members or more, and the tied slots come out as a bitmap with a count per word;
 * a walk of the list in URL order is a gather with one dependent compare per candidate
 * (bench_selection, request_num at 1,024 instances: docs/benchmarks.md, "Selection cost"). */
typedef struct {
    uint64_t min;                    /* UINT64_MAX when the set is empty */
    size_t count;                    /* tied members */
    shm_slotset_t tie;               /* them */
    uint16_t before[SHM_SLOT_WORDS]; /* tied members in the words below each word */
    uint8_t lo, hi;                  /* the words searched: the set's first and last not empty */
} shm_loads_tied_t;

uint64_t shm_loads_min(const shm_seg_t *s, const shm_slotset_t *set, bool tokens, shm_loads_tied_t *out);
/* The k-th tied slot (k < out->count) in ascending slot order. Only tie.w[lo..hi] and
 * before[lo..hi] are written. */
unsigned shm_loads_nth(const shm_loads_tied_t *t, size_t k);

/* Request outcome counters of the segment (any process, lock-free; `outcome` < SHM_OUTCOMES,
 * others ignored / 0). They are never reset: they add up every data plane of every run. */
void shm_count_outcome(shm_seg_t *s, unsigned outcome);
uint64_t shm_outcome_total(const shm_seg_t *s, unsigned outcome);

/* ---- field accessors (inline; the functions among them are in instance.c and segment.c) ---- */

/*
 * Field accessors: every atomic access other modules make to an instance slot, a DP row or the
 * header goes through one of these, so each field has one memory order, chosen here once.
 * The rule (layout.h, "Concurrency rules"): a field whose store makes other fields valid (state,
 * generation, role, health, drained, a DP row's pid / start time / state, the CP's pid) is stored
 * with release and loaded with acquire, so whoever sees the new value also sees what was written
 * before it; a counter or timestamp that orders nothing is relaxed (one cheap atomic access, and
 * readers of sums tolerate seeing it a moment late). None of them is ever weaker than the order
 * its call sites used before they came here.
 */

/* State of a slot (shm_slot_state_t). Acquire: a slot read as LIVE has its identity (written
 * while FREE, before the release store of LIVE) visible. */
static inline uint32_t shm_slot_state_of(const shm_instance_t *in)
{
    return __atomic_load_n(&in->state, __ATOMIC_ACQUIRE);
}
static inline bool shm_slot_is_live(const shm_instance_t *in)
{
    return shm_slot_state_of(in) == SHM_SLOT_LIVE;
}
/* LIVE, or with `with_retired` also RETIRED (still draining): what a scan of the slot table that
 * also reports retired instances lists. One acquire load of the state. */
static inline bool shm_slot_listed(const shm_instance_t *in, bool with_retired)
{
    uint32_t st = shm_slot_state_of(in);
    return st == SHM_SLOT_LIVE || (with_retired && st == SHM_SLOT_RETIRED);
}
/* CP, writer lock held, identity written: the slot becomes LIVE (release: publishes the identity). */
static inline void shm_slot_publish_live(shm_instance_t *in)
{
    __atomic_store_n(&in->state, (uint32_t)SHM_SLOT_LIVE, __ATOMIC_RELEASE);
}
/* Generation of a slot. Acquire, as shm_slot_generation. */
static inline uint32_t shm_slot_generation_of(const shm_instance_t *in)
{
    return __atomic_load_n(&in->generation, __ATOMIC_ACQUIRE);
}
/* "Same slot, same generation": the instance a request remembered as (slot, gen) is still the one
 * in the slot, i.e. it has not been freed and reused. True for as long as the caller holds one of
 * the slot's load counters (shm_dp_inc), since a counted slot is never collected; without one it
 * is a snapshot that may be stale the moment it returns. */
static inline bool shm_slot_same_generation(const shm_instance_t *in, uint32_t gen)
{
    return shm_slot_generation_of(in) == gen;
}
/* A slot whose identity the caller reads OUTSIDE a read-side section: allowed only while it holds
 * one of the slot's load counters (shm_dp_inc for generation `gen`, not yet given back with
 * shm_dp_dec). That counter is what pins the slot: shm_slot_collect never frees a slot a DP row
 * counts, so it cannot be cleared and reused meanwhile, and its identity stays readable until the
 * counter is released. NULL if the slot does not hold `gen` (then the caller holds no counter of
 * it and must not read it). */
static inline const shm_instance_t *shm_slot_pinned(const shm_seg_t *s, unsigned slot, uint32_t gen)
{
    const shm_instance_t *in = shm_instance(s, slot);
    return shm_slot_same_generation(in, gen) ? in : NULL;
}
/* The slot is still the instance identified by (gen, url) and LIVE: the check a job that started
 * on an instance makes before it writes its result (instance.c). */
bool shm_slot_still(const shm_seg_t *s, unsigned slot, uint32_t gen, const char *url);
/* Name of a slot state: "free" / "live" / "retired" ("invalid" otherwise), for status views. */
const char *shm_slot_state_name(uint32_t state);
/* LIVE, HEALTHY and not drained: what a view lists (of its role). Acquire loads, so it can also
 * be asked of a private copy (shm_slot_copy). */
bool shm_slot_selectable(const shm_instance_t *in);
/* Slots LIVE and RETIRED now (each read once, not a snapshot of the table). */
void shm_slot_counts(const shm_seg_t *s, unsigned *live, unsigned *retired);
/*
 * Copy slot `slot` whole into process memory (word by word, relaxed) if it is LIVE or RETIRED,
 * validated like a seqlock: generation and state read before and after the copy (acquire fence
 * between), false if either moved or the slot is FREE. For readers that scan the slot table
 * rather than a view (fdctl): a RETIRED slot may be collected while they read it. The seqcount-
 * protected parts (metrics, models) must still be read from the segment with their own
 * functions (shm_metrics_load, shm_models_load), which retry on a torn read.
 */
bool shm_slot_copy(const shm_seg_t *s, unsigned slot, shm_instance_t *out);

/* Health (shm_health_t): CP writes, anyone reads. Release/acquire: a reader that sees a new
 * health also sees the probe's fields the CP wrote before it. */
static inline uint32_t shm_slot_health(const shm_instance_t *in)
{
    return __atomic_load_n(&in->health, __ATOMIC_ACQUIRE);
}
static inline void shm_slot_health_set(shm_instance_t *in, uint32_t health)
{
    __atomic_store_n(&in->health, health, __ATOMIC_RELEASE);
}
/* Operator drain flag (CP writes; the next publication applies it). Release/acquire, as health. */
static inline bool shm_slot_drained(const shm_instance_t *in)
{
    return __atomic_load_n(&in->drained, __ATOMIC_ACQUIRE) != 0;
}
static inline void shm_slot_drained_set(shm_instance_t *in, bool drained)
{
    __atomic_store_n(&in->drained, (uint32_t)drained, __ATOMIC_RELEASE);
}
/* registry.backend: etcd: how many of the fleet's router hosts judge the instance healthy or
 * unhealthy by their own probes (this host included); hosts = this host plus every other host
 * known to have published a verdict on any instance. CP writes
 * (controlplane/etcd.c), /registered and fdctl read. One relaxed 64-bit word: the three counts
 * are always of one moment, and they order nothing else. hosts == 0: no fleet view (the local
 * backend, or no verdict yet). */
typedef struct {
    uint16_t healthy, unhealthy, hosts;
} shm_fleet_health_t;
static inline shm_fleet_health_t shm_slot_fleet_health(const shm_instance_t *in)
{
    uint64_t w = __atomic_load_n(&in->fleet_health, __ATOMIC_RELAXED);
    return (shm_fleet_health_t){(uint16_t)w, (uint16_t)(w >> 16), (uint16_t)(w >> 32)};
}
static inline void shm_slot_fleet_health_set(shm_instance_t *in, shm_fleet_health_t f)
{
    uint64_t w = (uint64_t)f.healthy | (uint64_t)f.unhealthy << 16 | (uint64_t)f.hosts << 32;
    __atomic_store_n(&in->fleet_health, w, __ATOMIC_RELAXED);
}
/* CP, writer lock held: a LIVE slot's new role (release: the metadata rewritten before it is
 * visible to whoever reads the role; the next publication moves the slot between views). */
static inline void shm_slot_role_set(shm_instance_t *in, uint32_t role)
{
    __atomic_store_n(&in->role, role, __ATOMIC_RELEASE);
}
/* Last /register heartbeat (wall clock ms). Relaxed: a timestamp that orders nothing. */
static inline uint64_t shm_slot_last_register_ms(const shm_instance_t *in)
{
    return __atomic_load_n(&in->last_register_ms, __ATOMIC_RELAXED);
}
static inline void shm_slot_heartbeat(shm_instance_t *in, uint64_t now_ms)
{
    __atomic_store_n(&in->last_register_ms, now_ms, __ATOMIC_RELAXED);
}

/* Status-code bucket b (< SHM_STATUS_BUCKETS) of an instance: its count, and its code in *code
 * (0 = unused). The code is loaded with acquire, pairing with the claim in shm_count_status, so a
 * bucket's code is never read as unset once its count was seen; the count is relaxed. */
static inline uint64_t shm_status_load(const shm_instance_t *in, unsigned b, uint32_t *code)
{
    *code = __atomic_load_n(&in->status[b].code, __ATOMIC_ACQUIRE);
    return __atomic_load_n(&in->status[b].count, __ATOMIC_RELAXED);
}

/* Latency histograms of an instance (layout.h: SHM_LAT_BUCKETS, SHM_ROUTES). Every DP adds with
 * relaxed atomics, readers sum with relaxed loads: counters that order nothing. */
typedef enum { SHM_LAT_TTFB = 0, SHM_LAT_TOTAL = 1 } shm_lat_t;
static inline uint64_t *shm_lat_hist_(const shm_instance_t *in, shm_lat_t kind, unsigned route)
{
    return (uint64_t *)(kind == SHM_LAT_TTFB ? in->ttfb_hist[route] : in->total_hist[route]);
}
static inline uint64_t *shm_lat_sum_(const shm_instance_t *in, shm_lat_t kind, unsigned route)
{
    return (uint64_t *)(kind == SHM_LAT_TTFB ? &in->ttfb_sum_ms[route] : &in->total_sum_ms[route]);
}
/* Count one latency of `ms` in bucket `bucket` of route `route`. */
static inline void shm_lat_add(shm_instance_t *in, shm_lat_t kind, unsigned route, unsigned bucket,
                               uint64_t ms)
{
    __atomic_add_fetch(&shm_lat_hist_(in, kind, route)[bucket], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(shm_lat_sum_(in, kind, route), ms, __ATOMIC_RELAXED);
}
static inline uint64_t shm_lat_bucket(const shm_instance_t *in, shm_lat_t kind, unsigned route,
                                      unsigned bucket)
{
    return __atomic_load_n(&shm_lat_hist_(in, kind, route)[bucket], __ATOMIC_RELAXED);
}
static inline uint64_t shm_lat_sum_ms(const shm_instance_t *in, shm_lat_t kind, unsigned route)
{
    return __atomic_load_n(shm_lat_sum_(in, kind, route), __ATOMIC_RELAXED);
}

/* DP rows. pid, start time and state are published by shm_dp_claim with release stores (the row
 * is valid once its pid is seen): acquire loads. The rest are counters and stamps: relaxed. */
static inline int32_t shm_dp_row_pid(const shm_dp_row_t *r)
{
    return __atomic_load_n(&r->pid, __ATOMIC_ACQUIRE);
}
static inline uint64_t shm_dp_row_start_time(const shm_dp_row_t *r)
{
    return __atomic_load_n(&r->start_time, __ATOMIC_ACQUIRE);
}
static inline uint32_t shm_dp_row_state(const shm_dp_row_t *r)
{
    return __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
}
static inline uint64_t shm_dp_row_started_at_ms(const shm_dp_row_t *r)
{
    return __atomic_load_n(&r->started_at_ms, __ATOMIC_RELAXED);
}
static inline uint64_t shm_dp_row_requests(const shm_dp_row_t *r)
{
    return __atomic_load_n(&r->requests_total, __ATOMIC_RELAXED);
}
static inline uint64_t shm_dp_row_version_hash(const shm_dp_row_t *r)
{
    return __atomic_load_n(&r->version_hash, __ATOMIC_RELAXED);
}
/* The DP owning `row`: its new SHM_DP_* state (release, like shm_dp_claim's), and one more
 * request counted (relaxed). */
static inline void shm_dp_row_state_set(shm_seg_t *s, int row, uint32_t state)
{
    __atomic_store_n(&shm_dp_row(s, (unsigned)row)->state, state, __ATOMIC_RELEASE);
}
static inline void shm_dp_count_request(shm_seg_t *s, int row)
{
    __atomic_add_fetch(&shm_dp_row(s, (unsigned)row)->requests_total, 1, __ATOMIC_RELAXED);
}

/* The control plane that owns the segment. shm_cp_claim writes its start time, start stamp,
 * port and first heartbeat, then its pid with a release store (segment.c); shm_cp_pid loads it
 * with acquire, so a reader that sees the pid sees the rest (shm_cp_start_time after it).
 * shm_cp_release gives the segment up only if `pid` still owns it (compare-exchange, release:
 * nothing the old owner wrote is lost to the next). */
static inline int32_t shm_cp_pid(const shm_seg_t *s)
{
    return __atomic_load_n(&s->hdr->cp_pid, __ATOMIC_ACQUIRE);
}
static inline uint64_t shm_cp_start_time(const shm_seg_t *s)
{
    return __atomic_load_n(&s->hdr->cp_start_time, __ATOMIC_RELAXED);
}
void shm_cp_claim(shm_seg_t *s, int32_t pid, uint64_t start_time, uint64_t started_at_ms, unsigned port);
bool shm_cp_release(shm_seg_t *s, int32_t pid);
/* CP timer tick: the fail-static clock. Release/acquire (the order its users chose). */
static inline void shm_cp_heartbeat(shm_seg_t *s, uint64_t now_ms)
{
    __atomic_store_n(&s->hdr->cp_heartbeat_ms, now_ms, __ATOMIC_RELEASE);
}
static inline uint64_t shm_cp_heartbeat_ms(const shm_seg_t *s)
{
    return __atomic_load_n(&s->hdr->cp_heartbeat_ms, __ATOMIC_ACQUIRE);
}
/* The control plane's verdict on who else sends to the instances (shm_fleet_t), one word the DP
 * reads per placement decision. Relaxed: it orders nothing, and a decision made a moment before
 * the verdict changed is as good as one made after. */
static inline void shm_fleet_set(shm_seg_t *s, shm_fleet_t f)
{
    __atomic_store_n(&s->hdr->fleet, (uint32_t)f, __ATOMIC_RELAXED);
}
static inline shm_fleet_t shm_fleet(const shm_seg_t *s)
{
    uint32_t f = __atomic_load_n(&s->hdr->fleet, __ATOMIC_RELAXED);
    return f <= SHM_FLEET_SHARED ? (shm_fleet_t)f : SHM_FLEET_UNKNOWN; /* the segment is hostile too */
}
/* The verdict's name in logs, GET /metrics labels and fdctl: unknown, alone, shared. */
static inline const char *shm_fleet_name(shm_fleet_t f)
{
    return f == SHM_FLEET_SHARED ? "shared" : f == SHM_FLEET_ALONE ? "alone" : "unknown";
}
/* What a status view shows of the header, each field read once with the accessor or order above
 * (the rest relaxed: stamps and counters the CP writes; not one consistent snapshot). */
typedef struct {
    int32_t cp_pid;
    uint32_t listen_port;
    uint64_t cp_start_time, cp_started_at_ms, cp_heartbeat_ms, table_updated_ms;
    uint64_t size;
    uint32_t layout_version;
    int32_t wlock_owner; /* shm_wlock_owner */
    uint64_t arena_blocks, arena_used, wlock_recovered;
} shm_header_info_t;
void shm_header_info(const shm_seg_t *s, shm_header_info_t *out);
/* When the views were last published (shm_publish_views stamps it). Acquire. */
static inline uint64_t shm_table_updated_ms(const shm_seg_t *s)
{
    return __atomic_load_n(&s->hdr->table_updated_ms, __ATOMIC_ACQUIRE);
}

/* ---- instance slots (instance.c); writer lock held for the mutating ones ---- */

int shm_slot_find(const shm_seg_t *s, const char *url); /* LIVE slot with that URL, or -1 */
/* A slot's generation and state as readers see them (acquire: the identity written before either
 * was stored is visible after it). */
static inline uint32_t shm_slot_generation(const shm_seg_t *s, unsigned slot)
{
    return shm_slot_generation_of(shm_instance(s, slot));
}
static inline uint32_t shm_slot_state(const shm_seg_t *s, unsigned slot)
{
    return shm_slot_state_of(shm_instance(s, slot));
}
/* Per-instance counters any process adds to: upstream attempts that failed before a head, and
 * answers that broke HTTP/1.1. */
static inline void shm_count_failure(shm_instance_t *in)
{
    __atomic_add_fetch(&in->failures_total, 1, __ATOMIC_RELAXED);
}
static inline void shm_count_protocol_error(shm_instance_t *in)
{
    __atomic_add_fetch(&in->protocol_errors_total, 1, __ATOMIC_RELAXED);
}
/* Their totals (relaxed, like the adds: counters that order nothing). */
static inline uint64_t shm_failures_total(const shm_instance_t *in)
{
    return __atomic_load_n(&in->failures_total, __ATOMIC_RELAXED);
}
static inline uint64_t shm_protocol_errors_total(const shm_instance_t *in)
{
    return __atomic_load_n(&in->protocol_errors_total, __ATOMIC_RELAXED);
}
/* A role's shared turn cursor (round_robin's turns, the tie rotation of the other policies):
 * take one turn, or read the next without taking it. */
static inline uint64_t shm_role_turn_take(shm_seg_t *s, unsigned role)
{
    return __atomic_fetch_add(&s->hdr->rr_cursor[role], 1, __ATOMIC_RELAXED);
}
static inline uint64_t shm_role_turn_peek(const shm_seg_t *s, unsigned role)
{
    return __atomic_load_n(&s->hdr->rr_cursor[role], __ATOMIC_RELAXED);
}

/* shm_instance_t.url_hash of a URL: XXH3-64 of its bytes, the same in every router. */
uint64_t shm_url_hash(const char url[SHM_URL_LEN]);
/* A FREE slot, cleared except its generation (its cache inflow starts at the live slots' mean),
 * or -1 when full. The caller writes the identity,
 * then stores state LIVE (release) and republishes. */
int shm_slot_alloc(shm_seg_t *s);
/* LIVE -> RETIRED (caller republishes the views). */
void shm_slot_retire(shm_seg_t *s, unsigned slot, uint64_t now_ms);
/* RETIRED slots whose counts are all zero, that a publication has dropped from the views and
 * whose grace period (for that publication) has passed become FREE with generation + 1;
 * returns how many. */
int shm_slot_collect(shm_seg_t *s);

/* Store a scrape of slot's /metrics, with this router's in-flight count for it at that moment (so
 * a reader can add what it sent since: shm_remote_metrics_t.local_inflight). */
void shm_metrics_store(shm_seg_t *s, unsigned slot, double running, double waiting, double free_blocks,
                       uint64_t at_ms);
/* The last scrape failed: shm_metrics_load returns false until the next store. */
void shm_metrics_invalidate(shm_instance_t *in);
/* Returns false if no valid metrics (never scraped, or the scrape failed). */
bool shm_metrics_load(const shm_instance_t *in, shm_remote_metrics_t *out);
/* Count one proxied request by upstream status (0 = transport failure); bucket rules are in
 * layout.h (shm_status_bucket_t). */
void shm_count_status(shm_instance_t *in, unsigned code);

/* ---- models (models.c): CP writes, anyone reads without a lock ---- */

/* One model as an instance lists it, in process memory. */
typedef struct {
    char id[SHM_MODEL_ID_LEN];
    char owned_by[SHM_MODEL_OWNER_LEN];
    int64_t created;
} shm_model_info_t;

uint64_t shm_model_hash(const char *id, size_t len); /* never 0 */
/* CP: the instance serves these n (at most SHM_INSTANCE_MODELS) models. */
void shm_models_store(shm_instance_t *in, const shm_model_info_t *models, unsigned n, uint64_t at_ms);
/* CP: its models are not known (any more): it accepts every model. */
void shm_models_forget(shm_instance_t *in);
/* Copy up to max models; returns how many, or -1 when they are not known. */
int shm_models_load(const shm_instance_t *in, shm_model_info_t *out, unsigned max);
/* True if the instance serves model `id` (len bytes, hash = shm_model_hash), or if its models are
 * not known. Allocation-free, for the request path. */
bool shm_models_accepts(const shm_instance_t *in, uint64_t hash, const char *id, size_t len);
/* CP: rebuild hdr.models from the LIVE slots (written only when it changed). */
void shm_models_index_publish(shm_seg_t *s);
/* Copy the index; false when it stayed mid-write (treat as "nothing known"). */
bool shm_models_index_read(const shm_seg_t *s, shm_models_index_t *out);
bool shm_models_index_has(const shm_models_index_t *x, uint64_t hash);

/* ---- processes (proc.c) ---- */
uint64_t shm_proc_start_time(int pid); /* 0 if no such process */
/* False if the process is gone, a zombie, or its start time differs (pid reused); a start
 * time of 0 means "not recorded" and is not compared. */
bool shm_proc_alive(int pid, uint64_t start_time);
uint64_t shm_now_ms(void); /* CLOCK_REALTIME in ms */

#endif
