/*
 * dataplane/policy/cache_aware.c - send a prompt where it will be served soonest: the instance
 * whose predicted cost (the prefill of what it does not hold in cache, plus the work already
 * queued on it) is lowest; a prefix nobody holds goes where a hash of its first blocks says, so
 * independent routers agree on where a new prefix lives. docs/config.md ("cache_aware") gives
 * the rule in an operator's words and docs/compat.md how it differs from the Go router's.
 *
 * Units: prompt units, the tokenizer service's tokens when the DP got them, else code points.
 * T is the prompt's length in units, B the cache block (cache-block-size units).
 *
 * Per candidate i (each shared counter read once, since it moves under us):
 *   cached_i   the units of the longest prefix of the prompt that i is predicted to hold: the
 *              deepest node of the prompt's path in the shared prefix tree tagged with i whose
 *              tag is younger than i's cache capacity (radix_cached_blocks; the capacity rule
 *              is instance-cache-tokens, see tag_within);
 *   queued_i   the work in flight on i: the sum of the charges of this router's requests to it
 *              (a request is charged its predicted uncached units + B for the decode slot it
 *              holds); remote_cache_aware adds B per request the instance itself reports beyond
 *              this router's own (running + waiting + what this router sent since the scrape:
 *              a count that lags by a poll, so weighed like a decode slot, not like a prefill);
 *   cost_i   = (T - cached_i) x hit-ratio-weight + queued_i x load-balance-weight.
 *
 * Choice: every candidate within `slack` of the lowest cost is as good as the best, where slack
 * is what even the best-cached candidate still has to prefill (T - max cached, at least B):
 *  - a prompt mostly cached somewhere (slack small) goes to the cheapest instance, so a hot
 *    prefix whose instance has queued more work than the prefill it saves spreads to the next
 *    instance, and comes back when that queue drains;
 *  - a prefix held nowhere tolerates loads up to one prefill apart (slack = T); placed by hash
 *    (scheduler.new-prefix-placement, below), up to (1 + NEW_SLACK_REUSE x reuse) prefills,
 *    where reuse is the share of this router's recent decisions whose prompt was mostly cached
 *    (radix_reuse).
 * Among the near-best, a prompt at least half cached somewhere goes to the longest cached part,
 * then to the highest rendezvous weight of (hash of the prompt's blocks through its cached part,
 * the instance's URL hash), so a prefix cached on two instances settles back on one of them.
 * Any other prompt (explore) goes, among the near-best:
 *  - by the rendezvous weight of its blocks through PLACEMENT_BLOCKS past its cached part
 *    (placement_key()) when new prefixes are placed by hash, or when no candidate has a
 *    request in flight: new prefixes spread over the fleet by hash, and routers that share no
 *    state place a new prefix alike (a fleet's routers; one router and its restarted self);
 *  - by load, while prefixes come back (reuse >= 0.5): to the least content sent to its cache,
 *    then by weight. SGLang's "least cached content" as the order among equals: a burst of new
 *    prefix groups is homed evenly by what each cache was given to hold, where the hash alone
 *    scatters them (docs/benchmarks.md 2: 16 groups on 4 instances homed 4-4-4-4 instead of
 *    the hash's 5-4-4-3);
 *  - by load, for traffic that does not come back (reuse < 0.5): to the fewest requests in
 *    flight, then by weight, which balances one-off prompts as request_num does, since no later
 *    request gains from where they went.
 *
 * New prefixes by load or by hash (scheduler.new-prefix-placement; auto = by hash when the
 * registry is etcd, i.e. several router hosts share the fleet, and otherwise until the control
 * plane's verdict says the instances report this router's requests only: shm_fleet(),
 * controlplane/sharing.h; the verdict needs traffic, so a burst at start, before any scrape, is
 * placed by hash, the one rule two routers started together agree on). A router sees
 * only the loads of its own requests, so two routers that share nothing see different loads, and a load-based
 * detour of a new prefix is exactly where they part ways; a prefix they split costs a second
 * prefill and a second copy in the fleet's cache for as long as it lives. By hash, a new prefix
 * ignores local load among the near-best and tolerates far more of it before it detours (slack
 * above, the content bound at HASH_SIGMAS), as long as prefixes come back (reuse high); traffic
 * that never comes back (reuse near 0) gets the plain slack, since a detour then costs nothing
 * later.
 * The price is a single router's balance in a burst of new prefixes: the hash's own scatter
 * stands, so an unlucky instance queues their prefills. Measured side by side
 * (bench/routing_quality.py, docs/benchmarks.md 2b): two replicas kept 33% of prefix groups on
 * one instance by load and 75% by hash, with more hits (83% against 66%) and 0.3x the TTFT p50;
 * one router alone had fewer hits by hash (83% against 89%), 0.91x the throughput and a spread
 * of 1.17 instead of 1.00. Hence load for a lone router, hash for a fleet of them, and the
 * verdict for a fleet whose routers were not told about each other (docs/benchmarks.md 2d).
 *
 * By hash, a prefix held somewhere that is not hot (hot(): under 1/n of the recent traffic)
 * stays with its holders rather than be copied by cost (sticky()): a copy made on one router's
 * loads is a group split for good. A lone router, told so by the verdict, copies by cost again
 * and may move up to one prefix per instance off the instances the blind placement over-filled
 * (rehome(); the budget is granted by the control plane when the verdict turns to alone).
 *
 * In both modes, a prefix held nowhere meets the load bound x (1 + reuse): where prefixes come
 * back, its first request places the whole group that follows, so a burst's passing difference
 * in loads is a poor reason to home it away from its place by hash or by content.
 *
 * The Go router's imbalance test is applied only when an operator sets balance-abs-threshold or
 * balance-rel-threshold: then imbalanced loads choose the least-loaded candidate by the same
 * loads that fired the test (requests in flight; remote ones for remote_cache_aware).
 *
 * The choice is recorded on the prompt's path at once (insert + tag with the instance's inflow
 * stamp, after adding the request's uncached units to its inflow), before the request is sent.
 *
 * No allocation: every buffer is on the stack, bounded by RADIX_MAX_BLOCKS and the largest view
 * (about 110 KiB in all; DP threads have the default 8 MiB stack). No network call.
 */
