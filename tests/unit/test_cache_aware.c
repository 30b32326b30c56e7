/*
 * tests/unit/test_cache_aware.c - the cache_aware policy (dataplane/policy/cache_aware.c) on a
 * real segment, against hand-computed cases of its predicted cost (uncached prefill + queued
 * work, with the two weights), the slack and the rendezvous placement of new prefixes (and two
 * segments, as two routers, agreeing), the order of the near-best for a new prefix (by hash,
 * least content sent, fewest in flight), the reuse estimate and how it widens a new prefix's
 * tolerance of local load, the bounded load, the charge it leaves, the capacity rule,
 * the Go router's imbalance test only when configured, the record of each choice, short and
 * over-long prompts, and a re-registered instance losing its predecessor's hits.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataplane/policy/registry.h"
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
    cfg = (shm_config_t){.balance_abs_threshold = -1,
                         .balance_rel_threshold = -1,
                         .hit_ratio_weight = 1,
                         .load_balance_weight = 1,
                         .cache_block_size = 4};
}

static void teardown(void)
{
    dp_fixture_close(&fx);
}

TestSuite(cache_aware, .init = setup, .fini = teardown, .timeout = 20);

static pol_charge_t charge; /* what the last pick charged */

static size_t pick_on(dp_fixture_t *f, const uint16_t *sl, const char *prompt, size_t n)
{
    size_t len = prompt ? strlen(prompt) : 0;
    pol_prompt_t p = {.text = prompt, .len = len, .codepoints = len};
    charge = (pol_charge_t){.tokens = 2 * len};
    pol_ctx_t c = {.seg = &f->seg,
                   .cfg = &cfg,
                   .role = SHM_ROLE_MIXED,
                   .slots = sl,
                   .n = n,
                   .prompt = prompt ? &p : NULL,
                   .rng = &rng,
                   .charge = &charge};
    return pol_cache_aware_ops.select(&c);
}

static size_t pick_n(const char *prompt, size_t n)
{
    return pick_on(&fx, slots, prompt, n);
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
    size_t n =
        radix_hash_text(RADIX_SEED, prompt, strlen(prompt), cfg.cache_block_size, true, h, RADIX_MAX_BLOCKS);
    shm_instance_t *in = shm_instance(&fx.seg, slots[i]);
    uint32_t stamp = radix_stamp(shm_cache_inflow(&fx.seg, slots[i]));
    cr_assert_eq(radix_insert(&fx.seg, h, n, slots[i], in->generation, stamp, shm_now_ms()), (long)n);
}

/* Every candidate's cache inflow raised to the largest, so the content bound holds nobody back. */
static void level_inflow(void)
{
    uint64_t most = 0;
    for (size_t i = 0; i < N; i++)
        most = shm_cache_inflow(&fx.seg, slots[i]) > most ? shm_cache_inflow(&fx.seg, slots[i]) : most;
    for (size_t i = 0; i < N; i++)
        shm_cache_inflow_add(&fx.seg, slots[i], most - shm_cache_inflow(&fx.seg, slots[i]));
}

/* The candidate a prompt goes to when every candidate is eligible and none holds a block of it:
 * the highest rendezvous weight of (hash of its first 4 blocks, URL hash), computed here from
 * the contract; rendezvous_at() names the prompt by its first `depth` blocks instead. */
static size_t rendezvous_at(const char *prompt, const uint16_t *sl, size_t n, size_t depth)
{
    uint64_t h[RADIX_MAX_BLOCKS];
    size_t nh =
        radix_hash_text(RADIX_SEED, prompt, strlen(prompt), cfg.cache_block_size, true, h, RADIX_MAX_BLOCKS);
    uint64_t key = h[(nh < depth ? nh : depth) - 1], best = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = key ^ shm_instance(&fx.seg, sl[i])->url_hash;
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebULL;
        x ^= x >> 31;
        if (i == 0 || x > best)
            best = x, at = i;
    }
    return at;
}

static size_t rendezvous(const char *prompt, const uint16_t *sl, size_t n)
{
    return rendezvous_at(prompt, sl, n, 4);
}

/* A prompt's rendezvous home given `at_home` of a counter (inflight or tokens), every other
 * candidate `others`; returns the home. */
#define INFLIGHT offsetof(shm_dp_row_t, inflight)
#define TOKENS   offsetof(shm_dp_row_t, tokens)
static size_t busy_home(const char *prompt, size_t counter_off, uint64_t others, uint64_t at_home)
{
    size_t home = rendezvous(prompt, slots, N);
    uint64_t v[N] = {others, others, others};
    v[home] = at_home;
    set_load(counter_off, v[0], v[1], v[2]);
    return home;
}

