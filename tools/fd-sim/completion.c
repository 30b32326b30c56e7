/*
 * tools/fd-sim/completion.c - a completion request from its arrival to the call that answers
 * it (completion.h says the order of the checks).
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/fd-sim/abort.h"
#include "tools/fd-sim/call.h"
#include "tools/fd-sim/call_engine.h"
#include "tools/fd-sim/completion.h"
#include "tools/fd-sim/http.h"
#include "tools/fd-sim/pd.h"

/* The injected failures carried out before the body is read; true when the request is answered. */
static bool answer_early_fault(h2o_req_t *req, const sim_fail_t *f)
{
    if (f->mode == SIM_FAIL_STATUS) {
        sim_reply_error(req, f->status, "fd-sim: injected failure", "sim_failure");
        return true;
    }
    if (f->mode == SIM_FAIL_CLOSE_BEFORE_HEAD) {
        static h2o_generator_t none = {NULL, NULL};
        sim_drop_connection(req, &none, false);
        return true;
    }
    return false;
}

/* Count and record the request, then turn it away if starting or failing; false when answered. */
static bool admit(sim_thread_t *th, h2o_req_t *req, sim_fail_t *f)
{
    sim_state_t *st = th->srv->st;
    st->requests++;
    sim_record_request(st, req);
    if (sim_server_starting(th->srv)) {
        st->failed++;
        sim_reply_error(req, 503, "fd-sim: starting up", "sim_starting");
        return false;
    }
    if (sim_fault_take(&st->fault, f) != SIM_FAIL_NONE)
        st->failed++;
    return !answer_early_fault(req, f);
}

/* Start answering a valid request (role rules applied). */
static void serve(sim_thread_t *th, h2o_req_t *req, sim_api_t api, json_object *root, sim_gen_t *g,
                  const char *key, bool raw, const sim_fail_t *f)
{
    sim_server_t *srv = th->srv;
    sim_pd_shape(srv->cfg, srv->driver != NULL, g);
    sim_ereq_t *er = NULL;
    if (srv->driver) {
        if (!(er = sim_call_engine_submit(th, req, api, root, g)))
            return;
    } else {
        srv->st->prompt_tokens += g->prompt_tokens;
    }
    sim_call_t *c = sim_call_new(th, req, g, key, raw);
    if (er)
        sim_call_use_engine(c, er);
    if (f->mode == SIM_FAIL_DIE_MID_STREAM)
        c->die_after = (long)f->after_chunks;
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-sim-instance"), 0, NULL,
                          srv->cfg->name, strlen(srv->cfg->name));
    sim_call_begin(c);
}

void sim_completion_handle(sim_thread_t *th, h2o_req_t *req, sim_api_t api)
{
    sim_fail_t f;
    if (!admit(th, req, &f))
        return;
    sim_state_t *st = th->srv->st;
    const sim_config_t *cfg = th->srv->cfg;
    sim_defaults_t d = {cfg->tokens, cfg->token_delay_ms, cfg->first_token_delay_ms};
    sim_gen_t g;
    json_object *root;
    char err[256], generated[SIM_NAME_LEN + 24];
    unsigned long seq = st->seq++;
    int rc = sim_parse_request(api, req->entity.base, sim_body_len(req), &d, cfg->name, seq, (long)time(NULL),
                               &g, &root, err, sizeof(err));
    sim_pd_record(st, root);
    bool raw;
    char *key = sim_body_key(root, &raw);
    snprintf(generated, sizeof(generated), "%s-%lu", cfg->name, seq);
    if (f.mode == SIM_FAIL_HANG_BEFORE_HEAD) {
        sim_call_hang(sim_call_new(th, req, &g, key ? key : generated, raw));
    } else if (rc != 0 || sim_pd_check(cfg, root, err, sizeof(err)) != 0) {
        st->rejected++;
        sim_reply_error(req, 400, err, "invalid_request_error");
    } else {
        serve(th, req, api, root, &g, key ? key : generated, raw, &f);
    }
    free(key);
    json_object_put(root);
}
