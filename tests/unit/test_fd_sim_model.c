/*
 * tests/unit/test_fd_sim_model.c - fd-sim's engine model (tools/fd-sim/engine.c), driven with
 * made-up times so every figure is exact: a cached prefix lowers the time to first token by the
 * modelled prefill time of the cached tokens, a full batch queues, KV pressure evicts the least
 * recently used blocks, and the decode step grows with the batch.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tools/fd-sim/engine.h"

#define EPS 1e-9

static sim_engine_params_t params(void)
{
    /* 1 ms per prefill token keeps the arithmetic readable. */
    return (sim_engine_params_t){.prefill_tokens_per_sec = 1000,
                                 .decode_step_ms = 10,
                                 .decode_step_ms_per_seq = 0,
                                 .max_batch = 8,
                                 .kv_blocks = 1000,
                                 .block_tokens = 4};
}

/* "<stem>0 <stem>1 ... " words from..to-1 */
static void words(char *buf, size_t cap, const char *stem, int from, int to)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = from; i < to; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s%d", n ? " " : "", stem, i);
}

static sim_ereq_t *submit(sim_engine_t *e, double now, const char *text, unsigned out)
{
    sim_chain_t c;
    sim_chain_init(&c, 4);
    cr_assert_eq(sim_chain_feed_text(&c, text, strlen(text)), 0);
    sim_ereq_t *r = sim_engine_submit(e, now, &c, out, 0);
    cr_assert_not_null(r);
    cr_assert_eq(c.nblocks, 0, "the chain was taken");
    sim_chain_free(&c);
    return r;
}

static sim_ereq_info_t info(const sim_ereq_t *r)
{
    sim_ereq_info_t i;
    sim_engine_info(r, &i);
    return i;
}

/* Step the engine from event to event until r is done. */
static void run_until_done(sim_engine_t *e, sim_ereq_t *r)
{
    for (int guard = 0; info(r).state != SIM_EREQ_DONE; guard++) {
        cr_assert_lt(guard, 100000, "the engine never finished the request");
        double t = sim_engine_next_event(e);
        cr_assert(isfinite(t), "idle with a request pending");
        sim_engine_advance(e, t);
    }
}

static double ttft(const sim_ereq_t *r)
{
    sim_ereq_info_t i = info(r);
    return i.first_token_ms - i.arrival_ms;
}

static sim_engine_load_t load(const sim_engine_t *e)
{
    sim_engine_load_t l;
    sim_engine_load(e, &l);
    return l;
}

/* ---- hash chain ---- */

Test(chain, blocks_depend_on_the_whole_prefix)
{
    sim_chain_t a, b, c;
    sim_chain_init(&a, 2);
    sim_chain_init(&b, 2);
    sim_chain_init(&c, 2);
    cr_assert_eq(sim_chain_feed_text(&a, "x y  z w\tv", 10), 0);
    cr_assert_eq(sim_chain_feed_text(&b, "x y z w v", 9), 0);
    cr_assert_eq(sim_chain_feed_text(&c, "q r z w", 7), 0);
    cr_assert_eq(a.tokens, 5);
    cr_assert_eq(a.nblocks, 2, "only full blocks are hashed");
    cr_assert_eq(a.blocks[0], b.blocks[0], "whitespace does not matter");
    cr_assert_eq(a.blocks[1], b.blocks[1]);
    cr_assert_eq(c.nblocks, 2);
    cr_assert_neq(c.blocks[1], a.blocks[1], "same words after a different prefix: another block");
    sim_chain_free(&a);
    sim_chain_free(&b);
    sim_chain_free(&c);
}

/* ---- prefix cache and time to first token ---- */

