/*
 * tools/fd-sim/engine.h - fd-sim's engine model: a pure, clock-free model of one inference
 * instance (continuous batching, prefill rate, batch-dependent decode step, KV blocks with an LRU
 * prefix cache). The server (driver.c) feeds it the wall clock and turns its progress into tokens
 * on the wire; the unit tests drive it with made-up times, so every figure is exact.
 *
 * Tokens are whitespace-separated words of the prompt text (the same count as usage.prompt_tokens);
 * the i-th generated token is the word "tok<i>". A block holds block_tokens consecutive tokens and
 * is named by a chained hash (the hash of its words seeded with the previous block's hash), so a
 * block can only be reused after the very same prefix.
 *
 * Scheduling, one step at a time (prefill first, as an engine without chunked prefill does):
 *   - a prefill step admits waiting requests in FIFO order while the batch has room (max_batch)
 *     and the KV cache can hold their whole sequence (prompt + output tokens, reserved at once);
 *     it lasts (uncached prompt tokens of all admitted) / prefill_tokens_per_sec, and produces
 *     each admitted request's first token at its end;
 *   - otherwise a decode step gives one token to every request past its prefill and lasts
 *     decode_step_ms + decode_step_ms_per_seq x (requests in the step).
 * Prefix cache: at admission the longest run of the prompt's full blocks found in the cache is
 * reused (never the whole prompt: its last token is always computed), which removes exactly their
 * prefill time. At the end of its prefill a request's full prompt blocks enter the cache (pinned
 * while it runs); when it ends, full blocks of its output join them, and all of them become
 * evictable, most recently used first. Allocating blocks evicts least recently used ones first.
 */
#ifndef FD_TOOLS_SIM_ENGINE_H
#define FD_TOOLS_SIM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_ENGINE_MAX_BLOCKS       (1u << 24)
#define SIM_ENGINE_MAX_BLOCK_TOKENS 4096u
#define SIM_ENGINE_MAX_BATCH        100000u

/* ---- the hash chain of a token sequence ---- */

typedef struct {
    unsigned block_tokens;
    unsigned long tokens; /* words fed so far */
    uint64_t state;       /* hash of the block being filled */
    uint64_t *blocks;     /* hashes of the full blocks */
    size_t nblocks, cap;
} sim_chain_t;

void sim_chain_init(sim_chain_t *c, unsigned block_tokens);
/* Append one word; returns -1 when out of memory. */
int sim_chain_feed(sim_chain_t *c, const char *word, size_t len);
/* Feed every whitespace-separated word of text. */
int sim_chain_feed_text(sim_chain_t *c, const char *text, size_t len);
void sim_chain_free(sim_chain_t *c);

/* ---- the engine ---- */

typedef struct {
    double prefill_tokens_per_sec; /* > 0 */
    double decode_step_ms;         /* >= 0 */
    double decode_step_ms_per_seq; /* >= 0 */
    unsigned max_batch;            /* >= 1 */
    unsigned kv_blocks;            /* >= 1 */
    unsigned block_tokens;         /* >= 1 */
} sim_engine_params_t;

typedef struct sim_engine sim_engine_t;
typedef struct sim_ereq sim_ereq_t;

/* Called (under whatever lock guards the engine) when a request of `owner` got a token or ended. */
typedef void (*sim_engine_progress_cb)(void *ctx, int owner);

typedef enum { SIM_EREQ_WAITING, SIM_EREQ_PREFILL, SIM_EREQ_DECODE, SIM_EREQ_DONE } sim_ereq_state_t;

typedef struct {
    sim_ereq_state_t state;
    unsigned prompt_tokens, cached_tokens; /* cached_tokens is known once admitted */
    unsigned out_tokens, generated;
    bool aborted;
    double arrival_ms, admitted_ms, first_token_ms, done_ms; /* -1 until it happens */
} sim_ereq_info_t;

typedef struct {
    unsigned running, waiting; /* admitted (prefill or decode) / queued */
    unsigned free_blocks;      /* never used or evictable: what a new request could get */
    unsigned cached_blocks;    /* blocks with a hash in the prefix cache (pinned or not) */
    unsigned long long prompt_tokens_total, cached_tokens_total, evicted_blocks_total;
} sim_engine_load_t;

sim_engine_t *sim_engine_new(const sim_engine_params_t *p, sim_engine_progress_cb cb, void *ctx);
/* Frees every request record too; handles become invalid. */
void sim_engine_free(sim_engine_t *e);
/* Whether a sequence of this size can ever be admitted (its blocks fit the whole cache). */
bool sim_engine_fits(const sim_engine_t *e, unsigned long prompt_tokens, unsigned out_tokens);
/*
 * Queue a request at now_ms (not before the last time given). Takes the prompt's chain (it is
 * left empty). Returns NULL when out of memory or when the sequence does not fit.
 */
sim_ereq_t *sim_engine_submit(sim_engine_t *e, double now_ms, sim_chain_t *prompt, unsigned out_tokens,
                              int owner);
/* Run the model up to now_ms. */
void sim_engine_advance(sim_engine_t *e, double now_ms);
/* When the current step ends (the next moment anything changes), or INFINITY when idle. */
double sim_engine_next_event(const sim_engine_t *e);
/* End a request now (no more tokens); what it computed stays cached. No-op when already done. */
void sim_engine_abort(sim_engine_t *e, sim_ereq_t *r, double now_ms);
/* The owner is done with the handle: aborts it if still running, then frees it. */
void sim_engine_release(sim_engine_t *e, sim_ereq_t *r, double now_ms);
void sim_engine_info(const sim_ereq_t *r, sim_ereq_info_t *out);
void sim_engine_load(const sim_engine_t *e, sim_engine_load_t *out);
/* Modelled prefill time of n tokens, in ms. */
double sim_engine_prefill_ms(const sim_engine_t *e, unsigned long n);
/* Zero the totals; with flush, also drop every evictable cached block. */
void sim_engine_reset(sim_engine_t *e, bool flush);

#endif
