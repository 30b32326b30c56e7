/*
 * dataplane/policy/cache_aware.c - send a prompt where its prefix was sent before (that
 * instance holds its KV cache), unless the loads are too uneven. The Go router's algorithm
 * (docs/fastdeploy.md 10) over the shared prefix tree of shm/radix.h:
 *
 *  1. loads = requests in flight per candidate (summed over every live DP); remote_cache_aware
 *     takes each instance's own running count from its last /metrics poll instead, falling
 *     back to the local count when that is missing or older than metrics-max-age;
 *  2. imbalanced (max != min, max - min > balance-abs-threshold and (max - min) / max >
 *     balance-rel-threshold) -> process_tokens chooses;
 *  3. empty prompt -> process_tokens chooses;
 *  4. tokens = the tokenizer service's ids when configured and answering, else the prompt's
 *     Unicode code points, hashed in chained blocks of cache-block-size;
 *  5. hit ratio per candidate from the longest matching prefix (radix_hit_ratios);
 *  6. score = (100 - hit) / 100 x hit-ratio-weight + load / maxLoad x load-balance-weight,
 *     lowest wins; on an exact tie fewer tokens in flight, then the tied candidates
 *     in turn (pol_tie_turn) where the Go router took the first URL;
 *  7. the choice is recorded on the prompt's path at once (insert + tag), before the request
 *     is sent, as the Go router does.
 *
 * Unlike the Go router it also works in mixed mode (the data plane extracts the prompt for
 * every policy that needs it). A prompt shorter than one block is hashed as one short block
 * instead of falling back to process_tokens, so tiny prompts follow the same rule as the rest:
 * a repeated one sticks to the instance that served it, distinct ones spread by the load term
 * (all hit ratios 0). A short block's hash cannot stand for a full block (its FNV input is
 * shorter; equal only by a 64-bit collision), so it never shadows a long prompt's prefix.
 * Prompts longer than RADIX_MAX_BLOCKS
 * blocks use only their first RADIX_MAX_BLOCKS blocks (hit ratio over those).
 *
 * No allocation: every buffer is on the stack, bounded by RADIX_MAX_BLOCKS and the largest
 * view (about 90 KiB in all; DP threads have the default 8 MiB stack). Cost: one pass over the
 * prompt's code points (hashing stops at the block bound), one tree walk of about one chain
 * lookup per node on the path, one scan over the candidates, one insert under the writer lock.
 */
#include "dataplane/policy/pol.h"
#include "shm/radix.h"

#define DEFAULT_BLOCK 64 /* the Go router's default cache-block-size */

static void load_range(const uint64_t *load, size_t n, uint64_t *min, uint64_t *max)
{
    *min = UINT64_MAX;
    *max = 0;
    for (size_t i = 0; i < n; i++) {
        *max = load[i] > *max ? load[i] : *max;
        *min = load[i] < *min ? load[i] : *min;
    }
}

static bool imbalanced(uint64_t min, uint64_t max, size_t n, double abs_threshold, double rel_threshold)
{
    if (n < 2 || max == min)
        return false;
    uint64_t diff = max - min;
    return (double)diff > abs_threshold && (double)diff / (double)max > rel_threshold;
}

static double score(unsigned hit, uint64_t load, uint64_t max_load, const shm_config_t *cfg)
{
    double s = (double)(100 - hit) / 100.0 * cfg->hit_ratio_weight;
    if (max_load)
        s += (double)load / (double)max_load * cfg->load_balance_weight;
    return s;
}

/* Lowest score; on an exact tie fewer tokens in flight, then the tied candidates in turn
 * (pol_tie_turn). */
static size_t best_score(const pol_ctx_t *c, size_t n, const uint8_t *hit, const uint64_t *load,
                         uint64_t max_load, pol_explain_t *ex)
{
    double s[SHM_VIEW_MAX_SLOTS], tied[SHM_VIEW_MAX_SLOTS], best = 0;
    uint64_t tok[SHM_VIEW_MAX_SLOTS], few = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        s[i] = score(hit[i], load[i], max_load, c->cfg);
        tok[i] = pol_tokens(c, i); /* read once: it moves under us */
        if (ex)
            ex->cand[i].hit = hit[i], ex->cand[i].score = s[i];
        if (i == 0 || s[i] < best)
            best = s[i];
    }
    for (size_t i = 0; i < n; i++)
        if (s[i] == best && tok[i] < few)
            few = tok[i];
    size_t ntied = 0;
    for (size_t i = 0; i < n; i++) {
        tied[i] = s[i] == best && tok[i] == few;
        ntied += tied[i] != 0;
    }
    return pol_nth_equal(tied, n, 1, pol_tie_turn(c, ntied));
}

/* Token ids from the tokenizer service when the data plane got them, else code points. */
static size_t hash_prompt(const pol_ctx_t *c, uint64_t seed, uint32_t block, uint64_t *out)
{
    if (!c->prompt->tokens)
        return radix_hash_text(seed, c->prompt->text, c->prompt->len, block, true, out, RADIX_MAX_BLOCKS);
    radix_hasher_t h;
    radix_hasher_init(&h, seed, block, out, RADIX_MAX_BLOCKS);
    for (size_t i = 0; i < c->prompt->ntokens; i++)
        if (!radix_hasher_push(&h, c->prompt->tokens[i]))
            break;
    return radix_hasher_finish(&h, true);
}

