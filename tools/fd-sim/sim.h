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
#include <stdio.h>

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
    int tp_size;             /* 0 = number of device ids (at least 1) */
    char name[SIM_NAME_LEN]; /* empty until sim_config_finalize: "sim-<port>" */
    int threads;
} sim_config_t;

/* Returns 0 on success, 1 when --help was asked, -1 with a message in err. */
int sim_parse_args(int argc, char **argv, sim_config_t *cfg, char *err, size_t errlen);
void sim_print_usage(FILE *out, const char *prog);
/* Called once the listeners are bound: fills the default name from the real port. */
void sim_config_finalize(sim_config_t *cfg, int port);

/* ---- requests and responses (gen.c) ---- */

typedef enum { SIM_API_CHAT, SIM_API_COMPLETIONS } sim_api_t;

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
    unsigned tokens;
    unsigned token_delay_ms;
    unsigned first_token_delay_ms;
    unsigned prompt_tokens;
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
/* Milliseconds to wait before token i (0-based): the first waits first+delay, the others delay. */
unsigned sim_delay_before(const sim_gen_t *g, unsigned i);
/* All renderers return malloc'd NUL-terminated text (NULL on allocation failure) and its length. */
char *sim_render_response(const sim_gen_t *g, size_t *len);
/* "data: {chunk}\n\n" for token i; with 0 tokens, i = 0 renders the empty finishing chunk. */
char *sim_render_chunk(const sim_gen_t *g, unsigned i, size_t *len);
/* The final usage-only chunk (include_usage) followed by "data: [DONE]\n\n". */
char *sim_render_stream_end(const sim_gen_t *g, size_t *len);
char *sim_render_error(const char *message, const char *type, int code, size_t *len);
/* Prometheus text; returns the length written (always < cap for cap >= 512). */
size_t sim_render_metrics(char *buf, size_t cap, long running, long waiting, long blocks);
/* The FastDeploy /register body for this instance. */
char *sim_register_payload(const sim_config_t *cfg, int port, int metrics_port, size_t *len);

/* ---- shared counters and test controls (state.c) ---- */

typedef enum {
    SIM_FAIL_NONE,
    SIM_FAIL_CLOSE_BEFORE_HEAD,
    SIM_FAIL_HANG_BEFORE_HEAD,
    SIM_FAIL_STATUS,
} sim_fail_mode_t;

typedef struct {
    char name[SIM_NAME_LEN];
    atomic_long requests, inflight, completed, cancelled, failed, rejected;
    atomic_long register_ok, register_failed;
    atomic_ulong seq;
    atomic_bool healthy;
    /* metric overrides for tests; -1 = computed */
    atomic_long m_running, m_waiting, m_blocks;

    pthread_mutex_t lock; /* guards everything below */
    sim_fail_mode_t fail_mode;
    int fail_status;
    long fail_remaining; /* -1 = until reset */
    char *last_body;
    size_t last_body_len;
    char *last_path;
    struct json_object *last_headers;
} sim_state_t;

void sim_state_init(sim_state_t *st, const char *name);
void sim_state_destroy(sim_state_t *st);
/* Remember the latest completion request; takes ownership of headers (a JSON object). */
void sim_state_record(sim_state_t *st, const char *path, size_t path_len, const char *body, size_t body_len,
                      struct json_object *headers);
char *sim_state_stats_json(sim_state_t *st, size_t *len);
/* Zero the counters and forget the last request (does not touch health, failures, overrides). */
void sim_state_reset(sim_state_t *st);
/* Body {"mode":..., "status":n, "count":n}; returns 0 or -1 with err. */
int sim_state_set_fail(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen);
/* Consume one failure for the current request; status is set for SIM_FAIL_STATUS. */
sim_fail_mode_t sim_state_take_fail(sim_state_t *st, int *status);
/* Body {"healthy": bool}; returns 0 or -1 with err. */
int sim_state_set_health(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen);
/* Body with any of num_requests_running / num_requests_waiting / available_gpu_block_num set to a
 * non-negative integer (fixed value) or null (computed again); returns 0 or -1 with err. */
int sim_state_set_metrics(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen);
size_t sim_state_metrics_text(sim_state_t *st, char *buf, size_t cap);

/* Parse a JSON object body strictly (no trailing data); NULL with err on failure. */
struct json_object *sim_parse_object(const char *body, size_t len, char *err, size_t errlen);

/* ---- server (server.c) and registration (register.c) ---- */

typedef struct sim_server sim_server_t;

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
