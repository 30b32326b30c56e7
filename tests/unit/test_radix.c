/*
 * tests/unit/test_radix.c - the shared prefix tree (shm/radix.c) on a real segment: block
 * hashing against XXH3 over the blocks' bytes cut by hand, insert / split / match, each
 * candidate's cached depth and the capacity (stamp) rule, generation-invalidated tags and purge, TTL
 * eviction of whole subtrees, capacity eviction (least recently used first, never above the
 * capacity), limbo held by a reader, and repair after a writer died mid-change. The invariant
 * checker (test_radix_check.h) runs after every kind of change.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "test_radix_check.h"
#include "test_shm_util.h"

TestSuite(radix, .init = seg_setup, .fini = seg_teardown, .timeout = 20.0);

static void check(void)
{
    radix_check_t r;
    cr_assert(radix_check(&seg, &r), "tree invariant: %s", r.why);
}

static uint32_t gen_of(unsigned slot)
{
    return shm_instance(&seg, slot)->generation;
}

static uint32_t cap;        /* the configured capacity, as the CP passes it (0 = maximum) */
static uint32_t stamp;      /* the inserting instance's inflow stamp */
static radix_sweep_t sweep; /* the CP's eviction state */
static uint64_t clock_ms;   /* the tests' clock: the latest stamp an insert used (the upkeep's now) */

/* The CP's upkeep, run until its sweep (if one started) is over: returns the steps taken. */
static int upkeep(uint64_t ttl_before)
{
    int steps = 0, rc;
    while ((rc = radix_upkeep(&seg, &sweep, cap, ttl_before, clock_ms)) == 1) {
        ttl_before = 0;
        steps++;
        check();
    }
    cr_assert_eq(rc, 0);
    return steps + 1;
}

/* An insert as a DP makes it (never evicting)... */
static long dp_ins(const uint64_t *h, size_t n, int slot, uint64_t now_ms)
{
    if (now_ms > clock_ms)
        clock_ms = now_ms;
    return radix_insert(&seg, h, n, (uint16_t)slot, gen_of((unsigned)slot), stamp, now_ms);
}

/* ...and with the CP's upkeep after it, as in a running router. */
static long ins(const uint64_t *h, size_t n, int slot, uint64_t now_ms)
{
    long r = dp_ins(h, n, slot, now_ms);
    upkeep(0);
    return r;
}

static void set_cap(uint32_t c)
{
    cap = c;
    cr_assert_eq(radix_set_capacity(&seg, c), 0);
}

static size_t match(const uint64_t *h, size_t n, uint32_t *node)
{
    return radix_match(&seg, h, n, node);
}

/* Cached depth of each of the candidates `slots` (current generations, stamp `now`, capacity
 * `within` stamps). */
static size_t cached_at(const uint64_t *h, size_t n, const int *slots, size_t k, uint32_t now,
                        uint32_t within, uint32_t *out)
{
    radix_cand_t c[SHM_RADIX_TAGS + 1];
    for (size_t i = 0; i < k; i++)
        c[i] = (radix_cand_t){
            .slot = (uint16_t)slots[i], .gen = gen_of((unsigned)slots[i]), .stamp = now, .within = within};
    return radix_cached_blocks(&seg, h, n, c, k, out);
}

static size_t cached(const uint64_t *h, size_t n, const int *slots, size_t k, uint32_t *out)
{
    return cached_at(h, n, slots, k, stamp, UINT32_MAX, out);
}

static int inst(const char *url)
{
    return add_instance(&seg, url, SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
}

static const shm_radix_hdr_t *T(void)
{
    return radix_hdr(&seg);
}

/* ---- hashing: expected values by the definition (shm/radix.c), blocks cut here by hand ----
 * Each block is hashed alone (XXH3 below 32 bytes; from 32 on, 32-byte stripes with keys that
 * move on from stripe to stripe, the last one overlapping, four lanes folded with the length) and chained to
 * the hash of the blocks before it. Written plainly, byte by byte, apart from both variants of shm/radix.c.
 */

static const uint64_t K[9] = {0x1ff419479b34eb59ULL, 0x5603c839d4c840b3ULL, 0xdfb1700717d728d7ULL,
                              0xf6e801f9d7dacb33ULL, 0x7d6c10e11a13a525ULL, 0x649a4e907812b81bULL,
                              0x38a7a4a45917dc7bULL, 0x5dcca7ead8d460b1ULL, 0xf2cb7ea9295143e7ULL};

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t ref_block(const unsigned char *p, size_t n)
{
    if (n < 32)
        return XXH3_64bits(p, n);
    uint64_t acc[4] = {K[7], K[8], K[7] ^ K[8], K[7] + K[8]};
    for (size_t off = 0; off < n; off += 32) {
        const unsigned char *s = off + 32 <= n ? p + off : p + n - 32;
        for (unsigned j = 0; j < 4; j++) {
            uint64_t x = le64(s + 8 * j) ^ (K[j] + off / 32 * 0x9e3779b97f4a7c15ULL); /* a key per stripe */
            acc[j] += le64(s + 8 * (j ^ 1)) + (x & 0xffffffffu) * (x >> 32);
        }
    }
    __uint128_t m = (__uint128_t)(acc[0] ^ acc[2] ^ K[4]) * (acc[1] ^ acc[3] ^ K[5]);
    return ((uint64_t)m ^ (uint64_t)(m >> 64)) + n * K[6];
}

/* The prefix hash after block p[0..n), the one before being `prev` (the seed for the first). */
static uint64_t xx(const void *p, size_t n, uint64_t prev)
{
    uint64_t x = prev ^ ref_block(p, n);
    x ^= x >> 31;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 29);
}

