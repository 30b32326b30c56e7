/*
 * shm/loads.c - the smallest total over a set of slots and the slots tied at it (shm.h,
 * shm_loads_min): the whole of request_num's and process_tokens' decision.
 *
 * The totals row is an array indexed by slot, so a set is read in address order, one 64-slot
 * word of the set at a time: each word yields its least total and the members holding it, and
 * the words holding the overall least keep their ties. Every member's total is read once, so a
 * counter that moves meanwhile cannot leave the minimum without a tie. A word without members is
 * skipped: the cost follows the slots in use, not SHM_MAX_INSTANCES.
 *
 * Where the CPU has AVX2 (chosen at run time, as shm/radix.c's variants), a word of
 * AVX2_MIN_MEMBERS members or more is read four totals per compare, with two accumulators so
 * consecutive compares do not wait on each other; AVX2 has no unsigned 64-bit compare, so values
 * are biased by 2^63 and compared signed. A sparser word keeps the scalar loop: a few members are
 * a few ns of compares, and the first 256-bit instructions after a pause cost more
 * (shm/radix.c's AVX2_MIN_BYTES). So a small fleet never runs a 256-bit instruction here.
 */
#include "shm/internal.h"

#define AVX2_MIN_MEMBERS 16 /* of a word, for its vector loop */

#define SIGN ((uint64_t)1 << 63)

/* A word's least total and the members holding it (*tie), baseline: one read per member. */
static uint64_t word_min_base(const uint64_t *a, uint64_t m, uint64_t *tie)
{
    uint64_t best = UINT64_MAX, t = 0;
    for (; m; m &= m - 1) {
        unsigned b = (unsigned)__builtin_ctzll(m);
        uint64_t v = __atomic_load_n(&a[b], __ATOMIC_RELAXED);
        t = v < best ? 0 : t; /* branch-free: which member is least would mispredict */
        best = v < best ? v : best;
        t |= (uint64_t)(v == best) << b;
    }
    *tie = t;
    return best;
}

/* The whole search over a set, given how a word is searched: inline, so that each variant is
 * compiled with its own instructions (the AVX2 one with the POPCNT instruction too). */
static inline __attribute__((always_inline)) uint64_t
search(const uint64_t *a, const shm_slotset_t *set,
       uint64_t (*word_min)(const uint64_t *, uint64_t, uint64_t *), shm_loads_tied_t *out)
{
    uint64_t least[SHM_SLOT_WORDS];
    out->min = UINT64_MAX;
    for (unsigned w = out->lo; w <= out->hi; w++) {
        out->tie.w[w] = 0;
        if (set->w[w]) {
            least[w] = word_min(a + w * 64, set->w[w], &out->tie.w[w]);
            out->min = least[w] < out->min ? least[w] : out->min;
        }
    }
    out->count = 0;
    for (unsigned w = out->lo; w <= out->hi; w++) {
        if (out->tie.w[w] && least[w] != out->min)
            out->tie.w[w] = 0;
        out->before[w] = (uint16_t)out->count;
        out->count += out->tie.w[w] ? fd_bit_count(out->tie.w[w]) : 0;
    }
    return out->min;
}

static uint64_t search_base(const uint64_t *a, const shm_slotset_t *set, shm_loads_tied_t *out)
{
    return search(a, set, word_min_base, out);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX2_TARGET __attribute__((target("avx2,popcnt")))

/* The member lanes of four slots (the bits `bits` of the broadcast word), as all-ones lanes. */
AVX2_TARGET static inline __m256i lanes_of(__m256i word, __m256i bits)
{
    return _mm256_cmpeq_epi64(_mm256_and_si256(word, bits), bits);
}

/* Four totals from a[i..i+4), biased, a non-member (sel 0) as the largest value, kept in buf.
 * A word whose every slot is a member (full) skips the selection. */
AVX2_TARGET static inline __m256i take4(const uint64_t *a, unsigned i, bool full, __m256i sel, uint64_t *buf)
{
    const __m256i sign = _mm256_set1_epi64x((long long)SIGN), top = _mm256_set1_epi64x(INT64_MAX);
    __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(a + i)), sign);
    if (!full)
        v = _mm256_blendv_epi8(top, v, sel);
    _mm256_store_si256((__m256i *)(void *)(buf + i), v);
    return v;
}