/* remote_cache_aware: the instance's own running count when its metrics are fresh */
static uint64_t load_of(const pol_ctx_t *c, size_t i, bool remote, uint64_t now_ms)
{
    shm_remote_metrics_t m;
    if (remote && pol_remote_metrics(c, i, now_ms, &m))
        return m.running > 0 ? (uint64_t)m.running : 0;
    return pol_inflight(c, i);
}

/* One decision, without changing anything: what to record is left in d. */
typedef struct {
    radix_decision_t why;
    size_t choice, nh, matched;
    uint64_t now;
    uint64_t hashes[RADIX_MAX_BLOCKS];
    uint32_t gens[SHM_VIEW_MAX_SLOTS];
} decision_t;

static void decide(const pol_ctx_t *c, bool remote, decision_t *d, pol_explain_t *ex)
{
    uint64_t load[SHM_VIEW_MAX_SLOTS], min, max;
    size_t n = c->n < SHM_VIEW_MAX_SLOTS ? c->n : SHM_VIEW_MAX_SLOTS;
    d->now = shm_now_ms();
    d->nh = d->matched = 0;
    for (size_t i = 0; i < n; i++) {
        load[i] = load_of(c, i, remote, d->now);
        if (ex)
            ex->cand[i].load = load[i];
    }
    load_range(load, n, &min, &max);
    bool unbalanced = imbalanced(min, max, n, c->cfg->balance_abs_threshold, c->cfg->balance_rel_threshold);
    if (ex)
        ex->min_load = min, ex->max_load = max, ex->imbalanced = unbalanced;
    if (unbalanced || !c->prompt || !c->prompt->text || !c->prompt->len) {
        d->why = unbalanced ? RADIX_FALLBACK_IMBALANCE : RADIX_FALLBACK_NO_PROMPT;
        d->choice = pol_process_tokens.select(c);
        return;
    }
    uint32_t block = c->cfg->cache_block_size ? c->cfg->cache_block_size : DEFAULT_BLOCK;
    d->nh = hash_prompt(c, radix_seed(c->seg), block, d->hashes);
    for (size_t i = 0; i < n; i++)
        d->gens[i] = __atomic_load_n(&shm_instance(c->seg, c->slots[i])->generation, __ATOMIC_ACQUIRE);
    uint8_t hit[SHM_VIEW_MAX_SLOTS];
    d->matched = radix_hit_ratios(c->seg, d->hashes, d->nh, c->slots, d->gens, n, hit);
    d->why = RADIX_DECIDED_BY_CACHE;
    d->choice = best_score(c, n, hit, load, max, ex);
}

static size_t select_scored(const pol_ctx_t *c, bool remote)
{
    /* the policy contract hands the segment read-only; recording a choice is the one write,
     * made under the writer lock like every change of the tree */
    shm_seg_t *s = (shm_seg_t *)c->seg;
    decision_t d;
    decide(c, remote, &d, NULL);
    radix_count_decision(s, d.why, d.matched > 0);
    if (d.why != RADIX_DECIDED_BY_CACHE)
        return d.choice;
    radix_insert(s, d.hashes, d.nh, c->slots[d.choice], d.gens[d.choice], d.now, c->cfg->radix_capacity);
    if (c->prompt->session)
        radix_count_session(s, c->prompt->session, c->slots[d.choice], d.gens[d.choice]);
    return d.choice;
}

static const char *branch_name(radix_decision_t why)
{
    return why == RADIX_DECIDED_BY_CACHE     ? "cache_scored"
           : why == RADIX_FALLBACK_IMBALANCE ? "fallback_imbalance (process_tokens)"
                                             : "fallback_no_prompt (process_tokens)";
}

static void explain_scored(const pol_ctx_t *c, bool remote, pol_explain_t *ex)
{
    decision_t d;
    decide(c, remote, &d, ex);
    ex->branch = branch_name(d.why);
    ex->blocks = d.nh;
    ex->matched = d.matched;
    ex->choice = (long)d.choice;
}

static size_t select_cache_aware(const pol_ctx_t *c)
{
    return select_scored(c, false);
}

static size_t select_remote_cache_aware(const pol_ctx_t *c)
{
    return select_scored(c, true);
}

static void explain_cache_aware(const pol_ctx_t *c, pol_explain_t *ex)
{
    explain_scored(c, false, ex);
}

static void explain_remote_cache_aware(const pol_ctx_t *c, pol_explain_t *ex)
{
    explain_scored(c, true, ex);
}

const pol_t pol_cache_aware = {
    .name = "cache_aware", .needs_prompt = 1, .select = select_cache_aware, .explain = explain_cache_aware};
const pol_t pol_remote_cache_aware = {.name = "remote_cache_aware",
                                      .needs_prompt = 1,
                                      .select = select_remote_cache_aware,
                                      .explain = explain_remote_cache_aware};