Test(radix, block_hashes_chain_each_blocks_own_hash)
{
    uint64_t h[8];
    /* block 2, "abcde": "ab", then "cd" seeded with the first hash; "e" is no full block */
    cr_assert_eq(radix_hash_text(0, "abcde", 5, 2, false, h, 8), 2);
    cr_assert_eq(h[0], xx("ab", 2, 0));
    cr_assert_eq(h[1], xx("cd", 2, h[0]));
    /* code points, not bytes: U+00E9 U+20AC | U+1F600 'A' */
    cr_assert_eq(radix_hash_text(7,
                                 "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                                 "A",
                                 10, 2, false, h, 8),
                 2);
    cr_assert_eq(h[0], xx("\xc3\xa9\xe2\x82\xac", 5, 7));
    cr_assert_eq(h[1], xx("\xf0\x9f\x98\x80"
                          "A",
                          5, h[0]));
    /* a long ASCII run (taken 8 bytes at a time) cuts where the byte loop would */
    const char *t = "0123456789abcdefghijklmnopqrstuvwxyz";
    cr_assert_eq(radix_hash_text(1, t, 36, 11, false, h, 8), 3);
    cr_assert_eq(h[2], xx(t + 22, 11, xx(t + 11, 11, xx(t, 11, 1))));
}

/* A block is not a sum of its pieces: the same 16- or 32-byte pieces in another order within a
 * block hash differently (one key for every stripe made the first two pairs below collide). */
