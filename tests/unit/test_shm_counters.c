/*
 * tests/unit/test_shm_counters.c - per-DP rows and load counters; instance metrics and status
 * buckets.
 */
#include "test_shm_util.h"

TestSuite(counters, .init = seg_setup, .fini = seg_teardown, .timeout = 10.0);

Test(counters, inc_dec_and_sums_over_rows)
{
    int r1 = shm_dp_claim(&seg, getpid(), 0xabc);
    int r2 = shm_dp_claim(&seg, getpid(), 0xabc);
    cr_assert(r1 >= 0 && r2 >= 0 && r1 != r2);
    shm_dp_row_t *row = shm_dp_row(&seg, (unsigned)r1);
    cr_assert_eq(row->pid, getpid());
    cr_assert_eq(row->state, SHM_DP_STARTING);
    cr_assert_eq(row->version_hash, 0xabc);
    cr_assert_eq(row->start_time, shm_proc_start_time(getpid()));
    cr_assert_gt(row->started_at_ms, 0);

    uint32_t gen = shm_instance(&seg, 7)->generation;
    shm_dp_inc(&seg, r1, 7, 100);
    shm_dp_inc(&seg, r1, 7, 50);
    shm_dp_inc(&seg, r2, 7, 10);
    shm_dp_inc(&seg, r2, 8, 0);
    cr_assert_eq(shm_inflight(&seg, 7), 3);
    cr_assert_eq(shm_tokens(&seg, 7), 160);
    cr_assert_eq(shm_inflight(&seg, 8), 1);
    cr_assert_eq(shm_tokens(&seg, 8), 0);

    shm_dp_dec(&seg, r1, 7, gen, false, 100); /* tokens released early, request still running */
    cr_assert_eq(shm_inflight(&seg, 7), 3);
    cr_assert_eq(shm_tokens(&seg, 7), 60);
    shm_dp_dec(&seg, r1, 7, gen, true, 50);
    cr_assert_eq(shm_inflight(&seg, 7), 2);
    cr_assert_eq(shm_tokens(&seg, 7), 10);

    shm_dp_release(&seg, r2);
    cr_assert_eq(shm_dp_row(&seg, (unsigned)r2)->pid, 0);
    cr_assert_eq(shm_inflight(&seg, 7), 1, "a released row no longer counts");
    cr_assert_eq(shm_inflight(&seg, 8), 0);
    cr_assert_eq(shm_dp_claim(&seg, getpid(), 0), r2);
    cr_assert_eq(shm_dp_row(&seg, (unsigned)r2)->inflight[7], 0, "a reclaimed row starts at zero");
}

Test(counters, stale_generation_is_ignored)
{
    int row = shm_dp_claim(&seg, getpid(), 0);
    uint32_t gen = shm_instance(&seg, 3)->generation;
    shm_dp_inc(&seg, row, 3, 5);
    __atomic_add_fetch(&shm_instance(&seg, 3)->generation, 1, __ATOMIC_RELEASE);
    shm_dp_dec(&seg, row, 3, gen, true, 5);
    cr_assert_eq(shm_inflight(&seg, 3), 1);
    cr_assert_eq(shm_tokens(&seg, 3), 5);
    shm_dp_dec(&seg, row, 3, gen + 1, true, 5);
    cr_assert_eq(shm_inflight(&seg, 3), 0);
    cr_assert_eq(shm_tokens(&seg, 3), 0);
}

Test(counters, counters_never_wrap_below_zero)
{
    int row = shm_dp_claim(&seg, getpid(), 0);
    uint32_t gen = shm_instance(&seg, 2)->generation;
    shm_dp_dec(&seg, row, 2, gen, true, 10);
    cr_assert_eq(shm_inflight(&seg, 2), 0);
    cr_assert_eq(shm_tokens(&seg, 2), 0);
    shm_dp_inc(&seg, row, 2, 4);
    shm_dp_dec(&seg, row, 2, gen, true, 10);
    shm_dp_dec(&seg, row, 2, gen, true, 0);
    cr_assert_eq(shm_inflight(&seg, 2), 0);
    cr_assert_eq(shm_tokens(&seg, 2), 0);
    shm_dp_dec(&seg, -1, 2, gen, true, 1);
    shm_dp_dec(&seg, row, SHM_MAX_INSTANCES, gen, true, 1);
    cr_assert_eq(shm_inflight(&seg, SHM_MAX_INSTANCES), 0);
}

Test(counters, rows_run_out_and_dead_rows_are_reaped_on_claim)
{
    for (int i = 0; i < SHM_MAX_DPS; i++)
        cr_assert_eq(shm_dp_claim(&seg, getpid(), 0), i);
    cr_assert_eq(shm_dp_claim(&seg, getpid(), 0), -1);
    cr_assert_eq(shm_dp_claim(&seg, 0, 0), -1);

    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    shm_dp_row_t *r = shm_dp_row(&seg, 4);
    r->pid = pid; /* row 4 now belongs to a dead DP with load */
    r->start_time = 1;
    for (int k = 0; k < 3; k++)
        shm_dp_inc(&seg, 4, 9, 5);
    cr_assert_eq(shm_inflight(&seg, 9), 3);
    cr_assert_eq(shm_dp_claim(&seg, getpid(), 0), 4);
    cr_assert_eq(shm_inflight(&seg, 9), 0);
    cr_assert_eq(shm_tokens(&seg, 9), 0, "the dead row's tokens leave the totals too");
}