Test(model, cached_prefix_lowers_ttft_by_its_prefill_time)
{
    sim_engine_params_t p = params();
    sim_engine_t *e = sim_engine_new(&p, NULL, NULL);
    char a[1024], warm[1024], tail[256], cold[1024];
    words(a, sizeof(a), "a", 0, 40);
    words(warm, sizeof(warm), "a", 0, 32);
    words(tail, sizeof(tail), "b", 0, 8);
    strcat(strcat(warm, " "), tail);
    words(cold, sizeof(cold), "c", 0, 40);

    sim_ereq_t *r1 = submit(e, 0, a, 2);
    run_until_done(e, r1);
    cr_assert_float_eq(ttft(r1), 40.0, EPS, "40 uncached tokens at 1 ms each");
    cr_assert_eq(info(r1).cached_tokens, 0);
    cr_assert_float_eq(info(r1).done_ms, 50.0, EPS, "then one decode step");

    sim_ereq_t *r2 = submit(e, 100, warm, 2);
    run_until_done(e, r2);
    sim_ereq_t *r3 = submit(e, 200, cold, 2);
    run_until_done(e, r3);
    cr_assert_eq(info(r2).cached_tokens, 32, "the 8 shared blocks are reused");
    cr_assert_eq(info(r3).cached_tokens, 0);
    cr_assert_float_eq(ttft(r3) - ttft(r2), sim_engine_prefill_ms(e, 32), EPS,
                       "cold %.3f ms, warm %.3f ms: the difference is the prefill time of the cached tokens",
                       ttft(r3), ttft(r2));
    cr_assert_float_eq(ttft(r2), 8.0, EPS);

    /* The same prompt again: everything but its last block is reused (the last token is computed). */
    sim_ereq_t *r4 = submit(e, 300, a, 1);
    run_until_done(e, r4);
    cr_assert_eq(info(r4).cached_tokens, 36);
    cr_assert_float_eq(ttft(r4), 4.0, EPS);

    sim_engine_load_t l = load(e);
    cr_assert_eq(l.prompt_tokens_total, 160);
    cr_assert_eq(l.cached_tokens_total, 68);
    cr_assert_eq(l.running, 0);
    cr_assert_eq(l.free_blocks, 1000, "cached but unpinned blocks count as available");
    sim_engine_release(e, r1, 400);
    sim_engine_release(e, r2, 400);
    sim_engine_release(e, r3, 400);
    sim_engine_release(e, r4, 400);
    sim_engine_free(e);
}

Test(model, generated_tokens_are_cached_for_the_next_turn)
{
    sim_engine_params_t p = params();
    sim_engine_t *e = sim_engine_new(&p, NULL, NULL);
    sim_ereq_t *r1 = submit(e, 0, "u0 u1 u2 u3 u4 u5", 6);
    run_until_done(e, r1);
    /* Next turn: the history (prompt + the answer "tok0 .. tok5") and a new question. */
    sim_ereq_t *r2 = submit(e, 1000, "u0 u1 u2 u3 u4 u5 tok0 tok1 tok2 tok3 tok4 tok5 q0 q1 q2", 1);
    run_until_done(e, r2);
    cr_assert_eq(info(r2).cached_tokens, 12, "3 full blocks of prompt + answer");
    cr_assert_float_eq(ttft(r2), 3.0, EPS);
    sim_engine_release(e, r1, 2000);
    sim_engine_release(e, r2, 2000);
    sim_engine_free(e);
}

Test(model, concurrent_requests_share_a_prefix_once_it_is_prefilled)
{
    sim_engine_params_t p = params();
    sim_engine_t *e = sim_engine_new(&p, NULL, NULL);
    sim_ereq_t *r1 = submit(e, 0, "s0 s1 s2 s3 s4 s5 s6 s7 x0", 50);
    sim_engine_advance(e, 9);
    cr_assert_eq(info(r1).state, SIM_EREQ_DECODE);
    sim_ereq_t *r2 = submit(e, 9, "s0 s1 s2 s3 s4 s5 s6 s7 y0", 50);
    sim_engine_advance(e, 100);
    cr_assert_eq(info(r2).cached_tokens, 8, "blocks pinned by a running request are shared");
    cr_assert_eq(load(e).cached_blocks, 2, "shared blocks are stored once");
    sim_engine_release(e, r1, 100);
    sim_engine_release(e, r2, 100);
    sim_engine_free(e);
}

/* ---- batching ---- */

Test(model, full_batch_queues)
{
    sim_engine_params_t p = params();
    p.max_batch = 2;
    sim_engine_t *e = sim_engine_new(&p, NULL, NULL);
    sim_ereq_t *r[3];
    r[0] = submit(e, 0, "a b c d", 3);
    r[1] = submit(e, 0, "e f g h", 3);
    r[2] = submit(e, 0, "i j k l", 3);
    sim_engine_load_t l = load(e);
    cr_assert_eq(l.running, 1, "the first prefill step started alone");
    cr_assert_eq(l.waiting, 2);
    sim_engine_advance(e, 4);
    l = load(e);
    cr_assert_eq(l.running, 2, "the second joined at the next step");
    cr_assert_eq(l.waiting, 1, "the third waits: the batch is full");
    cr_assert_eq(info(r[2]).state, SIM_EREQ_WAITING);

    run_until_done(e, r[0]);
    double freed = info(r[0]).done_ms;
    run_until_done(e, r[2]);
    cr_assert_float_eq(info(r[2]).admitted_ms, freed, EPS, "admitted as soon as a slot was freed");
    cr_assert_gt(ttft(r[2]), ttft(r[0]), "queueing shows in the time to first token");
    for (int i = 0; i < 3; i++) {
        run_until_done(e, r[i]);
        sim_engine_release(e, r[i], 1000);
    }
    l = load(e);
    cr_assert_eq(l.running + l.waiting, 0);
    sim_engine_free(e);
}