Test(radix, reordered_pieces_of_a_block_hash_differently)
{
    static const char *pairs[][2] = {
        {"You are a helpful assistant. Be brief and do not lie to users!!",
         "brief and do notl assistant. Be You are a helpfu lie to users!!"},
        {"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789abcdefghijklmnopqrstuv",
         "wxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789abcdefghijklmnopqrstuv0123456789abcdefghijklmnopqrstuv"},
        {"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/",
         "ghijklmnopqrstuv0123456789abcdefwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t len = strlen(pairs[i][0]);
        uint64_t a[1], b[1];
        cr_assert_eq(strlen(pairs[i][1]), len);
        cr_assert_eq(radix_hash_text(RADIX_SEED, pairs[i][0], len, (uint32_t)len, false, a, 1), 1);
        cr_assert_eq(radix_hash_text(RADIX_SEED, pairs[i][1], len, (uint32_t)len, false, b, 1), 1);
        cr_assert_neq(a[0], b[0], "pair %zu: the same hash", i);
    }
}

Test(radix, continuation_bytes_stay_with_the_code_point_before_them)
{
    uint64_t h[4];
    /* stray continuation bytes count as no code point: block 1 of "\x80\x80ab" is "\x80\x80a" */
    cr_assert_eq(radix_hash_text(0,
                                 "\x80\x80"
                                 "ab",
                                 4, 1, false, h, 4),
                 2);
    cr_assert_eq(h[0], xx("\x80\x80"
                          "a",
                          3, 0));
    cr_assert_eq(h[1], xx("b", 1, h[0]));
    /* a truncated sequence at the end is its lead byte's code point */
    cr_assert_eq(radix_hash_text(0, "a\xe2\x82", 3, 1, false, h, 4), 2);
    cr_assert_eq(h[1], xx("\xe2\x82", 2, h[0]));
}

/* The cut of each block by the definition, one byte at a time: a block is `want` code points and
 * every continuation byte after them; the chunked scan in shm/radix.c must cut exactly here. */
static size_t ref_hash_text(uint64_t seed, const unsigned char *p, size_t len, size_t want, bool tail,
                            uint64_t *out, size_t max)
{
    size_t n = 0, off = 0;
    uint64_t prev = seed;
    while (n < max && off < len) {
        size_t i = off, cps = 0;
        for (; i < len; i++)
            if ((p[i] & 0xc0u) != 0x80u && cps++ == want)
                break;
        size_t got = cps > want ? want : cps;
        if (got < want && !(tail && n == 0 && got > 0))
            break;
        prev = out[n++] = xx(p + off, i - off, prev);
        off = i;
    }
    return n;
}

static void chunked_scan_matches_the_definition(void);

Test(radix, chunked_code_point_scan_cuts_where_the_byte_definition_does)
{
    chunked_scan_matches_the_definition(); /* the AVX2 variant where the CPU has it */
}

Test(radix, the_baseline_scan_cuts_where_the_byte_definition_does_too)
{
    setenv("FD_RADIX_NO_AVX2", "1", 1); /* read at the first hash of this (forked) test */
    chunked_scan_matches_the_definition();
}

static void chunked_scan_matches_the_definition(void)
{
    /* random mixes of ASCII runs, 2-4 byte sequences, stray continuation and invalid bytes, at
     * every alignment against the 16-byte chunks, for block sizes around the chunk size */
    static const char *pieces[] = {"a",    "hello world ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                   "\x80", "\xbf\xbf",     "\xff",     "\xc3",         "0123456789abcdef"};
    /* every other round longer than AVX2_MIN_BYTES (2048), which the vector variant needs */
    uint64_t seed = 42, h[8192], ref[8192];
    unsigned char text[4700];
    for (int round = 0; round < 3000; round++) {
        size_t len = 0;
        while (len < (round % 2 ? 4500u : 400u)) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            const char *pc = pieces[(seed >> 33) % (sizeof pieces / sizeof *pieces)];
            size_t l = strlen(pc);
            memcpy(text + len, pc, l);
            len += l;
        }
        len -= (seed >> 20) % 64; /* any length, any tail */
        /* block sizes around the chunk sizes, and now and then one past a window of the vector
         * variant's lead masks (4 KiB); now and then a bound on the blocks */
        uint32_t block =
            round % 7 ? 1 + (uint32_t)((seed >> 40) % 70) : 900 + (uint32_t)((seed >> 40) % 4000);
        bool tail = (seed >> 50) & 1;
        size_t max = round % 5 ? 8192 : 1 + (seed >> 8) % 8;
        size_t n = radix_hash_text(round, (const char *)text, len, block, tail, h, max);
        size_t m = ref_hash_text((uint64_t)round, text, len, block, tail, ref, max);
        cr_assert_eq(n, m, "round %d block %u len %zu: %zu blocks, by definition %zu", round, block, len, n,
                     m);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(h[i], ref[i], "round %d block %u: hash %zu differs", round, block, i);
    }
}

Test(radix, token_blocks_short_tail_and_the_block_bound)
{
    uint64_t h[8], ref[8];
    const uint64_t tok[] = {1ULL << 40, 5, 6};
    cr_assert_eq(radix_hash_tokens(0, tok, 3, 2, false, h, 8), 1);
    cr_assert_eq(h[0], xx(tok, 16, 0));
    cr_assert_eq(radix_hash_tokens(0, tok, 1, 2, true, h, 8), 1, "short tail: one short block");
    cr_assert_eq(h[0], xx(tok, 8, 0));
    cr_assert_eq(radix_hash_tokens(0, tok, 3, 2, true, h, 8), 1, "a tail after a full block is dropped");

    cr_assert_eq(radix_hash_text(7, "hi", 2, 64, false, h, 8), 0, "no full block: no hash");
    cr_assert_eq(radix_hash_text(7, "hi", 2, 64, true, h, 8), 1, "short tail: one short block");
    cr_assert_eq(h[0], xx("hi", 2, 7));
    cr_assert_eq(radix_hash_text(7, "", 0, 64, true, h, 8), 0);

    cr_assert_eq(radix_hash_text(3, "abcdef", 6, 1, false, ref, 8), 6);
    cr_assert_eq(radix_hash_text(3, "abcdef", 6, 1, false, h, 3), 3, "only the first `max` blocks");
    cr_assert_eq(memcmp(h, ref, 3 * sizeof h[0]), 0);
}

Test(radix, chains_share_one_seed_and_buckets_a_random_key)
{
    radix_stats_t st;
    radix_stats(&seg, &st);
    cr_assert_eq(st.seed, RADIX_SEED, "every router hashes alike");
    cr_assert_neq(T()->bucket_key, 0, "the bucket key is drawn at creation");
    shm_seg_t other;
    cr_assert_eq(shm_attach(&other, seg_name, NULL, 0), 0);
    cr_assert_eq(radix_hdr(&other)->bucket_key, T()->bucket_key, "and seen by every attacher");
    cr_assert_eq(T()->capacity, SHM_RADIX_MAX_NODES);
    shm_detach(&other);
}

/* ---- structure ---- */

Test(radix, insert_then_match_prefixes)
{
    int a = inst("http://127.0.0.1:1");
    uint64_t p[] = {11, 12, 13, 14, 15}, q[] = {11, 12, 99}, r[] = {99};
    uint32_t at;
    cr_assert_eq(ins(p, 5, a, 1000), 5);
    cr_assert_eq(T()->nodes, 1, "one edge of five hashes fits one node");
    cr_assert_eq(match(p, 5, &at), 5);
    cr_assert_eq(radix_node(&seg, at)->depth, 5);
    cr_assert_eq(match(p, 3, &at), 3, "a prompt ending mid-edge matches its length");
    cr_assert_eq(match(q, 3, NULL), 2);
    cr_assert_eq(match(r, 1, &at), 0);
    cr_assert_eq(at, SHM_RADIX_ROOT);
    cr_assert_eq(ins(p, 5, a, 2000), 5, "inserting again changes nothing but times");
    cr_assert_eq(T()->nodes, 1);
    check();
}

Test(radix, divergence_splits_the_edge)
{
    int a = inst("http://127.0.0.1:1");
    uint64_t p1[] = {1, 2, 3, 4, 5}, p2[] = {1, 2, 7, 8}, q[] = {1, 9};
    ins(p1, 5, a, 1000);
    cr_assert_eq(ins(p2, 4, a, 2000), 4);
    cr_assert_eq(T()->nodes, 3);
    uint32_t m, x, y;
    cr_assert_eq(match(p2, 2, &m), 2);
    cr_assert_eq(match(p1, 5, &x), 5);
    cr_assert_eq(match(p2, 4, &y), 4);
    const shm_radix_node_t *mn = radix_node(&seg, m), *xn = radix_node(&seg, x), *yn = radix_node(&seg, y);
    cr_assert_eq(radix_span_len(mn->span), 2);
    cr_assert_eq(mn->depth, 2);
    cr_assert_eq(mn->parent, SHM_RADIX_ROOT);
    cr_assert_eq(xn->parent, m);
    cr_assert_eq(yn->parent, m);
    cr_assert_eq(radix_span_start(xn->span), 2, "the old node keeps its keys, its edge starts later");
    cr_assert_eq(radix_span_len(xn->span), 3);
    cr_assert_eq(xn->depth, 5);
    cr_assert_eq(yn->depth, 4);
    cr_assert_eq(mn->last_ms, 2000, "the split node was on the new path");
    cr_assert_eq(xn->last_ms, 1000, "the old branch keeps its time");
    cr_assert_eq(match(q, 2, &x), 1);
    cr_assert_eq(x, m, "partial match ends in the node whose edge matched partly");
    cr_assert_eq(match(p2, 3, NULL), 3);
    check();
}

/* A prefix branches where at least two recorded prompts continue it differently (a group's
 * shared part); a history that the next turn only extends, a prefix ending mid-edge and a
 * prefix not in the tree do not. */
Test(radix, a_prefix_branches_where_two_prompts_continue_it_differently)
{
    int a = inst("http://127.0.0.1:1");
    uint64_t turn1[] = {1, 2, 3}, turn2[] = {1, 2, 3, 4, 5}, other[] = {1, 2, 3, 9}, absent[] = {7, 8};
    ins(turn1, 3, a, 1000);
    ins(turn2, 5, a, 2000);
    cr_assert_not(radix_branches(&seg, turn2, 3), "a conversation's next turn only extends it");
    cr_assert_not(radix_branches(&seg, turn2, 2), "mid-edge: one stored continuation");
    ins(other, 4, a, 3000);
    cr_assert(radix_branches(&seg, turn2, 3), "two prompts continue it differently");
    cr_assert_not(radix_branches(&seg, turn2, 4), "one of them ends there");
    cr_assert_not(radix_branches(&seg, absent, 2));
    cr_assert_not(radix_branches(&seg, turn2, 0));
    check();
}

/* radix_share counts the recent prompts that share the largest head of 2^k blocks within the
 * prefix asked about; it forgets beyond SHM_RADIX_RECENT prompts. */
Test(radix, the_recent_share_of_a_head_counts_prompts_through_it)
{
    uint64_t group[40], stranger[40];
    for (int i = 0; i < 40; i++)
        group[i] = 100 + (uint64_t)i, stranger[i] = 900 + (uint64_t)i;
    radix_share_t r = radix_share(&seg, group, 40);
    cr_assert_eq(r.same, 0);
    cr_assert_eq(r.seen, 0);
    for (int k = 0; k < 5; k++) {
        uint64_t member[40];
        memcpy(member, group, sizeof member);
        member[39] = 5000 + (uint64_t)k; /* own last block: the heads of 32 blocks still agree */
        radix_note_prompt(&seg, member, 40);
        radix_note_prompt(&seg, stranger, 40);
    }
    radix_note_prompt(&seg, group, 20); /* a prompt shorter than the head of 32 blocks */
    r = radix_share(&seg, group, 40);
    cr_assert_eq(r.same, 5, "the five members; the short prompt has no head of 32 blocks");
    cr_assert_eq(r.seen, 11);
    cr_assert_eq(radix_share(&seg, group, 16).same, 6, "a head of 16 blocks: the short prompt too");
    cr_assert_eq(radix_share(&seg, stranger, 40).same, 5);
    for (unsigned k = 0; k < SHM_RADIX_RECENT; k++)
        radix_note_prompt(&seg, stranger, 40);
    r = radix_share(&seg, group, 40);
    cr_assert_eq(r.same, 0, "forgotten after SHM_RADIX_RECENT prompts");
    cr_assert_eq(r.seen, SHM_RADIX_RECENT);
}

/* The re-homing budget: granted, taken one at a time, never below 0; a hostile word grants
 * nothing. */
Test(radix, the_moves_budget_is_taken_one_at_a_time)
{
    cr_assert_not(radix_moves_take(&seg), "a new segment grants none");
    radix_moves_grant(&seg, 2);
    cr_assert_eq(radix_moves_left(&seg), 2);
    cr_assert(radix_moves_take(&seg));
    cr_assert(radix_moves_take(&seg));
    cr_assert_not(radix_moves_take(&seg));
    radix_moves_grant(&seg, 0xffffffffu);
    cr_assert_eq(radix_moves_left(&seg), 0);
    cr_assert_not(radix_moves_take(&seg));
}

Test(radix, long_edges_are_chains_of_nodes)
{
    int a = inst("http://127.0.0.1:1");
    uint64_t p[25], q[25];
    for (int i = 0; i < 25; i++)
        p[i] = q[i] = 100 + (uint64_t)i;
    q[15] = 7;
    cr_assert_eq(ins(p, 25, a, 1000), 25);
    cr_assert_eq(T()->nodes, 3, "10 + 10 + 5 hashes");
    uint32_t at;
    cr_assert_eq(match(p, 25, &at), 25);
    cr_assert_eq(radix_node(&seg, radix_node(&seg, at)->parent)->depth, 20);
    cr_assert_eq(match(q, 25, &at), 15);
    cr_assert_eq(radix_node(&seg, at)->depth, 20, "ends inside the second node");
    cr_assert_eq(ins(q, 25, a, 2000), 25);
    cr_assert_eq(T()->nodes, 5, "the second node split at 15, plus a node for q's tail");
    cr_assert_eq(match(p, 25, NULL), 25);
    cr_assert_eq(match(q, 25, NULL), 25);
    check();
}

/* add_path fills every node of a new path first and chains them all after its loop, and radix_match
 * prefetches the next step's bucket guessing a full edge: a path of exactly two full nodes (the
 * guess lands on the prompt's end) and one a hash longer are found whole; when the nodes run out
 * under an existing node, exactly the hashes of the nodes it could have are placed, all of them
 * chained, and none when there is no node at all. */
Test(radix, a_new_path_is_chained_whole_also_when_the_nodes_run_out)
{
    int a = inst("http://127.0.0.1:1");
    uint64_t p20[21], p21[21];
    for (int i = 0; i < 21; i++)
        p20[i] = 100 + (uint64_t)i, p21[i] = 200 + (uint64_t)i;
    cr_assert_eq(dp_ins(p20, 20, a, 1000), 20);
    cr_assert_eq(T()->nodes, 2, "two full nodes");
    cr_assert_eq(match(p20, 20, NULL), 20);
    cr_assert_eq(match(p20, 21, NULL), 20, "a prompt one hash longer: the guess is past the path");
    cr_assert_eq(dp_ins(p21, 21, a, 1000), 21);
    cr_assert_eq(T()->nodes, 5, "10 + 10 + 1 hashes");
    cr_assert_eq(match(p21, 21, NULL), 21);
    check();

    /* two 5-hash prompts, then a 40-hash extension of each with room for 1, then 2 more nodes */
    uint64_t ext[2][40];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 40; i++)
            ext[k][i] = 1000 * (uint64_t)(k + 1) + (uint64_t)i;
        cr_assert_eq(dp_ins(ext[k], 5, a, 2000), 5);
    }
    for (int k = 0; k < 2; k++) {
        uint32_t room = (uint32_t)k + 1, at;
        set_cap(T()->nodes + room);
        size_t placed = 5 + SHM_RADIX_EDGE_MAX * room;
        cr_assert_eq(dp_ins(ext[k], 40, a, 3000), (long)placed, "room for %u nodes", room);
        cr_assert_eq(match(ext[k], 40, &at), placed, "room for %u nodes: the rest is absent", room);
        cr_assert_eq(radix_node(&seg, at)->depth, placed);
        check();
    }
    /* no node left: nothing beyond what is there, under a node or under the root */
    cr_assert_eq(dp_ins(ext[1], 40, a, 4000), 25);
    cr_assert_eq(dp_ins(p21 + 1, 20, a, 4000), 0);
    cr_assert_eq(T()->inserts_truncated, 4);
    cr_assert_eq(match(ext[1], 40, NULL), 25);
    cr_assert_eq(match(p21 + 1, 20, NULL), 0);
    check();
}