AVX2_TARGET static inline __m256i min4(__m256i x, __m256i y)
{
    return _mm256_blendv_epi8(x, y, _mm256_cmpgt_epi64(x, y));
}

/* word_min_base with four totals per compare: the word's 64 totals read once into buf, the
 * least of them, then buf compared with it. Inline, so the full and the partial word each get
 * their own loop. */
AVX2_TARGET static inline uint64_t word_min_vec(const uint64_t *a, uint64_t m, bool full, uint64_t *tie)
{
    const __m256i first = _mm256_set_epi64x(8, 4, 2, 1), second = _mm256_set_epi64x(128, 64, 32, 16);
    _Alignas(32) uint64_t buf[64];
    __m256i acc0 = _mm256_set1_epi64x(INT64_MAX), acc1 = acc0;
    for (unsigned j = 0; j < 64; j += 8) {
        __m256i word = _mm256_set1_epi64x((long long)(m >> j));
        acc0 = min4(acc0, take4(a, j, full, lanes_of(word, first), buf));
        acc1 = min4(acc1, take4(a, j + 4, full, lanes_of(word, second), buf));
    }
    __m256i x = min4(acc0, acc1);
    x = min4(x, _mm256_permute4x64_epi64(x, 0x4e)); /* lanes 2, 3, 0, 1 */
    x = min4(x, _mm256_permute4x64_epi64(x, 0xb1)); /* lanes 1, 0, 3, 2: every lane the least */
    uint64_t t = 0;
    for (unsigned j = 0; j < 64; j += 4) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(buf + j));
        t |= (uint64_t)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(v, x))) << j;
    }
    *tie = t & m;
    return (uint64_t)_mm256_extract_epi64(x, 0) ^ SIGN;
}

/* A word by its vector loop (full or partial), or the scalar one when it has few members. */
AVX2_TARGET static uint64_t word_min_avx2(const uint64_t *a, uint64_t m, uint64_t *tie)
{
    if (fd_bit_count(m) < AVX2_MIN_MEMBERS)
        return word_min_base(a, m, tie);
    return m == UINT64_MAX ? word_min_vec(a, m, true, tie) : word_min_vec(a, m, false, tie);
}

AVX2_TARGET static uint64_t search_avx2(const uint64_t *a, const shm_slotset_t *set, shm_loads_tied_t *out)
{
    return search(a, set, word_min_avx2, out);
}

/* FD_LOADS_NO_AVX2 (any value) keeps the baseline variant: the tests check both, and an
 * operator can rule the vector code out (as FD_RADIX_NO_AVX2 does for hashing). */
static bool have_avx2(void)
{
    static int have = -1; /* a benign race: every thread computes the same answer */
    if (have < 0)
        have =
            !getenv("FD_LOADS_NO_AVX2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    return have;
}
#endif

uint64_t shm_loads_min(const shm_seg_t *s, const shm_slotset_t *set, bool tokens, shm_loads_tied_t *out)
{
    const shm_dp_row_t *row = shm_dp_row(s, SHM_MAX_DPS);
    const uint64_t *a = tokens ? row->tokens : row->inflight;
    unsigned lo = 0, hi = SHM_SLOT_WORDS - 1;
    while (lo < hi && !set->w[lo])
        lo++;
    while (hi > lo && !set->w[hi])
        hi--;
    out->lo = (uint8_t)lo;
    out->hi = (uint8_t)hi;
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_avx2())
        return search_avx2(a, set, out);
#endif
    return search_base(a, set, out);
}

unsigned shm_loads_nth(const shm_loads_tied_t *t, size_t k)
{
    unsigned w = t->hi;
    while (w > t->lo && t->before[w] > k)
        w--;
    uint64_t m = t->tie.w[w];
    for (k -= t->before[w]; k && m; k--) /* before[w] <= k: before[lo] is 0 */
        m &= m - 1;
    return m ? w * 64 + (unsigned)__builtin_ctzll(m) : 0;
}
