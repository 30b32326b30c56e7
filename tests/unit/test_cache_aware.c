/*
 * tests/unit/test_cache_aware.c - the cache_aware policy (dataplane/policy/cache_aware.c) on a
 * real segment, against hand-computed cases of FastDeploy's algorithm (docs/fastdeploy.md 10): the imbalance
 * test at and around its thresholds, the score with its two weights, the tie-breaks, the
 * record of each choice on the prompt's path, the fallbacks and their counters, short and
 * over-long prompts, and a re-registered instance losing its predecessor's hits.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataplane/policy/pol.h"
#include "tests/unit/test_dp_fixture.h"
#include "shm/radix.h"

#define N 3

static dp_fixture_t fx;
static uint16_t slots[N];
static uint64_t rng = 42;
static shm_config_t cfg;

static void setup(void)
{
    dp_fixture_open(&fx, "ca", slots, N, 8000);
    cfg = (shm_config_t){.balance_abs_threshold = 1,
                         .balance_rel_threshold = 0.2,
                         .hit_ratio_weight = 1,
                         .load_balance_weight = 1,
                         .cache_block_size = 4};
}

static void teardown(void)
{
    dp_fixture_close(&fx);
}

TestSuite(cache_aware, .init = setup, .fini = teardown, .timeout = 20);

static size_t pick_n(const char *prompt, size_t n)
{
    pol_prompt_t p = {.text = prompt, .len = prompt ? strlen(prompt) : 0};
    pol_ctx_t c = {.seg = &fx.seg,
                   .cfg = &cfg,
                   .role = SHM_ROLE_MIXED,
                   .slots = slots,
                   .n = n,
                   .prompt = prompt ? &p : NULL,
                   .rng = &rng};
    return pol_cache_aware.select(&c);
}

static size_t pick(const char *prompt)
{
    return pick_n(prompt, N);
}

/* a counter in the DP's row and in the totals row (which shm_dp_inc keeps equal to the rows' sum) */
static void set_load(size_t counter_off, uint64_t a, uint64_t b, uint64_t c)
{
    const unsigned rows[] = {(unsigned)fx.row, SHM_MAX_DPS};
    for (size_t i = 0; i < 2; i++) {
        uint64_t *v = (uint64_t *)((char *)shm_dp_row(&fx.seg, rows[i]) + counter_off);
        v[slots[0]] = a;
        v[slots[1]] = b;
        v[slots[2]] = c;
    }
}

static void loads(uint64_t a, uint64_t b, uint64_t c)
{
    set_load(offsetof(shm_dp_row_t, inflight), a, b, c);
}

static void tokens(uint64_t a, uint64_t b, uint64_t c)
{
    set_load(offsetof(shm_dp_row_t, tokens), a, b, c);
}

/* Put `prompt` on candidate i's path, as an earlier selection would have. */
static void remember(const char *prompt, int i)
{
    uint64_t h[RADIX_MAX_BLOCKS];
    size_t n = radix_hash_text(radix_seed(&fx.seg), prompt, strlen(prompt), cfg.cache_block_size, true, h,
                               RADIX_MAX_BLOCKS);
    shm_instance_t *in = shm_instance(&fx.seg, slots[i]);
    cr_assert_eq(radix_insert(&fx.seg, h, n, slots[i], in->generation, shm_now_ms(), 0), (long)n);
}

static radix_stats_t stats(void)
{
    radix_stats_t st;
    radix_stats(&fx.seg, &st);
    return st;
}

static const char *P = "You are a helpful assistant. Summarise the following text.";

