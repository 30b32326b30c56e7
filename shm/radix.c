/*
 * shm/radix.c - the prefix radix tree of cache_aware (contract in shm/radix.h, layout in
 * shm/layout.h).
 *
 * Readers use two things only: the hash chains (bucket of (parent, first hash) -> nodes) to
 * find a child, and the parent links to walk back up (radix_branches also reads a node's first
 * two children, links published like the chains). Writers keep, besides, the first-child /
 * next-sibling lists for walks, the node arena's free and limbo lists (like arena.c's, but for
 * 256-byte nodes addressed by index), and the counters in the tree header.
 *
 * Why every change is safe for a concurrent reader:
 *  - a node is filled before the release store that makes it reachable (a chain head, a
 *    first_child or next_sibling link), and its keys never change while reachable or in limbo;
 *  - an unlinked node keeps its own links, so a reader standing on it walks on into nodes that
 *    are still valid, and it is reused only after a grace period;
 *  - a split builds the upper half as a new node M, publishes it, then shortens the old node's
 *    edge with one store of `span` and re-parents it: a reader sees the old or the new edge,
 *    at worst it misses the node for one lookup.
 *
 * Every walk a writer makes is stackless (parent links), so no walk needs memory that grows
 * with the tree; pressure eviction is a few linear passes (histograms of last access that
 * narrow down the cut-off, then an unlinking walk), amortised over a batch of 1/16 of the
 * capacity.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#define XXH_INLINE_ALL /* header-only: XXH3 inlined into the hashing loops */
#include <xxhash.h>

#include "shm/internal.h"
#include "shm/radix.h"

#define NODE_SLOTS        (SHM_RADIX_MAX_NODES + 2u) /* 0 = none, 1 = root */
#define FIRST_NODE        2u
#define CHAIN_MAX_STEPS   1024u /* a chain holds about one node; a longer walk is given up */
#define HISTOGRAM_BUCKETS RADIX_HIST_BUCKETS

_Static_assert(sizeof(shm_radix_node_t) == 256, "a node is 256 bytes, 16 to a page");

#define LOAD(p)         __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define PUBLISH(p, v)   __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define SET(p, v)       __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define GET(p)          __atomic_load_n((p), __ATOMIC_RELAXED)
#define RADIX_REUSE_ONE 65536u /* shm_radix_hdr_t.reuse's fixed point: 1.0 */

/* ------------------------------------------------------------------------------------------ */
/* hashing                                                                                    */

/* Lead bytes (any byte but a UTF-8 continuation byte 10xxxxxx) among the next few bytes, one bit
 * each, lowest address first. SSE2 (every x86-64) looks at 16 bytes per compare: continuation
 * bytes are 0x80..0xBF, i.e. -128..-65 as signed bytes, so a lead byte is one greater than -65.
 * Elsewhere the same is done 8 bytes at a time in a 64-bit word. */
#if defined(__SSE2__)
#include <emmintrin.h>
#define LEAD_CHUNK 16u
static inline uint32_t lead_bits(const unsigned char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    return (uint32_t)_mm_movemask_epi8(_mm_cmpgt_epi8(v, _mm_set1_epi8(-65)));
}
#else
#define LEAD_CHUNK 8u
static inline uint32_t lead_bits(const unsigned char *p)
{
    uint64_t w, m = 0x8080808080808080ULL;
    memcpy(&w, p, 8);
    uint64_t cont = w & ~(w << 1) & m; /* bit 7 set, bit 6 clear: a continuation byte */
    uint32_t bits = 0;
    for (unsigned k = 0; k < 8; k++)
        bits |= (uint32_t) !((cont >> (8 * k + 7)) & 1u) << k;
    return bits;
}
#endif

/* Bytes that make up the first `want` code points of p[0..len): a code point starts at every
 * lead byte, so a block ends before the lead byte of code point want + 1 (continuation bytes
 * stay with the code point they continue, valid or not). Whole chunks are counted with one
 * popcount; inside the chunk where the block ends, the cut is the (want - count + 1)-th lead bit.
 * Starts at byte i with `count` code points already taken; *got gets the code points taken
 * (< want only at the end). */
static size_t take_codepoints(const unsigned char *p, size_t len, size_t i, size_t count, size_t want,
                              size_t *got)
{
    while (i + LEAD_CHUNK <= len) {
        uint32_t bits = lead_bits(p + i);
        size_t k = fd_bit_count(bits);
        if (count + k <= want) {
            count += k;
            i += LEAD_CHUNK;
            continue;
        }
        for (size_t skip = want - count; skip; skip--)
            bits &= bits - 1; /* drop the leads that still belong to this block */
        *got = want;
        return i + (size_t)__builtin_ctz(bits);
    }
    for (; i < len; i++)
        if ((p[i] & 0xc0u) != 0x80u) {
            if (count == want)
                break;
            count++;
        }
    *got = count;
    return i;
}

/*
 * A block's hash is computed apart from the other blocks' and chained to the one before it by a
 * multiply-xorshift (chain()), so that a prompt's blocks hash in parallel on an out-of-order core:
 * XXH3 seeded with the previous block's hash made every block wait for the whole latency of the
 * one before (bench_selection, 64k characters: 0.89x for this alone).
 *
 * A block of 32 bytes or more (every block of 32 code points or more) is hashed in 32-byte
 * stripes: each 8-byte lane is x-ored with a key, its two halves multiplied (32 x 32 -> 64 bits)
 * and the product added to the lane's accumulator with the neighbouring lane's bytes (so a lane
 * whose product is 0 still counts). The keys move on by STRIPE_STEP from one stripe to the next:
 * with one key for every stripe a block's hash was a sum that did not change when two of its
 * 16-byte pieces at the same offset in their stripes changed places. The last stripe overlaps
 * the one before it when the length is not a multiple of 32, and the length enters the final
 * fold of the four lanes (one 64 x 64 -> 128 multiply; chain() mixes the result). AVX2 does a
 * stripe in five instructions, SSE2 (the x86-64 baseline) in ten, other targets lane by lane:
 * all give the same hash, as every router must. A shorter block (block sizes of a few code
 * points) is hashed by XXH3. The keys are fixed: replicas must agree.
 */
/* [0, 4): the stripes' lane keys; 4, 5: the fold's; 6: the length's; 7, 8: the accumulators' start */
static const uint64_t BLOCK_KEY[9] = {0x1ff419479b34eb59ULL, 0x5603c839d4c840b3ULL, 0xdfb1700717d728d7ULL,
                                      0xf6e801f9d7dacb33ULL, 0x7d6c10e11a13a525ULL, 0x649a4e907812b81bULL,
                                      0x38a7a4a45917dc7bULL, 0x5dcca7ead8d460b1ULL, 0xf2cb7ea9295143e7ULL};
#define STRIPE      32u
#define STRIPE_STEP 0x9e3779b97f4a7c15ULL /* added to every lane's key after each stripe */

static inline uint64_t fold128(uint64_t a, uint64_t b)
{
    __uint128_t m = (__uint128_t)a * b;
    return (uint64_t)m ^ (uint64_t)(m >> 64);
}

/* The lanes folded in pairs (0 with 2, 1 with 3), then by one 64 x 64 -> 128 multiply with the
 * length: chain() is the avalanche. */
static inline uint64_t stripes_finish(uint64_t a02, uint64_t a13, size_t len)
{
    return fold128(a02 ^ BLOCK_KEY[4], a13 ^ BLOCK_KEY[5]) + (uint64_t)len * BLOCK_KEY[6];
}