typedef struct {
    int row;
    int rounds;
} churn_t;

/* one DP thread: take and release load on a few slots; leaves 1 request and 3 tokens per slot */
static void *churn(void *arg)
{
    const churn_t *c = arg;
    for (int k = 0; k < c->rounds; k++) {
        unsigned slot = (unsigned)(k % 4);
        shm_dp_inc(&seg, c->row, slot, 3);
        if (k + 4 < c->rounds)
            shm_dp_dec(&seg, c->row, slot, shm_instance(&seg, slot)->generation, true, 3);
    }
    return NULL;
}

Test(counters, totals_equal_the_sum_of_rows_under_concurrent_updates)
{
    int r1 = shm_dp_claim(&seg, getpid(), 0), r2 = shm_dp_claim(&seg, getpid(), 0);
    churn_t c[4] = {{r1, 20000}, {r1, 20000}, {r2, 20000}, {r2, 20000}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, churn, &c[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (unsigned slot = 0; slot < 4; slot++) {
        uint64_t rows =
            shm_dp_row(&seg, (unsigned)r1)->inflight[slot] + shm_dp_row(&seg, (unsigned)r2)->inflight[slot];
        cr_assert_eq(rows, 4, "each thread left one request on slot %u", slot);
        cr_assert_eq(shm_inflight(&seg, slot), rows);
        cr_assert_eq(shm_tokens(&seg, slot), 12);
    }
    shm_dp_release(&seg, r1);
    for (unsigned slot = 0; slot < 4; slot++) {
        cr_assert_eq(shm_inflight(&seg, slot), 2, "a released row leaves the totals");
        cr_assert_eq(shm_tokens(&seg, slot), 6);
    }
}

TestSuite(metrics, .init = seg_setup, .fini = seg_teardown, .timeout = 10.0);

Test(metrics, store_load_invalidate)
{
    shm_instance_t *in = shm_instance(&seg, 0);
    shm_remote_metrics_t m;
    cr_assert_not(shm_metrics_load(in, &m), "never scraped");
    shm_metrics_store(&seg, 0, 3, 4.5, 1000, 777);
    cr_assert(shm_metrics_load(in, &m));
    cr_assert(m.running == 3 && m.waiting == 4.5 && m.free_blocks == 1000);
    cr_assert_eq(m.at_ms, 777);
    cr_assert_eq(m.seq % 2, 0);
    shm_metrics_invalidate(in);
    cr_assert_not(shm_metrics_load(in, &m));
    shm_metrics_store(&seg, 0, 1, 2, 3, 778);
    cr_assert(shm_metrics_load(in, &m));
    cr_assert_eq(m.at_ms, 778);
}

Test(metrics, writer_dead_mid_write_is_not_read_then_recovers)
{
    shm_instance_t *in = shm_instance(&seg, 0);
    shm_remote_metrics_t m;
    shm_metrics_store(&seg, 0, 1, 1, 1, 1);
    in->metrics.seq++; /* a CP died inside a store */
    cr_assert_not(shm_metrics_load(in, &m));
    shm_metrics_store(&seg, 0, 2, 2, 2, 2);
    cr_assert(shm_metrics_load(in, &m));
    cr_assert_eq(m.at_ms, 2);
}

static uint64_t bucket(const shm_instance_t *in, uint32_t code)
{
    for (int i = 0; i < SHM_STATUS_BUCKETS; i++)
        if (in->status[i].code == code)
            return in->status[i].count;
    return 0;
}

Test(metrics, status_buckets_with_transport_and_overflow)
{
    shm_instance_t *in = shm_instance(&seg, 0);
    shm_count_status(in, 200);
    shm_count_status(in, 200);
    shm_count_status(in, 0);
    cr_assert_eq(bucket(in, 200), 2);
    cr_assert_eq(bucket(in, SHM_STATUS_TRANSPORT), 1);
    unsigned codes[] = {400, 404, 429, 500, 502}; /* fills the 7 ordinary buckets */
    for (unsigned i = 0; i < 5; i++)
        shm_count_status(in, codes[i]);
    shm_count_status(in, 503); /* no bucket left */
    shm_count_status(in, 504);
    shm_count_status(in, 599);
    cr_assert_eq(bucket(in, 503), 0);
    cr_assert_eq(in->status[SHM_STATUS_BUCKETS - 1].code, SHM_STATUS_OTHER);
    cr_assert_eq(bucket(in, SHM_STATUS_OTHER), 3);
    shm_count_status(in, 404);
    cr_assert_eq(bucket(in, 404), 2);
}

Test(metrics, status_counts_from_two_processes_add_up)
{
    shm_instance_t *in = shm_instance(&seg, 0);
    enum { N = 20000 };
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        shm_seg_t dp;
        if (shm_attach(&dp, seg_name, NULL, 0) < 0)
            _exit(2);
        for (int i = 0; i < N; i++)
            shm_count_status(shm_instance(&dp, 0), 200 + (unsigned)(i % 4));
        _exit(0);
    }
    for (int i = 0; i < N; i++)
        shm_count_status(in, 203 - (unsigned)(i % 4));
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (unsigned c = 200; c < 204; c++)
        cr_assert_eq(bucket(in, c), N / 2, "code %u", c);
    unsigned used = 0;
    for (int i = 0; i < SHM_STATUS_BUCKETS; i++)
        used += in->status[i].code != 0;
    cr_assert_eq(used, 4, "each code claimed exactly one bucket");
}

Test(counters, outcome_totals_outlive_dp_rows)
{
    int r = shm_dp_claim(&seg, getpid(), 1);
    cr_assert(r >= 0);
    shm_count_outcome(&seg, 0);
    shm_count_outcome(&seg, 0);
    shm_count_outcome(&seg, 3);
    shm_count_outcome(&seg, SHM_OUTCOMES); /* out of range: ignored */
    shm_dp_release(&seg, r);
    r = shm_dp_claim(&seg, getpid(), 2); /* the next data plane starts from the same totals */
    cr_assert(r >= 0);
    shm_count_outcome(&seg, 0);
    cr_assert_eq(shm_outcome_total(&seg, 0), 3);
    cr_assert_eq(shm_outcome_total(&seg, 3), 1);
    cr_assert_eq(shm_outcome_total(&seg, 1), 0);
    cr_assert_eq(shm_outcome_total(&seg, SHM_OUTCOMES), 0);
}

/* shm_loads_min + shm_loads_nth against the definition: the members holding the smallest total,
 * in ascending slot order, for sets of 1 to 1,024 members (both sides of the vector variant's
 * threshold), sparse and dense words, many ties, totals on both sides of 2^63 (the vector
 * variant compares biased values), requests and tokens. */
static void check_loads_min(void)
{
    shm_dp_row_t *total = shm_dp_row(&seg, SHM_MAX_DPS);
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    static const size_t lens[] = {1, 2, 3, 5, 63, 64, 65, 127, 128, 129, 300, 1023, 1024};
    static const uint64_t bases[] = {0, 7, (uint64_t)1 << 63, ((uint64_t)1 << 63) - 2, UINT64_MAX - 3};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (int round = 0; round < 20; round++) {
            size_t n = lens[li];
            unsigned spread = round % 4 + 1; /* 1: every member tied */
            uint64_t base = bases[round % 5];
            shm_slotset_t set = {{0}};
            for (size_t i = 0; i < n; i++) {
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                /* round 0..9: a stride over every word; 10..14: the lowest slots, dense words;
                 * 15..19: the highest slots (the last words only, down from word 15) */
                unsigned s = round < 10   ? (unsigned)((i * 7 + (size_t)round) % SHM_MAX_INSTANCES)
                             : round < 15 ? (unsigned)i
                                          : (unsigned)(SHM_MAX_INSTANCES - 1 - i);
                set.w[s / 64] |= (uint64_t)1 << (s % 64);
            }
            for (unsigned s = 0; s < SHM_MAX_INSTANCES; s++) {
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                total->inflight[s] = base + rng % spread;
                total->tokens[s] = base + (rng >> 8) % (spread * 3);
            }
            for (int tok = 0; tok < 2; tok++) {
                const uint64_t *a = tok ? total->tokens : total->inflight;
                uint64_t min = UINT64_MAX;
                for (unsigned s = 0; s < SHM_MAX_INSTANCES; s++)
                    if (set.w[s / 64] >> (s % 64) & 1)
                        min = a[s] < min ? a[s] : min;
                shm_loads_tied_t t;
                cr_assert_eq(shm_loads_min(&seg, &set, tok, &t), min, "n %zu, round %d", n, round);
                size_t k = 0;
                for (unsigned s = 0; s < SHM_MAX_INSTANCES; s++) {
                    if (!(set.w[s / 64] >> (s % 64) & 1) || a[s] != min)
                        continue;
                    cr_assert_lt(k, t.count, "n %zu: too few tied", n);
                    cr_assert_eq(shm_loads_nth(&t, k), s, "n %zu, tie %zu: %u, not %u", n, k,
                                 shm_loads_nth(&t, k), s);
                    k++;
                }
                cr_assert_eq(t.count, k, "n %zu: %zu tied, not %zu", n, t.count, k);
            }
        }
    shm_slotset_t none = {{0}};
    shm_loads_tied_t t;
    cr_assert_eq(shm_loads_min(&seg, &none, false, &t), UINT64_MAX);
    cr_assert_eq(t.count, 0);
}

Test(counters, loads_min_lists_every_tie_in_slot_order)
{
    check_loads_min();
}

/* The same with the vector variant ruled out (each test runs in its own process). */
Test(counters, loads_min_baseline_variant_lists_every_tie_in_slot_order)
{
    setenv("FD_LOADS_NO_AVX2", "1", 1);
    check_loads_min();
}
