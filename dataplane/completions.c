/*
 * dataplane/completions.c - POST /v1/chat/completions and /v1/completions in mixed mode.
 *
 * Parse the body once (400 {"error": "Invalid JSON format"} if it is not a JSON object), select
 * an instance with the mixed policy, and proxy the body unchanged to the same path on it. A
 * connect failure or an upstream that closes before its head is retried on another instance
 * (up to proxy.retry-attempts instances), since nothing reached the client yet. The upstream's
 * real status is relayed (the Go router turns every non-200 into 200).
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "dataplane/pools.h"
#include "dataplane/request.h"
#include "dataplane/select.h"
#include "dataplane/stats.h"
#include "dataplane/tokenizer.h"
#include "dataplane/upstream.h"
#include "dataplane/completions.h"
#include "dataplane/reply.h"

#define MAX_TRIES 16

typedef struct {
    dp_body_t body;
    dp_model_t model; /* which instances may serve body.model */
    dp_choice_t cur;
    bool holding; /* cur's counters are taken */
    uint16_t tried[MAX_TRIES];
    size_t ntried;
    bool retried_same; /* one retry on the same instance was spent */
    h2o_iovec_t path;
} completion_t;

static bool comp_pick(dp_proxy_t *p)
{
    completion_t *c = p->owner;
    size_t limit = dp.cfg.retry_attempts ? dp.cfg.retry_attempts : 1;
    if (c->ntried >= limit || c->ntried >= MAX_TRIES)
        return false;
    if (dp_select(p->t, SHM_ROLE_MIXED, &c->body.prompt, &c->model, c->tried, c->ntried, &c->cur) != 0)
        return false;
    c->holding = true;
    c->tried[c->ntried++] = c->cur.slot;
    p->pool = dp_pool_acquire(p->t, c->cur.slot, c->cur.generation, c->cur.host, c->cur.port);
    if (!p->pool)
        return false;
    /* the URL is "http://" + authority */
    const char *auth = c->cur.url + strlen("http://");
    p->authority = h2o_strdup(&p->req->pool, auth, strlen(auth));
    return true;
}

static void comp_release(completion_t *c)
{
    if (c->holding) {
        c->holding = false;
        dp_release(&c->cur);
    }
}

static void comp_attempt_failed(dp_proxy_t *p, const char *err, bool connected)
{
    completion_t *c = p->owner;
    LOG_WARN("Request failed, retrying... url=%s err=%s", c->cur.url, err);
    dp_count_status(&c->cur, 0);
    comp_release(c);
    /* closed before a head on a live connection is what a keep-alive socket the instance just
     * closed looks like: that instance may be tried once more */
    if (connected && !c->retried_same) {
        c->retried_same = true;
        c->ntried--;
    }
}

static void comp_on_head(dp_proxy_t *p, int status)
{
    completion_t *c = p->owner;
    dp_count_status(&c->cur, (unsigned)status);
    dp_stats_head(&c->cur, p->req);
}

static void comp_first_body(dp_proxy_t *p)
{
    completion_t *c = p->owner;
    if (c->holding)
        dp_prefill_done(&c->cur);
}

static void comp_done(dp_proxy_t *p, dp_outcome_t outcome)
{
    dp_stats_done(&((completion_t *)p->owner)->cur, p->req, outcome);
    comp_release(p->owner);
    dp_count_outcome(outcome);
    if (p->t->inflight)
        p->t->inflight--;
}

static void comp_fail(dp_proxy_t *p, int attempts, bool timed_out)
{
    if (!attempts) {
        LOG_RATELIMITED(FD_LOG_ERROR, "Failed to select worker: no healthy workers available");
        dp_send_error(p->req, 502, "Failed to select worker");
    } else if (timed_out) {
        dp_send_error(p->req, 504, "Upstream timed out");
    } else {
        LOG_INFO("Request completed with an error.");
        dp_send_error(p->req, 502, "Failed to connect to backend service");
    }
}

static const dp_proxy_ops_t completion_ops = {
    .pick = comp_pick,
    .attempt_failed = comp_attempt_failed,
    .on_head = comp_on_head,
    .first_body = comp_first_body,
    .done = comp_done,
    .fail = comp_fail,
};

static void start(h2o_req_t *req, completion_t *c)
{
    dp_proxy_t *p = dp_proxy_new(req, &completion_ops, c, c->path, req->entity);
    p->t->inflight++;
    dp_proxy_start(p);
}

static void on_tokens(h2o_req_t *req, void *data, const uint64_t *ids, size_t n, const char *err)
{
    (void)err; /* logged by the tokenizer; code points are used instead */
    completion_t *c = data;
    c->body.prompt.tokens = ids;
    c->body.prompt.ntokens = n;
    start(req, c);
}

int dp_handle_completions(h2o_req_t *req, const char *upstream_path)
{
    completion_t *c = h2o_mem_alloc_pool(&req->pool, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->path = dp_upstream_path(req, upstream_path);
    bool want_prompt = dp_wants_prompt(SHM_ROLE_MIXED);
    if (dp_parse_body(&req->pool, req->entity.base, req->entity.len, want_prompt, &c->body) != 0) {
        dp_count_outcome(DP_OUT_BAD_REQUEST);
        dp_send_error(req, 400, "Invalid JSON format");
        return 0;
    }
    if (dp_model_resolve(c->body.model, &c->model) != 0) {
        dp_count_outcome(DP_OUT_BAD_REQUEST);
        dp_send_model_not_found(req, c->body.model);
        return 0;
    }
    shm_dp_count_request(&dp.seg, dp.row);
    if (dp_wants_tokens(SHM_ROLE_MIXED, &c->body.prompt))
        dp_tokenize(req, &c->body.prompt, on_tokens, c);
    else
        start(req, c);
    return 0;
}