#if defined(__SSE2__)
/* Two lanes of a stripe (SSE2, every x86-64): lane j ^ 1 is the other half of the same 128 bits. */
static inline __m128i stripe_half(__m128i acc, const unsigned char *p, __m128i key)
{
    __m128i d = _mm_loadu_si128((const __m128i *)(const void *)p), x = _mm_xor_si128(d, key);
    return _mm_add_epi64(acc,
                         _mm_add_epi64(_mm_shuffle_epi32(d, 0x4e), _mm_mul_epu32(x, _mm_srli_epi64(x, 32))));
}

static inline uint64_t block_hash_base(const unsigned char *p, size_t len)
{
    if (len < STRIPE)
        return XXH3_64bits(p, len);
    __m128i k01 = _mm_loadu_si128((const __m128i *)(const void *)BLOCK_KEY),
            k23 = _mm_loadu_si128((const __m128i *)(const void *)(BLOCK_KEY + 2));
    __m128i a01 = _mm_set_epi64x((long long)BLOCK_KEY[8], (long long)BLOCK_KEY[7]),
            a23 = _mm_set_epi64x((long long)(BLOCK_KEY[7] + BLOCK_KEY[8]),
                                 (long long)(BLOCK_KEY[7] ^ BLOCK_KEY[8]));
    const __m128i step = _mm_set1_epi64x((long long)STRIPE_STEP);
    size_t off = 0;
    for (; off + STRIPE <= len; off += STRIPE) {
        a01 = stripe_half(a01, p + off, k01), a23 = stripe_half(a23, p + off + 16, k23);
        k01 = _mm_add_epi64(k01, step), k23 = _mm_add_epi64(k23, step);
    }
    if (off < len)
        a01 = stripe_half(a01, p + len - STRIPE, k01), a23 = stripe_half(a23, p + len - 16, k23);
    __m128i f = _mm_xor_si128(a01, a23); /* lanes 0 ^ 2, 1 ^ 3 */
    return stripes_finish((uint64_t)_mm_cvtsi128_si64(f),
                          (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(f, f)), len);
}
#else
static inline void stripe_base(uint64_t acc[4], const unsigned char *p, uint64_t step)
{
    uint64_t d[4];
    memcpy(d, p, sizeof d);
    for (unsigned j = 0; j < 4; j++) {
        uint64_t x = d[j] ^ (BLOCK_KEY[j] + step);
        acc[j] += d[j ^ 1u] + (x & 0xffffffffu) * (x >> 32);
    }
}

static inline uint64_t block_hash_base(const unsigned char *p, size_t len)
{
    if (len < STRIPE)
        return XXH3_64bits(p, len);
    uint64_t acc[4] = {BLOCK_KEY[7], BLOCK_KEY[8], BLOCK_KEY[7] ^ BLOCK_KEY[8], BLOCK_KEY[7] + BLOCK_KEY[8]};
    size_t off = 0;
    uint64_t step = 0;
    for (; off + STRIPE <= len; off += STRIPE, step += STRIPE_STEP)
        stripe_base(acc, p + off, step);
    if (off < len)
        stripe_base(acc, p + len - STRIPE, step);
    return stripes_finish(acc[0] ^ acc[2], acc[1] ^ acc[3], len);
}
#endif

/* The prefix hash after a block: the one before it and the block's own, mixed. */
static inline uint64_t chain(uint64_t prev, uint64_t block)
{
    uint64_t x = prev ^ block;
    x ^= x >> 31;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 29);
}

/* The block loop, inlined into each instruction-set variant below with its own cutter and block
 * hash. */
typedef size_t (*take_fn)(const unsigned char *p, size_t len, size_t want, size_t *got);
typedef uint64_t (*block_fn)(const unsigned char *p, size_t len);

static inline __attribute__((always_inline)) size_t hash_text(take_fn take, block_fn block, uint64_t prev,
                                                              const unsigned char *p, size_t len, size_t off,
                                                              size_t n, size_t want, bool short_tail,
                                                              uint64_t *out, size_t max)
{
    while (n < max && off < len) {
        size_t got, bytes = take(p + off, len - off, want, &got);
        if (got < want && !(short_tail && n == 0 && got > 0))
            break; /* only full blocks count, but for the short tail of a prompt shorter than one */
        prev = out[n++] = chain(prev, block(p + off, bytes));
        off += bytes;
    }
    return n;
}

static inline size_t take_base(const unsigned char *p, size_t len, size_t want, size_t *got)
{
    return take_codepoints(p, len, 0, 0, want, got);
}

static size_t hash_text_base(uint64_t seed, const unsigned char *p, size_t len, size_t want, bool short_tail,
                             uint64_t *out, size_t max)
{
    return hash_text(take_base, block_hash_base, seed, p, len, 0, 0, want, short_tail, out, max);
}

#if defined(__x86_64__) && defined(__GNUC__)
/*
 * AVX2 + BMI2 (chosen at run time): 64 bytes per step, the lead bits of both halves in one
 * 64-bit mask, the cut found by depositing one bit on the (want - count + 1)-th lead (PDEP) and
 * counting the zeros below it. With 64-byte steps a block of 64 code points takes one whole step
 * and one cut nearly always, so the branch that ends a block is predictable; 16-byte steps end
 * a block at a varying step and pay a misprediction per block.
 */
#include <immintrin.h>
#define AVX2_TARGET __attribute__((target("avx2,popcnt,bmi,bmi2")))
/* Below this the baseline variant: running any 256-bit code for a short prompt cost about 1 us
 * per request in the whole data plane (bench/overhead.py, small requests with cache_aware: 0.81
 * of nginx with it, 0.95 without), far more than vectors save on a few blocks. */
#define AVX2_MIN_BYTES 2048

AVX2_TARGET static inline uint64_t lead_mask64(const unsigned char *p)
{
    const __m256i lim = _mm256_set1_epi8(-65);
    __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
    return (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(hi, lim)) << 32 |
           (uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(lo, lim));
}

AVX2_TARGET static inline size_t take_avx2(const unsigned char *p, size_t len, size_t want, size_t *got)
{
    size_t i = 0, count = 0;
    while (i + 64 <= len) {
        uint64_t m = lead_mask64(p + i);
        size_t k = (size_t)_mm_popcnt_u64(m);
        if (count + k <= want) {
            count += k;
            i += 64;
            continue;
        }
        *got = want;
        return i + (size_t)_tzcnt_u64(_pdep_u64(1ULL << (want - count), m));
    }
    return take_codepoints(p, len, i, count, want, got);
}

/* stripe_base, four lanes at once: lane j ^ 1 is the other half of the same 128-bit lane. */
AVX2_TARGET static inline __m256i stripe_avx2(__m256i acc, const unsigned char *p, __m256i key)
{
    __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i x = _mm256_xor_si256(d, key);
    __m256i prod = _mm256_mul_epu32(x, _mm256_srli_epi64(x, 32));
    return _mm256_add_epi64(acc, _mm256_add_epi64(_mm256_shuffle_epi32(d, 0x4e), prod));
}

