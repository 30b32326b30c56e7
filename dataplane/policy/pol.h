/*
 * dataplane/policy/pol.h - the interface every selection policy implements, one policy per file,
 * and the helpers they share (pol.c). A policy is named in common/policies.h and registered by
 * that name in registry.c; this header is what writing one needs.
 *
 * A policy receives the candidates (instance slots of one role, in URL order) and the request's
 * features, and returns the index of its choice. Ties between equally good candidates are not
 * decided by URL order (the Go router's strict `<` over sorted URLs sends every tie to the first
 * instance): the tied candidates are taken in turn (pol_tie_turn), so a run of tied decisions
 * spreads evenly over them. It runs inside a shared-memory read-side critical section, so it must not block,
 * must not allocate, and must not keep anything from shm after returning. Loads are read through
 * the accessors below (sums over the live DPs' counter rows); no policy ever makes a network call.
 */
#ifndef FD_DP_POLICY_POL_H
#define FD_DP_POLICY_POL_H

#include <stddef.h>
#include <stdint.h>

#include "shm/shm.h"

typedef struct {
    const char *text; /* extracted prompt (may be NULL when the policy does not need it) */
    size_t len;
    size_t codepoints;
    const uint64_t *tokens; /* token ids from the tokenizer service, NULL when not available */
    size_t ntokens;
    uint64_t session; /* hash of the request's session_id, 0 = none (stickiness statistics) */
} pol_prompt_t;

/* What a request adds to the chosen instance's tokens-in-flight counter. In: the Go router's
 * estimate (2 x code points), all of it held until the request ends. A policy with a better
 * prediction of the work it queues there may overwrite it (cache_aware: the uncached part, to be
 * prefilled, and a block for the decode slot). */
typedef struct {
    uint64_t tokens;
    uint64_t prefill; /* the part released when the answer's first body byte arrives */
} pol_charge_t;

/* The candidates as a set of slots, and each member's index into the candidates' list: what
 * pol_argmin_load reads the loads by (shm_loads_min). dp_select keeps one per role and thread
 * for the published view, rebuilt only when a new view is published. */
typedef struct {
    shm_slotset_t set;
    uint16_t pos[SHM_MAX_INSTANCES]; /* for members only */
} pol_slots_t;

/* Build it from a list (slots out of range are left out; of duplicates, the first counts). */
void pol_slots_build(pol_slots_t *p, const uint16_t *slots, size_t n);

typedef struct {
    const shm_seg_t *seg;
    const shm_config_t *cfg;
    shm_role_t role;
    const uint16_t *slots;      /* candidate slots, sorted by URL */
    size_t n;                   /* >= 1 */
    const pol_slots_t *by_slot; /* the same candidates by slot; NULL: built when a policy needs it */
    const pol_prompt_t *prompt;
    uint64_t *rng;        /* the calling thread's generator state */
    bool dry_run;         /* set by pol_explain: change nothing in shm, not even the tie rotation */
    pol_charge_t *charge; /* NULL in a dry run */
} pol_ctx_t;

/* What a policy weighed for one candidate, for `fdctl explain`. */
typedef struct {
    uint64_t load;   /* the load it weighed: requests in flight, or the instance's own estimate */
    uint64_t tokens; /* work in flight (cache-aware: queued units) */
    uint64_t cached; /* cache-aware: prompt units predicted in its cache */
    unsigned hit;    /* cache-aware: cached part of the prompt, 0..100 */
    double score;    /* cache-aware: predicted cost, lower wins */
    bool eligible;   /* cache-aware: within slack of the lowest cost */
    uint64_t weight; /* cache-aware: rendezvous weight (eligible candidates) */
} pol_cand_info_t;