Test(cache_aware, imbalance_test_at_and_around_the_thresholds)
{
    remember(P, 2); /* scoring picks C whenever it runs; process_tokens picks A (fewest tokens) */
    tokens(0, 1, 1);
    struct {
        uint64_t a, b, c;
        size_t want;
        const char *why;
    } cases[] = {
        {0, 0, 0, 2, "balanced: max == min"},
        {1, 0, 0, 2, "diff 1 is not > abs 1"},
        {2, 0, 0, 0, "diff 2 > 1 and rel 1.0 > 0.2: process_tokens"},
        {5, 4, 4, 2, "diff 1: scored (C: 0 + 4/5 beats B: 1 + 4/5)"},
        {10, 7, 7, 0, "diff 3 > 1 and rel 0.3 > 0.2"},
        {10, 8, 8, 2, "rel 0.2 is not > 0.2"},
        {4, 4, 6, 0, "diff 2 > 1 and rel 0.33 > 0.2, whoever holds the load"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        loads(cases[i].a, cases[i].b, cases[i].c);
        cr_assert_eq(pick(P), cases[i].want, "case %zu: %s", i, cases[i].why);
    }
    radix_stats_t st = stats();
    cr_assert_eq(st.fallback_imbalance, 3);
    cr_assert_eq(st.decided_by_cache, 4);
    cr_assert_eq(st.lookups_hit, 4);
    cr_assert_eq(st.inserts, 1 + 4, "a fallback records nothing");
}

Test(cache_aware, thresholds_come_from_the_configuration)
{
    remember(P, 2);
    loads(2, 0, 0);
    tokens(0, 1, 1);
    cfg.balance_abs_threshold = 2; /* diff 2 is no longer > 2 */
    cr_assert_eq(pick(P), 2);
    cfg.balance_abs_threshold = 1;
    cfg.balance_rel_threshold = 1.0; /* rel 1.0 is not > 1.0 */
    cr_assert_eq(pick(P), 2);
    cfg.balance_rel_threshold = 0.99;
    cr_assert_eq(pick(P), 0);
}

Test(cache_aware, score_weighs_hit_ratio_against_load)
{
    remember(P, 0);
    loads(3, 2, 0);
    /* two candidates: A hit 100 load 3, B hit 0 load 2; maxLoad 3; diff 1 is balanced */
    cr_assert_eq(pick_n(P, 2), 0, "A: 0 + 3/3 = 1 beats B: 1 + 2/3");
    cfg.hit_ratio_weight = 10;
    cfg.load_balance_weight = 5;
    cr_assert_eq(pick_n(P, 2), 0, "A: 0 + 5 beats B: 10 + 10/3");
    cfg.hit_ratio_weight = 1;
    cr_assert_eq(pick_n(P, 2), 1, "A: 0 + 5 loses to B: 1 + 10/3");
}

Test(cache_aware, partial_hits_score_by_their_ratio)
{
    /* block 4, 16-block prompts; A holds `full`; q1 leaves it at block 14, q2 at block 12 */
    char full[65], q1[65], q2[65];
    for (int i = 0; i < 64; i++)
        full[i] = q1[i] = q2[i] = (char)('a' + i % 26);
    full[64] = q1[64] = q2[64] = '\0';
    q1[56] = 'Z';
    q2[48] = 'Z';
    remember(full, 0);
    loads(1, 0, 0);
    cfg.load_balance_weight = 0.8;
    cr_assert_eq(pick(q1), 0, "A: (100 - 87) / 100 + 0.8 = 0.93 beats B: 1 + 0");
    cr_assert_eq(pick(q2), 1, "A: (100 - 75) / 100 + 0.8 = 1.05 loses to B: 1 + 0");
}

Test(cache_aware, exact_ties_go_to_fewer_tokens_then_in_turn)
{
    /* distinct first blocks (block 4), no hits, no load: every score is 1 */
    char prompt[32];
    int seen[N] = {0};
    for (int k = 0; k < 3 * N; k++) {
        snprintf(prompt, sizeof prompt, "%02d: tie breaker", k);
        seen[pick(prompt)]++;
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], 3, "all equal: each in turn (%d chosen %d times)", i, seen[i]);
    tokens(10, 5, 5);
    int b = 0, c = 0;
    for (int k = 0; k < 4; k++) {
        snprintf(prompt, sizeof prompt, "%02d:two tie breaker", k);
        size_t got = pick(prompt);
        cr_assert_neq(got, 0, "A has more tokens");
        b += got == 1, c += got == 2;
    }
    cr_assert(b == 2 && c == 2, "B and C tie on tokens too: in turn (%d, %d)", b, c);
    tokens(5, 5, 1);
    cr_assert_eq(pick("three tie breaker"), 2);
}