AVX2_TARGET static inline uint64_t block_hash_avx2(const unsigned char *p, size_t len)
{
    if (len < STRIPE)
        return XXH3_64bits(p, len);
    const __m256i step = _mm256_set1_epi64x((long long)STRIPE_STEP);
    __m256i key = _mm256_loadu_si256((const __m256i *)(const void *)BLOCK_KEY);
    __m256i acc =
        _mm256_set_epi64x((long long)(BLOCK_KEY[7] + BLOCK_KEY[8]), (long long)(BLOCK_KEY[7] ^ BLOCK_KEY[8]),
                          (long long)BLOCK_KEY[8], (long long)BLOCK_KEY[7]);
    size_t off = 0;
    for (; off + STRIPE <= len; off += STRIPE) {
        acc = stripe_avx2(acc, p + off, key);
        key = _mm256_add_epi64(key, step);
    }
    if (off < len)
        acc = stripe_avx2(acc, p + len - STRIPE, key);
    __m128i f = _mm_xor_si128(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    return stripes_finish((uint64_t)_mm_cvtsi128_si64(f), (uint64_t)_mm_extract_epi64(f, 1), len);
}

/* The block ends are found apart from the hashing, a window of text at a time: first the lead
 * masks of its 64-byte chunks and the leads below each (independent of one another), then each
 * block's end, the lead that starts code point want x (n + 1), by a forward walk over those
 * counts and one PDEP. Cutting block after block instead, where each cut starts where the last
 * one ended, put the latency of a mask, a popcount and a PDEP between consecutive blocks: half of
 * a 64k-character selection. Blocks that end past the last whole chunk take the cutter. */
#define WINDOW_CHUNKS 64u

AVX2_TARGET static size_t hash_text_avx2(uint64_t seed, const unsigned char *p, size_t len, size_t want,
                                         bool short_tail, uint64_t *out, size_t max)
{
    uint64_t mask[WINDOW_CHUNKS], prev = seed, leads = 0; /* leads below the window */
    uint32_t below[WINDOW_CHUNKS + 1];                    /* leads in the window below chunk c */
    size_t n = 0, start = 0, base = 0;                    /* the current block's first byte, the window's */
    while (n < max && base + 64 <= len) {
        size_t chunks = (len - base) / 64 < WINDOW_CHUNKS ? (len - base) / 64 : WINDOW_CHUNKS;
        below[0] = 0;
        for (size_t c = 0; c < chunks; c++) {
            mask[c] = lead_mask64(p + base + 64 * c);
            below[c + 1] = below[c] + (uint32_t)_mm_popcnt_u64(mask[c]);
        }
        size_t c = 0;
        for (uint64_t q = (uint64_t)want * (n + 1); n < max && q < leads + below[chunks]; q += want) {
            uint64_t r = q - leads;
            while (below[c + 1] <= r)
                c++;
            size_t cut = base + 64 * c + (size_t)_tzcnt_u64(_pdep_u64(1ULL << (r - below[c]), mask[c]));
            prev = out[n++] = chain(prev, block_hash_avx2(p + start, cut - start));
            start = cut;
        }
        leads += below[chunks];
        base += 64 * chunks;
    }
    return hash_text(take_avx2, block_hash_avx2, prev, p, len, start, n, want, short_tail, out, max);
}

/* FD_RADIX_NO_AVX2 (any value) keeps the baseline variant: the tests check both, and an
 * operator can rule the vector code out. */
static bool have_avx2(void)
{
    static int have = -1; /* a benign race: every thread computes the same answer */
    if (have < 0)
        have = !getenv("FD_RADIX_NO_AVX2") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
    return have;
}
#endif

size_t radix_hash_text(uint64_t seed, const char *text, size_t len, uint32_t block_size, bool short_tail,
                       uint64_t *out, size_t max)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t want = block_size ? block_size : 1;
#if defined(__x86_64__) && defined(__GNUC__)
    if (len >= AVX2_MIN_BYTES && have_avx2())
        return hash_text_avx2(seed, p, len, want, short_tail, out, max);
#endif
    return hash_text_base(seed, p, len, want, short_tail, out, max);
}

size_t radix_hash_tokens(uint64_t seed, const uint64_t *tok, size_t ntok, uint32_t block_size,
                         bool short_tail, uint64_t *out, size_t max)
{
    size_t b = block_size ? block_size : 1, n = 0;
    uint64_t prev = seed;
    const unsigned char *p = (const unsigned char *)tok; /* the ids' bytes, hashed as a text's */
    for (size_t off = 0; n < max && off + b <= ntok; off += b)
        prev = out[n++] = chain(prev, block_hash_base(p + off * sizeof *tok, b * sizeof *tok));
    if (short_tail && n == 0 && ntok > 0 && ntok < b && max > 0)
        out[n++] = chain(prev, block_hash_base(p, ntok * sizeof *tok));
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* lookups                                                                                    */

/* The bucket of (parent, first hash). Block hashes use a seed every router shares (replicas must
 * agree), so anyone can compute them; the segment's random bucket key keeps a crafted set of
 * prompts from piling onto one hash chain. */
static inline uint32_t bucket_of(const shm_seg_t *s, uint32_t parent, uint64_t first)
{
    uint64_t x = first ^ radix_hdr(s)->bucket_key ^ ((uint64_t)parent * 0x9e3779b97f4a7c15ULL);
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ULL;
    return (uint32_t)(x >> 32) & (SHM_RADIX_BUCKETS - 1u);
}

static inline bool span_ok(uint32_t span)
{
    unsigned len = radix_span_len(span);
    return len > 0 && radix_span_start(span) + len <= SHM_RADIX_EDGE_MAX;
}

/* The child of `parent` whose edge starts with `first`, or NIL. */
static uint32_t chain_find(const shm_seg_t *s, uint32_t parent, uint64_t first)
{
    uint32_t i = LOAD(&radix_buckets(s)[bucket_of(s, parent, first)]);
    for (unsigned steps = 0; i != SHM_RADIX_NIL && i < NODE_SLOTS && steps < CHAIN_MAX_STEPS; steps++) {
        const shm_radix_node_t *n = radix_node(s, i);
        uint32_t span = LOAD(&n->span);
        if (LOAD(&n->parent) == parent && span_ok(span) && n->key[radix_span_start(span)] == first)
            return i;
        i = LOAD(&n->hnext);
    }
    return SHM_RADIX_NIL;
}

size_t radix_match(const shm_seg_t *s, const uint64_t *h, size_t n, uint32_t *node)
{
    uint32_t cur = SHM_RADIX_ROOT, end = SHM_RADIX_ROOT;
    size_t i = 0;
    while (i < n) {
        uint32_t c = chain_find(s, cur, h[i]);
        if (c == SHM_RADIX_NIL)
            break;
        /* a long path is a chain of full nodes (add_path): the next step's bucket, guessed so,
         * is fetched while c's own lines are */
        if (i + SHM_RADIX_EDGE_MAX < n)
            __builtin_prefetch(&radix_buckets(s)[bucket_of(s, c, h[i + SHM_RADIX_EDGE_MAX])]);
        const shm_radix_node_t *cn = radix_node(s, c);
        uint32_t span = LOAD(&cn->span);
        if (!span_ok(span))
            break;
        const uint64_t *key = cn->key + radix_span_start(span);
        size_t len = radix_span_len(span), p = 0;
        while (p < len && i + p < n && key[p] == h[i + p])
            p++;
        if (p == 0)
            break;
        end = c;
        i += p;
        if (p < len)
            break;
        cur = c;
    }
    if (node)
        *node = end;
    return i;
}

bool radix_branches(const shm_seg_t *s, const uint64_t *h, size_t depth)
{
    uint32_t end;
    if (depth == 0 || radix_match(s, h, depth, &end) < depth || end == SHM_RADIX_ROOT)
        return false;
    const shm_radix_node_t *n = radix_node(s, end);
    if (LOAD(&n->depth) != depth)
        return false; /* one stored continuation runs through the end of the prefix */
    uint32_t first = LOAD(&n->first_child), second;
    return first != SHM_RADIX_NIL && first < NODE_SLOTS &&
           (second = LOAD(&radix_node(s, first)->next_sibling)) != SHM_RADIX_NIL && second < NODE_SLOTS;
}

static bool stamp_fresh(uint32_t tag, const radix_cand_t *c)
{
    int32_t age = (int32_t)(c->stamp - tag); /* negative: tagged after c->stamp was read */
    return age <= 0 || (uint32_t)age <= c->within;
}

size_t radix_cached_blocks(const shm_seg_t *s, const uint64_t *h, size_t n, const radix_cand_t *cand,
                           size_t ncand, uint32_t *blocks)
{
    memset(blocks, 0, ncand * sizeof *blocks);
    if (n == 0)
        return 0;
    uint32_t x;
    size_t matched = radix_match(s, h, n, &x), left = ncand;
    uint16_t pos[SHM_MAX_INSTANCES];
    memset(pos, 0xff, sizeof pos);
    for (size_t i = 0; i < ncand; i++)
        if (cand[i].slot < SHM_MAX_INSTANCES)
            pos[cand[i].slot] = (uint16_t)i;
    size_t depth = matched;
    /* up the path; each candidate keeps the first (deepest) node with a fresh tag of it */
    for (unsigned steps = 0; left && x > SHM_RADIX_ROOT && x < NODE_SLOTS && steps <= RADIX_MAX_BLOCKS;
         steps++) {
        const shm_radix_node_t *node = radix_node(s, x);
        for (int t = 0; t < SHM_RADIX_TAGS; t++) {
            uint64_t id = GET(&node->tag[t].ident);
            uint16_t slot = (uint16_t)(id & 0xffffu);
            if (!(id & SHM_RADIX_TAG_VALID) || slot >= SHM_MAX_INSTANCES || pos[slot] == 0xffffu)
                continue;
            uint16_t k = pos[slot];
            if ((uint32_t)(id >> 16) != cand[k].gen || blocks[k] ||
                !stamp_fresh(GET(&node->tag[t].stamp), &cand[k]))
                continue;
            blocks[k] = (uint32_t)depth;
            left--;
        }
        x = LOAD(&node->parent);
        depth = x > SHM_RADIX_ROOT && x < NODE_SLOTS ? radix_node(s, x)->depth : 0;
        if (depth > matched) /* a racing split: never credit more than matched */
            depth = matched;
    }
    return matched;
}

/* ------------------------------------------------------------------------------------------ */
/* node arena (writer lock held from here on)                                                 */

static uint32_t headroom(uint32_t capacity)
{
    return capacity / 16 ? capacity / 16 : 1;
}

static uint32_t used(const shm_radix_hdr_t *t)
{
    return t->nodes + t->limbo;
}

static uint32_t available(const shm_radix_hdr_t *t)
{
    return used(t) < t->capacity ? t->capacity - used(t) : 0;
}

static void push_free(shm_seg_t *s, uint32_t i)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    shm_radix_node_t *n = radix_node(s, i);
    n->state = SHM_RADIX_FREE;
    n->retire_epoch = 0;
    n->link = t->free_head;
    t->free_head = i;
}