/* Traffic that never comes back: distinct new prompts until the reuse estimate is near 0, so
 * that a new prefix meets the plain cost rule (one prefill of slack, the load bound unrelaxed);
 * the content they sent is then levelled so that it holds nobody back. */
static void unique_traffic(void)
{
    char prompt[64];
    for (int k = 0; k < 400; k++) {
        snprintf(prompt, sizeof prompt, "%03d: a one-off prompt that will never return", k);
        pick(prompt);
    }
    level_inflow();
    cr_assert_eq(radix_reuse(&fx.seg), 0.0);
}

static radix_stats_t stats(void)
{
    radix_stats_t st;
    radix_stats(&fx.seg, &st);
    return st;
}

static const char *P = "You are a helpful assistant. Summarise the following text.";
/* P: 58 code points = 14 blocks of 4 (56 units cached where it was sent) + 2 never cached */

Test(cache_aware, cost_is_uncached_prefill_plus_queued_work)
{
    remember(P, 2);
    /* A, B: 58 + 56 (a copy of what C holds) + queued; C: 2 + queued; slack max(58 - 56, 4) = 4 */
    tokens(0, 0, 116);
    cr_assert_eq(pick(P), 2, "C: 2 + 116 = 118 is within 4 of A's 114");
    tokens(0, 0, 117);
    size_t other = pick(P);
    cr_assert_neq(other, 2, "C: 119 is not: its queue costs more than the prefill it saves");
    tokens(200, 200, 117);
    cr_assert_eq(pick(P), 2, "with A and B as busy, C again");
}

Test(cache_aware, the_weights_scale_the_two_terms)
{
    remember(P, 2);
    cfg.hit_ratio_weight = 2; /* A: (58 + 56) x 2 = 228; C: 4 + queued; slack 8 */
    tokens(0, 0, 232);
    cr_assert_eq(pick(P), 2);
    tokens(0, 0, 465);
    cfg.load_balance_weight = 0.5; /* C: 4 + 465 / 2 = 236.5 */
    size_t copy = pick(P);
    cr_assert_neq(copy, 2);
    tokens(0, 0, 464);
    cr_assert_eq(pick_n(P, 2), copy, "the one that just took a copy: as cheap as C now, but without C");
}

Test(cache_aware, a_prefix_held_nowhere_goes_where_its_rendezvous_hash_says)
{
    char prompt[64];
    int seen[N] = {0};
    for (int k = 0; k < 30; k++) {
        snprintf(prompt, sizeof prompt, "%02d: a new prefix nobody has seen before", k);
        level_inflow();
        size_t want = rendezvous(prompt, slots, N), got = pick(prompt);
        cr_assert_eq(got, want, "prompt %d", k);
        seen[got]++;
    }
    for (int i = 0; i < N; i++)
        cr_assert_gt(seen[i], 3, "distinct prefixes spread: instance %d took %d of 30", i, seen[i]);
    cr_assert_eq(stats().lookups_hit, 0);
}

/* New prompts that share only a held head (one system prompt, held everywhere, before each
 * user's own question) are named by 4 blocks past the head, not by their first 4 blocks: by hash
 * they spread over the fleet instead of all going where the head's hash says. */
Test(cache_aware, by_hash_new_prompts_that_share_only_a_held_head_spread)
{
    cfg.new_prefix_by_hash = SHM_PLACE_BY_HASH;
    const char *head = "System: answer in brief; cite your sources. "; /* 44 cp: 11 blocks */
    for (int i = 0; i < N; i++)
        remember(head, i);
    char prompt[160];
    int seen[N] = {0};
    for (int k = 0; k < 30; k++) {
        snprintf(prompt, sizeof prompt, "%s%02d: one user's own question, longer than the head it shares",
                 head, k);
        level_inflow();
        size_t got = pick(prompt);
        cr_assert_eq(got, rendezvous_at(prompt, slots, N, 11 + 4), "prompt %d", k);
        seen[got]++;
    }
    for (int i = 0; i < N; i++)
        cr_assert_gt(seen[i], 3, "instance %d took %d of 30", i, seen[i]);
}

/* A group cached on two instances, equally: its prompts are named by the cached part they share,
 * so every prompt of a group goes to the same one of the two (the higher weight of that part),
 * group by group; by the first 4 blocks, 8 groups would match this by chance 1 time in 256. */
Test(cache_aware, a_group_held_twice_settles_on_the_holder_its_cached_part_names)
{
    char group[64], prompt[96];
    for (int g = 0; g < 8; g++) {
        snprintf(group, sizeof group, "group %02d: this prefix is eleven blocks long.", g);
        cr_assert_eq(strlen(group), 44);
        remember(group, 0);
        remember(group, 1);
        for (int k = 0; k < 4; k++) {
            snprintf(prompt, sizeof prompt, "%s%02d: a short suffix", group, k);
            cr_assert_eq(pick(prompt), rendezvous_at(prompt, slots, 2, 11), "group %d, prompt %d", g, k);
        }
    }
}

