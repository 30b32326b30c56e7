/*
 * shm/instance.c - instance slots: lookup, allocation, retirement and collection, remote
 * metrics (seqcount) and per-status request counts.
 *
 * Slot life: FREE -> (identity written) LIVE -> RETIRED -> FREE with generation + 1. A slot is
 * collected only when (1) a publication has dropped it from every view and a grace period for
 * that publication has passed, so no reader can still pick it, and (2) no live DP row counts
 * it, so no in-flight request can decrement a reused slot (the generation check then discards
 * any late decrement). The CP is the only writer of the slot table; DPs write only the status
 * counts (atomics).
 */
#include <stddef.h>
#include <string.h>

#include "shm/internal.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define METRICS_READ_TRIES 64

uint64_t shm_url_hash(const char url[SHM_URL_LEN])
{
    return XXH3_64bits(url, strnlen(url, SHM_URL_LEN));
}

int shm_slot_find(const shm_seg_t *s, const char *url)
{
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        const shm_instance_t *in = shm_instance(s, i);
        if (shm_slot_is_live(in) && strncmp(in->url, url, SHM_URL_LEN) == 0)
            return (int)i;
    }
    return -1;
}

bool shm_slot_still(const shm_seg_t *s, unsigned slot, uint32_t gen, const char *url)
{
    const shm_instance_t *in = shm_instance(s, slot);
    return shm_slot_is_live(in) && shm_slot_same_generation(in, gen) &&
           strncmp(in->url, url, SHM_URL_LEN) == 0;
}

const char *shm_slot_state_name(uint32_t state)
{
    switch (state) {
    case SHM_SLOT_FREE:
        return "free";
    case SHM_SLOT_LIVE:
        return "live";
    case SHM_SLOT_RETIRED:
        return "retired";
    default:
        return "invalid";
    }
}

bool shm_slot_selectable(const shm_instance_t *in)
{
    return shm_slot_is_live(in) && shm_slot_health(in) == SHM_HEALTH_HEALTHY && !shm_slot_drained(in);
}

void shm_slot_counts(const shm_seg_t *s, unsigned *live, unsigned *retired)
{
    *live = *retired = 0;
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        uint32_t st = shm_slot_state(s, i);
        *live += st == SHM_SLOT_LIVE;
        *retired += st == SHM_SLOT_RETIRED;
    }
}

/* A slot is a whole number of 8-byte words (it is cache-line aligned), so it can be copied with
 * one relaxed load per word: no torn word, and no data race on what the CP and DPs store. */
_Static_assert(sizeof(shm_instance_t) % sizeof(uint64_t) == 0, "slot copied by words");
_Static_assert(offsetof(shm_instance_t, cache_inflow) + sizeof(uint64_t) <= SHM_CACHELINE &&
                   offsetof(shm_instance_t, url_hash) + sizeof(uint64_t) <= SHM_CACHELINE,
               "what cache_aware reads per candidate shares the generation's cache line");

bool shm_slot_copy(const shm_seg_t *s, unsigned slot, shm_instance_t *out)
{
    const shm_instance_t *in = shm_instance(s, slot);
    uint32_t gen = shm_slot_generation_of(in), state = shm_slot_state_of(in);
    if (state != SHM_SLOT_LIVE && state != SHM_SLOT_RETIRED)
        return false;
    const uint64_t *src = (const uint64_t *)in;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof *in / sizeof *src; i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return shm_slot_generation_of(in) == gen && shm_slot_state_of(in) == state;
}

/* Everything after generation and state: identity, health, metrics, counts. */
static void clear_slot(shm_instance_t *in)
{
    const size_t from = offsetof(shm_instance_t, role);
    memset((char *)in + from, 0, sizeof *in - from);
}

/* The mean cache inflow of the live instances: where a new instance's starts, so that the
 * content bound of cache_aware treats it as average rather than as owed the whole history. */
static uint64_t mean_inflow(const shm_seg_t *s)
{
    uint64_t sum = 0, n = 0;
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++)
        if (shm_slot_is_live(shm_instance(s, i)))
            sum += shm_cache_inflow(s, i), n++;
    return n ? sum / n : 0;
}

int shm_slot_alloc(shm_seg_t *s)
{
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        shm_instance_t *in = shm_instance(s, i);
        if (shm_slot_state_of(in) == SHM_SLOT_FREE) {
            uint64_t inflow = mean_inflow(s);
            clear_slot(in);
            in->cache_inflow = inflow;
            return (int)i;
        }
    }
    return -1;
}