/* Limbo nodes whose grace period has passed go to the free list (newest first, as arena.c). */
static uint32_t reclaim(shm_seg_t *s)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    uint32_t *link = &t->limbo_head, freed = 0;
    uint64_t checked = 0;
    while (*link) {
        shm_radix_node_t *n = radix_node(s, *link);
        if (n->retire_epoch == checked || !shm_grace_passed(s, n->retire_epoch)) {
            checked = n->retire_epoch;
            link = &n->link;
            continue;
        }
        uint32_t i = *link;
        *link = SHM_RADIX_NIL;
        while (i) {
            uint32_t next = radix_node(s, i)->link;
            push_free(s, i);
            freed++;
            i = next;
        }
    }
    SET(&t->limbo, t->limbo - freed);
    return freed;
}

/* A zeroed node counted as reachable (the caller links it before unlocking), or NIL. */
static uint32_t node_alloc(shm_seg_t *s)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    if (!available(t)) /* no reclaim here: an insert does no upkeep (radix_upkeep does) */
        return SHM_RADIX_NIL;
    uint32_t i = t->free_head;
    if (i)
        t->free_head = radix_node(s, i)->link;
    else if (t->high_water < NODE_SLOTS)
        i = t->high_water++;
    else
        return SHM_RADIX_NIL;
    shm_radix_node_t *n = radix_node(s, i);
    memset(n, 0, sizeof *n);
    n->state = SHM_RADIX_USED;
    SET(&t->nodes, t->nodes + 1);
    return i;
}

/* ------------------------------------------------------------------------------------------ */
/* links                                                                                      */

static uint64_t first_key(const shm_radix_node_t *n)
{
    return n->key[radix_span_start(n->span)];
}

static void chain_add(shm_seg_t *s, uint32_t i)
{
    shm_radix_node_t *n = radix_node(s, i);
    uint32_t *head = &radix_buckets(s)[bucket_of(s, n->parent, first_key(n))];
    SET(&n->hnext, *head);
    PUBLISH(head, i);
}

static void chain_remove(shm_seg_t *s, uint32_t i)
{
    shm_radix_node_t *n = radix_node(s, i);
    uint32_t *link = &radix_buckets(s)[bucket_of(s, n->parent, first_key(n))];
    while (*link && *link != i)
        link = &radix_node(s, *link)->hnext;
    if (*link)
        PUBLISH(link, n->hnext); /* n keeps its hnext for readers standing on it */
}

/* The link (first_child of `parent` or next_sibling of a sibling) that points to `child`. */
static uint32_t *sibling_link(shm_seg_t *s, uint32_t parent, uint32_t child)
{
    uint32_t *link = &radix_node(s, parent)->first_child;
    while (*link && *link != child)
        link = &radix_node(s, *link)->next_sibling;
    return *link ? link : NULL;
}

/* What an insert records on each node of the path. */
typedef struct {
    uint64_t ident; /* radix_tag_ident of the chosen instance */
    uint64_t now_ms;
    uint32_t stamp; /* its cache_inflow stamp */
} ins_t;

static void touch(shm_radix_node_t *n, uint64_t now_ms)
{
    if (now_ms > n->last_ms)
        SET(&n->last_ms, now_ms);
}

static bool tag_stale(const shm_seg_t *s, uint64_t id)
{
    uint16_t slot = (uint16_t)(id & 0xffffu);
    return slot >= SHM_MAX_INSTANCES ||
           __atomic_load_n(&shm_instance(s, slot)->generation, __ATOMIC_ACQUIRE) != (uint32_t)(id >> 16);
}

/* 0.1 s since the tree was created: a tag's age, for choosing which tag a full node gives up */
static uint32_t decis(const shm_seg_t *s, uint64_t now_ms)
{
    uint64_t at = radix_hdr(s)->created_at_ms;
    return now_ms > at ? (uint32_t)((now_ms - at) / 100) : 0;
}

/* Tag with `ident`: refresh its tag, else take a stale one (it can never match again), an
 * empty one, or the oldest. */
static void tag(const shm_seg_t *s, shm_radix_node_t *n, uint64_t ident, const ins_t *in)
{
    int victim = 0, victim_rank = 3;
    uint32_t ds = decis(s, in->now_ms);
    for (int t = 0; t < SHM_RADIX_TAGS; t++) {
        uint64_t id = n->tag[t].ident;
        if (id == ident) {
            n->tag[t].last_ds = ds;
            SET(&n->tag[t].stamp, in->stamp);
            return;
        }
        int rank = id == 0 ? 1 : tag_stale(s, id) ? 0 : 2;
        if (rank < victim_rank || (rank == victim_rank && n->tag[t].last_ds < n->tag[victim].last_ds)) {
            victim = t;
            victim_rank = rank;
        }
    }
    n->tag[victim].last_ds = ds;
    SET(&n->tag[victim].stamp, in->stamp);
    SET(&n->tag[victim].ident, ident);
}

/* ------------------------------------------------------------------------------------------ */
/* unlinking                                                                                  */