Test(cache_aware, two_routers_that_share_nothing_place_a_new_prefix_alike)
{
    dp_fixture_t other; /* a second segment: another router, same instances */
    uint16_t oslots[N];
    dp_fixture_open(&other, "ca2", oslots, N, 8000);
    char prompt[64];
    for (int k = 0; k < 20; k++) {
        snprintf(prompt, sizeof prompt, "%02d: another prefix, seen by two routers", k);
        size_t a = pick(prompt), b = pick_on(&other, oslots, prompt, N);
        cr_assert_eq(shm_instance(&fx.seg, slots[a])->url_hash, shm_instance(&other.seg, oslots[b])->url_hash,
                     "prompt %d: %zu vs %zu", k, a, b);
    }
    dp_fixture_close(&other);
}

Test(cache_aware, loads_within_one_prefill_keep_the_rendezvous_choice)
{
    const char *q = "a prompt that nobody has sent before, forty-eight cp";
    size_t home = busy_home(q, TOKENS, 0, strlen(q)); /* slack for a new prefix: its whole prefill */
    cr_assert_eq(pick(q), home, "queued work one prefill ahead: still its place");
    level_inflow();
    const char *r = "and one more prompt nobody has sent before, of 52";
    size_t home_r = busy_home(r, TOKENS, 0, strlen(r) + 1);
    cr_assert_neq(pick(r), home_r, "more than that: the load decides");
}

/* By load, with requests in flight and prefixes that come back (a new segment's reuse of 1):
 * among the near-best, a new prefix goes where the least content was sent, whatever its hash. */
Test(cache_aware, by_load_under_reuse_a_new_prefix_goes_where_the_least_content_went)
{
    const char *q = "under reuse: a new prefix goes to the emptiest cache";
    size_t home = rendezvous(q, slots, N), a = (home + 1) % N, b = (home + 2) % N;
    loads(1, 1, 1);
    shm_cache_inflow_add(&fx.seg, slots[home], 20);
    shm_cache_inflow_add(&fx.seg, slots[a], 10);
    cr_assert_eq(pick(q), b, "nothing sent to %zu yet", b);
    loads(0, 0, 0);
    const char *r = "an idle fleet: the rendezvous hash decides, as any router would";
    cr_assert_eq(pick(r), rendezvous(r, slots, N));
}

/* By load, under traffic that never comes back: the fewest requests in flight, whatever the
 * content sent; an idle fleet still by hash. */
Test(cache_aware, by_load_without_reuse_a_new_prefix_goes_to_the_fewest_in_flight)
{
    unique_traffic();
    const char *q = "without reuse: a new prefix goes to the least busy instance";
    size_t home = rendezvous(q, slots, N), a = (home + 1) % N, b = (home + 2) % N;
    uint64_t l[N];
    l[home] = 1, l[a] = 2, l[b] = 0;
    loads(l[0], l[1], l[2]);
    cr_assert_eq(pick(q), b);
    loads(0, 0, 0);
    const char *r =
        "an idle fleet, without reuse: the rendezvous hash decides"; /* no head in common with q */
    cr_assert_eq(pick(r), rendezvous(r, slots, N));
}

/* scheduler.new-prefix-placement: auto with a local registry: by hash until the control plane's
 * verdict says the instances report this router's requests only (controlplane/sharing.h), by
 * load while it says so, and by hash again when it turns to other senders. */
Test(cache_aware, auto_places_by_load_only_while_the_instances_show_this_router_alone)
{
    cfg.new_prefix_by_hash = SHM_PLACE_BY_HASH_WHEN_SHARED;
    const char *q = "auto: a new prefix while requests are in flight everywhere";
    size_t home = rendezvous(q, slots, N), a = (home + 1) % N, b = (home + 2) % N;
    loads(1, 1, 1);
    shm_cache_inflow_add(&fx.seg, slots[home], 20);
    shm_cache_inflow_add(&fx.seg, slots[a], 10);
    const shm_fleet_t verdicts[] = {SHM_FLEET_UNKNOWN, SHM_FLEET_ALONE, SHM_FLEET_SHARED, SHM_FLEET_ALONE};
    for (size_t v = 0; v < sizeof verdicts / sizeof *verdicts; v++) {
        shm_fleet_set(&fx.seg, verdicts[v]);
        pol_explain_t ex = {.cand = (pol_cand_info_t[N]){{0}}};
        pol_prompt_t p = {.text = q, .len = strlen(q), .codepoints = strlen(q)};
        pol_ctx_t c = {.seg = &fx.seg, .cfg = &cfg, .slots = slots, .n = N, .prompt = &p, .rng = &rng};
        pol_cache_aware_ops.explain(&c, &ex); /* a dry run: q stays new */
        bool shared = verdicts[v] != SHM_FLEET_ALONE;
        cr_assert_eq(ex.new_by_hash, shared, "verdict %d", verdicts[v]);
        cr_assert_eq(ex.choice, (long)(shared ? home : b), "verdict %d: by %s", verdicts[v],
                     shared ? "hash" : "load");
    }
    shm_fleet_set(&fx.seg, (shm_fleet_t)7); /* a hostile segment's word: not a verdict */
    cr_assert_eq(shm_fleet(&fx.seg), SHM_FLEET_UNKNOWN);
}