#include <math.h>
#include <string.h>

#include "dataplane/policy/pol.h"
#include "shm/radix.h"

#define DEFAULT_BLOCK    64   /* the Go router's default cache-block-size */
#define PLACEMENT_BLOCKS 4    /* blocks of a prompt that name its prefix for rendezvous placement */
#define CHARS_PER_TOKEN  4    /* instance-cache-tokens in code points, when no tokenizer is used */
#define REPLICA_WEIGHT   1.0  /* see score() */
#define LOAD_BOUND       1.25 /* see bounds() */
#define CONTENT_BOUND    1.1
#define CONTENT_SIGMAS   2.5 /* placing new prefixes by load */
#define HASH_SIGMAS      2.0 /* by hash: the mean of the prompt's own, see bounds() */
#define NEW_SLACK_REUSE  8.0 /* see the file's comment: a new prefix's slack, in prefills, per reuse */
#define HOT_MIN          4   /* see hot(): recent prompts through a prefix before it can be hot */
#define STICKY_PROMPTS   4.0 /* see sticky(): prompts of queued work beyond which a cold prefix is copied */
#define GO_ABS_DEFAULT   1.0
#define GO_REL_DEFAULT   0.2

typedef struct {
    uint64_t inflow; /* content this router has sent it to cache (shm_cache_inflow) */
    uint64_t load;   /* requests in flight (remote: the instance's own estimate) */
    uint64_t queued; /* work in flight, in units */
    uint64_t cached; /* units predicted in its cache */
    uint64_t w;      /* rendezvous weight for this prompt */
    double cost;
} cand_t;

/* What the candidates add up to, gathered in the pass that reads their loads, so the bounds,
 * the imbalance test and the idle test need no pass of their own (a decision at 1,024 instances
 * is a few passes over the candidates, each costing about a nanosecond per candidate). */
typedef struct {
    uint64_t load;  /* the sum of the candidates' loads */
    double content; /* the sum of their inflows */
    uint64_t min, max;
} fleet_t;

