/*
 * tools/fd-sim/loop.h - what fd-sim's request modules (routes, completion, call, abort) use of
 * the server (loop.c): its shared fields, each event-loop thread's timer lists and wake-up, and
 * the server-wide facts (time since start, the engine's figures).
 *
 * Contract: a thread's fields belong to that thread, except `kicked` and its pipe, which any
 * thread may use to wake it (sim_server_kick), and the call registry, which is behind reg_lock.
 * The server itself (binding, starting and stopping the threads: server.h) is above these
 * modules and uses them; they never use it.
 */
#ifndef FD_TOOLS_SIM_LOOP_H
#define FD_TOOLS_SIM_LOOP_H

#include <h2o.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "tools/fd-sim/args.h"
#include "tools/fd-sim/driver.h"
#include "tools/fd-sim/state.h"

#define SIM_TIMER_SLOTS 64
#define SIM_PROBE_MS    200 /* waits at least this long also watch for the client going away */

typedef struct {
    bool used;
    unsigned ms;
    h2o_timeout_t to;
} sim_timer_slot_t;

typedef struct sim_server sim_server_t; /* also named in server.h */

typedef struct {
    sim_server_t *srv;
    int index; /* the engine's owner id for this thread's requests */
    pthread_t tid;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_api, accept_metrics;
    h2o_socket_t *listener_api, *listener_metrics, *wake, *kick;
    int api_fd, metrics_fd; /* this thread's dup()s of the listening sockets */
    int wake_fds[2], kick_fds[2];
    _Atomic bool kicked; /* a byte is in kick_fds already */
    bool stop;
    sim_timer_slot_t timers[SIM_TIMER_SLOTS];
    h2o_timeout_t probe;
    h2o_linklist_t calls; /* this thread's calls, for kicks */
} sim_thread_t;

struct sim_server {
    const sim_config_t *cfg;
    sim_state_t *st;
    h2o_globalconf_t conf;
    h2o_hostconf_t *api_hosts[2], *metrics_hosts[2];
    int api_fd, metrics_fd;
    int nthreads;     /* threads running */
    int nthreads_max; /* threads prepared: kicks may reach them */
    sim_thread_t *threads;
    pthread_mutex_t park_lock;
    pthread_cond_t park_cond;
    int parked;           /* threads whose loop has stopped */
    sim_driver_t *driver; /* NULL without the engine model */
    uint64_t t0_ms;       /* fd_mono_ms() at creation, for --slow-start-ms */
    pthread_mutex_t reg_lock;
    h2o_linklist_t registry; /* every call of every thread, for abort */
};

/* Milliseconds since the server was created. */
uint64_t sim_server_uptime_ms(const sim_server_t *srv);
/* Still inside --slow-start-ms: /health and completions answer 503. */
bool sim_server_starting(const sim_server_t *srv);
/* Wake thread `owner` so it looks at its calls (from any thread; a sim_kick_fn). */
void sim_server_kick(void *srv, int owner);
/* This thread's timeout list of ms (2.2 lists have one fixed duration each, and the loop scans
 * every list on each turn, so there is one per distinct delay in use); NULL when all are busy. */
h2o_timeout_t *sim_thread_timeout(sim_thread_t *th, unsigned ms);
/* The engine's figures for /metrics and /sim/stats; NULL without the engine. */
const sim_engine_load_t *sim_server_engine_load(sim_server_t *srv, sim_engine_load_t *load);
/* Zero the engine's totals (and with flush, its evictable cache); nothing without the engine. */
void sim_server_engine_reset(sim_server_t *srv, bool flush);

#endif