/* ---- hit ratios (docs/fastdeploy.md 10) ---- */

Test(radix, every_candidate_gets_its_own_cached_depth)
{
    int a = inst("http://127.0.0.1:1"), b = inst("http://127.0.0.1:2"), c = inst("http://127.0.0.1:3");
    uint64_t p1[] = {1, 2, 3, 4}, p2[] = {1, 2, 5, 6};
    ins(p1, 4, a, 1000); /* [1 2 3 4]: a */
    ins(p2, 4, b, 2000); /* split: [1 2]: a b, [3 4]: a, [5 6]: b */
    int abc[] = {a, b, c}, bc[] = {b, c};
    uint32_t r[3];

    cr_assert_eq(cached(p1, 4, abc, 3, r), 4);
    cr_assert(r[0] == 4 && r[1] == 2 && r[2] == 0, "a holds all, b the shared part: %u %u %u", r[0], r[1],
              r[2]);

    uint64_t q1[] = {1, 2, 3, 9};
    cr_assert_eq(cached(q1, 4, abc, 3, r), 3);
    cr_assert(r[0] == 3 && r[1] == 2, "ended inside a's edge: a gets the matched 3: %u %u", r[0], r[1]);

    uint64_t q2[] = {1, 2, 9, 9};
    cached(q2, 4, abc, 3, r);
    cr_assert(r[0] == 2 && r[1] == 2 && r[2] == 0, "both tagged on the shared node: %u %u %u", r[0], r[1],
              r[2]);

    uint64_t q3[] = {1, 2, 5, 9, 9, 9};
    cached(q3, 6, abc, 3, r);
    cr_assert(r[0] == 2 && r[1] == 3, "b's branch, a still holds the shared part: %u %u", r[0], r[1]);

    cached(p1, 4, bc, 2, r);
    cr_assert(r[0] == 2 && r[1] == 0, "a is no candidate: %u %u", r[0], r[1]);

    uint64_t q5[] = {8, 8};
    cr_assert_eq(cached(q5, 2, abc, 3, r), 0);
    cr_assert(r[0] == 0 && r[1] == 0 && r[2] == 0);
}