/* Times at which r's tokens appear, stepping event to event. */
static int token_times(sim_engine_t *e, sim_ereq_t *r, double *out, int max)
{
    int n = 0;
    unsigned seen = 0;
    while (info(r).state != SIM_EREQ_DONE && n < max) {
        double t = sim_engine_next_event(e);
        sim_engine_advance(e, t);
        for (; seen < info(r).generated && n < max; seen++)
            out[n++] = t;
    }
    return n;
}

Test(model, decode_step_grows_with_the_batch)
{
    sim_engine_params_t p = params();
    p.decode_step_ms = 10;
    p.decode_step_ms_per_seq = 5;
    sim_engine_t *e = sim_engine_new(&p, NULL, NULL);
    double t1[8], t2[8];
    sim_ereq_t *solo = submit(e, 0, "p", 4);
    cr_assert_eq(token_times(e, solo, t1, 8), 4);
    for (int i = 1; i < 4; i++)
        cr_assert_float_eq(t1[i] - t1[i - 1], 15.0, EPS, "one sequence: 10 + 5 x 1");
    /* b arrives during a's prefill, so it is prefilled next and then both decode together. */
    sim_ereq_t *pair_a = submit(e, 1000, "p", 4);
    sim_ereq_t *pair_b = submit(e, 1000, "q", 4);
    cr_assert_eq(token_times(e, pair_a, t2, 8), 4);
    cr_assert_float_eq(t2[1] - t2[0], 1.0 + 20.0, EPS, "b's prefill, then a step of two");
    for (int i = 2; i < 4; i++)
        cr_assert_float_eq(t2[i] - t2[i - 1], 20.0, EPS, "two sequences: 10 + 5 x 2");
    cr_assert_eq(info(pair_b).state, SIM_EREQ_DONE, "its twin ran in the same steps");
    sim_engine_release(e, solo, 2000);
    sim_engine_release(e, pair_a, 2000);
    sim_engine_release(e, pair_b, 2000);
    sim_engine_free(e);
}

/* ---- KV capacity ---- */

Test(model, kv_pressure_evicts_least_recently_used_blocks)
{
    sim_engine_params_t p = params();
    p.kv_blocks = 10;
    sim_engine_t *e = sim_engine_new(&p, NULL, NULL);
    char a[256], b[256], c[256];
    words(a, sizeof(a), "a", 0, 9);  /* 2 full blocks cached */
    words(b, sizeof(b), "b", 0, 9);  /* 2 full blocks cached */
    words(c, sizeof(c), "c", 0, 32); /* 8 blocks */
    sim_ereq_t *r[6];
    r[0] = submit(e, 0, a, 0);
    run_until_done(e, r[0]);
    r[1] = submit(e, 100, b, 0);
    run_until_done(e, r[1]);
    r[2] = submit(e, 200, a, 0); /* a is now more recent than b */
    run_until_done(e, r[2]);
    cr_assert_eq(info(r[2]).cached_tokens, 8);
    cr_assert_eq(load(e).cached_blocks, 4);
    cr_assert_eq(load(e).evicted_blocks_total, 0);

    r[3] = submit(e, 300, c, 0); /* needs 8 blocks, 6 are free: 2 must go */
    run_until_done(e, r[3]);
    cr_assert_eq(load(e).evicted_blocks_total, 2);
    cr_assert_eq(load(e).cached_blocks, 10);

    r[4] = submit(e, 400, a, 0);
    run_until_done(e, r[4]);
    cr_assert_eq(info(r[4]).cached_tokens, 8, "a was used recently: kept");
    r[5] = submit(e, 500, b, 0);
    run_until_done(e, r[5]);
    cr_assert_eq(info(r[5]).cached_tokens, 0, "b's blocks were the least recently used: evicted");
    for (int i = 0; i < 6; i++)
        sim_engine_release(e, r[i], 600);
    sim_engine_free(e);
}

