/*
 * dataplane/upstream.h - proxying one client request to an upstream, with retries before the
 * response starts, streaming after it, and the configured timeouts.
 *
 * The proxy is the request's h2o generator. Whoever starts it (completions.c, admin.c) supplies
 * the ops: which target to try next and what to count. The proxy guarantees:
 *  - every attempt that `pick` started ends in exactly one of `attempt_failed` (before a head:
 *    connect error or timeout, send error, connection closed without a head - the next target
 *    is then tried, since nothing was sent to the client) or the exchange's single `done`;
 *  - `done` is called exactly once per proxy, whatever happens (normal end, timeout, broken
 *    upstream, client gone, request freed);
 *  - response bytes are relayed as they arrive; at most DP_MAX_BUFFERED bytes wait for a slow
 *    client (reading from the upstream pauses beyond that);
 *  - a failure after the response started ends it as a broken stream (never a clean end).
 */
#ifndef FD_DP_UPSTREAM_H
#define FD_DP_UPSTREAM_H

#include "dataplane/dp.h"

#define DP_MAX_BUFFERED (1024 * 1024)

typedef struct dp_proxy dp_proxy_t;

typedef struct {
    /* Choose the next target: set p->pool (a reference the proxy releases) and p->authority.
     * Return false when there is nothing (more) to try. */
    bool (*pick)(dp_proxy_t *p);
    /* `connected`: the failure came after the connection was made (closed or reset before a
     * head), which a stale keep-alive socket also causes, as opposed to a connect failure. */
    void (*attempt_failed)(dp_proxy_t *p, const char *err, bool connected);
    void (*on_head)(dp_proxy_t *p, int status);
    /* Optional: the answer's first body bytes arrived (a streamed completion's first token: the
     * instance's prefill of this request is over). */
    void (*first_body)(dp_proxy_t *p);
    void (*done)(dp_proxy_t *p, dp_outcome_t outcome);
    /* Nothing could be reached; answer the client. `attempts` = how many were tried. */
    void (*fail)(dp_proxy_t *p, int attempts, bool timed_out);
    /* Optional gate: when it returns false at the upstream's head, the response is held (its body
     * buffered, bounded) until dp_proxy_unhold(). PD holds the decode answer until the prefill's. */
    bool (*may_respond)(dp_proxy_t *p);
} dp_proxy_ops_t;

typedef enum { DP_ST_IDLE, DP_ST_CONNECTING, DP_ST_WAIT_HEAD, DP_ST_BODY, DP_ST_DONE } dp_proxy_state_t;

struct dp_proxy {
    h2o_generator_t super;
    h2o_req_t *req;
    dp_thread_t *t;
    const dp_proxy_ops_t *ops;
    void *owner; /* the starter's per-request data */

    h2o_iovec_t path, body;
    dp_pool_t *pool;
    h2o_iovec_t authority;
    h2o_iovec_t reqbufs[2];

    uc_client_t *client;
    h2o_socket_cb upstream_reader; /* saved while reading is paused */
    h2o_timeout_entry_t timer;
    h2o_timeout_entry_t watch; /* before the response starts: notices a client that went away */
    h2o_buffer_t *recv;        /* received from upstream, not yet handed to h2o */
    h2o_doublebuffer_t sending;

    dp_proxy_state_t state;
    int attempts;
    unsigned responded : 1, upstream_done : 1, upstream_broken : 1, upstream_chunked : 1, timed_out : 1,
        paused : 1, finished : 1, held : 1, got_body : 1;
};

/* The path to send upstream: upstream_path followed by the client's "?query" as it sent it
 * (FastDeploy instances read query parameters too). */
h2o_iovec_t dp_upstream_path(h2o_req_t *req, const char *upstream_path);

/* "METHOD path" request head for an upstream: the client's end-to-end headers when given
 * (hop-by-hop ones, host, content-length and expect dropped), else content-type: application/json. */
h2o_iovec_t dp_request_head(h2o_mem_pool_t *pool, h2o_iovec_t method, h2o_iovec_t path, h2o_iovec_t authority,
                            size_t body_len, const h2o_headers_t *client_headers);

/* Allocate a proxy in req's pool (freed with the request). */
dp_proxy_t *dp_proxy_new(h2o_req_t *req, const dp_proxy_ops_t *ops, void *owner, h2o_iovec_t path,
                         h2o_iovec_t body);
void dp_proxy_start(dp_proxy_t *p);
/* Release a held response (see may_respond). */
void dp_proxy_unhold(dp_proxy_t *p);
/* Before the response started: cancel the upstream and answer `status` {"error": msg}. */
void dp_proxy_abort(dp_proxy_t *p, int status, const char *msg, dp_outcome_t outcome);

#endif