/* Next node of r's subtree in pre-order after i (r's own siblings excluded), or NIL. */
static uint32_t subtree_next(const shm_seg_t *s, uint32_t r, uint32_t i)
{
    const shm_radix_node_t *n = radix_node(s, i);
    if (n->first_child)
        return n->first_child;
    while (i != r) {
        n = radix_node(s, i);
        if (n->next_sibling)
            return n->next_sibling;
        i = n->parent;
    }
    return SHM_RADIX_NIL;
}

/* r was just unlinked from its parent's list: take its whole subtree off the hash chains and
 * onto the limbo list, epoch to be stamped by finish_retire. Returns the number of nodes. */
static uint32_t retire_subtree(shm_seg_t *s, uint32_t r)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    uint32_t count = 0;
    for (uint32_t i = r; i; i = subtree_next(s, r, i)) {
        shm_radix_node_t *n = radix_node(s, i);
        chain_remove(s, i);
        n->state = SHM_RADIX_LIMBO;
        n->retire_epoch = 0;
        n->link = t->limbo_head;
        t->limbo_head = i;
        count++;
    }
    SET(&t->nodes, t->nodes - count);
    SET(&t->limbo, t->limbo + count);
    return count;
}

/* After the unlinks: advance the epoch and stamp the nodes retired since `old_head` with it. */
static void finish_retire(shm_seg_t *s, uint32_t old_head)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    if (t->limbo_head == old_head)
        return;
    uint64_t e = shm_epoch_advance(s);
    for (uint32_t i = t->limbo_head; i != old_head; i = radix_node(s, i)->link)
        radix_node(s, i)->retire_epoch = e;
}

/*
 * Eviction is one resumable walk, a sweep (radix_sweep_t): the control plane advances it by
 * bounded steps, each a short hold of the writer lock, so a data plane's insert never waits
 * behind a pass over the whole tree and never evicts itself. A sweep unlinks nodes last
 * accessed before ttl_before (the Go router's TTL rule) and, when room is needed, about
 * lru_target least recently used ones. A node is never accessed after its parent (an insert
 * refreshes the whole path), so "accessed before T" is a set of whole subtrees. The LRU cut-off
 * is found first by linear scans of the node array in chunks: the range of last accesses, then
 * histograms that narrow down [lru_below, lru_upto), the millisecond range where the oldest
 * lru_target nodes end; the walk then takes every node accessed before it, and nodes inside it
 * until lru_target went. Between steps the data planes insert and split: the walk's cursor is
 * a link (the first-child or next-sibling field of node `at`) and its parent is read live, so a
 * split above or at the cursor is followed; a cursor whose node left the tree restarts the walk.
 */
enum { SWEEP_IDLE, SWEEP_RANGE, SWEEP_NARROW, SWEEP_WALK };
enum { KEEP = 0, DOOM_TTL, DOOM_LRU };
#define SCAN_CHUNK 16384u /* nodes read per step of a cut-off scan (sequential) */
#define WALK_CHUNK 2048u  /* nodes visited per step of the walk (a pointer chase each) */

static int doom(const radix_sweep_t *w, const shm_radix_node_t *n)
{
    uint64_t at = n->last_ms;
    if (at < w->ttl_before)
        return DOOM_TTL;
    if (at < w->lru_below || (at < w->lru_upto + w->lru_shift && w->lru_evicted < w->lru_target))
        return DOOM_LRU;
    return KEEP;
}

static uint32_t *cursor_link(shm_seg_t *s, const radix_sweep_t *w)
{
    shm_radix_node_t *n = radix_node(s, w->at);
    return w->into ? &n->first_child : &n->next_sibling;
}

/* Is the cursor still on the tree? (Only the control plane unlinks nodes, but a synchronous pass
 * or a repair may have run between two steps.) A node that left and came back elsewhere is a
 * valid place to go on from: the walk is then partial, never wrong. */
static bool cursor_valid(const shm_seg_t *s, const radix_sweep_t *w)
{
    uint32_t hw = radix_hdr(s)->high_water;
    if (w->at == SHM_RADIX_ROOT)
        return w->into;
    if (w->at < FIRST_NODE || w->at >= hw || radix_node(s, w->at)->state != SHM_RADIX_USED)
        return false;
    uint32_t p = radix_node(s, w->at)->parent;
    return p == SHM_RADIX_ROOT || (p >= FIRST_NODE && p < hw && radix_node(s, p)->state == SHM_RADIX_USED);
}

static void cursor_reset(radix_sweep_t *w)
{
    w->at = SHM_RADIX_ROOT;
    w->into = true;
}

/* Visit up to `budget` nodes of the walk (an unlinked subtree counts as the nodes it held);
 * true when the walk reached its end. */
static bool sweep_walk(shm_seg_t *s, radix_sweep_t *w, uint64_t budget)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    uint32_t old_head = t->limbo_head;
    bool done = false;
    if (!cursor_valid(s, w))
        cursor_reset(w);
    while (budget) {
        uint32_t *link = cursor_link(s, w);
        uint32_t i = *link;
        if (!i) { /* the children of `up` are done: on to its next sibling */
            uint32_t up = w->into ? w->at : radix_node(s, w->at)->parent;
            if (up == SHM_RADIX_ROOT) {
                done = true;
                break;
            }
            w->at = up;
            w->into = false;
            continue;
        }
        shm_radix_node_t *n = radix_node(s, i);
        int why = doom(w, n);
        if (why == KEEP) {
            w->at = i;
            w->into = true;
            budget--;
            continue;
        }
        PUBLISH(link, n->next_sibling);
        uint32_t k = retire_subtree(s, i);
        if (why == DOOM_LRU) {
            w->lru_evicted += k;
            SET(&t->evictions_pressure, t->evictions_pressure + k);
        } else {
            SET(&t->evictions_ttl, t->evictions_ttl + k);
        }
        budget = budget > k ? budget - k : 0;
    }
    finish_retire(s, old_head);
    return done;
}

/* One chunk of a cut-off scan over nodes [next, next + budget): true when the array is done. */
static bool sweep_scan(shm_seg_t *s, radix_sweep_t *w, uint64_t budget)
{
    uint32_t hw = radix_hdr(s)->high_water, end = w->next + budget < hw ? w->next + (uint32_t)budget : hw;
    uint64_t width = w->phase == SWEEP_NARROW
                         ? (w->lru_upto - w->lru_below + HISTOGRAM_BUCKETS - 1) / HISTOGRAM_BUCKETS
                         : 0;
    for (uint32_t i = w->next > FIRST_NODE ? w->next : FIRST_NODE; i < end; i++) {
        const shm_radix_node_t *n = radix_node(s, i);
        if (n->state != SHM_RADIX_USED)
            continue;
        if (w->phase == SWEEP_RANGE) {
            w->lru_below = n->last_ms < w->lru_below ? n->last_ms : w->lru_below;
            w->lru_upto = n->last_ms >= w->lru_upto ? n->last_ms + 1 : w->lru_upto;
        } else if (n->last_ms >= w->lru_below && n->last_ms < w->lru_upto) {
            w->hist[(n->last_ms - w->lru_below) / width]++;
        }
    }
    w->next = end;
    return end >= hw;
}

/* A finished histogram pass: narrow [lru_below, lru_upto) to the bucket where the oldest
 * lru_target nodes end; true when it is one millisecond wide (the walk can start). */
static bool sweep_narrow(radix_sweep_t *w)
{
    uint64_t width = (w->lru_upto - w->lru_below + HISTOGRAM_BUCKETS - 1) / HISTOGRAM_BUCKETS;
    /* the last bucket holding part of the range (fewer than all when it is narrow), where the
     * narrowing stops even if nodes touched between chunks left the range short of the target */
    uint64_t last = (w->lru_upto - w->lru_below - 1) / width;
    uint64_t k = 0;
    while (k < last && w->lru_older + w->hist[k] < w->lru_target)
        w->lru_older += w->hist[k++];
    w->lru_below += k * width;
    w->lru_upto = w->lru_below + width < w->lru_upto ? w->lru_below + width : w->lru_upto;
    memset(w->hist, 0, sizeof w->hist);
    return w->lru_upto - w->lru_below <= 1;
}