/* One decision, without changing anything: what to record is left in d. */
typedef struct {
    radix_decision_t why;
    size_t choice, nh, matched;
    uint64_t now, units, uncached; /* the prompt's units, and the chosen instance's uncached part */
    uint64_t most;                 /* the longest cached part of any candidate (score) */
    double best;                   /* the lowest predicted cost (score) */
    double reuse;                  /* radix_reuse() when the decision began */
    bool reused;                   /* the prompt was at least half cached somewhere */
    bool by_hash;                  /* new prefixes placed by hash (by_hash(), read once) */
    uint64_t hashes[RADIX_MAX_BLOCKS];
    radix_cand_t rc[SHM_VIEW_MAX_SLOTS];
} decision_t;

static uint32_t block_of(const pol_ctx_t *c)
{
    return c->cfg->cache_block_size ? c->cfg->cache_block_size : DEFAULT_BLOCK;
}

/* Token ids from the tokenizer service when the data plane got them, else code points. */
static size_t hash_prompt(const pol_ctx_t *c, uint32_t block, uint64_t *out, uint64_t *units)
{
    const pol_prompt_t *p = c->prompt;
    if (p->tokens) {
        *units = p->ntokens;
        return radix_hash_tokens(RADIX_SEED, p->tokens, p->ntokens, block, true, out, RADIX_MAX_BLOCKS);
    }
    *units = p->codepoints;
    return radix_hash_text(RADIX_SEED, p->text, p->len, block, true, out, RADIX_MAX_BLOCKS);
}

/* Cache capacity of an instance in stamps (UINT32_MAX: unknown, tags never age out by it). */
static uint32_t tag_within(const pol_ctx_t *c)
{
    uint64_t cap = c->cfg->instance_cache_tokens;
    if (!cap)
        return UINT32_MAX;
    if (!c->prompt->tokens)
        cap *= CHARS_PER_TOKEN;
    cap /= RADIX_STAMP_UNIT;
    return cap < UINT32_MAX ? (uint32_t)cap : UINT32_MAX - 1;
}

/* Each candidate's shared counters, read once, with what radix_cached_blocks needs of it (rc:
 * the generation is on the slot's first cache line with the inflow), and their sums in f. */
static void read_loads(const pol_ctx_t *c, bool remote, uint64_t now, cand_t *k, radix_cand_t *rc, size_t n,
                       fleet_t *f)
{
    uint32_t within = tag_within(c);
    *f = (fleet_t){.min = UINT64_MAX};
    for (size_t i = 0; i < n; i++) {
        uint16_t slot = c->slots[i];
        k[i].load = pol_inflight(c, i);
        k[i].queued = pol_tokens(c, i);
        k[i].inflow = shm_cache_inflow(c->seg, slot);
        double r;
        if (remote && pol_remote_load(c, i, now, k[i].load, 1, &r)) {
            uint64_t est = (uint64_t)r;
            if (est > k[i].load) /* requests from elsewhere, each weighed as a decode slot (a block) */
                k[i].queued += (est - k[i].load) * block_of(c);
            k[i].load = est;
        }
        rc[i] = (radix_cand_t){.slot = slot,
                               .gen = shm_slot_generation(c->seg, slot),
                               .stamp = radix_stamp(k[i].inflow),
                               .within = within};
        f->load += k[i].load;
        f->content += (double)k[i].inflow;
        f->min = k[i].load < f->min ? k[i].load : f->min;
        f->max = k[i].load > f->max ? k[i].load : f->max;
    }
}

/* The Go router's imbalance test, with the operator's thresholds (an unset one takes the Go
 * router's default); never applied when neither is set. */
static bool imbalanced(const pol_ctx_t *c, const fleet_t *f, size_t n)
{
    uint64_t min = f->min, max = f->max;
    double abs = c->cfg->balance_abs_threshold, rel = c->cfg->balance_rel_threshold;
    if ((abs < 0 && rel < 0) || n < 2 || max == min)
        return false;
    abs = abs < 0 ? GO_ABS_DEFAULT : abs;
    rel = rel < 0 ? GO_REL_DEFAULT : rel;
    return (double)(max - min) > abs && (double)(max - min) / (double)max > rel;
}

/* splitmix64's finaliser: the rendezvous weight of (prefix, instance) */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t weight(const pol_ctx_t *c, size_t i, uint64_t key)
{
    return mix(key ^ shm_instance(c->seg, c->slots[i])->url_hash);
}

/* pol_argmin's key over the loads read once (arg: the cand_t array) */
static double load_key(const pol_ctx_t *c, size_t i, uint64_t arg)
{
    (void)c;
    return (double)((const cand_t *)(uintptr_t)arg)[i].load;
}

