/*
 * shm/counters.c - per-DP rows of load counters: claim, release, reaping of dead DPs,
 * generation-checked decrements and the sums the policies read.
 *
 * A DP process owns one row and is its only writer (all its threads, hence atomics), so load
 * accounting needs no lock and a crash leaks nothing: the CP releases the row of a dead DP
 * (found by pid + start time), which zeroes its counters. Claim and release race with each
 * other only through the pid field: a row is claimed by CAS 0 -> pid and released by CAS
 * pid -> SHM_PID_REAPING, cleared, then 0.
 */
#include <unistd.h>

#include "shm/internal.h"

static void zero_counters(shm_dp_row_t *r)
{
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        __atomic_store_n(&r->inflight[i], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&r->tokens[i], 0, __ATOMIC_RELAXED);
    }
}

static bool release_row(shm_dp_row_t *r, int32_t pid)
{
    if (pid <= 0 || !__atomic_compare_exchange_n(&r->pid, &pid, SHM_PID_REAPING, false, __ATOMIC_ACQ_REL,
                                                 __ATOMIC_RELAXED))
        return false;
    zero_counters(r);
    __atomic_store_n(&r->state, SHM_DP_FREE, __ATOMIC_RELAXED);
    __atomic_store_n(&r->start_time, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->started_at_ms, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->requests_total, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->version_hash, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->pid, 0, __ATOMIC_RELEASE);
    return true;
}

static int reap_rows(shm_seg_t *s)
{
    int n = 0;
    for (unsigned i = 0; i < SHM_MAX_DPS; i++) {
        shm_dp_row_t *r = shm_dp_row(s, i);
        int32_t pid = __atomic_load_n(&r->pid, __ATOMIC_ACQUIRE);
        if (pid > 0 && !shm_proc_alive(pid, __atomic_load_n(&r->start_time, __ATOMIC_ACQUIRE)) &&
            release_row(r, pid))
            n++;
    }
    return n;
}

int shm_dp_claim(shm_seg_t *s, int pid, uint64_t version_hash)
{
    if (pid <= 0)
        return -1;
    reap_rows(s);
    for (unsigned i = 0; i < SHM_MAX_DPS; i++) {
        shm_dp_row_t *r = shm_dp_row(s, i);
        int32_t expected = 0;
        if (__atomic_load_n(&r->pid, __ATOMIC_RELAXED) != 0 ||
            !__atomic_compare_exchange_n(&r->pid, &expected, pid, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            continue;
        zero_counters(r);
        __atomic_store_n(&r->requests_total, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&r->version_hash, version_hash, __ATOMIC_RELAXED);
        __atomic_store_n(&r->started_at_ms, shm_now_ms(), __ATOMIC_RELAXED);
        __atomic_store_n(&r->start_time, shm_proc_start_time(pid), __ATOMIC_RELEASE);
        __atomic_store_n(&r->state, SHM_DP_STARTING, __ATOMIC_RELEASE);
        return (int)i;
    }
    return -1;
}

void shm_dp_release(shm_seg_t *s, int row)
{
    if (row < 0 || row >= SHM_MAX_DPS)
        return;
    shm_dp_row_t *r = shm_dp_row(s, (unsigned)row);
    release_row(r, __atomic_load_n(&r->pid, __ATOMIC_ACQUIRE));
}

int shm_reap_dead(shm_seg_t *s)
{
    int n = reap_rows(s);
    shm_reader_reap_dead(s);
    return n;
}

/* Subtract at most what is there: a counter saturates at 0 instead of wrapping. */
static void sub_saturating(uint64_t *c, uint64_t v)
{
    uint64_t cur = __atomic_load_n(c, __ATOMIC_RELAXED);
    while (cur && !__atomic_compare_exchange_n(c, &cur, cur > v ? cur - v : 0, true, __ATOMIC_RELAXED,
                                               __ATOMIC_RELAXED))
        ;
}

void shm_dp_dec(shm_seg_t *s, int row, unsigned slot, uint32_t gen, bool release_request, uint64_t tokens)
{
    if (row < 0 || row >= SHM_MAX_DPS || slot >= SHM_MAX_INSTANCES)
        return;
    if (__atomic_load_n(&shm_instance(s, slot)->generation, __ATOMIC_ACQUIRE) != gen)
        return;
    shm_dp_row_t *r = shm_dp_row(s, (unsigned)row);
    if (release_request)
        sub_saturating(&r->inflight[slot], 1);
    if (tokens)
        sub_saturating(&r->tokens[slot], tokens);
}

static uint64_t sum_rows(const shm_seg_t *s, size_t counter_off, unsigned slot)
{
    uint64_t sum = 0;
    if (slot >= SHM_MAX_INSTANCES)
        return 0;
    for (unsigned i = 0; i < SHM_MAX_DPS; i++) {
        shm_dp_row_t *r = shm_dp_row(s, i);
        if (__atomic_load_n(&r->pid, __ATOMIC_ACQUIRE) <= 0)
            continue;
        uint64_t *c = (uint64_t *)((char *)r + counter_off) + slot;
        sum += __atomic_load_n(c, __ATOMIC_RELAXED);
    }
    return sum;
}

uint64_t shm_inflight(const shm_seg_t *s, unsigned slot)
{
    return sum_rows(s, offsetof(shm_dp_row_t, inflight), slot);
}

uint64_t shm_tokens(const shm_seg_t *s, unsigned slot)
{
    return sum_rows(s, offsetof(shm_dp_row_t, tokens), slot);
}

const char *shm_dp_state_name(uint32_t state)
{
    switch (state) {
    case SHM_DP_FREE:
        return "free";
    case SHM_DP_STARTING:
        return "starting";
    case SHM_DP_SERVING:
        return "serving";
    case SHM_DP_DRAINING:
        return "draining";
    default:
        return "invalid";
    }
}
