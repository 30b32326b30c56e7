/*
 * tests/unit/test_dp_remote_metrics.c - the fd_remote_metrics_score policy on a real
 * shared-memory segment: fresh remote metrics decide (running + waiting x waiting-weight, lowest
 * wins, first in URL order on a tie) whatever the local counters say; stale, invalidated and
 * never-polled metrics fall back, per candidate, to the local in-flight count. Also
 * remote_cache_aware, whose loads follow the same rule (seen through its dry run).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dataplane/policy/registry.h"
#include "tests/unit/test_dp_fixture.h"
#include "shm/radix.h"

#define N       3
#define MAX_AGE 5000u

static dp_fixture_t fx;
static uint16_t slots[N];
static uint64_t rng = 7;
static shm_config_t cfg;

static void setup(void)
{
    dp_fixture_open(&fx, "rms", slots, N, 8100);
    cfg.waiting_weight = 1;
    cfg.metrics_max_age_ms = MAX_AGE;
}

static void teardown(void)
{
    dp_fixture_close(&fx);
}

TestSuite(remote_metrics, .init = setup, .fini = teardown, .timeout = 10);

static size_t choose(void)
{
    pol_ctx_t c = {.seg = &fx.seg, .cfg = &cfg, .role = SHM_ROLE_MIXED, .slots = slots, .n = N, .rng = &rng};
    return pol_fd_remote_metrics_score_ops.select(&c);
}

static void local_load(int i, int requests)
{
    for (int k = 0; k < requests; k++)
        shm_dp_inc(&fx.seg, fx.row, slots[i], 0);
}

/* Metrics of candidate i polled `age_ms` ago (negative: in the future). */
static void remote(int i, double running, double waiting, int64_t age_ms)
{
    shm_metrics_store(&fx.seg, slots[i], running, waiting, 100, (uint64_t)((int64_t)shm_now_ms() - age_ms));
}

Test(remote_metrics, registered_under_its_name)
{
    const pol_t *p = pol_get(FD_POL_FD_REMOTE_METRICS_SCORE);
    cr_assert_eq(p->ops, &pol_fd_remote_metrics_score_ops);
    cr_assert_str_eq(p->name, "fd_remote_metrics_score");
    cr_assert(!pol_needs(p, POL_NEEDS_PROMPT));
}

Test(remote_metrics, fresh_metrics_decide_over_local_counters)
{
    /* locally candidate 0 is idle and 2 the busiest: request_num would pick 0 */
    local_load(1, 2);
    local_load(2, 5);
    remote(0, 4, 0, 0);
    remote(1, 1, 1, 100);
    remote(2, 3, 0, 200);
    cr_assert_eq(choose(), 1, "scores 4, 2, 3");
    cfg.waiting_weight = 10;
    cr_assert_eq(choose(), 2, "scores 4, 11, 3: the waiting weight counts");
}

Test(remote_metrics, ties_are_taken_in_turn)
{
    remote(0, 3, 0, 0);
    remote(1, 1, 1, 0);
    remote(2, 2, 0, 0);
    size_t a = choose(), b = choose();
    cr_assert(a != b && a + b == 3, "1 + 1 = 2 ties with candidate 2: in turn (%zu, %zu)", a, b);
    remote(0, 0, 2, 0);
    int seen[N] = {0};
    for (int k = 0; k < 3 * N; k++)
        seen[choose()]++;
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], 3, "all tied at 2: each in turn (%d chosen %d times)", i, seen[i]);
}

Test(remote_metrics, stale_metrics_fall_back_to_local_counters)
{
    local_load(0, 3);
    local_load(1, 1);
    local_load(2, 2);
    remote(0, 0, 0, MAX_AGE + 1000);
    remote(1, 9, 0, MAX_AGE + 1000);
    remote(2, 9, 0, MAX_AGE + 1000);
    cr_assert_eq(choose(), 1, "every metric stale: local in-flight 3, 1, 2");
    remote(0, 0, 0, MAX_AGE);
    cr_assert_eq(choose(), 1, "exactly max-age old is not younger than max-age");
    remote(0, 0, 0, MAX_AGE - 1000);
    cr_assert_eq(choose(), 0, "candidate 0 fresh again: remote 0 beats local 1");
}

Test(remote_metrics, metrics_stamped_in_the_future_are_stale_too)
{
    local_load(0, 1);
    remote(0, 9, 0, -(int64_t)(10 * MAX_AGE));
    remote(1, 5, 0, 0);
    remote(2, 5, 0, 0);
    cr_assert_eq(choose(), 0, "a clock stepped back must not keep old numbers fresh");
}

Test(remote_metrics, invalid_metrics_fall_back_to_local_counters)
{
    local_load(0, 2);
    local_load(1, 1);
    local_load(2, 4);
    remote(0, 0, 0, 0);
    remote(1, 5, 0, 0);
    remote(2, 5, 0, 0);
    cr_assert_eq(choose(), 0);
    shm_metrics_invalidate(shm_instance(&fx.seg, slots[0]));
    cr_assert_eq(choose(), 0, "local 2 still beats remote 5");
    shm_metrics_invalidate(shm_instance(&fx.seg, slots[1]));
    cr_assert_eq(choose(), 1, "local 2, local 1, remote 5");
    remote(1, 7, 0, 0);
    cr_assert_eq(choose(), 0, "a successful poll after a failure is used again: local 2, remote 7, remote 5");
}