/* Start a sweep: a TTL pass (ttl_before != 0) and/or about `lru_target` LRU nodes. */
static void sweep_start(radix_sweep_t *w, uint64_t ttl_before, uint64_t lru_target)
{
    w->ttl_before = ttl_before;
    w->lru_target = lru_target;
    w->lru_evicted = w->lru_older = w->lru_shift = w->cut_ms = 0;
    w->lru_below = lru_target ? UINT64_MAX : 0; /* the range scan lowers it; no LRU: none */
    w->lru_upto = 0;
    w->next = 0;
    memset(w->hist, 0, sizeof w->hist);
    cursor_reset(w);
    w->phase = lru_target ? SWEEP_RANGE : SWEEP_WALK;
}

/* Advance the sweep by one chunk (budget: nodes; UINT64_MAX runs the phase to its end); false
 * once it is over. */
static bool sweep_advance(shm_seg_t *s, radix_sweep_t *w, uint64_t now_ms, uint64_t scan_budget,
                          uint64_t walk_budget)
{
    switch (w->phase) {
    case SWEEP_RANGE:
        if (!sweep_scan(s, w, scan_budget))
            return true;
        w->next = 0;
        if (w->lru_below >= w->lru_upto) /* nothing reachable */
            w->lru_target = 0, w->lru_below = w->lru_upto = 0;
        w->phase = w->lru_upto - w->lru_below > 1 ? SWEEP_NARROW : SWEEP_WALK;
        w->cut_ms = now_ms;
        return true;
    case SWEEP_NARROW:
        if (!sweep_scan(s, w, scan_budget))
            return true;
        w->next = 0;
        if (sweep_narrow(w))
            w->phase = SWEEP_WALK;
        w->cut_ms = now_ms;
        return true;
    case SWEEP_WALK:
        /* nodes the inserts touched since the cut-off was found are newer than it: as many ms
         * later, the range moves as far, or a tree where everything is hot would keep all */
        w->lru_shift = now_ms > w->cut_ms ? now_ms - w->cut_ms : 0;
        if (!sweep_walk(s, w, walk_budget))
            return true;
        w->phase = SWEEP_IDLE;
        return false;
    default:
        return false;
    }
}

/* Synchronous eviction of about `target` least recently used nodes (a capacity change). */
static void evict_lru_now(shm_seg_t *s, uint64_t target)
{
    radix_sweep_t w;
    sweep_start(&w, 0, target);
    while (sweep_advance(s, &w, 0, UINT64_MAX, UINT64_MAX))
        ;
}

/* ------------------------------------------------------------------------------------------ */
/* insert                                                                                     */

/* Split child c of `parent` after `p` keys: a new node M takes the first p keys and c's place,
 * and c becomes M's only child. Returns M, or NIL when no node can be had. */
static uint32_t split(shm_seg_t *s, uint32_t parent, uint32_t c, unsigned p)
{
    uint32_t *link = sibling_link(s, parent, c);
    if (!link)
        return SHM_RADIX_NIL;
    uint32_t m = node_alloc(s);
    if (!m)
        return SHM_RADIX_NIL;
    shm_radix_node_t *cn = radix_node(s, c), *mn = radix_node(s, m);
    unsigned start = radix_span_start(cn->span), len = radix_span_len(cn->span);
    memcpy(mn->key, cn->key + start, p * sizeof(uint64_t));
    mn->span = p;
    mn->depth = cn->depth - (len - p);
    mn->parent = parent;
    mn->first_child = c;
    mn->next_sibling = cn->next_sibling;
    mn->last_ms = cn->last_ms;
    memcpy(mn->tag, cn->tag, sizeof mn->tag); /* whoever had the whole edge has its prefix */
    chain_add(s, m);                          /* ahead of c on the same chain */
    PUBLISH(link, m);
    PUBLISH(&cn->next_sibling, SHM_RADIX_NIL);
    chain_remove(s, c);
    PUBLISH(&cn->span, (start + p) << 8 | (len - p));
    PUBLISH(&cn->parent, m);
    chain_add(s, c);
    return m;
}

/* New nodes for h[0..n) under `parent`, K hashes each, built top-down and made reachable by
 * one store at the end. Returns the number of hashes placed (fewer if nodes ran out). */
static size_t add_path(shm_seg_t *s, uint32_t parent, const uint64_t *h, size_t n, const ins_t *in)
{
    uint32_t top = SHM_RADIX_NIL, prev = SHM_RADIX_NIL, depth = radix_node(s, parent)->depth;
    uint32_t made[RADIX_MAX_BLOCKS / SHM_RADIX_EDGE_MAX + 1]; /* the nodes, for chain_add below */
    size_t done = 0, nmade = 0;
    while (done < n && nmade < sizeof made / sizeof *made) {
        uint32_t i = node_alloc(s);
        if (!i)
            break;
        size_t len = n - done < SHM_RADIX_EDGE_MAX ? n - done : SHM_RADIX_EDGE_MAX;
        shm_radix_node_t *nn = radix_node(s, i);
        memcpy(nn->key, h + done, len * sizeof(uint64_t));
        nn->span = (uint32_t)len;
        nn->depth = depth + (uint32_t)(done + len);
        nn->parent = prev ? prev : parent;
        nn->last_ms = in->now_ms;
        nn->tag[0].ident = in->ident;
        nn->tag[0].last_ds = decis(s, in->now_ms);
        nn->tag[0].stamp = in->stamp;
        /* the bucket heads are scattered over 2 MiB: their misses overlap here, while chain_add
         * below, one per node after the loop, finds them in cache */
        __builtin_prefetch(&radix_buckets(s)[bucket_of(s, nn->parent, h[done])], 1);
        if (prev)
            PUBLISH(&radix_node(s, prev)->first_child, i);
        else
            top = i;
        prev = i;
        done += len;
        made[nmade++] = i;
    }
    for (size_t k = 0; k < nmade; k++) /* each node filled before it is published */
        chain_add(s, made[k]);
    if (top) {
        shm_radix_node_t *pn = radix_node(s, parent);
        radix_node(s, top)->next_sibling = pn->first_child;
        PUBLISH(&pn->first_child, top);
    }
    return done;
}

static size_t insert_locked(shm_seg_t *s, const uint64_t *h, size_t n, const ins_t *in)
{
    uint32_t cur = SHM_RADIX_ROOT;
    size_t i = 0;
    while (i < n) {
        uint32_t c = chain_find(s, cur, h[i]);
        if (!c)
            return i + add_path(s, cur, h + i, n - i, in);
        shm_radix_node_t *cn = radix_node(s, c);
        const uint64_t *key = cn->key + radix_span_start(cn->span);
        unsigned len = radix_span_len(cn->span), p = 0;
        while (p < len && i + p < n && key[p] == h[i + p])
            p++;
        if (p < len) {
            c = split(s, cur, c, p);
            if (!c)
                return i;
            cn = radix_node(s, c);
        }
        touch(cn, in->now_ms);
        tag(s, cn, in->ident, in);
        i += p;
        cur = c;
    }
    return i;
}

/* ------------------------------------------------------------------------------------------ */
/* writer sessions and recovery                                                               */

static void recover(shm_seg_t *s);

static int begin(shm_seg_t *s)
{
    if (shm_wlock(s) < 0)
        return -1;
    shm_radix_hdr_t *t = radix_hdr(s);
    if (t->dirty)
        recover(s);
    t->dirty = 1;
    return 0;
}