/* Note `prompt` in the recent traffic `times` times, as that many decisions would. */
static void note_recent(const char *prompt, int times)
{
    uint64_t h[RADIX_MAX_BLOCKS];
    size_t n =
        radix_hash_text(RADIX_SEED, prompt, strlen(prompt), cfg.cache_block_size, true, h, RADIX_MAX_BLOCKS);
    for (int k = 0; k < times; k++)
        radix_note_prompt(&fx.seg, h, n);
}

/* By hash, a held prefix that is not hot stays with its holder where by load it is copied (the
 * first test's case: C's queue outgrew the prefill it saves), until the holder costs more than
 * STICKY_PROMPTS whole prompts above another candidate. */
Test(cache_aware, by_hash_a_held_prefix_that_is_not_hot_stays_with_its_holder)
{
    cfg.new_prefix_by_hash = SHM_PLACE_BY_HASH;
    remember(P, 2);
    tokens(0, 0, 300); /* C: 2 + 300 (by load, 117 is copied); A, B: 114; 4 prompts of 58 above: 346 */
    for (int k = 0; k < 3; k++)
        cr_assert_eq(pick(P), 2, "by hash: it stays (pick %d)", k);
    pol_explain_t ex = {.cand = (pol_cand_info_t[N]){{0}}};
    pol_prompt_t p = {.text = P, .len = strlen(P), .codepoints = strlen(P)};
    pol_ctx_t c = {
        .seg = &fx.seg, .cfg = &cfg, .slots = slots, .n = N, .prompt = &p, .rng = &rng, .dry_run = true};
    pol_cache_aware_ops.explain(&c, &ex);
    cr_assert(ex.sticky);
    cr_assert_eq(ex.choice, 2);
    tokens(0, 0, 400);
    cr_assert_neq(pick(P), 2, "a holder that far behind is copied even by hash");
}

/* A prefix that carries at least 1/n of the recent traffic is hot: by hash, it is copied by cost
 * as by a lone router. */
Test(cache_aware, by_hash_a_hot_prefix_is_copied_by_cost)
{
    cfg.new_prefix_by_hash = SHM_PLACE_BY_HASH;
    remember(P, 2);
    note_recent(P, 3);
    note_recent("and some other traffic, not through the held prefix at all", 3);
    tokens(0, 0, 300);
    cr_assert_eq(pick(P), 2, "3 of 6 recent prompts, above 1/3: not hot yet (at least 4)");
    note_recent(P, 1); /* 5 of 8 with the pick's own note: hot */
    remember(P, 2);
    cr_assert_neq(pick(P), 2, "hot: copied by cost");
}

/* Auto, alone (by load), with a move granted: a group's prefix whose holder was sent more than a
 * prompt beyond the mean content, and is busier than the mean, moves to the candidate sent the
 * least (a prompt or more below the mean) whose rendezvous weight beats the holder's, and the
 * group settles there. Without a move left, or for a conversation's history (no branch), it
 * stays where it is. */