Test(model, a_request_waits_for_blocks_not_only_for_a_slot)
{
    sim_engine_params_t p = params();
    p.kv_blocks = 4;
    sim_engine_t *e = sim_engine_new(&p, NULL, NULL);
    cr_assert(sim_engine_fits(e, 12, 4));
    cr_assert_not(sim_engine_fits(e, 12, 5), "17 tokens need 5 blocks of 4");
    sim_ereq_t *big = submit(e, 0, "a b c d e f g h", 8); /* 16 tokens: every block */
    sim_ereq_t *small = submit(e, 0, "x", 1);
    sim_engine_advance(e, 8);
    cr_assert_eq(load(e).free_blocks, 0);
    cr_assert_eq(info(small).state, SIM_EREQ_WAITING, "the batch has room but the cache has not");
    run_until_done(e, big);
    run_until_done(e, small);
    cr_assert_float_eq(info(small).admitted_ms, info(big).done_ms, EPS);
    sim_engine_release(e, big, 1000);
    sim_engine_release(e, small, 1000);
    cr_assert_eq(load(e).free_blocks, 4);
    sim_engine_free(e);
}

/* ---- abort and progress notification ---- */

static int progress_calls[4];

static void on_progress(void *ctx, int owner)
{
    cr_assert_eq(ctx, (void *)progress_calls);
    progress_calls[owner]++;
}

Test(model, abort_frees_the_slot_and_blocks)
{
    sim_engine_params_t p = params();
    p.max_batch = 1;
    sim_engine_t *e = sim_engine_new(&p, on_progress, progress_calls);
    sim_chain_t c1, c2, c3;
    sim_chain_init(&c1, 4);
    sim_chain_init(&c2, 4);
    sim_chain_init(&c3, 4);
    sim_chain_feed_text(&c1, "a b c d e", 9);
    sim_chain_feed_text(&c2, "f g", 3);
    sim_chain_feed_text(&c3, "h i", 3);
    sim_ereq_t *run = sim_engine_submit(e, 0, &c1, 100, 1);
    sim_ereq_t *queued = sim_engine_submit(e, 0, &c2, 3, 2);
    sim_ereq_t *next = sim_engine_submit(e, 0, &c3, 3, 3);
    sim_engine_advance(e, 25); /* prefill ends at 5, decode steps at 15, 25 */
    cr_assert_eq(info(run).generated, 3);
    cr_assert_eq(progress_calls[1], 3, "one notification per token");
    cr_assert_eq(load(e).waiting, 2);

    sim_engine_abort(e, queued, 26);
    cr_assert(info(queued).aborted);
    cr_assert_eq(info(queued).state, SIM_EREQ_DONE);
    cr_assert_eq(load(e).waiting, 1);
    sim_engine_abort(e, run, 27);
    cr_assert_eq(info(run).generated, 3, "no token after the abort");
    cr_assert_eq(load(e).running, 0);
    sim_engine_advance(e, 35); /* the decode step in progress ends at 35, then `next` is admitted */
    cr_assert_eq(info(next).state, SIM_EREQ_PREFILL);
    run_until_done(e, next);
    cr_assert_eq(progress_calls[2], 0);
    cr_assert_eq(progress_calls[3], 3);
    sim_engine_release(e, run, 100);
    sim_engine_release(e, queued, 100);
    sim_engine_release(e, next, 100);
    cr_assert_eq(load(e).free_blocks, 1000);
    sim_engine_free(e);
}

Test(model, release_of_a_running_request_aborts_it)
{
    sim_engine_params_t p = params();
    sim_engine_t *e = sim_engine_new(&p, NULL, NULL);
    sim_ereq_t *r = submit(e, 0, "a b c d e f g h i", 10);
    sim_engine_advance(e, 30);
    sim_engine_release(e, r, 30);
    sim_engine_load_t l = load(e);
    cr_assert_eq(l.running, 0);
    cr_assert_eq(l.free_blocks, 1000);
    cr_assert_eq(l.cached_blocks, 3,
                 "what it computed stays cached: 9 prompt + 3 generated tokens = 3 blocks");
    sim_engine_free(e);
}

Test(model, rejects_bad_parameters)
{
    sim_engine_params_t p = params();
    p.prefill_tokens_per_sec = 0;
    cr_assert_null(sim_engine_new(&p, NULL, NULL));
    p = params();
    p.max_batch = 0;
    cr_assert_null(sim_engine_new(&p, NULL, NULL));
    p = params();
    p.kv_blocks = 0;
    cr_assert_null(sim_engine_new(&p, NULL, NULL));
    p = params();
    p.block_tokens = 0;
    cr_assert_null(sim_engine_new(&p, NULL, NULL));
}
