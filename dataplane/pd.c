/*
 * dataplane/pd.c - completions in splitwise (prefill/decode disaggregated) mode.
 *
 * For each request: make sure it has a request_id (the client's, of any JSON type, is kept;
 * otherwise a UUIDv4), select a prefill instance (prefill-policy) then a decode instance
 * (decode-policy), and send both the same body plus `disaggregate_info` - spliced into the
 * original JSON text, never re-encoded, so large prompts cost one copy, which both legs send (the
 * prefill leg holds a reference to it, not a copy of its own). Both legs start at once.
 * The decode leg is the client's response; it is held until the prefill instance has answered
 * its head (FastDeploy pairs the halves by request_id, and a decode answer without a prefill is
 * not to be trusted), then streamed with its real status. The prefill answer is read and
 * discarded by a background leg; its counters are released as soon as it answers.
 *
 * Failures: prefill fails before its head, or answers an error status -> the decode leg is
 * cancelled and the client gets 502 (504 for a timeout); the decode leg fails -> the prefill leg is
 * cancelled; the client leaves while either is pending -> both are cancelled. Counters of both sides are
 * released exactly once.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "dataplane/accesslog.h"
#include "dataplane/leg.h"
#include "dataplane/pd.h"
#include "dataplane/pd_body.h"
#include "dataplane/pools.h"
#include "dataplane/request.h"
#include "dataplane/select.h"
#include "dataplane/stats.h"
#include "dataplane/tokenizer.h"
#include "dataplane/upstream.h"
#include "dataplane/reply.h"

typedef struct {
    dp_body_t body;
    dp_model_t model; /* both legs go to instances that accept body.model */
    dp_choice_t p, d;
    bool holding_p, holding_d;
    bool p_answered;
    dp_leg_t *pleg; /* the prefill leg until it ends (or is handed off by pd_done) */
    dp_proxy_t *proxy;
    h2o_iovec_t path;
} pd_req_t;

static void release_p(pd_req_t *r)
{
    if (r->holding_p) {
        r->holding_p = false;
        dp_release(&r->p);
    }
}

static void release_d(pd_req_t *r)
{
    if (r->holding_d) {
        r->holding_d = false;
        dp_release(&r->d);
    }
}

static h2o_iovec_t authority_of(h2o_mem_pool_t *pool, const dp_choice_t *c)
{
    const char *a = c->url + strlen("http://");
    return h2o_strdup(pool, a, strlen(a));
}

/* ---- the prefill leg ---- */

static void pleg_on_head(dp_leg_t *l, int status)
{
    pd_req_t *r = l->data;
    if (!r)
        return;
    dp_count_status(&r->p, (unsigned)status);
    release_p(r);
    r->p_answered = true;
    if (status >= 300) {
        /* the decode instance would wait for KV that never comes (the Go router relays it anyway) */
        LOG_ERROR("[prefill] %s answered %d: the request fails", r->p.url, status);
        r->pleg = NULL; /* the leg reads its error answer to the end on its own: not ours to free */
        l->data = NULL;
        dp_proxy_abort(r->proxy, 502, "Prefill instance failed", DP_OUT_UPSTREAM_ERROR);
        return;
    }
    dp_proxy_unhold(r->proxy);
}

static void pleg_on_end(dp_leg_t *l, const char *err, bool timed_out)
{
    pd_req_t *r = l->data;
    if (!r)
        return;
    r->pleg = NULL;
    if (r->p_answered)
        return; /* the prefill answer was read to its end */
    LOG_ERROR("[prefill] %s failed before answering: %s", r->p.url, err);
    dp_count_status(&r->p, 0);
    release_p(r);
    if (timed_out)
        dp_proxy_abort(r->proxy, 504, "Upstream timed out", DP_OUT_TIMEOUT);
    else
        dp_proxy_abort(r->proxy, 502, "Failed to connect to backend service", DP_OUT_UPSTREAM_ERROR);
}

static const dp_leg_ops_t pleg_ops = {.on_head = pleg_on_head, .on_end = pleg_on_end};

/* ---- the decode leg (the client's response) ---- */

static bool pd_pick(dp_proxy_t *p)
{
    pd_req_t *r = p->owner;
    if (p->attempts)
        return false; /* no retry: the prefill half is already paired with this decode instance */
    p->pool = dp_pool_acquire(p->t, r->d.slot, r->d.generation, r->d.host, r->d.port);
    p->authority = authority_of(&p->req->pool, &r->d);
    return p->pool != NULL;
}

static void pd_attempt_failed(dp_proxy_t *p, const char *err, bool connected)
{
    (void)connected;
    pd_req_t *r = p->owner;
    LOG_ERROR("[decode] %s failed before answering: %s", r->d.url, err);
    dp_count_status(&r->d, 0);
    release_d(r);
}

static void pd_on_head(dp_proxy_t *p, int status)
{
    pd_req_t *r = p->owner;
    dp_count_status(&r->d, (unsigned)status);
    dp_stats_head(&r->d, p->req);
}

static bool pd_may_respond(dp_proxy_t *p)
{
    return ((pd_req_t *)p->owner)->p_answered;
}

static void pd_fail(dp_proxy_t *p, int attempts, bool timed_out)
{
    (void)attempts;
    if (timed_out)
        dp_send_error(p->req, 504, "Upstream timed out");
    else
        dp_send_error(p->req, 502, "Failed to connect to backend service");
}

