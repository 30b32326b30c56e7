/*
 * tools/fd-sim/call_engine.c - a call timed by the engine model (call_engine.h says the rules):
 * submission, the timing's hooks, and the prefill role's hold of its token.
 */
#include <stdio.h>

#include "tools/fd-sim/call_engine.h"
#include "tools/fd-sim/http.h"
#include "tools/fd-sim/pd.h"

/* Answer a request the engine cannot take: it can never fit the KV cache, or memory ran out. */
static void refuse(sim_thread_t *th, h2o_req_t *req, bool fits, unsigned long prompt, unsigned out_tokens)
{
    if (!fits) {
        const sim_engine_params_t *p = &th->srv->cfg->engine_params;
        char err[256];
        snprintf(err, sizeof(err),
                 "prompt (%lu tokens) plus output (%u tokens) exceed the KV cache (%u blocks of %u)", prompt,
                 out_tokens, p->kv_blocks, p->block_tokens);
        th->srv->st->rejected++;
        sim_reply_error(req, 400, err, "invalid_request_error");
    } else {
        sim_reply_error(req, 500, "fd-sim: out of memory", "sim_failure");
    }
}

sim_ereq_t *sim_call_engine_submit(sim_thread_t *th, h2o_req_t *req, sim_api_t api, struct json_object *root,
                                   const sim_gen_t *g)
{
    sim_driver_t *d = th->srv->driver;
    sim_chain_t chain;
    sim_chain_init(&chain, th->srv->cfg->engine_params.block_tokens);
    if (sim_prompt_chain(api, root, &chain) != 0) {
        sim_chain_free(&chain);
        sim_reply_error(req, 500, "fd-sim: out of memory", "sim_failure");
        return NULL;
    }
    unsigned long prompt = chain.tokens;
    sim_engine_t *e = sim_driver_lock(d);
    bool fits = sim_engine_fits(e, prompt, g->tokens);
    sim_ereq_t *er = fits ? sim_engine_submit(e, sim_driver_now(d), &chain, g->tokens, th->index) : NULL;
    sim_driver_unlock(d);
    sim_chain_free(&chain);
    if (!er)
        refuse(th, req, fits, prompt, g->tokens);
    return er;
}

static void leave_engine(sim_call_t *c)
{
    sim_driver_t *d = c->th->srv->driver;
    if (!c->er)
        return;
    sim_engine_t *e = sim_driver_lock(d);
    sim_engine_release(e, c->er, sim_driver_now(d));
    sim_driver_unlock(d);
    c->er = NULL;
}

/* A whole answer counts tokens as they come (an abort reports them) and is sent once done. */
static void advance_whole(sim_call_t *c, unsigned avail, bool done)
{
    if (avail > c->next && c->g.tokens > 0) {
        if (!sim_call_claim(c, avail - c->next, false)) {
            sim_call_end_aborted(c);
            return;
        }
        c->next = avail;
    }
    if (done)
        sim_call_finish_response(c);
    else
        sim_call_arm_probe(c);
}

/* A stream sends what is there, up to where die_mid_stream cuts it. */
static void advance_stream(sim_call_t *c, unsigned avail)
{
    if (c->die_after >= 0 && avail > (unsigned long)c->die_after)
        avail = (unsigned)c->die_after;
    if (c->next < avail)
        sim_call_send_chunks(c, avail);
    else if (sim_call_dies_now(c))
        sim_call_die(c);
    else
        sim_call_arm_probe(c);
}

static void advance_engine(sim_call_t *c)
{
    sim_driver_t *d = c->th->srv->driver;
    sim_ereq_info_t in;
    sim_driver_lock(d);
    sim_engine_info(c->er, &in);
    sim_driver_unlock(d);
    c->g.cached_tokens = in.cached_tokens;
    bool done = in.state == SIM_EREQ_DONE;
    unsigned prefill_delay = sim_pd_prefill_delay_ms(c->th->srv->cfg);
    if (prefill_delay > 0 && !c->held && (in.generated > 0 || done)) {
        c->held = true; /* role prefill: the token waits prefill_delay more */
        sim_call_wait(c, prefill_delay);
        return;
    }
    unsigned avail = c->g.tokens ? in.generated : (done ? 1 : 0);
    if (c->g.stream)
        advance_stream(c, avail);
    else
        advance_whole(c, avail, done);
}

/* The engine's progress is polled on every kick; a tick is the prefill hold ending. */
static const sim_timing_t ENGINE_TIMING = {
    .advance = advance_engine, .tick = advance_engine, .kick = advance_engine, .leave = leave_engine};

void sim_call_use_engine(sim_call_t *c, sim_ereq_t *er)
{
    c->er = er;
    c->timing = &ENGINE_TIMING;
}