Test(radix, a_tag_older_than_the_instances_capacity_is_not_cached)
{
    int a = inst("http://127.0.0.1:1"), b = inst("http://127.0.0.1:2");
    uint64_t p[] = {1, 2, 3}, q[] = {1, 2};
    int ab[] = {a, b};
    uint32_t r[2];
    stamp = 1000;
    ins(p, 3, a, 1000);
    stamp = 5000;
    ins(q, 2, a, 2000); /* a chose [1 2] again later: that part is younger */
    ins(q, 2, b, 2000);

    cached_at(p, 3, ab, 2, 1000 + 100, 100, r);
    cr_assert(r[0] == 3, "100 stamps of inflow since: still within 100: %u", r[0]);
    cached_at(p, 3, ab, 2, 1000 + 101, 100, r);
    cr_assert(r[0] == 2 && r[1] == 2, "101 since [3] was tagged: only the refreshed [1 2]: %u %u", r[0],
              r[1]);
    cached_at(p, 3, ab, 2, 5000 + 101, 100, r);
    cr_assert(r[0] == 0 && r[1] == 0, "and that too once 101 more came in: %u %u", r[0], r[1]);
    cached_at(p, 3, ab, 2, 900, 100, r);
    cr_assert(r[0] == 3, "a tag made after the stamp was read counts as fresh: %u", r[0]);
    cached_at(p, 3, ab, 2, UINT32_MAX, UINT32_MAX, r);
    cr_assert(r[0] == 3, "no capacity known: never stale: %u", r[0]);
    stamp = UINT32_MAX - 10;
    ins(p, 3, b, 3000);
    cached_at(p, 3, ab, 2, 20, 100, r);
    cr_assert(r[1] == 3, "the stamp wraps: 31 since: %u", r[1]);
    stamp = 0;
}

Test(radix, a_reused_slot_does_not_inherit_its_predecessors_tags)
{
    int a = inst("http://127.0.0.1:1"), b = inst("http://127.0.0.1:2");
    uint64_t p[] = {1, 2, 3};
    ins(p, 3, a, 1000);
    uint32_t r[2];
    int ab[] = {a, b};
    cached(p, 3, ab, 2, r);
    cr_assert_eq(r[0], 3);

    /* the instance is removed; its slot is collected (generation + 1) and registered again */
    cr_assert_eq(shm_wlock(&seg), 0);
    shm_slot_retire(&seg, (unsigned)a, 1);
    cr_assert_eq(shm_publish_views(&seg), 0);
    cr_assert_eq(shm_slot_collect(&seg), 1);
    shm_wunlock(&seg);
    cr_assert_eq(inst("http://127.0.0.1:1"), a, "same slot again");
    cr_assert_eq(gen_of((unsigned)a), 1);
    cached(p, 3, ab, 2, r);
    cr_assert_eq(r[0], 0, "the old tag names generation 0");

    ins(p, 3, a, 2000);
    cached(p, 3, ab, 2, r);
    cr_assert_eq(r[0], 3);
    const shm_radix_node_t *n = radix_node(&seg, radix_node(&seg, SHM_RADIX_ROOT)->first_child);
    int tags = 0;
    for (int i = 0; i < SHM_RADIX_TAGS; i++)
        tags += n->tag[i].ident != 0;
    cr_assert_eq(tags, 1, "the stale tag was replaced, not kept beside the new one");
    check();
}