Test(cache_aware, alone_an_over_filled_holder_moves_a_group_once_granted)
{
    cfg.new_prefix_by_hash = SHM_PLACE_BY_HASH_WHEN_SHARED;
    shm_fleet_set(&fx.seg, SHM_FLEET_ALONE);
    char group[64], prompt[96];
    const uint16_t pair[] = {slots[0], slots[2]};
    for (int g = 0;; g++) { /* a group whose weight at C beats A's, so that the move settles */
        snprintf(group, sizeof group, "group %02d: this prefix is eleven blocks long.", g);
        snprintf(prompt, sizeof prompt, "%s00: one member's own suffix", group);
        if (rendezvous_at(prompt, pair, 2, 11) == 1)
            break;
    }
    for (int k = 0; k < 2; k++) {
        snprintf(prompt, sizeof prompt, "%s%02d: one member's own suffix", group, k);
        remember(prompt, 0);
    }
    const char *history = "a conversation's first turn, then its answer. "; /* no branch */
    remember(history, 0);
    shm_cache_inflow_add(&fx.seg, slots[0], 1000);
    shm_cache_inflow_add(&fx.seg, slots[1], 1000);
    loads(1, 0, 0);
    snprintf(prompt, sizeof prompt, "%s%02d: one member's own suffix", group, 2);
    cr_assert_eq(pick(prompt), 0, "no move granted: it stays");
    radix_moves_grant(&fx.seg, 2);
    char turn[128];
    snprintf(turn, sizeof turn, "%sand the next turn", history);
    cr_assert_eq(pick(turn), 0, "a history does not branch: it stays");
    cr_assert_eq(radix_moves_left(&fx.seg), 2);
    snprintf(prompt, sizeof prompt, "%s%02d: one member's own suffix", group, 3);
    cfg.new_prefix_by_hash = SHM_PLACE_BY_LOAD;
    cr_assert_eq(pick(prompt), 0, "an explicit `load` never placed blind: nothing to re-home");
    cfg.new_prefix_by_hash = SHM_PLACE_BY_HASH_WHEN_SHARED;
    snprintf(prompt, sizeof prompt, "%s%02d: one member's own suffix", group, 4); /* 3 is held whole now */
    pol_explain_t ex = {.cand = (pol_cand_info_t[N]){{0}}};
    pol_prompt_t p = {.text = prompt, .len = strlen(prompt), .codepoints = strlen(prompt)};
    pol_ctx_t c = {
        .seg = &fx.seg, .cfg = &cfg, .slots = slots, .n = N, .prompt = &p, .rng = &rng, .dry_run = true};
    pol_cache_aware_ops.explain(&c, &ex);
    cr_assert_eq(ex.choice, 2, "explain shows the move");
    cr_assert_eq(radix_moves_left(&fx.seg), 2, "and takes nothing of the budget");
    cr_assert_eq(pick(prompt), 2, "moved to the emptiest cache");
    cr_assert_eq(radix_moves_left(&fx.seg), 1);
    for (int k = 5; k < 9; k++) {
        snprintf(prompt, sizeof prompt, "%s%02d: one member's own suffix", group, k);
        cr_assert_eq(pick(prompt), 2, "the group settles where it moved (member %d)", k);
    }
    cr_assert_eq(radix_moves_left(&fx.seg), 1, "held at the emptiest cache: no second move");
}

Test(cache_aware, the_reuse_estimate_follows_the_traffic)
{
    cr_assert_eq(radix_reuse(&fx.seg), 1.0, "a new segment assumes prefixes come back");
    unique_traffic();
    for (int k = 0; k < 100; k++)
        pick(P);
    cr_assert_gt(radix_reuse(&fx.seg), 0.9, "a prompt sent again and again: %f", radix_reuse(&fx.seg));
    pol_explain_t ex = {.cand = (pol_cand_info_t[N]){{0}}};
    double before = radix_reuse(&fx.seg);
    pol_prompt_t p = {.text = "explained, never sent", .len = 21, .codepoints = 21};
    pol_ctx_t c = {.seg = &fx.seg,
                   .cfg = &cfg,
                   .role = SHM_ROLE_MIXED,
                   .slots = slots,
                   .n = N,
                   .prompt = &p,
                   .rng = &rng};
    pol_cache_aware_ops.explain(&c, &ex);
    cr_assert_eq(radix_reuse(&fx.seg), before, "a dry run changes nothing");
}

/* New prefixes by hash: where prefixes come back (here a new segment's prior, reuse 1), a new
 * prefix tolerates local load up to (1 + 8 x reuse) prefills apart and the load bound x
 * (1 + reuse): a router whose own requests happen to crowd the prefix's home still sends it
 * there, as a router that sees that home idle does. */
Test(cache_aware, by_hash_with_reused_prefixes_a_new_one_keeps_its_home_against_local_load)
{
    cfg.new_prefix_by_hash = 1;
    dp_fixture_t other; /* a second router: the same instances, none of this one's load */
    uint16_t oslots[N];
    dp_fixture_open(&other, "ca3", oslots, N, 8000);
    const char *q = "a new prefix while this router's own load is on its home";
    size_t home = rendezvous(q, slots, N);
    uint64_t t[N] = {0, 0, 0}, l[N] = {1, 1, 1};
    t[home] = 4 * strlen(q); /* four prefills queued there: the plain rule detours at one */
    l[home] = 3;             /* plain bound 3 (see a_new_copy_respects_the_load_bound), relaxed 6 */
    tokens(t[0], t[1], t[2]);
    loads(l[0], l[1], l[2]);
    size_t a = pick(q), b = pick_on(&other, oslots, q, N);
    cr_assert_eq(a, home);
    cr_assert_eq(shm_instance(&fx.seg, slots[a])->url_hash, shm_instance(&other.seg, oslots[b])->url_hash,
                 "the two routers agree");
    const char *r = "another new prefix, this time with ten prefills queued at home";
    home = rendezvous(r, slots, N);
    t[0] = t[1] = t[2] = 0;
    l[0] = l[1] = l[2] = 1;
    t[home] = 10 * strlen(r); /* beyond nine prefills: even so, the load decides */
    tokens(t[0], t[1], t[2]);
    loads(l[0], l[1], l[2]);
    cr_assert_neq(pick(r), home);
    dp_fixture_close(&other);
}