Test(remote_metrics, never_polled_instances_use_local_counters)
{
    local_load(0, 2);
    local_load(1, 3);
    remote(2, 4, 0, 0);
    cr_assert_eq(choose(), 0, "local 2, local 3, remote 4");
    local_load(0, 3);
    cr_assert_eq(choose(), 1, "local 5, local 3, remote 4");
}

Test(remote_metrics, fractional_scores_compare_as_numbers)
{
    remote(0, 2.5, 0, 0);
    remote(1, 2, 0.25, 0);
    remote(2, 2.25, 0.5, 0);
    cfg.waiting_weight = 2;
    cr_assert_eq(choose(), 0, "2.5, 2.5, 3.25: a tie keeps the first");
    cfg.waiting_weight = 1.5;
    cr_assert_eq(choose(), 1, "2.5, 2.375, 3.0");
}

/* ---- remote_cache_aware: the cache-aware rule over the instances' own running counts ---- */

static pol_explain_t explain_remote(pol_cand_info_t *cand, const char *text)
{
    pol_prompt_t prompt = {.text = text, .len = strlen(text), .codepoints = strlen(text)};
    cfg.hit_ratio_weight = 1;
    cfg.load_balance_weight = 1;
    cfg.cache_block_size = 4;
    pol_ctx_t c = {.seg = &fx.seg,
                   .cfg = &cfg,
                   .role = SHM_ROLE_MIXED,
                   .slots = slots,
                   .n = N,
                   .prompt = &prompt,
                   .rng = &rng};
    pol_explain_t ex = {.cand = cand};
    pol_explain(pol_get(FD_POL_REMOTE_CACHE_AWARE), &c, &ex);
    return ex;
}

Test(remote_metrics, remote_cache_aware_weighs_remote_running)
{
    cr_assert_eq(pol_get(FD_POL_REMOTE_CACHE_AWARE)->ops, &pol_remote_cache_aware_ops);
    pol_cand_info_t cand[N];
    cfg.balance_abs_threshold = 1; /* as an operator who set the Go router's test */
    cfg.balance_rel_threshold = 0.2;
    /* locally idle everywhere; the instances report 6, 0 and 0 running: imbalanced by the
     * configured Go test, and the fallback weighs the same loads */
    remote(0, 6, 0, 0);
    remote(1, 0, 0, 0);
    remote(2, 0, 0, 0);
    pol_explain_t ex = explain_remote(cand, "some prompt text");
    cr_assert_eq(cand[0].load, 6);
    cr_assert(ex.imbalanced);
    cr_assert_str_eq(ex.branch, "fallback_imbalance (least loaded)");
    cr_assert_neq(ex.choice, 0, "not the instance reporting 6 running");
    /* 2, 1 and 1 running: balanced (diff 1 is not above 1); the busiest costs the most: each
     * request it reports beyond this router's own is weighed as a decode slot (a block) */
    remote(0, 2, 0, 0);
    remote(1, 1, 0, 0);
    remote(2, 1, 0, 0);
    ex = explain_remote(cand, "some prompt text");
    cr_assert_not(ex.imbalanced);
    cr_assert_str_eq(ex.branch, "predicted_cost");
    cr_assert_gt(cand[0].score, cand[1].score);
    cr_assert_eq(cand[0].tokens, 2 * 4, "2 remote requests x a block of 4");
    /* 3, 1, 1 with the shipped defaults (no Go test), under traffic that does not come back (the
     * reuse estimate at 0; test_cache_aware.c has the bound it relaxes): over the load bound for
     * a new prefix (mean (5 + 1) / 3 = 2, bound 3, and 3 + 1 > 3) */
    remote(0, 3, 0, 0);
    cfg.balance_abs_threshold = cfg.balance_rel_threshold = -1;
    for (int k = 0; k < 400; k++)
        radix_note_reuse(&fx.seg, false);
    cr_assert_eq(radix_reuse(&fx.seg), 0.0);
    ex = explain_remote(cand, "some prompt text");
    cr_assert_str_eq(ex.branch, "predicted_cost");
    cr_assert_not(cand[0].eligible, "over the bound");
    cr_assert_neq(ex.choice, 0);
}

Test(remote_metrics, requests_sent_since_the_scrape_count_as_running)
{
    /* the scrape saw instance 0 idle while this router had nothing in flight to it; since then
     * this router sent it 5: it is not idle (the Go router's herd) */
    remote(0, 0, 0, 0);
    remote(1, 2, 0, 0);
    remote(2, 3, 0, 0);
    local_load(0, 5);
    pol_cand_info_t cand[N];
    pol_explain_t ex = explain_remote(cand, "some prompt text");
    cr_assert_eq(cand[0].load, 5, "0 at the scrape + 5 sent since");
    cr_assert_neq(ex.choice, 0);
    cr_assert_eq(choose(), 1, "fd_remote_metrics_score: 5, 2, 3");
}

Test(remote_metrics, remote_cache_aware_falls_back_to_local_when_stale)
{
    pol_cand_info_t cand[N];
    remote(0, 6, 0, MAX_AGE + 1000); /* stale: the local count (2) is used */
    local_load(0, 2);
    pol_explain_t ex = explain_remote(cand, "another prompt");
    cr_assert_eq(cand[0].load, 2);
    cr_assert_eq(cand[1].load, 0, "never polled: local");
    cr_assert(ex.imbalanced, "2 vs 0: diff 2 > 1 and rel 1 > 0.2");
}