static void pd_done(dp_proxy_t *p, dp_outcome_t outcome)
{
    pd_req_t *r = p->owner;
    if (r->pleg && (!r->p_answered || outcome != DP_OUT_OK)) {
        /* the client will not get this answer: stop the prefill's work too */
        dp_leg_cancel(r->pleg);
    } else if (r->pleg) {
        r->pleg->data = NULL; /* the prefill answer is drained on its own, past this request */
    }
    r->pleg = NULL;
    dp_stats_done(&r->d, p->req, outcome);
    release_p(r);
    release_d(r);
    dp_count_outcome(outcome);
    if (p->t->inflight)
        p->t->inflight--;
}

static const dp_proxy_ops_t pd_ops = {
    .pick = pd_pick,
    .attempt_failed = pd_attempt_failed,
    .on_head = pd_on_head,
    .done = pd_done,
    .fail = pd_fail,
    .may_respond = pd_may_respond,
};

/* ---- the handler ---- */

static void no_pair(h2o_req_t *req)
{
    LOG_RATELIMITED(FD_LOG_ERROR, "Failed to select worker pair: no available prefill/decode workers");
    dp_count_outcome(DP_OUT_NO_INSTANCE);
    dp_send_error(req, 503, "No available prefill/decode workers");
}

static void pd_start(h2o_req_t *req, pd_req_t *r)
{
    dp_thread_t *t = dp_self(req);
    if (dp_select(t, SHM_ROLE_PREFILL, &r->body.prompt, &r->model, NULL, 0, &r->p) != 0) {
        no_pair(req);
        return;
    }
    r->holding_p = true;
    if (dp_select(t, SHM_ROLE_DECODE, NULL, &r->model, NULL, 0, &r->d) != 0) {
        LOG_INFO("[SelectWorkerPair] decode selection failed, releasing prefill counter url=%s", r->p.url);
        release_p(r);
        no_pair(req);
        return;
    }
    r->holding_d = true;

    char rid[DP_UUID_LEN + 1] = "";
    if (!r->body.has_request_id)
        dp_uuid4(&t->rng, rid);
    dp_access_note_request_id(req, rid);
    /* The selection's read section has ended; what lets us read the pair's metadata now is the
     * load counter dp_select took on each (shm_slot_pinned): a counted slot is never collected. */
    const shm_instance_t *pin_p = shm_slot_pinned(&dp.seg, r->p.slot, r->p.generation);
    const shm_instance_t *pin_d = shm_slot_pinned(&dp.seg, r->d.slot, r->d.generation);
    if (!pin_p || !pin_d) { /* a held counter rules this out; never read a slot that is not pinned */
        release_p(r);
        release_d(r);
        no_pair(req);
        return;
    }
    h2o_iovec_t body = dp_pd_body(&req->pool, req->entity, &r->body, pin_p, pin_d, rid);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-router-prefill-url"), 0,
                          "X-Router-Prefill-URL", r->p.url, strlen(r->p.url));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-router-decode-url"), 0,
                          "X-Router-Decode-URL", r->d.url, strlen(r->d.url));

    r->proxy = dp_proxy_new(req, &pd_ops, r, r->path, body);
    dp_pool_t *ppool = dp_pool_acquire(t, r->p.slot, r->p.generation, r->p.host, r->p.port);
    t->inflight++;
    if (!ppool) {
        dp_proxy_abort(r->proxy, 502, "Failed to connect to backend service", DP_OUT_UPSTREAM_ERROR);
        return;
    }
    r->pleg = dp_leg_start_shared(t, ppool, authority_of(&req->pool, &r->p), r->path, body, &pleg_ops, r);
    if (!r->pleg) {
        dp_proxy_abort(r->proxy, 503, "out of memory, retry later", DP_OUT_UPSTREAM_ERROR);
        return;
    }
    dp_proxy_start(r->proxy);
}

static void on_tokens(h2o_req_t *req, void *data, const uint64_t *ids, size_t n, const char *err)
{
    (void)err; /* logged by the tokenizer; code points are used instead */
    pd_req_t *r = data;
    r->body.prompt.tokens = ids;
    r->body.prompt.ntokens = n;
    pd_start(req, r);
}

int dp_handle_pd_completions(h2o_req_t *req, const char *upstream_path)
{
    pd_req_t *r = h2o_mem_alloc_pool(&req->pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->path = dp_upstream_path(req, upstream_path);
    bool want_prompt = dp_wants_prompt(SHM_ROLE_PREFILL);
    if (dp_parse_body(&req->pool, req->entity.base, req->entity.len, want_prompt, &r->body) != 0) {
        dp_count_outcome(DP_OUT_BAD_REQUEST);
        dp_send_error(req, 400, "Invalid JSON format");
        return 0;
    }
    if (dp_model_resolve(r->body.model, &r->model) != 0) {
        dp_count_outcome(DP_OUT_BAD_REQUEST);
        dp_send_model_not_found(req, r->body.model);
        return 0;
    }
    shm_dp_count_request(&dp.seg, dp.row);
    if (dp_wants_tokens(SHM_ROLE_PREFILL, &r->body.prompt))
        dp_tokenize(req, &r->body.prompt, on_tokens, r);
    else
        pd_start(req, r);
    return 0;
}
