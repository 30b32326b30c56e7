/*
 * tools/fd-sim/args.h - fd-sim's command line (args.c): the configuration every other module
 * reads, its limits, and the role it gives the instance.
 *
 * Contract: sim_parse_args fills a complete, validated sim_config_t (defaults for what was not
 * given); sim_config_finalize is called once the listeners are bound. After that the
 * configuration is read-only and shared by every thread without a lock.
 */
#ifndef FD_TOOLS_SIM_ARGS_H
#define FD_TOOLS_SIM_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tools/fd-sim/engine.h"

#define SIM_MAX_LIST     16
#define SIM_ITEM_LEN     32
#define SIM_NAME_LEN     64
#define SIM_HOST_LEN     64
#define SIM_ROUTER_LEN   256
#define SIM_MAX_THREADS  64
#define SIM_MAX_TOKENS   100000
#define SIM_MAX_DELAY_MS 600000u
#define SIM_MODEL_LEN    256

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

typedef enum { SIM_ROLE_MIXED, SIM_ROLE_PREFILL, SIM_ROLE_DECODE } sim_role_t;

/* Returns 0 on success, 1 when --help was asked, -1 with a message in err. */
int sim_parse_args(int argc, char **argv, sim_config_t *cfg, char *err, size_t errlen);
void sim_print_usage(FILE *out, const char *prog);
/* Called once the listeners are bound: fills the default name from the real port. */
void sim_config_finalize(sim_config_t *cfg, int port);
sim_role_t sim_role_of(const sim_config_t *cfg);

#endif