static void end(shm_seg_t *s)
{
    radix_hdr(s)->dirty = 0;
    shm_wunlock(s);
}

static uint32_t clamp_capacity(uint32_t c)
{
    return c == 0 || c > SHM_RADIX_MAX_NODES ? SHM_RADIX_MAX_NODES : c;
}

/* Shrink (or grow) to `capacity`: evict so that the reachable nodes fit with headroom. */
static void apply_capacity(shm_seg_t *s, uint32_t capacity)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    SET(&t->capacity, capacity);
    if (used(t) > capacity)
        reclaim(s);
    if (used(t) > capacity) {
        evict_lru_now(s, (uint64_t)used(t) - capacity + headroom(capacity));
        reclaim(s);
    }
}

long radix_insert(shm_seg_t *s, const uint64_t *h, size_t n, uint16_t slot, uint32_t generation,
                  uint32_t stamp, uint64_t now_ms)
{
    ins_t in = {.ident = radix_tag_ident(slot, generation), .now_ms = now_ms, .stamp = stamp};
    if (n > RADIX_MAX_BLOCKS)
        n = RADIX_MAX_BLOCKS;
    if (begin(s) < 0)
        return -1;
    shm_radix_hdr_t *t = radix_hdr(s);
    size_t done = insert_locked(s, h, n, &in);
    SET(&t->inserts, t->inserts + 1);
    if (done < n)
        SET(&t->inserts_truncated, t->inserts_truncated + 1);
    end(s);
    return (long)done;
}

long radix_evict_ttl(shm_seg_t *s, uint64_t now_ms, uint64_t ttl_ms)
{
    if (begin(s) < 0)
        return -1;
    shm_radix_hdr_t *t = radix_hdr(s);
    uint64_t before = t->evictions_ttl;
    radix_sweep_t w;
    sweep_start(&w, now_ms > ttl_ms ? now_ms - ttl_ms : 0, 0);
    while (sweep_advance(s, &w, 0, UINT64_MAX, UINT64_MAX))
        ;
    reclaim(s);
    end(s);
    return (long)(t->evictions_ttl - before);
}

/* Room to start a sweep for, at an idle step: keep 2 headrooms free or on their way, 4 once
 * an insert ran out since the last look (the inserts outpace the sweeps). */
static uint64_t lru_need(const shm_radix_hdr_t *t, bool ran_out)
{
    uint64_t soon = (uint64_t)available(t) + t->limbo, room = headroom(t->capacity);
    uint64_t want = (ran_out ? 5 : 3) * room, cap = t->capacity / 2;
    if (soon >= (ran_out ? want : 2 * room))
        return 0;
    return want - soon < cap ? want - soon : cap;
}

int radix_upkeep(shm_seg_t *s, radix_sweep_t *w, uint32_t capacity, uint64_t ttl_before, uint64_t now_ms)
{
    if (ttl_before > w->ttl_pending)
        w->ttl_pending = ttl_before;
    if (begin(s) < 0)
        return -1;
    shm_radix_hdr_t *t = radix_hdr(s);
    capacity = clamp_capacity(capacity);
    if (capacity != t->capacity)
        apply_capacity(s, capacity);
    reclaim(s);
    if (w->phase == SWEEP_IDLE) {
        bool ran_out = t->inserts_truncated != w->truncated_seen;
        w->truncated_seen = t->inserts_truncated;
        uint64_t need = lru_need(t, ran_out);
        if (need || w->ttl_pending) {
            sweep_start(w, w->ttl_pending, need);
            w->ttl_pending = 0;
        }
    }
    bool more = w->phase != SWEEP_IDLE && sweep_advance(s, w, now_ms, SCAN_CHUNK, WALK_CHUNK);
    if (!more)
        reclaim(s);
    end(s);
    return more || w->ttl_pending;
}

long radix_purge_slot(shm_seg_t *s, uint16_t slot)
{
    if (begin(s) < 0)
        return -1;
    shm_radix_hdr_t *t = radix_hdr(s);
    long removed = 0;
    for (uint32_t i = FIRST_NODE; i < t->high_water; i++) {
        shm_radix_node_t *n = radix_node(s, i);
        if (n->state != SHM_RADIX_USED)
            continue;
        for (int k = 0; k < SHM_RADIX_TAGS; k++)
            if (n->tag[k].ident && (uint16_t)(n->tag[k].ident & 0xffffu) == slot) {
                SET(&n->tag[k].ident, 0);
                removed++;
            }
    }
    end(s);
    return removed;
}

int radix_set_capacity(shm_seg_t *s, uint32_t capacity)
{
    if (begin(s) < 0)
        return -1;
    apply_capacity(s, clamp_capacity(capacity));
    end(s);
    return 0;
}

enum { MARK_NONE = 0, MARK_TREE, MARK_LIMBO, MARK_FREE };

/* Is c a well-formed, not yet seen child of p? */
static bool valid_child(const shm_seg_t *s, uint32_t p, uint32_t c, uint32_t high_water)
{
    if (c < FIRST_NODE || c >= high_water)
        return false;
    const shm_radix_node_t *cn = radix_node(s, c), *pn = radix_node(s, p);
    return cn->state == SHM_RADIX_USED && cn->mark == MARK_NONE && cn->parent == p && span_ok(cn->span) &&
           cn->depth == pn->depth + radix_span_len(cn->span) && cn->depth <= RADIX_MAX_BLOCKS;
}

/* Mark the reachable tree; false at the first inconsistency (marks are then partial). */
static bool mark_tree(shm_seg_t *s, uint32_t high_water, uint32_t *count)
{
    uint32_t par = SHM_RADIX_ROOT, cur = radix_node(s, SHM_RADIX_ROOT)->first_child;
    *count = 0;
    for (;;) {
        if (!cur) {
            if (par == SHM_RADIX_ROOT)
                return true;
            cur = radix_node(s, par)->next_sibling;
            par = radix_node(s, par)->parent;
            continue;
        }
        if (!valid_child(s, par, cur, high_water))
            return false;
        radix_node(s, cur)->mark = MARK_TREE;
        (*count)++;
        par = cur;
        cur = radix_node(s, cur)->first_child;
    }
}

/* Keep a list's well-formed prefix (distinct unmarked nodes in `state`; in limbo, with their
 * epoch stamped); returns its length. */
static uint32_t mark_list(shm_seg_t *s, uint32_t *link, uint16_t state, uint16_t as, uint32_t high_water)
{
    uint32_t n = 0;
    while (*link) {
        uint32_t i = *link;
        shm_radix_node_t *node = i >= FIRST_NODE && i < high_water ? radix_node(s, i) : NULL;
        if (!node || node->state != state || node->mark != MARK_NONE ||
            (state == SHM_RADIX_LIMBO && node->retire_epoch == 0)) {
            *link = SHM_RADIX_NIL;
            break;
        }
        node->mark = as;
        n++;
        link = &node->link;
    }
    return n;
}

/*
 * A writer died mid-change. What readers follow was always published in a safe order, so no
 * reader is at risk; what may be broken is the bookkeeping (lists, counts, chains) or, in a
 * split cut short, the tree itself. Keep the tree if it validates, else empty it; rebuild the
 * chains from what is reachable; every node that is neither reachable nor on a well-formed free
 * or limbo list goes to limbo (a reader may hold it).
 */
