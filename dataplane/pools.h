/*
 * dataplane/pools.h - per-thread upstream connection pools.
 *
 * Each event-loop thread keeps its own keep-alive pool per instance slot, so the request path
 * takes no lock and moves no socket between threads. A pool is keyed by (slot, generation): when
 * the control plane reuses a slot for another instance, the next request finds the generation
 * changed, and the old pool is disposed once no request of this thread still uses it (disposing
 * a pool in use is a use-after-free in h2o 2.2).
 */
#ifndef FD_DP_POOLS_H
#define FD_DP_POOLS_H

#include <stdint.h>

#include "dataplane/dp.h"

struct dp_pool {
    uc_pool_t up;
    int slot; /* the instance slot (with generation); -1 for a fixed address */
    uint32_t generation;
    unsigned refs;
    int stale; /* replaced by a newer generation; dispose when refs drop to 0 */
};

/* If the failure `err` of `client` (a connection of `pool`) is an answer that broke HTTP/1.1
 * (common/uclient.h's protocol_error), count it on the pool's instance in shared memory
 * (fd_router_instance_upstream_protocol_errors_total: it survives DP restarts) and log it, at
 * most once a second per instance with how many were not logged. Called before the failure is
 * handed on, while the pool still names the instance (slot, generation); a fixed address's pool
 * (the tokenizer) has no instance to count on. */
void dp_pool_count_protocol_error(const dp_pool_t *pool, const uc_client_t *client, const char *err);

/* The pool for (slot, gen) on thread t, created on first use; takes a reference. NULL if the
 * address cannot be used. */
dp_pool_t *dp_pool_acquire(dp_thread_t *t, unsigned slot, uint32_t gen, const char *host, uint16_t port);
/* A fixed address's pool kept in *slot (created on first use); takes a reference. */
dp_pool_t *dp_pool_acquire_addr(dp_thread_t *t, dp_pool_t **slot, struct sockaddr *sa, socklen_t salen);
/* The control plane's socket (unix domain), for forwarding /register; takes a reference. */
dp_pool_t *dp_pool_acquire_cp(dp_thread_t *t);
void dp_pool_release(dp_pool_t *p);

/* At most this many idle keep-alive sockets per instance and thread; more are closed. */
#define DP_POOL_MAX_IDLE 256
/* Idle keep-alive sockets are not reused after this long: below the usual 5 s of uvicorn-based
 * instances, so we never reuse a socket the instance is about to close. */
#define DP_POOL_IDLE_MS 2000

#endif
