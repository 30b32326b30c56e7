/*
 * dataplane/leg.h - an upstream request that is not the client's response: the prefill leg of
 * a PD request (its answer is read and discarded) and the fan-out of /v1/abort_requests.
 *
 * A leg owns a copy of what it sends, or a reference to it when it is h2o shared memory
 * (dp_leg_start_shared), so it may outlive the client request that started it. It
 * applies the thread's connect, first-byte and idle timeouts. Unless cancelled, on_end is called
 * exactly once; the leg is freed right after on_end returns (or inside dp_leg_cancel).
 */
#ifndef FD_DP_LEG_H
#define FD_DP_LEG_H

#include "dataplane/dp.h"

typedef struct dp_leg dp_leg_t;

typedef struct {
    void (*on_head)(dp_leg_t *l, int status);                  /* optional */
    void (*on_data)(dp_leg_t *l, const char *buf, size_t len); /* optional: response body bytes */
    /* err NULL: the response ended normally; else why it failed (timed_out: one of our timers) */
    void (*on_end)(dp_leg_t *l, const char *err, bool timed_out);
} dp_leg_ops_t;

struct dp_leg {
    dp_thread_t *t;
    const dp_leg_ops_t *ops;
    void *data; /* the starter's */
    uc_client_t *client;
    dp_pool_t *pool;
    h2o_timeout_entry_t timer;
    h2o_iovec_t reqbufs[2];
    char *shared; /* the body, when it is the starter's h2o shared memory: the leg's reference */
    bool got_head;
    bool starting;            /* inside dp_leg_start: endings are deferred */
    const char *deferred_err; /* an ending that happened while starting */
};

/* Start a POST of `body` to `path` on `pool` (a reference the leg takes over). NULL when the
 * leg could not be made (no pool, or out of memory: the pool reference is released then): the
 * caller treats it as a leg that failed before connecting, and on_end is never called. */
dp_leg_t *dp_leg_start(dp_thread_t *t, dp_pool_t *pool, h2o_iovec_t authority, h2o_iovec_t path,
                       h2o_iovec_t body, const dp_leg_ops_t *ops, void *data);
/* The same, without a copy of `body`: body.base must be h2o shared memory (h2o_mem_alloc_shared),
 * of which the leg holds a reference until it is freed. A splitwise request's two legs send one body. */
dp_leg_t *dp_leg_start_shared(dp_thread_t *t, dp_pool_t *pool, h2o_iovec_t authority, h2o_iovec_t path,
                              h2o_iovec_t body, const dp_leg_ops_t *ops, void *data);
/* Stop it now: the connection is closed (the instance sees the cancellation), on_end is not called. */
void dp_leg_cancel(dp_leg_t *l);

#endif