/* By hash, but under traffic that never comes back: the plain rule, as by load. */
Test(cache_aware, by_hash_without_reuse_the_load_decides_a_new_prefix)
{
    cfg.new_prefix_by_hash = 1;
    unique_traffic();
    const char *q = "by hash, after one-off traffic: a prompt nobody has sent";
    size_t home = busy_home(q, TOKENS, 0, 2 * strlen(q));
    cr_assert_neq(pick(q), home, "two prefills queued at home: the load decides");
}

Test(cache_aware, by_load_the_reuse_estimate_does_not_widen_the_slack)
{
    const char *q = "by load (the default): a new segment's reuse of 1 changes nothing";
    size_t home = busy_home(q, TOKENS, 0, 2 * strlen(q));
    cr_assert_eq(radix_reuse(&fx.seg), 1.0);
    cr_assert_neq(pick(q), home, "two prefills queued at home: the load decides");
}

/* The content bound leaves a fair hash's own scatter alone and cuts what goes beyond it: with
 * candidate i already sent x prompts' worth of content (the others none), a new prefix whose
 * rendezvous home is i still goes there while x stays within 2.5 standard deviations of the mean
 * (the mean counting this prompt: m = (x + 1) / 3 prompts, sd = sqrt(m) prompts), and elsewhere
 * once it does not; placing new prefixes by hash, within the prompt's own threshold, 1 to 3
 * standard deviations. */
Test(cache_aware, the_content_bound_tolerates_a_hashs_scatter_and_cuts_beyond_it)
{
    char prompt[64];
    int homed = 0, stayed = 0;
    for (int k = 0; k < 40; k++) {
        snprintf(prompt, sizeof prompt, "%02d: a prefix new to the fleet, placed by hash", k);
        size_t home = rendezvous(prompt, slots, N);
        uint64_t unit = strlen(prompt);
        for (size_t i = 0; i < N; i++) /* back to nothing sent anywhere (adds -inflow, mod 2^64) */
            shm_cache_inflow_add(&fx.seg, slots[i], -shm_cache_inflow(&fx.seg, slots[i]));
        /* x = 4 prompts: m = 5/3, bound m + 2.5 sqrt(m) = 4.9 prompts (two prompts of slack
         * would have been 3.7 and detoured it); x = 8: m = 3, bound 7.3. By hash: x = 2, m = 1,
         * bound at least m + sqrt(m) = 2; x = 10: m = 11/3, bound at most m + 3 sqrt(m) = 9.4 */
        cfg.new_prefix_by_hash = k >= 20;
        uint64_t x = cfg.new_prefix_by_hash ? (k % 2 ? 10 : 2) : (k % 2 ? 8 : 4);
        shm_cache_inflow_add(&fx.seg, slots[home], x * unit);
        size_t got = pick(prompt);
        if (!(k % 2))
            homed++, stayed += got == home;
        else
            cr_assert_neq(got, home, "prompt %d: %lu prompts' worth already sent there", k, (unsigned long)x);
    }
    cr_assert_eq(stayed, homed, "within the scatter: %d of %d kept their home", stayed, homed);
}

/* By hash, two routers whose counts of the content sent to a prefix's home differ detour nested
 * sets of prefixes: each prefix's threshold is its own, so every prefix the router with the
 * smaller count detours, the other detours too, and between the two counts only some do. Here
 * one router has sent its home 4 prompts' worth (m = 5/3: thresholds from 2.96 to 5.54 prompts)
 * and the other 5 (m = 2: 3.41 to 6.24). */