/* Least-loaded by the loads read once (the imbalance fallback, and prompts with nothing worth
 * hashing); ties in turn. */
static size_t least_loaded(const pol_ctx_t *c, const cand_t *k)
{
    return pol_argmin(c, load_key, (uint64_t)(uintptr_t)k);
}

/* Consistent hashing with bounded loads: an instance takes a prefix it does not hold only while
 * its requests in flight stay within LOAD_BOUND x the mean, counting this one (which spreads a
 * burst; for a prefix held nowhere, `relax` x that, see the file's comment), and the content
 * sent to its cache within CONTENT_BOUND x the mean, counting this prompt (SGLang's "least
 * cached content" as a bound rather than the rule). The load bound allows at least one request
 * above the mean: at low loads a strict ratio would turn every small difference into a detour.
 *
 * The content bound must not fire on the scatter a fair hash makes anyway. With m prompts of
 * about `units` each placed by hash on n instances, an instance's share is binomial: its
 * content strays from the mean by about sqrt(mean x units) (one standard deviation, in units).
 * Two routers that share nothing each see their own sample of the prefixes, so a bound within
 * that scatter detours them at different moments and they place the same new prefix
 * differently. CONTENT_SIGMAS standard deviations of slack leave the hash's own scatter alone
 * (simulated: two routers placing 24 prefixes on 3 instances in turn split a group in about 1
 * run of 1,000, where a slack of two prompts did in 1 of 7), while a skew beyond it, such as
 * the longest prompts all homed on one instance, grows with the mean and is cut. Placing new
 * prefixes by hash, where loads no longer even out what the hash scatters, the bound is the
 * one balance left: simulated with 16 prefixes on 4 instances seen by two routers in independent
 * orders, 2.5 sigmas agree on 99% of them with the busiest instance homing 1.5 x the mean, 1.5
 * sigmas on 88% with 1.4 x, a bound of the mean + 1 on 62%.
 *
 * By hash, the sigmas are the prompt's own: HASH_SIGMAS x (0.5 + u), u uniform in [0, 1) drawn
 * from a hash of its rendezvous key (threshold()). A fixed threshold detours every prefix homed
 * on an instance for as long as one router's count of it is above the line and the other's
 * below: a run of disagreements (a clean-clone CI saw 7 of 24 groups split that way). With the
 * threshold a function of the prefix, every router detours the prefixes of low u first, in
 * whatever order it sees them: the sets two routers detour nest, and they disagree only on the
 * prefixes whose threshold lies between their two counts. Simulated (docs/benchmarks.md 2g), a
 * threshold drawn from [1, 3) sigmas keeps the homing balance of a fixed 1.5 (busiest instance
 * 1.28 x the mean for 24 prefixes on 3 instances, 1.49 x for 16 on 4) and splits fewer prefixes
 * between two routers: more than 3 of 24 in 0.37% of runs instead of 1.2%, more than 6 in 0.002%
 * instead of 0.05%. */
typedef struct {
    uint64_t load;
    double content;
} bound_t;

/* A prompt's share of HASH_SIGMAS, in [0.5, 1.5) (see above): the same in every router, since
 * it depends on the rendezvous key alone. */
static double threshold(uint64_t key)
{
    return 0.5 + (double)(mix(key ^ 0x9e3779b97f4a7c15ULL) >> 11) * 0x1p-53;
}

static bound_t bounds(const fleet_t *f, size_t n, uint64_t units, double relax, double sigmas)
{
    uint64_t load = f->load + 1;
    double content = f->content + (double)units;
    double mean = (double)load / (double)n, b = LOAD_BOUND * mean, cmean = content / (double)n;
    b = (b > mean + 1 ? b : mean + 1) * relax;
    uint64_t ceil = (uint64_t)b;
    double cb = CONTENT_BOUND * cmean;
    double cslack = cmean + sigmas * sqrt(cmean * (double)units);
    return (bound_t){.load = ceil + ((double)ceil < b), .content = cb > cslack ? cb : cslack};
}

static bool over_bound(const cand_t *k, const bound_t *b)
{
    return k->load + 1 > b->load || (double)k->inflow > b->content;
}

