/*
 * Unit tests of the selection policies (dataplane/policy/) on a real shared-memory segment:
 * each policy's choice on a known load, ties spread in turn over the tied candidates (not the
 * Go router's first URL), and the spread of the randomised ones.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dataplane/policy/registry.h"
#include "tests/unit/test_dp_fixture.h"

#define N 4

static dp_fixture_t fx;
static uint16_t slots[N];
static uint64_t rng = 42;
static shm_config_t cfg;

static void setup(void)
{
    dp_fixture_open(&fx, "pol", slots, N, 8000);
    cfg.waiting_weight = 1;
}

static void teardown(void)
{
    dp_fixture_close(&fx);
}

static pol_ctx_t ctx(const pol_prompt_t *prompt)
{
    return (pol_ctx_t){.seg = &fx.seg,
                       .cfg = &cfg,
                       .role = SHM_ROLE_MIXED,
                       .slots = slots,
                       .n = N,
                       .prompt = prompt,
                       .rng = &rng};
}

static void load(int i, int requests, uint64_t tokens)
{
    for (int k = 0; k < requests; k++)
        shm_dp_inc(&fx.seg, fx.row, slots[i], k == 0 ? tokens : 0);
}

TestSuite(policy, .init = setup, .fini = teardown, .timeout = 10);

/* k decisions of policy p on unchanged loads; counts per candidate in seen */
static void tally(const pol_ops_t *p, int k, int *seen)
{
    pol_ctx_t c = ctx(NULL);
    memset(seen, 0, N * sizeof *seen);
    for (int j = 0; j < k; j++)
        seen[p->select(&c)]++;
}

Test(policy, request_num_least_loaded_ties_in_turn)
{
    int seen[N];
    tally(&pol_request_num_ops, 4 * N, seen);
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], 4, "all idle: each candidate in turn (%d: %d)", i, seen[i]);
    load(0, 3, 0);
    load(1, 1, 0);
    load(2, 1, 0);
    load(3, 2, 0);
    tally(&pol_request_num_ops, 10, seen);
    cr_assert(seen[1] == 5 && seen[2] == 5, "least loaded, the tied 1 and 2 in turn: %d %d", seen[1],
              seen[2]);
    load(1, 1, 0);
    pol_ctx_t c = ctx(NULL);
    cr_assert_eq(pol_request_num_ops.select(&c), 2);
}

/* request_num reads the loads by slot (pol_slots_t) and answers with an index into the list: a
 * list in another order than its slots still gets the index of the least loaded, and the tied
 * in turn, with the set given (as dp_select gives it) or built on the spot. */
Test(policy, request_num_answers_indices_of_a_list_in_any_order)
{
    uint16_t rev[N];
    for (int i = 0; i < N; i++)
        rev[i] = slots[N - 1 - i];
    load(0, 3, 0);
    load(1, 1, 0);
    load(2, 1, 0);
    load(3, 2, 0);
    pol_slots_t by;
    pol_slots_build(&by, rev, N);
    for (int given = 0; given < 2; given++) {
        pol_ctx_t c = ctx(NULL);
        c.slots = rev;
        c.by_slot = given ? &by : NULL;
        int seen[N] = {0};
        for (int j = 0; j < 10; j++)
            seen[pol_request_num_ops.select(&c)]++;
        /* slots[1] and slots[2] are rev[2] and rev[1] */
        cr_assert(seen[1] == 5 && seen[2] == 5 && seen[0] == 0 && seen[3] == 0,
                  "the tied, in turn, by their index in the list (set %s): %d %d %d %d",
                  given ? "given" : "built", seen[0], seen[1], seen[2], seen[3]);
    }
    load(2, 1, 0);
    pol_ctx_t c = ctx(NULL);
    c.slots = rev;
    c.by_slot = &by;
    cr_assert_eq(pol_request_num_ops.select(&c), 2, "slots[1], the least loaded, is rev[2]");
}

Test(policy, fd_metrics_score_follows_local_running)
{
    int seen[N];
    load(0, 2, 0);
    load(1, 2, 0);
    load(2, 1, 0);
    load(3, 1, 0);
    tally(&pol_fd_metrics_score_ops, 8, seen);
    cr_assert(seen[2] == 4 && seen[3] == 4, "the tied 2 and 3 in turn: %d %d", seen[2], seen[3]);
}