Test(cache_aware, the_choice_is_recorded_at_selection)
{
    loads(1, 0, 1);
    size_t first = pick(P);
    cr_assert_eq(first, 1, "no hits: least loaded");
    cr_assert_eq(stats().lookups_hit, 0);
    loads(1, 1, 0); /* C is now the least loaded, but B holds the prefix */
    tokens(0, 0, 1);
    cr_assert_eq(pick(P), 1, "B: 0 + 1 ties with C: 1 + 0; B has fewer tokens in flight");
    cfg.load_balance_weight = 0.5;
    cr_assert_eq(pick(P), 1, "B: 0 + 0.5 beats C: 1 + 0");
    radix_stats_t st = stats();
    cr_assert_eq(st.decided_by_cache, 3);
    cr_assert_eq(st.lookups_hit, 2);
}

Test(cache_aware, no_prompt_falls_back_to_process_tokens)
{
    tokens(9, 3, 4);
    cr_assert_eq(pick(NULL), 1);
    cr_assert_eq(pick(""), 1);
    radix_stats_t st = stats();
    cr_assert_eq(st.fallback_no_prompt, 2);
    cr_assert_eq(st.inserts, 0);
    loads(5, 0, 0);
    cr_assert_eq(pick(""), 1);
    cr_assert_eq(stats().fallback_imbalance, 1, "the imbalance test comes first, as in the Go router");
}

Test(cache_aware, a_prompt_shorter_than_a_block_still_sticks)
{
    cfg.cache_block_size = 64;
    cfg.load_balance_weight = 0.5;
    loads(1, 0, 1);
    cr_assert_eq(pick("hi"), 1);
    loads(0, 1, 0);
    cr_assert_eq(pick("hi"), 1, "B: 0 + 0.5 beats A: 1 + 0");
    cr_assert_eq(pick("ho"), 0, "another tiny prompt has no hit");
    cr_assert_eq(stats().lookups_hit, 1);
}

Test(cache_aware, prompt_groups_stick_to_one_instance_while_loads_stay_balanced)
{
    static const char *group[N] = {"Group one shares this long system prompt, word for word. ",
                                   "Group two has its own preamble, also long enough to hash. ",
                                   "Group three: yet another prefix of a few dozen characters. "};
    size_t home[N];
    for (int round = 0; round < 4; round++)
        for (int g = 0; g < N; g++) {
            char prompt[256];
            snprintf(prompt, sizeof prompt, "%sQuestion %d of the round.", group[g], round);
            size_t i = pick(prompt);
            shm_dp_inc(&fx.seg, fx.row, slots[i], 0); /* in flight until the end of the test */
            if (round == 0)
                home[g] = i;
            else
                cr_assert_eq(i, home[g], "group %d moved in round %d", g, round);
        }
    cr_assert(home[0] != home[1] && home[1] != home[2] && home[0] != home[2], "the groups spread");
}

Test(cache_aware, a_re_registered_instance_does_not_inherit_hits)
{
    remember(P, 0);
    cfg.load_balance_weight = 0.5;
    loads(1, 0, 0);
    cr_assert_eq(pick(P), 0, "A: 0 + 0.5 beats B: 1 + 0");
    __atomic_add_fetch(&shm_instance(&fx.seg, slots[0])->generation, 1, __ATOMIC_RELEASE);
    cr_assert_eq(pick(P), 1, "A's tags name its old generation: A: 1 + 0.5, B: 1 + 0");
}

Test(cache_aware, an_over_long_prompt_uses_its_first_blocks)
{
    size_t len = 4 * RADIX_MAX_BLOCKS + 4000;
    char *big = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)('a' + (i * 7 + i / 13) % 26);
    big[len] = '\0';
    cr_assert_eq(pick(big), 0);
    uint64_t *h = malloc(RADIX_MAX_BLOCKS * sizeof *h);
    size_t n = radix_hash_text(radix_seed(&fx.seg), big, len, 4, true, h, RADIX_MAX_BLOCKS);
    cr_assert_eq(n, RADIX_MAX_BLOCKS);
    cr_assert_eq(radix_match(&fx.seg, h, n, NULL), RADIX_MAX_BLOCKS, "the first blocks were recorded");
    cr_assert_eq(stats().nodes, (RADIX_MAX_BLOCKS + SHM_RADIX_EDGE_MAX - 1) / SHM_RADIX_EDGE_MAX);
    loads(1, 0, 0);
    cfg.load_balance_weight = 0.5;
    cr_assert_eq(pick(big), 0, "and match the next time");
    free(h);
    free(big);
}