/* The rendezvous key of a prompt: the hash of its blocks up to a depth (each block's hash chains
 * all before it), the longest part some instance holds (d->most) and, for a prompt mostly new
 * (explore), PLACEMENT_BLOCKS blocks more. A group's prompts share both, so a group settles on
 * one holder and a new group is placed as one. New prompts that share only a held head, such as
 * one system prompt before every user's conversation, get keys of their own and spread over
 * the fleet: named by their first blocks, all of them would go where the head's hash says. A
 * prefix no instance holds any more is named by its first blocks again, so its group is placed
 * anew as one. Two routers agree on the key once both hold the head, as after its first use. */
static uint64_t placement_key(const decision_t *d, uint32_t block, bool exploit)
{
    size_t depth = (size_t)(d->most / block) + (exploit ? 0 : PLACEMENT_BLOCKS);
    depth = depth < 1 ? 1 : depth > d->nh ? d->nh : depth;
    return d->hashes[depth - 1];
}

/* Cached part and predicted cost of every candidate, the longest cached part (d->most) and the
 * lowest cost (d->best). Rendezvous weights are left to choose(), which needs them only for the
 * near-best. */
static void score(const pol_ctx_t *c, decision_t *d, const uint32_t *blocks, cand_t *k, size_t n)
{
    uint32_t block = block_of(c);
    uint64_t most = 0;
    for (size_t i = 0; i < n; i++) {
        /* a prompt shorter than a block is one short block: held whole or not at all */
        uint64_t cached = d->units < block && blocks[i] ? d->units : (uint64_t)blocks[i] * block;
        k[i].cached = cached < d->units ? cached : d->units;
        most = k[i].cached > most ? k[i].cached : most;
    }
    double best = 0;
    for (size_t i = 0; i < n; i++) {
        /* copying what another instance holds also costs the content it will evict here */
        double copy = (double)(most - k[i].cached) * REPLICA_WEIGHT;
        k[i].cost = ((double)(d->units - k[i].cached) + copy) * c->cfg->hit_ratio_weight +
                    (double)k[i].queued * c->cfg->load_balance_weight;
        best = i == 0 || k[i].cost < best ? k[i].cost : best;
    }
    d->most = most, d->best = best;
    d->reused = most > 0 && 2 * most >= d->units;
}

/* How the near-best candidates are ordered (see the file's comment). */
typedef enum {
    ORDER_CACHED,  /* the longest cached part, then by hash: a prompt mostly cached somewhere */
    ORDER_HASH,    /* the highest rendezvous weight */
    ORDER_CONTENT, /* the least content sent to its cache, then by hash */
    ORDER_LOAD,    /* the fewest requests in flight, then by hash */
} order_t;

static const char *const order_names[] = {
    [ORDER_CACHED] = "longest cached, then rendezvous weight",
    [ORDER_HASH] = "rendezvous weight",
    [ORDER_CONTENT] = "least content sent, then rendezvous weight",
    [ORDER_LOAD] = "fewest in flight, then rendezvous weight",
};

/* Whether new prefixes are placed by hash now (scheduler.new-prefix-placement, resolved; auto
 * with a local registry: unless the instances show this router alone, see the file's comment). */
static bool by_hash(const pol_ctx_t *c)
{
    uint32_t p = c->cfg->new_prefix_by_hash;
    return p == SHM_PLACE_BY_HASH ||
           (p == SHM_PLACE_BY_HASH_WHEN_SHARED && shm_fleet(c->seg) != SHM_FLEET_ALONE);
}

/* The order for a prompt not mostly cached anywhere (explore). */
static order_t explore_order(const decision_t *d, const fleet_t *f, bool hash)
{
    if (hash || f->max == 0) /* or every candidate idle */
        return ORDER_HASH;
    return d->reuse >= 0.5 ? ORDER_CONTENT : ORDER_LOAD;
}

/* Whether near-best candidate a is preferred to b. Exploit (ORDER_CACHED) keeps a prefix where it
 * is, and a prefix cached on two instances settles on one by weight; the explore orders keep a
 * short shared part, such as a common first sentence, from pulling every new prefix to where it
 * was first seen. */
static bool prefer(const cand_t *a, const cand_t *b, order_t order)
{
    if (order == ORDER_CACHED && a->cached != b->cached)
        return a->cached > b->cached;
    if (order == ORDER_CONTENT && a->inflow != b->inflow)
        return a->inflow < b->inflow;
    if (order == ORDER_LOAD && a->load != b->load)
        return a->load < b->load;
    return a->w > b->w;
}