Test(cache_aware, by_hash_routers_with_different_counts_detour_nested_sets)
{
    dp_fixture_t other;
    uint16_t oslots[N];
    dp_fixture_open(&other, "ca3", oslots, N, 8000);
    cfg.new_prefix_by_hash = 1;
    char prompt[64];
    int fewer = 0, more = 0;
    for (int k = 0; k < 40; k++) {
        snprintf(prompt, sizeof prompt, "%02d: one prefix, two routers' counts", k);
        uint64_t unit = strlen(prompt);
        size_t home = rendezvous(prompt, slots, N);
        bool detoured[2];
        for (int r = 0; r < 2; r++) {
            dp_fixture_t *f = r ? &other : &fx;
            const uint16_t *sl = r ? oslots : slots;
            for (size_t i = 0; i < N; i++)
                shm_cache_inflow_add(&f->seg, sl[i], -shm_cache_inflow(&f->seg, sl[i]));
            size_t at = 0; /* the home in this router's slots: the same URL */
            while (shm_instance(&f->seg, sl[at])->url_hash != shm_instance(&fx.seg, slots[home])->url_hash)
                at++;
            shm_cache_inflow_add(&f->seg, sl[at], (4 + (uint64_t)r) * unit);
            detoured[r] = pick_on(f, sl, prompt, N) != at;
        }
        cr_assert(!detoured[0] || detoured[1], "prompt %d: detoured at the smaller count only", k);
        fewer += detoured[0], more += detoured[1];
    }
    cr_assert(fewer > 0 && more < 40 && more > fewer, "detoured: %d at 4 prompts, %d at 5", fewer, more);
    dp_fixture_close(&other);
}

/* By hash without reuse (the plain bound, the near-best ordered by hash alone). */
Test(cache_aware, a_new_copy_respects_the_load_bound)
{
    cfg.new_prefix_by_hash = 1;
    unique_traffic();
    const char *q = "bounded loads: a prompt nobody holds, placed by hash";
    /* (5 + 1) / 3 x 1.25 = 2.5: bound 3, and 3 + 1 > 3 */
    size_t home_q = busy_home(q, INFLIGHT, 1, 3);
    cr_assert_neq(pick(q), home_q, "over the bound: the next by weight");
    const char *r = "bounded loads: another prompt that nobody holds yet";
    /* (4 + 1) / 3 x 1.25 = 2.08: bound 3, 2 + 1 <= 3 */
    size_t home_r = busy_home(r, INFLIGHT, 1, 2);
    cr_assert_eq(pick(r), home_r, "within it: its own place");
    const char *e = "bounded loads: equal loads never hit the bound at all";
    /* everyone over a bound (28 / 3 x 1.25 = 11.7 -> 12: no one is) */
    size_t home_e = busy_home(e, INFLIGHT, 9, 9);
    cr_assert_eq(pick(e), home_e);
}

/* A prefix held nowhere, while prefixes come back (reuse 1): the load bound x (1 + reuse), so
 * a burst's unequal loads detour fewer new prefixes from their place by hash. */
Test(cache_aware, under_reuse_a_new_prefix_has_the_load_bound_relaxed)
{
    const char *q = "relaxed bound: a prompt nobody holds, while others come back";
    /* plain bound 3, and 3 + 1 > 3; relaxed 6 */
    size_t home_q = busy_home(q, INFLIGHT, 1, 3);
    cr_assert_eq(pick(q), home_q, "within the relaxed bound: its own place");
    level_inflow();
    const char *r = "relaxed bound: and a prompt whose home is far busier than the rest";
    /* (17 + 1) / 3 = 6, x 1.25 = 7.5, relaxed 15: 15 + 1 > 15 */
    size_t home_r = busy_home(r, INFLIGHT, 1, 15);
    cr_assert_neq(pick(r), home_r, "beyond even that: elsewhere");
}

Test(cache_aware, the_charge_is_the_uncached_part_plus_a_block)
{
    cr_assert_eq(pick(P), rendezvous(P, slots, N));
    cr_assert_eq(charge.tokens, 58 + 4, "a miss: all of it, and a block for the decode slot");
    cr_assert_eq(charge.prefill, 58, "released at the first token");
    cr_assert_eq(shm_cache_inflow(&fx.seg, slots[rendezvous(P, slots, N)]), 58);
    pick(P);
    cr_assert_eq(charge.tokens, 2 + 4, "a hit: the two code points after the last full block");
    cr_assert_eq(charge.prefill, 2);
}

Test(cache_aware, records_older_than_the_instances_capacity_are_misses)
{
    cfg.instance_cache_tokens = 100; /* x 4 code points per token = 400 = 25 stamps of 16 */
    remember(P, 2);
    tokens(0, 0, 50);
    shm_cache_inflow_add(&fx.seg, slots[2], 400);
    cr_assert_eq(pick(P), 2, "25 stamps of new content since: still cached");
    /* that pick refreshed the record; let 26 more stamps of other content go through C */
    shm_cache_inflow_add(&fx.seg, slots[2], 416);
    tokens(0, 0, 117);
    pol_explain_t ex;
    pol_cand_info_t info[N];
    memset(info, 0, sizeof info);
    ex.cand = info;
    pol_ctx_t c = {.seg = &fx.seg,
                   .cfg = &cfg,
                   .role = SHM_ROLE_MIXED,
                   .slots = slots,
                   .n = N,
                   .prompt = &(pol_prompt_t){.text = P, .len = strlen(P), .codepoints = strlen(P)}};
    pol_explain(pol_get(FD_POL_CACHE_AWARE), &c, &ex);
    cr_assert_eq(info[2].cached, 0, "evicted by now: C holds nothing of P");
    cfg.instance_cache_tokens = 0;
    pol_explain(pol_get(FD_POL_CACHE_AWARE), &c, &ex);
    cr_assert_eq(info[2].cached, 56, "no capacity known: the record stands");
}