Test(radix, a_full_node_loses_its_oldest_tag)
{
    int s[SHM_RADIX_TAGS + 1];
    char url[64];
    for (int i = 0; i <= SHM_RADIX_TAGS; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d", 100 + i);
        s[i] = inst(url);
    }
    uint64_t p[] = {5};
    uint64_t t0 = T()->created_at_ms + 1000;  /* tags age in 0.1 s steps from the tree's creation */
    for (int i = SHM_RADIX_TAGS; i >= 0; i--) /* s[8] first: it holds the oldest tag */
        ins(p, 1, s[i], t0 + (uint64_t)(SHM_RADIX_TAGS - i) * 200);
    ins(p, 1, s[0], t0 + 10000); /* s[0] again: refreshes its own tag, takes no other */
    uint32_t r[SHM_RADIX_TAGS + 1];
    cached(p, 1, s, SHM_RADIX_TAGS + 1, r);
    cr_assert_eq(r[SHM_RADIX_TAGS], 0, "the oldest tag made room for s[0]");
    for (int i = 0; i < SHM_RADIX_TAGS; i++)
        cr_assert_eq(r[i], 1, "tag %d", i);
}

Test(radix, purge_removes_one_instances_tags)
{
    int a = inst("http://127.0.0.1:1"), b = inst("http://127.0.0.1:2");
    uint64_t p1[] = {1, 2, 3}, p2[] = {1, 2, 4};
    ins(p1, 3, a, 1000);
    ins(p2, 3, b, 1000);
    ins(p2, 3, a, 1000);
    cr_assert_eq(radix_purge_slot(&seg, (uint16_t)a), 3, "shared node, a's leaf, b's leaf");
    uint32_t r[2];
    int ab[] = {a, b};
    cached(p1, 3, ab, 2, r);
    cr_assert(r[0] == 0 && r[1] == 2, "a gone; b still on [1 2]: %u %u", r[0], r[1]);
    cached(p2, 3, ab, 2, r);
    cr_assert(r[0] == 0 && r[1] == 3);
    cr_assert_eq(T()->nodes, 3, "purge keeps the structure; the TTL removes it");
    check();
}

/* ---- eviction ---- */

Test(radix, ttl_unlinks_stale_nodes_with_their_subtrees)
{
    int a = inst("http://127.0.0.1:1");
    uint64_t p1[] = {1, 2, 3, 4}, p2[] = {1, 2, 7, 8}, p3[] = {1, 2, 7, 8, 9}, p4[25];
    for (int i = 0; i < 25; i++)
        p4[i] = 500 + (uint64_t)i;
    ins(p1, 4, a, 1000);
    ins(p2, 4, a, 1000);  /* [1 2] -> [3 4], [7 8] */
    ins(p3, 5, a, 5000);  /* [1 2], [7 8] refreshed, [9] new */
    ins(p4, 25, a, 1000); /* three nodes, all old */
    cr_assert_eq(T()->nodes, 7);
    cr_assert_eq(radix_evict_ttl(&seg, 6000, 2000), 4, "[3 4] and p4's three nodes");
    cr_assert_eq(T()->evictions_ttl, 4);
    cr_assert_eq(T()->nodes, 3);
    cr_assert_eq(match(p1, 4, NULL), 2);
    cr_assert_eq(match(p3, 5, NULL), 5);
    cr_assert_eq(match(p4, 25, NULL), 0);
    check();

    /* the rule takes a whole subtree even under a fresher node (only a clock step makes one) */
    uint32_t leaf;
    match(p3, 5, &leaf);
    radix_node(&seg, leaf)->last_ms = 9000;
    cr_assert_eq(radix_evict_ttl(&seg, 9000, 1000), 3);
    cr_assert_eq(T()->nodes, 0);
    check();
    cr_assert_eq(T()->limbo, 0, "no reader: the grace period passed at once");
}

Test(radix, capacity_pressure_evicts_least_recently_used_first)
{
    int a = inst("http://127.0.0.1:1");
    set_cap(20);
    uint64_t p[40];
    for (int i = 0; i < 40; i++) {
        p[i] = 1000 + (uint64_t)i;
        cr_assert_eq(ins(&p[i], 1, a, 10 * (uint64_t)i + 10), 1, "insert %d", i);
        cr_assert_leq(T()->nodes + T()->limbo, 20, "over capacity at insert %d", i);
        check();
    }
    cr_assert_gt(T()->evictions_pressure, 0);
    size_t kept = 0;
    int first_kept = -1;
    for (int i = 0; i < 40; i++)
        if (match(&p[i], 1, NULL)) {
            kept++;
            if (first_kept < 0)
                first_kept = i;
        } else
            cr_assert_lt(first_kept, 0, "prompt %d was evicted after a newer one was kept", i);
    cr_assert_geq(kept, 15, "only the oldest go, not the tree: kept %zu", kept);
    cr_assert(match(&p[39], 1, NULL));
}

Test(radix, pressure_with_equal_times_does_not_empty_the_tree)
{
    int a = inst("http://127.0.0.1:1");
    set_cap(64);
    for (uint64_t i = 0; i < 200; i++) {
        uint64_t h = 5000 + i;
        ins(&h, 1, a, 1000);
        cr_assert_leq(T()->nodes + T()->limbo, 64);
        if (i > 64)
            cr_assert_geq(T()->nodes, 48, "insert %llu left %u nodes", (unsigned long long)i, T()->nodes);
    }
    check();
}

Test(radix, lru_subtrees_go_before_fresh_branches)
{
    int a = inst("http://127.0.0.1:1");
    set_cap(32);
    uint64_t old[30], fresh[2][12];
    for (int i = 0; i < 30; i++)
        old[i] = 10 + (uint64_t)i; /* 3 nodes, t = 100 */
    ins(old, 30, a, 100);
    for (int b = 0; b < 2; b++) {
        for (int i = 0; i < 12; i++)
            fresh[b][i] = 1000 * (uint64_t)(b + 1) + (uint64_t)i; /* 2 nodes each */
        ins(fresh[b], 12, a, 5000);
    }
    for (uint64_t i = 0; i < 30; i++) { /* 26 one-node prompts, newer than `old` */
        uint64_t h = 90000 + i;
        ins(&h, 1, a, 200 + i);
    }
    cr_assert_eq(match(old, 30, NULL), 0, "the least recently used subtree went first");
    cr_assert_eq(match(fresh[0], 12, NULL), 12);
    cr_assert_eq(match(fresh[1], 12, NULL), 12);
    check();
}