/* A dry run of a decision: nothing in shared memory changes. */
typedef struct {
    const char *branch;     /* which rule decided */
    size_t blocks, matched; /* cache-aware: the prompt's blocks, and how many matched the tree */
    uint64_t units;         /* cache-aware: the prompt's length in units (tokens or code points) */
    uint64_t min_load, max_load;
    bool imbalanced;       /* cache-aware: the imbalance test fired */
    double reuse;          /* cache-aware: radix_reuse(): a new prefix's slack, bound and order */
    double slack;          /* cache-aware: how far above the lowest cost is still near-best */
    bool new_by_hash;      /* cache-aware: new prefixes placed by hash in this decision */
    bool sticky;           /* cache-aware: a prefix not hot stayed with its holders (no copy) */
    const char *order;     /* cache-aware: how the near-best were ordered (NULL: none were) */
    long choice;           /* index into the candidates, -1 for a random choice */
    pol_cand_info_t *cand; /* the caller's array, one per candidate */
} pol_explain_t;

/* What a policy needs of the request before it selects (pol_ops_t.needs). */
#define POL_NEEDS_PROMPT 1u /* the prompt text (request.c extracts it only then) */
#define POL_NEEDS_TOKENS 2u /* its token ids, from the tokenizer service when one is configured */
#define POL_NEEDS_TREE   4u /* the shared prefix tree: it matches and records prompts there */

/* What a policy's file defines, as `const pol_ops_t pol_<name>_ops` (common/policies.h). */
typedef struct {
    unsigned needs;                       /* POL_NEEDS_* */
    size_t (*select)(const pol_ctx_t *c); /* index into c->slots */
    /* Fill ex (ex->cand has c->n entries, loads already filled; ex->branch is the policy's
     * name) with what select would do, changing nothing: c->dry_run is set. NULL: select itself
     * is a dry run then (it only reads, and rotates ties through pol_tie_turn). */
    void (*explain)(const pol_ctx_t *c, pol_explain_t *ex);
} pol_ops_t;

/* An explain for a policy whose choice is random: there is no choice to predict. */
void pol_explain_random(const pol_ctx_t *c, pol_explain_t *ex);

static inline uint64_t pol_inflight(const pol_ctx_t *c, size_t i)
{
    return shm_inflight(c->seg, c->slots[i]);
}
static inline uint64_t pol_tokens(const pol_ctx_t *c, size_t i)
{
    return shm_tokens(c->seg, c->slots[i]);
}

/* The instance's last /metrics poll (published by the control plane) if it is valid and younger
 * than metrics-max-age; false means: use the local counters instead. */
bool pol_remote_metrics(const pol_ctx_t *c, size_t i, uint64_t now_ms, shm_remote_metrics_t *m);

/* The requests on instance i as it would count them now: running + waiting x waiting_weight
 * from its last fresh /metrics scrape, plus what this router's in-flight count to it grew by
 * since that scrape (`local` is the count now), so requests sent since the scrape are not
 * invisible (a scrape showing an idle instance must not draw every request until the next
 * one). False when there is no fresh scrape. */
bool pol_remote_load(const pol_ctx_t *c, size_t i, uint64_t now_ms, uint64_t local, double waiting_weight,
                     double *out);

/* xorshift64*: cheap, per thread, good enough for load spreading */
static inline uint64_t pol_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Which of ntied equally good candidates to take (0..ntied-1): the role's shared cursor (shm
 * rr_cursor, which only round_robin otherwise uses, and a role runs one policy) modulo ntied,
 * advanced once per tied decision, so sequential tied decisions from every thread and DP process
 * take the tied candidates in turn. A dry run reads the cursor without advancing it. */
size_t pol_tie_turn(const pol_ctx_t *c, size_t ntied);

/* Index of the smallest value of f(c, i, arg); among equal values, the tied candidates in turn
 * (pol_tie_turn). */
size_t pol_argmin(const pol_ctx_t *c, double (*f)(const pol_ctx_t *, size_t, uint64_t), uint64_t arg);

/* Index of the k-th (from 0) of v[0..n) equal to x; 0 when there is none. */
size_t pol_nth_equal(const double *v, size_t n, double x, size_t k);

/* The candidate with the fewest in-flight requests (tokens = false) or tokens, by shm_loads_min
 * over c->by_slot: among equal loads, the tied candidates in turn (pol_tie_turn), taken in
 * ascending slot order (pol_argmin takes them in list order). */
size_t pol_argmin_load(const pol_ctx_t *c, bool tokens);

#endif