void shm_slot_retire(shm_seg_t *s, unsigned slot, uint64_t now_ms)
{
    if (slot >= SHM_MAX_INSTANCES)
        return;
    shm_instance_t *in = shm_instance(s, slot);
    if (!shm_slot_is_live(in))
        return;
    in->retired_at_ms = now_ms;
    in->gone_epoch = 0;
    __atomic_store_n(&in->state, SHM_SLOT_RETIRED, __ATOMIC_RELEASE);
}

static bool collectable(shm_seg_t *s, unsigned slot)
{
    const shm_instance_t *in = shm_instance(s, slot);
    return shm_slot_state_of(in) == SHM_SLOT_RETIRED && in->gone_epoch != 0 && shm_inflight(s, slot) == 0 &&
           shm_tokens(s, slot) == 0 && shm_grace_passed(s, in->gone_epoch);
}

int shm_slot_collect(shm_seg_t *s)
{
    int n = 0;
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        if (!collectable(s, i))
            continue;
        shm_instance_t *in = shm_instance(s, i);
        __atomic_add_fetch(&in->generation, 1, __ATOMIC_RELEASE);
        clear_slot(in);
        __atomic_store_n(&in->state, SHM_SLOT_FREE, __ATOMIC_RELEASE);
        n++;
    }
    return n;
}

/* Seqcount write side; "| 1" keeps the count odd if a previous writer died mid-write. */
static uint32_t metrics_begin(shm_remote_metrics_t *m)
{
    uint32_t seq = __atomic_load_n(&m->seq, __ATOMIC_RELAXED) | 1u;
    __atomic_store_n(&m->seq, seq, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return seq;
}

void shm_metrics_store(shm_seg_t *s, unsigned slot, double running, double waiting, double free_blocks,
                       uint64_t at_ms)
{
    shm_remote_metrics_t *m = &shm_instance(s, slot)->metrics;
    uint32_t seq = metrics_begin(m);
    m->local_inflight = shm_inflight(s, slot);
    m->running = running;
    m->waiting = waiting;
    m->free_blocks = free_blocks;
    m->at_ms = at_ms;
    m->valid = 1;
    __atomic_store_n(&m->seq, seq + 1, __ATOMIC_RELEASE);
}

void shm_metrics_invalidate(shm_instance_t *in)
{
    shm_remote_metrics_t *m = &in->metrics;
    uint32_t seq = metrics_begin(m);
    m->valid = 0;
    __atomic_store_n(&m->seq, seq + 1, __ATOMIC_RELEASE);
}

bool shm_metrics_load(const shm_instance_t *in, shm_remote_metrics_t *out)
{
    const shm_remote_metrics_t *m = &in->metrics;
    for (int i = 0; i < METRICS_READ_TRIES; i++) {
        uint32_t before = __atomic_load_n(&m->seq, __ATOMIC_ACQUIRE);
        if (before & 1u)
            continue;
        shm_remote_metrics_t copy = *m;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&m->seq, __ATOMIC_RELAXED) != before)
            continue;
        copy.seq = before;
        *out = copy;
        return copy.valid != 0;
    }
    return false;
}

/* Add to the bucket holding `code`, claiming an unused one (CAS 0 -> code) if needed. */
static bool count_in_bucket(shm_status_bucket_t *b, uint32_t code)
{
    uint32_t cur = __atomic_load_n(&b->code, __ATOMIC_ACQUIRE);
    if (cur == 0 &&
        __atomic_compare_exchange_n(&b->code, &cur, code, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        cur = code;
    if (cur != code)
        return false;
    __atomic_add_fetch(&b->count, 1, __ATOMIC_RELAXED);
    return true;
}

void shm_count_status(shm_instance_t *in, unsigned code)
{
    uint32_t key = code == 0 ? SHM_STATUS_TRANSPORT : code;
    if (key != SHM_STATUS_OTHER)
        for (unsigned i = 0; i + 1 < SHM_STATUS_BUCKETS; i++)
            if (count_in_bucket(&in->status[i], key))
                return;
    count_in_bucket(&in->status[SHM_STATUS_BUCKETS - 1], SHM_STATUS_OTHER);
}