Test(radix, a_path_longer_than_the_capacity_is_recorded_as_far_as_it_fits)
{
    int a = inst("http://127.0.0.1:1");
    set_cap(3);
    uint64_t p[50];
    for (int i = 0; i < 50; i++)
        p[i] = 7000 + (uint64_t)i;
    cr_assert_eq(dp_ins(p, 50, a, 1000), 30);
    cr_assert_eq(T()->inserts_truncated, 1);
    cr_assert_eq(T()->nodes, 3);
    cr_assert_eq(match(p, 50, NULL), 30);
    check();
}

Test(radix, shrinking_the_capacity_evicts_down_to_it)
{
    int a = inst("http://127.0.0.1:1");
    for (uint64_t i = 0; i < 40; i++) {
        uint64_t h = 300 + i;
        ins(&h, 1, a, 100 + i);
    }
    cr_assert_eq(radix_set_capacity(&seg, 10), 0);
    cr_assert_eq(T()->capacity, 10);
    cr_assert_leq(T()->nodes + T()->limbo, 10);
    uint64_t newest = 339;
    cr_assert(match(&newest, 1, NULL));
    check();
    cr_assert_eq(radix_set_capacity(&seg, 0), 0);
    cr_assert_eq(T()->capacity, SHM_RADIX_MAX_NODES, "0 means the maximum");
    cap = 5;
    upkeep(0);
    cr_assert_eq(T()->capacity, 5, "an upkeep step applies the configured capacity");
    cr_assert_leq(T()->nodes + T()->limbo, 5);
    check();
}

Test(radix, an_insert_never_evicts_the_next_upkeep_makes_room)
{
    int a = inst("http://127.0.0.1:1");
    set_cap(16);
    for (uint64_t i = 0; i < 16; i++) { /* fill it as DPs would with the CP away */
        uint64_t h = 100 + i;
        cr_assert_eq(dp_ins(&h, 1, a, 100 + i), 1);
    }
    cr_assert_eq(T()->nodes, 16);
    uint64_t h = 999;
    cr_assert_eq(dp_ins(&h, 1, a, 500), 0, "a full tree records nothing more");
    cr_assert_eq(T()->evictions_pressure, 0, "the insert evicted nothing");
    cr_assert_eq(T()->nodes, 16);
    cr_assert_eq(T()->inserts_truncated, 1);
    upkeep(0);
    cr_assert_gt(T()->evictions_pressure, 0, "the upkeep made room");
    uint64_t oldest = 100;
    cr_assert_eq(match(&oldest, 1, NULL), 0, "the least recently used went");
    cr_assert_eq(dp_ins(&h, 1, a, 600), 1);
    check();
}

/* A path of several nodes taken from the free list (not fresh arena) is found whole: add_path chains
 * every one of them, and nothing the evicted nodes held survives their reuse. The prompt whose
 * path was evicted comes back shorter, so its new leaf is a recycled inner node whose old first
 * child is still on the free list. */
Test(radix, a_path_of_recycled_nodes_is_found_whole)
{
    int a = inst("http://127.0.0.1:1");
    set_cap(20);
    uint64_t old[4][50];
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 50; i++)
            old[k][i] = 10000 * (uint64_t)(k + 1) + (uint64_t)i;
        cr_assert_eq(dp_ins(old[k], 50, a, k < 2 ? 100 : 200), 50);
    }
    cr_assert_eq(T()->nodes, 20, "full");
    uint32_t high_water = T()->high_water;
    upkeep(150); /* the two older paths go; no reader holds them, so they are freed at once */
    cr_assert_eq(T()->evictions_ttl, 10);
    cr_assert_eq(T()->limbo, 0);
    cr_assert_eq(match(old[1], 50, NULL), 0);
    cr_assert_eq(dp_ins(old[1], 35, a, 300), 35);
    cr_assert_eq(T()->high_water, high_water, "all four nodes were recycled");
    cr_assert_eq(match(old[1], 50, NULL), 35);
    cr_assert_eq(match(old[2], 50, NULL), 50, "the younger paths stay");
    cr_assert_eq(match(old[3], 50, NULL), 50);
    check();
}

Test(radix, a_sweep_takes_bounded_steps_and_inserts_interleave)
{
    int a = inst("http://127.0.0.1:1");
    enum { N = 20000 };
    for (uint64_t i = 0; i < N; i++) { /* one-node prompts, all older than the TTL below */
        uint64_t h = 1000000 + i;
        cr_assert_eq(dp_ins(&h, 1, a, 1000 + i % 500), 1);
    }
    cr_assert_eq(radix_upkeep(&seg, &sweep, cap, 5000, clock_ms), 1,
                 "a TTL pass of 20000 nodes takes more than one step");
    uint64_t first = T()->evictions_ttl;
    cr_assert_gt(first, 0);
    cr_assert_lt(first, N / 4, "one step unlinked %llu nodes", (unsigned long long)first);
    /* between steps a DP inserts fresh paths and splits an old edge under the walk */
    uint64_t fresh[12];
    for (int i = 0; i < 12; i++)
        fresh[i] = 7000000 + (uint64_t)i;
    cr_assert_eq(dp_ins(fresh, 12, a, 9000), 12);
    fresh[6] = 1;
    cr_assert_eq(dp_ins(fresh, 12, a, 9000), 12);
    check();
    int steps = 1, rc;
    while ((rc = radix_upkeep(&seg, &sweep, cap, 0, clock_ms)) == 1)
        steps++; /* (the invariant check is quadratic: at the ends only, on this size) */
    cr_assert_eq(rc, 0);
    cr_assert_geq(steps, 4, "%d steps", steps);
    cr_assert_eq(T()->evictions_ttl, N, "every old node went: %llu", (unsigned long long)T()->evictions_ttl);
    cr_assert_eq(match(fresh, 12, NULL), 12, "what was inserted during the sweep stays");
    fresh[6] = 7000006;
    cr_assert_eq(match(fresh, 12, NULL), 12);
    check();
}

