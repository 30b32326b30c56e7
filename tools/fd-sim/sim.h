/*
 * tools/fd-sim/sim.h - the pieces of fd-sim, a simulated FastDeploy inference instance used by
 * the demo, the integration tests and the benchmarks of fd-router.
 *
 * The pure parts (command line, request parsing, response rendering, metrics text, register
 * payload, shared counters and test controls) are separate from the h2o server and the
 * registration thread so that the unit tests can exercise them without sockets.
 */
#ifndef FD_TOOLS_SIM_H
#define FD_TOOLS_SIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tools/fd-sim/engine.h"

struct json_object;

#define SIM_MAX_LIST       16
#define SIM_ITEM_LEN       32
#define SIM_NAME_LEN       64
#define SIM_HOST_LEN       64
#define SIM_ROUTER_LEN     256
#define SIM_MAX_THREADS    64
#define SIM_MAX_TOKENS     100000
#define SIM_MAX_DELAY_MS   600000u
#define SIM_MAX_BODY       (32u * 1024 * 1024)
#define SIM_ID_LEN         320
#define SIM_MODEL_LEN      256
#define SIM_GPU_BLOCKS     1000 /* available_gpu_block_num when idle; one block per running request */
#define SIM_REG_TIMEOUT_MS 5000
#define SIM_METRICS_CAP    2048 /* enough for every metric fd-sim renders */

/* ---- command line (args.c) ---- */

typedef struct {
    int n; /* -1 = not given */
    char items[SIM_MAX_LIST][SIM_ITEM_LEN];
} sim_list_t;

typedef struct {
    char host[SIM_HOST_LEN];
    int port;                    /* 0 = pick a free port */
    int metrics_port;            /* -1 = same as port, 0 = pick a free port */
    char router[SIM_ROUTER_LEN]; /* "host:port" without scheme; empty = do not register */
    char role[8];
    double register_interval_secs;
    unsigned tokens;
    unsigned token_delay_ms;
    unsigned first_token_delay_ms;
    char connector_port[SIM_ITEM_LEN];           /* empty = not sent */
    char engine_worker_queue_port[SIM_ITEM_LEN]; /* empty = not sent */
    sim_list_t device_ids;
    sim_list_t transfer_protocol;
    sim_list_t rdma_ports;
    int tp_size;               /* 0 = number of device ids (at least 1) */
    char name[SIM_NAME_LEN];   /* empty until sim_config_finalize: "sim-<port>" */
    char model[SIM_MODEL_LEN]; /* --model: listed by GET /v1/models; empty = that route is 404 */
    int threads;
    unsigned prefill_delay_ms; /* role prefill: extra wait before the (first and only) token */
    unsigned slow_start_ms;    /* /health fails and completions get 503 for this long after start */
    uint64_t seed;             /* drives the error_rate failure mode */
    bool engine;               /* --engine on: timing comes from the engine model */
    sim_engine_params_t engine_params;
} sim_config_t;

/* Returns 0 on success, 1 when --help was asked, -1 with a message in err. */
int sim_parse_args(int argc, char **argv, sim_config_t *cfg, char *err, size_t errlen);
void sim_print_usage(FILE *out, const char *prog);
/* Called once the listeners are bound: fills the default name from the real port. */
void sim_config_finalize(sim_config_t *cfg, int port);

/* ---- requests and responses (gen.c) ---- */

typedef enum { SIM_API_CHAT, SIM_API_COMPLETIONS } sim_api_t;
typedef enum { SIM_ROLE_MIXED, SIM_ROLE_PREFILL, SIM_ROLE_DECODE } sim_role_t;

sim_role_t sim_role_of(const sim_config_t *cfg);

typedef struct {
    unsigned tokens;
    unsigned token_delay_ms;
    unsigned first_token_delay_ms;
} sim_defaults_t;