/* Whether the prefix a prompt mostly shares with what instances hold is hot: it carries at least
 * 1/n of this router's recent traffic (and HOT_MIN prompts), more than one of the n instances
 * can serve next to its share of the rest, so it needs copies (Preble's replication rule). A
 * prefix group below that fits on one instance. The share is of the router's own traffic, so
 * router replicas that each see a random part of the same traffic find the same prefixes hot. */
static bool hot(const pol_ctx_t *c, const decision_t *d, size_t n)
{
    radix_share_t r = radix_share(c->seg, d->hashes, (size_t)(d->most / block_of(c)));
    return r.same >= HOT_MIN && (size_t)r.same * n >= r.seen;
}

/* Whether a prompt mostly held somewhere stays with its holders even where a copy would cost
 * less (new prefixes by hash: the router is not known to be alone). Two routers that share
 * nothing weigh a copy by their own loads, so a copy made by one splits the group between two
 * instances for good: each router keeps sending the group where it last did (docs/benchmarks.md
 * 2e, 2h). A prefix that is not hot stays unless its holders cost more than STICKY_PROMPTS whole
 * prompts above the cheapest other candidate (a queue far beyond what the hash's scatter makes,
 * such as an instance that stalls); a hot one is copied by cost, as by a lone router. Returns
 * the lowest cost among the holders in *best. */
static bool sticky(const pol_ctx_t *c, const decision_t *d, const cand_t *k, size_t n, double *best)
{
    double other = INFINITY;
    *best = INFINITY;
    for (size_t i = 0; i < n; i++) {
        double *m = k[i].cached == d->most ? best : &other;
        *m = k[i].cost < *m ? k[i].cost : *m;
    }
    double far = STICKY_PROMPTS * (double)d->units * c->cfg->hit_ratio_weight;
    return *best <= other + far && !hot(c, d, n);
}

/* Whether a prompt mostly held somewhere moves its prefix to another instance (new prefixes by
 * load: the router knows it is alone). The prefixes homed by hash before the verdict came (a
 * burst at start) keep the hash's scatter, 5-4-4-3 groups where content would have homed
 * 4-4-4-4, and a copy by cost fires only once the holder's queue outgrows a prefill. While the
 * control plane's grant lasts (one move per instance, granted when the verdict turns to alone,
 * withdrawn when it turns to shared; only with auto, the one mode that placed blind and then
 * learns), a prefix moves when every holder was sent more than a prompt beyond the mean content
 * and is busier than the mean (never on an idle fleet: one request at a time gains nothing from
 * balance), the prefix is not hot (a hot one is copied by cost) and it branches
 * (radix_branches: a group's shared part, not one conversation's history, whose move would cost
 * its whole history's prefill for one session's requests). */
static bool rehome(const pol_ctx_t *c, const decision_t *d, const cand_t *k, size_t n, const fleet_t *f)
{
    double cmean = f->content / (double)n, lmean = (double)f->load / (double)n;
    for (size_t i = 0; i < n; i++)
        if (k[i].cached == d->most &&
            ((double)k[i].inflow <= cmean + (double)d->units || (double)k[i].load <= lmean))
            return false;
    size_t depth = (size_t)(d->most / block_of(c));
    return c->cfg->new_prefix_by_hash == SHM_PLACE_BY_HASH_WHEN_SHARED && radix_moves_left(c->seg) &&
           !hot(c, d, n) && radix_branches(c->seg, d->hashes, depth);
}

/* The move's destination (rehome), or SIZE_MAX: among the non-holders sent a prompt or more below
 * the mean content and within the load bound, the one sent the least, provided its rendezvous
 * weight for the prefix beats every holder's. The group's next prompts then find it held at
 * both and settle on the new holder by weight (ORDER_CACHED), and the old copy ages out; each
 * move gives the least-filled cache a prompt, so moves stop once the caches are within a prompt
 * of the mean. */