static void recover(shm_seg_t *s)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    uint32_t hw = t->high_water < FIRST_NODE   ? FIRST_NODE
                  : t->high_water > NODE_SLOTS ? NODE_SLOTS
                                               : t->high_water;
    t->high_water = hw;
    shm_radix_node_t *root = radix_node(s, SHM_RADIX_ROOT);
    root->parent = root->next_sibling = root->span = root->depth = 0;
    root->state = SHM_RADIX_USED;
    for (uint32_t i = FIRST_NODE; i < hw; i++)
        radix_node(s, i)->mark = MARK_NONE;
    uint32_t reachable;
    if (!mark_tree(s, hw, &reachable)) {
        PUBLISH(&root->first_child, SHM_RADIX_NIL);
        for (uint32_t i = FIRST_NODE; i < hw; i++)
            radix_node(s, i)->mark = MARK_NONE;
        reachable = 0;
    }
    uint32_t *buckets = radix_buckets(s);
    for (uint32_t b = 0; b < SHM_RADIX_BUCKETS; b++)
        if (buckets[b])
            PUBLISH(&buckets[b], SHM_RADIX_NIL);
    for (uint32_t i = FIRST_NODE; i < hw; i++)
        if (radix_node(s, i)->mark == MARK_TREE)
            chain_add(s, i);
    uint32_t limbo = mark_list(s, &t->limbo_head, SHM_RADIX_LIMBO, MARK_LIMBO, hw);
    mark_list(s, &t->free_head, SHM_RADIX_FREE, MARK_FREE, hw);
    uint64_t e = shm_epoch_advance(s);
    for (uint32_t i = FIRST_NODE; i < hw; i++) {
        shm_radix_node_t *n = radix_node(s, i);
        if (n->mark != MARK_NONE)
            continue;
        n->state = SHM_RADIX_LIMBO;
        n->retire_epoch = e;
        n->link = t->limbo_head;
        t->limbo_head = i;
        limbo++;
    }
    SET(&t->nodes, reachable);
    SET(&t->limbo, limbo);
    SET(&t->capacity, clamp_capacity(t->capacity));
    SET(&t->recoveries, t->recoveries + 1);
}

/* ------------------------------------------------------------------------------------------ */
/* creation and counters                                                                      */

static uint64_t random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) == (ssize_t)sizeof seed)
        return seed;
    return shm_now_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid() << 32;
}

void radix_format(shm_seg_t *s)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    memset(t, 0, sizeof *t);
    t->bucket_key = random_seed();
    t->created_at_ms = shm_now_ms();
    t->max_nodes = SHM_RADIX_MAX_NODES;
    t->capacity = SHM_RADIX_MAX_NODES;
    t->high_water = FIRST_NODE;
    t->reuse = RADIX_REUSE_ONE;
    shm_radix_node_t *root = radix_node(s, SHM_RADIX_ROOT);
    memset(root, 0, sizeof *root);
    root->state = SHM_RADIX_USED;
}

void radix_count_decision(shm_seg_t *s, radix_decision_t d, bool hit)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    uint64_t *c = d == RADIX_DECIDED_BY_CACHE     ? &t->decided_by_cache
                  : d == RADIX_FALLBACK_IMBALANCE ? &t->fallback_imbalance
                                                  : &t->fallback_no_prompt;
    __atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
    if (hit)
        __atomic_add_fetch(&t->lookups_hit, 1, __ATOMIC_RELAXED);
}

double radix_reuse(const shm_seg_t *s)
{
    uint32_t r = GET(&radix_hdr(s)->reuse);
    return r < RADIX_REUSE_ONE ? (double)r / RADIX_REUSE_ONE : 1.0; /* the segment is input too */
}

void radix_note_reuse(shm_seg_t *s, bool reused)
{
    uint32_t *p = &radix_hdr(s)->reuse, r = GET(p);
    r = r < RADIX_REUSE_ONE ? r : RADIX_REUSE_ONE;
    /* r += (x - r) / span in integers, the decay rounded up so that traffic that never comes
     * back takes r to 0 itself; both terms keep r within [0, RADIX_REUSE_ONE] */
    r -= (r + RADIX_REUSE_SPAN - 1) / RADIX_REUSE_SPAN;
    SET(p, r + (reused ? RADIX_REUSE_ONE / RADIX_REUSE_SPAN : 0));
}

void radix_moves_grant(shm_seg_t *s, uint32_t n)
{
    SET(&radix_hdr(s)->moves, n);
}

bool radix_moves_take(shm_seg_t *s)
{
    uint32_t *p = &radix_hdr(s)->moves, left = GET(p);
    while (left > 0 && left <= SHM_MAX_INSTANCES) /* a hostile segment's word grants nothing */
        if (__atomic_compare_exchange_n(p, &left, left - 1, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return true;
    return false;
}

uint32_t radix_moves_left(const shm_seg_t *s)
{
    uint32_t left = GET(&radix_hdr(s)->moves);
    return left <= SHM_MAX_INSTANCES ? left : 0;
}

/* A head's fingerprint: never 0, which marks a prompt shorter than the head. */
static uint32_t head_print(uint64_t h)
{
    uint32_t f = (uint32_t)(h ^ h >> 32);
    return f ? f : 1;
}

void radix_note_prompt(shm_seg_t *s, const uint64_t *h, size_t n)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    size_t at = (size_t)(__atomic_fetch_add(&t->recent_at, 1, __ATOMIC_RELAXED) % SHM_RADIX_RECENT);
    for (unsigned k = 0; k < SHM_RADIX_RECENT_LEVELS; k++) {
        size_t len = (size_t)1 << k;
        SET(&t->recent[k][at], n >= len ? head_print(h[len - 1]) : 0u);
    }
}

radix_share_t radix_share(const shm_seg_t *s, const uint64_t *h, size_t depth)
{
    const shm_radix_hdr_t *t = radix_hdr(s);
    uint64_t noted = GET(&t->recent_at);
    radix_share_t r = {.seen = noted < SHM_RADIX_RECENT ? (unsigned)noted : SHM_RADIX_RECENT};
    if (!depth)
        return r;
    unsigned k = 0;
    while (k + 1 < SHM_RADIX_RECENT_LEVELS && (size_t)2 << k <= depth)
        k++;
    uint32_t f = head_print(h[((size_t)1 << k) - 1]);
    for (unsigned i = 0; i < SHM_RADIX_RECENT; i++)
        r.same += GET(&t->recent[k][i]) == f;
    return r;
}

void radix_stats(const shm_seg_t *s, radix_stats_t *out)
{
    const shm_radix_hdr_t *t = radix_hdr(s);
    out->seed = RADIX_SEED;
    out->max_nodes = t->max_nodes;
    out->capacity = GET(&t->capacity);
    out->nodes = GET(&t->nodes);
    out->limbo = GET(&t->limbo);
    out->evictions_ttl = GET(&t->evictions_ttl);
    out->evictions_pressure = GET(&t->evictions_pressure);
    out->inserts = GET(&t->inserts);
    out->inserts_truncated = GET(&t->inserts_truncated);
    out->recoveries = GET(&t->recoveries);
    out->decided_by_cache = GET(&t->decided_by_cache);
    out->fallback_imbalance = GET(&t->fallback_imbalance);
    out->fallback_no_prompt = GET(&t->fallback_no_prompt);
    out->lookups_hit = GET(&t->lookups_hit);
    out->session_requests = GET(&t->session_requests);
    out->session_hits = GET(&t->session_hits);
}

void radix_count_session(shm_seg_t *s, uint64_t session_hash, uint16_t slot, uint32_t generation)
{
    shm_radix_hdr_t *t = radix_hdr(s);
    uint64_t entry =
        (session_hash & ~((1ULL << 24) - 1)) | ((uint64_t)(slot & 0x3ff) << 14) | (generation & 0x3fff);
    uint64_t *cell = &t->sessions[session_hash % SHM_RADIX_SESSIONS];
    uint64_t prev = __atomic_exchange_n(cell, entry, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->session_requests, 1, __ATOMIC_RELAXED);
    if (prev == entry)
        __atomic_add_fetch(&t->session_hits, 1, __ATOMIC_RELAXED);
}
