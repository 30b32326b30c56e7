/*
 * shm/counters.c - per-DP rows of load counters: claim, release, reaping of dead DPs,
 * generation-checked decrements and the sums the policies read.
 *
 * A DP process owns one row and is its only writer (all its threads, hence atomics), so load
 * accounting needs no lock and a crash leaks nothing: the CP releases the row of a dead DP
 * (found by pid + start time), which zeroes its counters. Claim and release race with each
 * other only through the pid field: a row is claimed by CAS 0 -> pid and released by CAS
 * pid -> SHM_PID_REAPING, cleared, then 0.
 *
 * The totals row (SHM_MAX_DPS) moves with every change of a DP row by the amount the row really
 * changed (a saturated decrement, a counter taken out by exchange when a row is cleared), so it
 * always equals the sum of the rows and the policies read one counter per slot, not one per DP.
 */
#include <unistd.h>

#include "shm/internal.h"

/* Subtract at most what is there: a counter saturates at 0 instead of wrapping. Returns what
 * was subtracted. */
static uint64_t sub_saturating(uint64_t *c, uint64_t v)
{
    uint64_t cur = __atomic_load_n(c, __ATOMIC_RELAXED);
    while (cur && !__atomic_compare_exchange_n(c, &cur, cur > v ? cur - v : 0, true, __ATOMIC_RELAXED,
                                               __ATOMIC_RELAXED))
        ;
    return cur > v ? v : cur;
}

static shm_dp_row_t *totals(const shm_seg_t *s)
{
    return shm_dp_row(s, SHM_MAX_DPS);
}

/* Clear a row, taking what it held out of the totals. */
static void zero_counters(const shm_seg_t *s, shm_dp_row_t *r)
{
    shm_dp_row_t *t = totals(s);
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        uint64_t n = __atomic_exchange_n(&r->inflight[i], 0, __ATOMIC_RELAXED);
        if (n)
            sub_saturating(&t->inflight[i], n);
        n = __atomic_exchange_n(&r->tokens[i], 0, __ATOMIC_RELAXED);
        if (n)
            sub_saturating(&t->tokens[i], n);
    }
}

static bool release_row(const shm_seg_t *s, shm_dp_row_t *r, int32_t pid)
{
    if (pid <= 0 || !__atomic_compare_exchange_n(&r->pid, &pid, SHM_PID_REAPING, false, __ATOMIC_ACQ_REL,
                                                 __ATOMIC_RELAXED))
        return false;
    zero_counters(s, r);
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
            release_row(s, r, pid))
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
        zero_counters(s, r);
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
    release_row(s, r, __atomic_load_n(&r->pid, __ATOMIC_ACQUIRE));
}

int shm_reap_dead(shm_seg_t *s)
{
    int n = reap_rows(s);
    shm_reader_reap_dead(s);
    return n;
}

void shm_dp_dec(shm_seg_t *s, int row, unsigned slot, uint32_t gen, bool release_request, uint64_t tokens)
{
    if (row < 0 || row >= SHM_MAX_DPS || slot >= SHM_MAX_INSTANCES)
        return;
    if (__atomic_load_n(&shm_instance(s, slot)->generation, __ATOMIC_ACQUIRE) != gen)
        return;
    shm_dp_row_t *r = shm_dp_row(s, (unsigned)row), *t = totals(s);
    if (release_request && sub_saturating(&r->inflight[slot], 1))
        sub_saturating(&t->inflight[slot], 1);
    uint64_t n = tokens ? sub_saturating(&r->tokens[slot], tokens) : 0;
    if (n)
        sub_saturating(&t->tokens[slot], n);
}

void shm_count_outcome(shm_seg_t *s, unsigned outcome)
{
    if (outcome < SHM_OUTCOMES)
        __atomic_add_fetch(&s->hdr->outcomes_total[outcome], 1, __ATOMIC_RELAXED);
}

uint64_t shm_outcome_total(const shm_seg_t *s, unsigned outcome)
{
    return outcome < SHM_OUTCOMES ? __atomic_load_n(&s->hdr->outcomes_total[outcome], __ATOMIC_RELAXED) : 0;
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