/* Everything needed to render one completion, decided once when the request arrives. */
typedef struct {
    sim_api_t api;
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    bool truncated;     /* max_tokens cut the answer short: finish_reason "length" */
    bool aborted;       /* ended by /v1/abort_requests: finish_reason "abort" */
    unsigned tokens;
    unsigned token_delay_ms;
    unsigned first_token_delay_ms;
    unsigned prompt_tokens;
    unsigned cached_tokens; /* usage.prompt_tokens_details.cached_tokens */
    long created;
    char id[SIM_ID_LEN];
    char model[SIM_MODEL_LEN];
    char instance[SIM_NAME_LEN];
} sim_gen_t;

/*
 * Parse a completion request body. The id is "chatcmpl-"/"cmpl-" followed by the body's
 * request_id when it has one, else by "<instance>-<seq>". Returns 0, or -1 with an OpenAI-style
 * message in err (the caller answers 400).
 */
int sim_parse_completion(sim_api_t api, const char *body, size_t len, const sim_defaults_t *defaults,
                         const char *instance, unsigned long seq, long created, sim_gen_t *out, char *err,
                         size_t errlen);
/* The same, also handing the parsed body to the caller (who puts it) through root. */
int sim_parse_request(sim_api_t api, const char *body, size_t len, const sim_defaults_t *defaults,
                      const char *instance, unsigned long seq, long created, sim_gen_t *out,
                      struct json_object **root, char *err, size_t errlen);
/* Feed the prompt's words (the ones usage.prompt_tokens counts) into chain; -1 when out of memory. */
int sim_prompt_chain(sim_api_t api, struct json_object *root, sim_chain_t *chain);
/* Milliseconds to wait before token i (0-based): the first waits first+delay, the others delay. */
unsigned sim_delay_before(const sim_gen_t *g, unsigned i);
/* All renderers return malloc'd NUL-terminated text (NULL on allocation failure) and its length. */
char *sim_render_response(const sim_gen_t *g, size_t *len);
/* "data: {chunk}\n\n" for token i; with 0 tokens, i = 0 renders the empty finishing chunk. */
char *sim_render_chunk(const sim_gen_t *g, unsigned i, size_t *len);
/* The final usage-only chunk (include_usage) followed by "data: [DONE]\n\n". */
char *sim_render_stream_end(const sim_gen_t *g, size_t *len);
/* End of an aborted stream after `emitted` tokens: an empty chunk with finish_reason "abort", the
 * usage chunk (include_usage) and [DONE]. */
char *sim_render_abort_end(const sim_gen_t *g, unsigned emitted, size_t *len);
char *sim_render_error(const char *message, const char *type, int code, size_t *len);
typedef struct {
    long running, waiting, blocks;
    unsigned long long prompt_tokens_total, cached_tokens_total;
} sim_metrics_t;

/* Prometheus text; returns the length written (always < cap for cap >= SIM_METRICS_CAP). */
size_t sim_render_metrics(char *buf, size_t cap, const sim_metrics_t *m);
/* The FastDeploy /register body for this instance. */
char *sim_register_payload(const sim_config_t *cfg, int port, int metrics_port, size_t *len);

/* ---- prefill/decode roles and abort (pd.c) ---- */

/* A decode instance's check of request_id and disaggregate_info; -1 with the reason in err. */
int sim_check_disaggregate(struct json_object *root, char *err, size_t errlen);

/* The text abort requests match: a string's value, else the value's JSON text. Malloc'd. */
char *sim_request_key(struct json_object *v);

typedef struct {
    bool all;
    struct json_object *ids; /* the req_ids array (owned), NULL with all */
} sim_abort_req_t;

#define SIM_ABORT_USAGE "must provide abort_all=true or req_ids"

/* Parse {"req_ids":[...]} or {"abort_all":true}; -1 for anything else. */
int sim_parse_abort(const char *body, size_t len, sim_abort_req_t *out);
void sim_abort_req_free(sim_abort_req_t *a);

/* ---- shared counters and test controls (state.c) ---- */