static size_t move_to(const pol_ctx_t *c, const decision_t *d, cand_t *k, size_t n, const fleet_t *f,
                      const bound_t *b, uint64_t key)
{
    double cmean = f->content / (double)n;
    uint64_t held = 0;
    for (size_t i = 0; i < n; i++) {
        k[i].w = weight(c, i, key);
        held = k[i].cached == d->most && k[i].w > held ? k[i].w : held;
    }
    size_t to = SIZE_MAX;
    for (size_t i = 0; i < n; i++)
        if (k[i].cached < d->most && k[i].w > held && (double)k[i].inflow + (double)d->units <= cmean &&
            !over_bound(&k[i], b) && (to == SIZE_MAX || k[i].inflow < k[to].inflow))
            to = i;
    return to;
}

/* The preferred candidate among those within slack of the lowest cost. A candidate that would
 * take a new copy must be within the load bound, unless no near-best one is. */
static size_t choose(const pol_ctx_t *c, const decision_t *d, cand_t *k, size_t n, const fleet_t *f,
                     pol_explain_t *ex)
{
    double best = d->best;
    uint64_t most = d->most;
    uint64_t rest = d->units - most;
    bool hash = d->by_hash;
    double reuse = hash ? d->reuse : 0; /* widens only by hash */
    bool exploit = most > 0 && 2 * most >= d->units;
    double held_best;
    bool stay = exploit && hash && sticky(c, d, k, n, &held_best);
    best = stay ? held_best : best;
    if (ex)
        ex->sticky = stay;
    uint64_t key = placement_key(d, block_of(c), exploit);
    double sigmas = hash ? HASH_SIGMAS * threshold(key) : CONTENT_SIGMAS;
    bound_t bound = bounds(f, n, d->units, most ? 1 : 1 + d->reuse, sigmas);
    double slack = (double)(rest > block_of(c) ? rest : block_of(c)) * c->cfg->hit_ratio_weight;
    if (!most) /* held nowhere: see the file's comment */
        slack *= 1 + NEW_SLACK_REUSE * reuse;
    if (ex)
        ex->slack = slack;
    if (exploit && !hash && rehome(c, d, k, n, f)) {
        size_t to = move_to(c, d, k, n, f, &bound, key);
        /* the budget is shared memory, written like the tree (select_scored); a dry run only looks */
        if (to != SIZE_MAX && (ex || c->dry_run || radix_moves_take((shm_seg_t *)c->seg))) {
            if (ex)
                ex->order = "moved: least content sent", ex->cand[to].eligible = true;
            return to;
        }
    }
    order_t order = exploit ? ORDER_CACHED : explore_order(d, f, hash);
    if (ex)
        ex->order = order_names[order];
    size_t pick[2] = {SIZE_MAX, SIZE_MAX}; /* within the bound, and regardless of it */
    for (size_t i = 0; i < n; i++) {
        if (ex)
            ex->cand[i].eligible = false, ex->cand[i].weight = 0;
        if (k[i].cost > best + slack || (stay && k[i].cached < most))
            continue;
        k[i].w = weight(c, i, key);
        bool bounded = (!exploit || k[i].cached < most) && over_bound(&k[i], &bound);
        if (ex)
            ex->cand[i].eligible = !bounded, ex->cand[i].weight = k[i].w;
        for (int b = bounded; b < 2; b++)
            if (pick[b] == SIZE_MAX || prefer(&k[i], &k[pick[b]], order))
                pick[b] = i;
    }
    return pick[0] != SIZE_MAX ? pick[0] : pick[1] != SIZE_MAX ? pick[1] : 0;
}

/* A prompt shorter than one block that nobody holds has nothing worth placing by hash: it goes to
 * the least loaded, ties in turn (and is still recorded, so a repeat sticks). */
static bool tiny_and_new(const decision_t *d, uint32_t block)
{
    return d->units < block && !d->most;
}