Test(cache_aware, the_go_imbalance_test_applies_only_when_configured)
{
    remember(P, 0);
    loads(5, 0, 0);
    cr_assert_eq(pick(P), 0, "unset thresholds: the cost decides (A's load is not queued work)");
    cfg.balance_abs_threshold = 1;
    size_t got = pick(P);
    cr_assert(got == 1 || got == 2, "imbalanced: least loaded by the same loads (%zu)", got);
    cfg.balance_abs_threshold = 8; /* diff 5 is not > 8; rel unset takes the Go default 0.2 */
    cr_assert_eq(pick(P), 0);
    radix_stats_t st = stats();
    cr_assert_eq(st.fallback_imbalance, 1);
    cr_assert_eq(st.decided_by_cache, 2);
}

Test(cache_aware, the_choice_is_recorded_at_selection)
{
    size_t first = pick(P);
    cr_assert_eq(stats().lookups_hit, 0);
    cr_assert_eq(pick(P), first, "the same prompt again: where it was recorded");
    radix_stats_t st = stats();
    cr_assert_eq(st.decided_by_cache, 2);
    cr_assert_eq(st.lookups_hit, 1);
    cr_assert_eq(st.inserts, 2);
}

Test(cache_aware, no_prompt_goes_to_the_least_loaded)
{
    loads(9, 3, 4);
    cr_assert_eq(pick(NULL), 1);
    cr_assert_eq(pick(""), 1);
    radix_stats_t st = stats();
    cr_assert_eq(st.fallback_no_prompt, 2);
    cr_assert_eq(st.inserts, 0);
}

Test(cache_aware, a_prompt_shorter_than_a_block_still_sticks)
{
    cfg.cache_block_size = 64;
    size_t first = pick("hi");
    cr_assert_eq(charge.tokens, 2 + 64);
    cr_assert_eq(pick("hi"), first);
    cr_assert_eq(charge.prefill, 0, "held whole");
    cr_assert_eq(stats().lookups_hit, 1);
}

Test(cache_aware, prompt_groups_stick_to_one_instance_and_spread)
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
            /* in flight, past its prefill, until the end of the test */
            shm_dp_inc(&fx.seg, fx.row, slots[i], charge.tokens - charge.prefill);
            if (round == 0)
                home[g] = i;
            else
                cr_assert_eq(i, home[g], "group %d moved in round %d", g, round);
        }
    /* the second new group found the first one's instance at the load bound (1 of 1 + 1 in flight) */
    cr_assert(home[0] != home[1], "the groups spread");
}

Test(cache_aware, a_re_registered_instance_does_not_inherit_hits)
{
    remember(P, 0);
    cr_assert_eq(pick(P), 0);
    __atomic_add_fetch(&shm_instance(&fx.seg, slots[0])->generation, 1, __ATOMIC_RELEASE);
    cr_assert_eq(stats().lookups_hit, 1);
    pick(P);
    cr_assert_eq(charge.prefill, 58, "A's tags name its old generation: a miss everywhere");
}

Test(cache_aware, an_over_long_prompt_uses_its_first_blocks)
{
    size_t len = 4 * RADIX_MAX_BLOCKS + 4000;
    char *big = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)('a' + (i * 7 + i / 13) % 26);
    big[len] = '\0';
    size_t first = pick(big);
    uint64_t *h = malloc(RADIX_MAX_BLOCKS * sizeof *h);
    size_t n = radix_hash_text(RADIX_SEED, big, len, 4, true, h, RADIX_MAX_BLOCKS);
    cr_assert_eq(n, RADIX_MAX_BLOCKS);
    cr_assert_eq(radix_match(&fx.seg, h, n, NULL), RADIX_MAX_BLOCKS, "the first blocks were recorded");
    cr_assert_eq(stats().nodes, (RADIX_MAX_BLOCKS + SHM_RADIX_EDGE_MAX - 1) / SHM_RADIX_EDGE_MAX);
    cr_assert_eq(pick(big), first, "and match the next time");
    cr_assert_eq(charge.prefill, 4000, "what lies beyond the hashed blocks counts as uncached");
    free(h);
    free(big);
}