Test(policy, process_tokens_least_tokens)
{
    int seen[N];
    load(0, 1, 500);
    load(1, 1, 100);
    load(2, 1, 300);
    load(3, 5, 100);
    tally(&pol_process_tokens_ops, 6, seen);
    cr_assert(seen[1] == 3 && seen[3] == 3, "fewest tokens, the tied 1 and 3 in turn: %d %d", seen[1],
              seen[3]);
    cr_assert(pol_process_tokens_ops.needs & POL_NEEDS_PROMPT);
}

Test(policy, dry_run_does_not_rotate)
{
    pol_ctx_t c = ctx(NULL);
    c.dry_run = true;
    size_t first = pol_request_num_ops.select(&c);
    for (int k = 0; k < 5; k++)
        cr_assert_eq(pol_request_num_ops.select(&c), first, "a dry run leaves the rotation where it was");
    c.dry_run = false;
    cr_assert_eq(pol_request_num_ops.select(&c), first,
                 "the live decision takes the turn the dry run showed");
    cr_assert_neq(pol_request_num_ops.select(&c), first);
}

Test(policy, round_robin_cycles_through_all)
{
    pol_ctx_t c = ctx(NULL);
    size_t first = pol_round_robin_ops.select(&c);
    for (size_t k = 1; k < 3 * N; k++)
        cr_assert_eq(pol_round_robin_ops.select(&c), (first + k) % N);
}

Test(policy, random_spreads_over_every_candidate)
{
    pol_ctx_t c = ctx(NULL);
    int seen[N] = {0};
    for (int k = 0; k < 4000; k++)
        seen[pol_random_ops.select(&c)]++;
    for (int i = 0; i < N; i++)
        cr_assert(seen[i] > 700 && seen[i] < 1300, "candidate %d chosen %d times of 4000", i, seen[i]);
}

Test(policy, power_of_two_never_picks_the_most_loaded)
{
    pol_ctx_t c = ctx(NULL);
    load(3, 10, 0);
    int seen[N] = {0};
    for (int k = 0; k < 2000; k++)
        seen[pol_power_of_two_ops.select(&c)]++;
    cr_assert_eq(seen[3], 0, "the most loaded of any pair never wins");
    for (int i = 0; i < 3; i++)
        cr_assert_gt(seen[i], 300);
}

Test(policy, single_candidate)
{
    pol_ctx_t c = ctx(NULL);
    c.n = 1;
    cr_assert_eq(pol_power_of_two_ops.select(&c), 0);
    cr_assert_eq(pol_random_ops.select(&c), 0);
    cr_assert_eq(pol_request_num_ops.select(&c), 0);
}

Test(policy, registry_has_every_named_policy)
{
    for (unsigned p = 0; p < FD_POL_COUNT; p++) {
        const pol_t *pol = pol_get(p);
        cr_assert_not_null(pol);
        cr_assert_eq(pol->id, p);
        cr_assert_str_eq(pol->name, fd_policy_name(p));
        cr_assert_not_null(pol->ops->select);
    }
    cr_assert_null(pol_get(FD_POL_COUNT));
    cr_assert_eq(pol_get(FD_POL_REQUEST_NUM)->ops, &pol_request_num_ops);
    /* what a policy needs decides what the data plane prepares before selecting */
    cr_assert(!pol_needs(pol_get(FD_POL_REQUEST_NUM), POL_NEEDS_PROMPT));
    cr_assert(pol_needs(pol_get(FD_POL_PROCESS_TOKENS), POL_NEEDS_PROMPT));
    cr_assert(!pol_needs(pol_get(FD_POL_PROCESS_TOKENS), POL_NEEDS_TOKENS));
    for (unsigned p = FD_POL_CACHE_AWARE; p <= FD_POL_REMOTE_CACHE_AWARE; p++)
        cr_assert(pol_needs(pol_get(p), POL_NEEDS_PROMPT | POL_NEEDS_TOKENS | POL_NEEDS_TREE));
}
