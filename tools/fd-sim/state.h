/*
 * tools/fd-sim/state.h - fd-sim's state shared by its event-loop threads (state.c): request
 * counters, health, metric overrides, the injected failure (fault.h) and the last completion
 * request seen, plus the bodies of the /sim/ test-control endpoints that change them.
 *
 * Contract: counters and flags are _Atomic and change with plain operators (sequentially
 * consistent: a few per request, never worth a weaker order); everything else is behind `lock`
 * (json-c objects are not thread-safe, so every use of last_headers holds it). The counters are
 * what GET /sim/stats reports and the tests wait on; /sim/reset zeroes them.
 */
#ifndef FD_TOOLS_SIM_STATE_H
#define FD_TOOLS_SIM_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/fd-sim/args.h"
#include "tools/fd-sim/engine.h"
#include "tools/fd-sim/fault.h"

struct json_object;

typedef struct {
    char name[SIM_NAME_LEN];
    _Atomic long requests, inflight, completed, cancelled, failed, rejected, aborted;
    _Atomic unsigned long long prompt_tokens; /* without the engine; the engine counts its own */
    _Atomic long register_ok, register_failed;
    _Atomic unsigned long seq;
    _Atomic bool healthy;
    /* metric overrides for tests; -1 = computed */
    _Atomic long m_running, m_waiting, m_blocks;
    sim_fault_t fault;

    pthread_mutex_t lock;                           /* guards everything below */
    char *last_request_id, *last_disaggregate_info; /* JSON texts; NULL = absent */
    char *last_body;
    size_t last_body_len;
    char *last_path;
    struct json_object *last_headers;
} sim_state_t;

void sim_state_init(sim_state_t *st, const char *name, uint64_t seed);
void sim_state_destroy(sim_state_t *st);
/* Remember the latest completion request; takes ownership of headers (a JSON object). */
void sim_state_record(sim_state_t *st, const char *path, size_t path_len, const char *body, size_t body_len,
                      struct json_object *headers);
/* Remember the request_id and disaggregate_info of the latest request (JSON texts, NULL = absent). */
void sim_state_record_pd(sim_state_t *st, const char *request_id, const char *disaggregate_info);
/* load: the engine's figures, or NULL without the engine. */
char *sim_state_stats_json(sim_state_t *st, const sim_engine_load_t *load, size_t *len);
/* Zero the counters and forget the last request (does not touch health, failures, overrides). */
void sim_state_reset(sim_state_t *st);
/* Body {"healthy": bool}; returns 0 or -1 with err. */
int sim_state_set_health(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen);
/* Body with any of num_requests_running / num_requests_waiting / available_gpu_block_num set to a
 * non-negative integer (fixed value) or null (computed again); returns 0 or -1 with err. */
int sim_state_set_metrics(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen);
size_t sim_state_metrics_text(sim_state_t *st, const sim_engine_load_t *load, char *buf, size_t cap);

#endif