typedef enum {
    SIM_FAIL_NONE,
    SIM_FAIL_CLOSE_BEFORE_HEAD,
    SIM_FAIL_HANG_BEFORE_HEAD,
    SIM_FAIL_STATUS,
    SIM_FAIL_DIE_MID_STREAM,
    SIM_FAIL_ERROR_RATE, /* set by /sim/fail; taken as SIM_FAIL_STATUS or SIM_FAIL_NONE */
} sim_fail_mode_t;

/* What to do to one request. */
typedef struct {
    sim_fail_mode_t mode;
    int status;            /* SIM_FAIL_STATUS */
    unsigned after_chunks; /* SIM_FAIL_DIE_MID_STREAM */
} sim_fail_t;

typedef struct {
    char name[SIM_NAME_LEN];
    atomic_long requests, inflight, completed, cancelled, failed, rejected, aborted;
    atomic_ullong prompt_tokens; /* without the engine; the engine counts its own */
    atomic_long register_ok, register_failed;
    atomic_ulong seq;
    atomic_bool healthy;
    /* metric overrides for tests; -1 = computed */
    atomic_long m_running, m_waiting, m_blocks;

    pthread_mutex_t lock; /* guards everything below */
    sim_fail_mode_t fail_mode;
    int fail_status;
    long fail_remaining; /* -1 = until reset */
    unsigned fail_after_chunks;
    double fail_rate;
    uint64_t seed, rng; /* error_rate draws; rng restarts from seed when the mode is set */
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
/* Body {"mode":..., "status":n, "count":n, "after_chunks":k, "error_rate":r, "seed":s};
 * returns 0 or -1 with err. */
int sim_state_set_fail(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen);
/* Decide the failure of the current request (consuming one of count). Returns out->mode. */
sim_fail_mode_t sim_state_take_fail(sim_state_t *st, sim_fail_t *out);
/* Body {"healthy": bool}; returns 0 or -1 with err. */
int sim_state_set_health(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen);
/* Body with any of num_requests_running / num_requests_waiting / available_gpu_block_num set to a
 * non-negative integer (fixed value) or null (computed again); returns 0 or -1 with err. */
int sim_state_set_metrics(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen);
size_t sim_state_metrics_text(sim_state_t *st, const sim_engine_load_t *load, char *buf, size_t cap);

/* Parse a JSON object body strictly (no trailing data); NULL with err on failure. */
struct json_object *sim_parse_object(const char *body, size_t len, char *err, size_t errlen);

/* ---- server (server.c) and registration (register.c) ---- */

typedef struct sim_server sim_server_t;

/* ---- the engine's clock and thread (driver.c) ---- */

typedef struct sim_driver sim_driver_t;

/* Wakes the event-loop thread `owner` because one of its requests progressed. */
typedef void (*sim_kick_fn)(void *ctx, int owner);

/* Create the engine and start the thread that advances it on the wall clock. */
sim_driver_t *sim_driver_start(const sim_engine_params_t *p, sim_kick_fn kick, void *ctx);
/* Milliseconds since the driver started (CLOCK_MONOTONIC). */
double sim_driver_now(const sim_driver_t *d);
/* The engine may be used only between lock and unlock; unlock wakes whoever must know. */
sim_engine_t *sim_driver_lock(sim_driver_t *d);
void sim_driver_unlock(sim_driver_t *d);
void sim_driver_stop(sim_driver_t *d);

/* Bind and listen (SO_REUSEADDR); fills the real ports. Returns NULL with err on failure. */
sim_server_t *sim_server_create(const sim_config_t *cfg, sim_state_t *st, int *port, int *metrics_port,
                                char *err, size_t errlen);
/* Start the event-loop threads (cfg->threads of them). */
int sim_server_start(sim_server_t *srv);
/* Ask every loop to stop and wait until all have (the threads stay parked until exit). */
void sim_server_stop(sim_server_t *srv);

typedef struct sim_registrar sim_registrar_t;

sim_registrar_t *sim_registrar_start(const sim_config_t *cfg, sim_state_t *st, int port, int metrics_port);
/* Wake the heartbeat thread and wait for it (at most one request timeout). */
void sim_registrar_stop(sim_registrar_t *r);

#endif