static void decide(const pol_ctx_t *c, bool remote, decision_t *d, pol_explain_t *ex)
{
    cand_t k[SHM_VIEW_MAX_SLOTS];
    size_t n = c->n < SHM_VIEW_MAX_SLOTS ? c->n : SHM_VIEW_MAX_SLOTS;
    uint32_t block = block_of(c);
    if (ex)
        memset(ex->cand, 0, n * sizeof *ex->cand), ex->order = NULL, ex->sticky = false;
    d->now = shm_now_ms();
    d->nh = d->matched = 0;
    d->units = d->uncached = d->most = 0;
    d->best = 0;
    d->reuse = radix_reuse(c->seg);
    d->reused = false;
    d->by_hash = by_hash(c); /* the verdict can turn mid-decision: the explanation shows the one used */
    if (ex)
        ex->new_by_hash = d->by_hash;
    bool has_prompt = c->prompt && c->prompt->text && c->prompt->len;
    if (has_prompt)
        d->nh = hash_prompt(c, block, d->hashes, &d->units);
    fleet_t f;
    read_loads(c, remote, d->now, k, d->rc, n, &f);
    bool unbalanced = imbalanced(c, &f, n);
    if (ex)
        ex->min_load = f.min, ex->max_load = f.max, ex->imbalanced = unbalanced, ex->reuse = d->reuse;
    if (unbalanced || !d->nh) {
        d->why = unbalanced ? RADIX_FALLBACK_IMBALANCE : RADIX_FALLBACK_NO_PROMPT;
        d->choice = least_loaded(c, k);
        d->uncached = d->units;
    } else {
        uint32_t blocks[SHM_VIEW_MAX_SLOTS];
        d->matched = radix_cached_blocks(c->seg, d->hashes, d->nh, d->rc, n, blocks);
        score(c, d, blocks, k, n);
        d->why = RADIX_DECIDED_BY_CACHE;
        d->choice = tiny_and_new(d, block) ? least_loaded(c, k) : choose(c, d, k, n, &f, ex);
        d->uncached = d->units - k[d->choice].cached;
    }
    for (size_t i = 0; ex && i < n; i++) {
        if (d->why != RADIX_DECIDED_BY_CACHE)
            ex->cand[i].eligible = false, ex->cand[i].weight = 0;
        ex->cand[i].load = k[i].load;
        ex->cand[i].tokens = k[i].queued;
        ex->cand[i].cached = k[i].cached;
        ex->cand[i].hit = d->units ? (unsigned)(k[i].cached * 100 / d->units) : 0;
        ex->cand[i].score = d->why == RADIX_DECIDED_BY_CACHE ? k[i].cost : (double)k[i].load;
    }
}

static size_t select_scored(const pol_ctx_t *c, bool remote)
{
    /* the policy contract hands the segment read-only; recording a choice is the one write,
     * made under the writer lock like every change of the tree */
    shm_seg_t *s = (shm_seg_t *)c->seg;
    decision_t d;
    decide(c, remote, &d, NULL);
    radix_count_decision(s, d.why, d.matched > 0);
    if (d.why == RADIX_DECIDED_BY_CACHE)
        radix_note_reuse(s, d.reused), radix_note_prompt(s, d.hashes, d.nh);
    uint16_t slot = c->slots[d.choice];
    if (c->charge) /* the work this request queues there (read_loads' queued) */
        *c->charge = (pol_charge_t){.tokens = d.uncached + block_of(c), .prefill = d.uncached};
    uint64_t inflow = shm_cache_inflow_add(s, slot, d.uncached);
    if (d.why == RADIX_DECIDED_BY_CACHE) {
        radix_insert(s, d.hashes, d.nh, slot, d.rc[d.choice].gen, radix_stamp(inflow), d.now);
        if (c->prompt->session)
            radix_count_session(s, c->prompt->session, slot, d.rc[d.choice].gen);
    }
    return d.choice;
}

static const char *branch_name(radix_decision_t why)
{
    return why == RADIX_DECIDED_BY_CACHE     ? "predicted_cost"
           : why == RADIX_FALLBACK_IMBALANCE ? "fallback_imbalance (least loaded)"
                                             : "no_prompt (least loaded)";
}

static void explain_scored(const pol_ctx_t *c, bool remote, pol_explain_t *ex)
{
    decision_t d;
    decide(c, remote, &d, ex);
    ex->branch = branch_name(d.why);
    ex->blocks = d.nh;
    ex->matched = d.matched;
    ex->units = d.units;
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

const pol_ops_t pol_cache_aware_ops = {.needs = POL_NEEDS_PROMPT | POL_NEEDS_TOKENS | POL_NEEDS_TREE,
                                       .select = select_cache_aware,
                                       .explain = explain_cache_aware};
const pol_ops_t pol_remote_cache_aware_ops = {.needs = POL_NEEDS_PROMPT | POL_NEEDS_TOKENS | POL_NEEDS_TREE,
                                              .select = select_remote_cache_aware,
                                              .explain = explain_remote_cache_aware};
