/*
 * dataplane/dp.h - the data plane's process-wide and per-thread state, and the map of the files
 * of dataplane/.
 *
 * The DP runs N event-loop threads (libh2o-evloop), each with its own h2o context, its own
 * dup() of the listening socket the CP handed over, its own reader slot in the shared-memory
 * registry, and its own upstream connection pools (one per instance slot, created lazily), so
 * the request path shares nothing between threads but the shared-memory segment.
 *
 *   main.c        flags, attach, threads, signals, drain on SIGTERM
 *   dp.c          this header's state: the process-wide `dp`, the thread serving, outcome names
 *   server.c      h2o setup per thread, accept, routing of paths to handlers (server.h)
 *   reply.c       complete answers: JSON bodies, {"error": ...} (reply.h)
 *   errjson.c     JSON bodies for the errors h2o answers itself (413)
 *   completions.c POST /v1/chat/completions and /v1/completions in mixed mode
 *   pd.c, pd_body.c the same in splitwise mode: prefill and decode legs, disaggregate_info
 *   leg.c         background upstream requests (the prefill leg, the abort fan-out)
 *   abort.c       POST /v1/abort_requests fanned out to every instance
 *   tokenizer.c   asynchronous calls to the optional tokenizer service
 *   request.c     parsing what the router needs from a completion body (stream, prompt)
 *   select.c      candidates from the published view, policy call, load counters
 *   upstream.c    one upstream leg: pooled connect, request head, streamed response, timeouts
 *   pools.c       per-thread upstream socket pools keyed by (slot, generation)
 *   admin.c       GET /registered, /registered_number, /health, /ready; POST /register (to the CP)
 *   metrics.c     GET /metrics (Prometheus text)
 *   policy/       one file per policy behind policy/pol.h, found through policy/registry.h
 *
 * Each file's functions are declared in its own header; this one holds only the state every
 * file shares, so that including it never depends on the route table or on main.c (no include
 * circle: tools/include_cycles.py).
 */
#ifndef FD_DP_H
#define FD_DP_H

#include <stdbool.h>
#include <stdint.h>

#include <h2o.h>

#include "common/uclient.h"
#include "dataplane/policy/pol.h"

#include "shm/shm.h"

/* Outcomes of inference requests, counted per DP process in memory and exported by /metrics. */
typedef enum {
    DP_OUT_OK = 0,         /* upstream answered and the response was relayed to the end */
    DP_OUT_BAD_REQUEST,    /* 400: body is not a JSON object */
    DP_OUT_NO_INSTANCE,    /* no selectable instance */
    DP_OUT_UPSTREAM_ERROR, /* every attempt failed before a head */
    DP_OUT_TIMEOUT,        /* first byte or idle timeout */
    DP_OUT_BROKEN,         /* upstream failed mid-body: the client saw a broken stream */
    DP_OUT_CLIENT_ABORT,   /* the client went away; the upstream leg was cancelled */
    DP_OUT_COUNT
} dp_outcome_t;

typedef struct dp_pool dp_pool_t;

/* A role's published view by slot (pol_slots_t), built again when another view is published
 * (select.c): the view's block and its version identify it. `clean`: its count and every slot
 * are in range, as the control plane writes them; a view that is not (a corrupt segment) is
 * never handed to a policy as it is. */
typedef struct {
    const shm_view_t *view;
    uint64_t version;
    uint32_t count;
    bool clean;
    pol_slots_t by_slot;
} dp_view_cache_t;

/* Per event-loop thread. */
typedef struct dp_thread {
    unsigned index;
    pthread_t tid;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int reader; /* reader slot in shm */
    uint64_t rng;

    /* upstream timeouts, enforced by each exchange's own timer (common/uclient.h has none) */
    h2o_timeout_t connect_timeout;
    h2o_timeout_t first_byte_timeout;
    h2o_timeout_t idle_timeout;
    h2o_timeout_t zero_timeout;  /* runs on the next loop turn */
    h2o_timeout_t watch_timeout; /* how often a waiting request checks that its client is there */
    h2o_timeout_t abort_timeout; /* bound of a /v1/abort_requests fan-out */
    h2o_timeout_t tokenizer_timeout;

    dp_pool_t **pools;         /* [SHM_MAX_INSTANCES], lazily created */
    dp_pool_t *cp_pool;        /* the control socket, for POST /register */
    dp_pool_t *tokenizer_pool; /* the tokenizer service, when configured */
    uint64_t inflight;         /* requests this thread is serving (drain waits for 0) */

    dp_view_cache_t views[SHM_ROLE_COUNT];
} dp_thread_t;

/* Process-wide, read-only after start except the atomics. */
typedef struct {
    shm_seg_t seg;
    shm_config_t cfg;
    int row; /* this process's counter row */
    int listen_fd;
    char control_socket[108];
    unsigned nthreads;
    dp_thread_t *threads;
    h2o_globalconf_t globalconf;
    _Atomic int stopping;       /* set once by SIGTERM/SIGINT */
    uint64_t drain_deadline_ms; /* set before `stopping` */
    unsigned drain_secs;
    unsigned drain_idle_ms; /* while draining, idle connections are closed after this long */
    pthread_mutex_t drain_lock;
    pthread_cond_t drain_cond;
    unsigned drained; /* threads done draining */
    uint64_t started_at_ms;
} dp_global_t;

extern dp_global_t dp;

/* The calling event-loop thread, set once as it starts (server.c); NULL on other threads. */
extern __thread dp_thread_t *dp_current;

/* The thread serving req: the calling one (each thread serves only its own connections). */
static inline dp_thread_t *dp_self(h2o_req_t *req)
{
    (void)req;
    return dp_current;
}

/* "ok", "bad_request", ...: fd_router_requests_total's outcome label (metrics.c), the access log's too */
const char *dp_outcome_name(dp_outcome_t o);

/* Counted in shared memory: /metrics' fd_router_requests_total survives upgrades and crashes. */
static inline void dp_count_outcome(dp_outcome_t o)
{
    shm_count_outcome(&dp.seg, (unsigned)o);
}

#endif