Test(radix, unlinked_nodes_wait_for_readers_in_older_epochs)
{
    int a = inst("http://127.0.0.1:1");
    set_cap(4);
    uint64_t p[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    cr_assert_eq(ins(p, 20, a, 1000), 20);
    int me = shm_reader_register(&seg);
    cr_assert_geq(me, 0);
    shm_read_enter(&seg, me);
    uint32_t at;
    cr_assert_eq(match(p, 20, &at), 20);
    cr_assert_eq(radix_evict_ttl(&seg, 10000, 10), 2);
    cr_assert_eq(T()->limbo, 2, "a reader may still stand on them");
    cr_assert_eq(radix_node(&seg, at)->depth, 20, "and they are intact for it");
    uint64_t q[] = {50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71};
    cr_assert_eq(dp_ins(q, 22, a, 20000), 20, "two nodes free, two held in limbo by the reader");
    check();
    radix_upkeep(&seg, &sweep, cap, 0, clock_ms);
    cr_assert_geq(T()->limbo, 2, "the upkeep cannot free what a reader may stand on");
    shm_read_exit(&seg, me);
    upkeep(0);
    cr_assert_eq(T()->limbo, 0, "after the reader left, the next upkeep frees the limbo");
    cr_assert_eq(dp_ins(q, 22, a, 20001), 22, "and the insert completes");
    check();
    shm_reader_unregister(&seg, me);
}

/* ---- a writer dies mid-change ---- */

static pid_t die_holding_lock(void (*damage)(shm_seg_t *s))
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        shm_seg_t s;
        if (shm_attach(&s, seg_name, NULL, 0) < 0 || shm_wlock(&s) < 0)
            _exit(2);
        radix_hdr(&s)->dirty = 1;
        damage(&s);
        _exit(0); /* still holding the lock */
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return pid;
}

/* A node taken from the arena and put on a chain, but never linked into the tree. */
static void orphan_node(shm_seg_t *s)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    uint32_t i = t->high_water++;
    shm_radix_node_t *n = radix_node(s, i);
    n->state = SHM_RADIX_USED;
    n->parent = SHM_RADIX_ROOT;
    n->span = 1;
    n->key[0] = 424242;
    radix_buckets(s)[0] = i;
    t->nodes++;
}

Test(radix, repair_keeps_a_valid_tree_and_retires_the_orphans)
{
    int a = inst("http://127.0.0.1:1");
    uint64_t p1[] = {1, 2, 3, 4}, p2[] = {1, 2, 7, 8};
    ins(p1, 4, a, 1000);
    ins(p2, 4, a, 1000);
    die_holding_lock(orphan_node);
    uint64_t p3[] = {9};
    cr_assert_eq(ins(p3, 1, a, 2000), 1);
    cr_assert_eq(T()->recoveries, 1);
    cr_assert_eq(seg.hdr->wlock_recovered, 1);
    cr_assert_eq(match(p1, 4, NULL), 4, "the tree survived");
    cr_assert_eq(match(p2, 4, NULL), 4);
    cr_assert_eq(T()->nodes, 4);
    check();
}

/* A split cut short: a node re-parented in the lists but not in its parent link. */
static void half_split(shm_seg_t *s)
{
    uint32_t m = radix_node(s, SHM_RADIX_ROOT)->first_child;
    uint32_t c = radix_node(s, m)->first_child;
    radix_node(s, c)->parent = SHM_RADIX_ROOT;
}

Test(radix, repair_empties_an_inconsistent_tree_without_leaking)
{
    int a = inst("http://127.0.0.1:1");
    uint64_t p1[] = {1, 2, 3, 4}, p2[] = {1, 2, 7, 8};
    ins(p1, 4, a, 1000);
    ins(p2, 4, a, 1000);
    die_holding_lock(half_split);
    cr_assert_eq(radix_evict_ttl(&seg, 1000, 1000000), 0);
    cr_assert_eq(T()->recoveries, 1);
    cr_assert_eq(T()->nodes, 0);
    cr_assert_eq(match(p1, 4, NULL), 0);
    check();
    cr_assert_eq(ins(p1, 4, a, 3000), 4, "and works on");
    check();
}

/* An eviction cut short: a leaf unlinked and pushed to limbo before its epoch was stamped. */
static void half_eviction(shm_seg_t *s)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    shm_radix_node_t *root = radix_node(s, SHM_RADIX_ROOT);
    uint32_t c = root->first_child;
    shm_radix_node_t *cn = radix_node(s, c);
    root->first_child = cn->next_sibling;
    cn->state = SHM_RADIX_LIMBO;
    cn->retire_epoch = 0;
    cn->link = t->limbo_head;
    t->limbo_head = c;
}

Test(radix, repair_frees_a_half_evicted_node)
{
    int a = inst("http://127.0.0.1:1");
    uint64_t p1[] = {1, 2, 3, 4}, p2[] = {1, 2, 7, 8}, p3[] = {5, 6};
    ins(p1, 4, a, 1000);
    ins(p2, 4, a, 1000);
    ins(p3, 2, a, 1000); /* the root's first child */
    die_holding_lock(half_eviction);
    cr_assert_eq(radix_evict_ttl(&seg, 1000, 1000000), 0);
    cr_assert_eq(T()->recoveries, 1);
    cr_assert_eq(match(p3, 2, NULL), 0);
    cr_assert_eq(match(p1, 4, NULL), 4, "the rest of the tree is kept");
    cr_assert_eq(T()->nodes, 3);
    cr_assert_eq(T()->limbo, 0, "the cut-off node waited one grace period, then was freed");
    check();
}
