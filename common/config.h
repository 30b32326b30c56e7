/*
 * common/config.h - the router's configuration: config.yaml (the Go router's keys, docs/fastdeploy.md
 * 2, plus fd-router's own), loaded strictly by the control plane.
 *
 * Strictness (a deliberate difference from the Go router, see docs/compat.md): a value of the
 * wrong type or out of range, a duplicate key, or an unknown policy name is a startup error
 * naming the file, line and key; an unknown key is a warning. Every key and default is listed
 * in docs/config.md.
 *
 * The data plane never reads this file: the control plane publishes the part the DP needs into
 * shared memory (shm_config_t) with fd_config_to_shm().
 */
#ifndef FD_COMMON_CONFIG_H
#define FD_COMMON_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/netacl.h"
#include "common/policies.h"
#include "shm/shm.h"

typedef struct {
    /* server */
    char name[64];
    unsigned port; /* 0 = not set (then --port is required) */
    char host[64]; /* parsed for compatibility; the listening address is server.listen */
    char listen[64];
    char mode[16];
    bool splitwise;

    /* log */
    char log_level[16];
    char log_output[16];
    char log_format[8]; /* fd-router: text | json */
    char access_log[8]; /* fd-router: off | stdout | file */
    int log_max_age_days;
    int log_max_total_size_mb;
    double log_cleanup_interval_secs;

    /* manager */
    char register_path[PATH_MAX];
    int health_failure_threshold;
    int health_success_threshold;
    double health_check_timeout_secs;
    double health_check_interval_secs;
    char health_check_endpoint[128];
    double unhealthy_removal_secs;     /* fd-router: unhealthy this long -> removed */
    double metrics_poll_interval_secs; /* fd-router: remote /metrics polling period */
    double metrics_max_age_secs;       /* fd-router: older remote metrics fall back to local */
    double models_poll_interval_secs;  /* fd-router: GET /v1/models polling period */

    /* scheduler */
    fd_policy_t policy;
    fd_policy_t prefill_policy;
    fd_policy_t decode_policy;
    double eviction_interval_secs;
    double eviction_duration_mins;
    int cache_block_size;
    int radix_capacity_nodes; /* fd-router: prefix tree nodes; 0 = the compiled maximum */
    char tokenizer_url[256];
    double tokenizer_timeout_secs;
    double balance_abs_threshold; /* < 0: not set (no imbalance test, docs/config.md) */
    double balance_rel_threshold; /* < 0: not set */
    double hit_ratio_weight;
    double load_balance_weight;
    double waiting_weight;
    double instance_cache_tokens; /* fd-router: KV cache capacity of an instance; 0 = unknown */
    char new_prefix_placement[8]; /* fd-router: auto | load | hash (cache_aware.c) */
    double stats_interval_secs;

    /* proxy (fd-router) */
    double connect_timeout_secs;
    double first_byte_timeout_secs;
    double idle_timeout_secs;
    int max_body_mb;
    int max_buffered_body_mb;           /* request bodies one DP process holds at once, all told */
    double request_header_timeout_secs; /* a request head must be complete within this */
    double request_body_timeout_secs;   /* longest pause between two reads of a request body */
    int retry_attempts;

    /* router (fd-router): process model */
    int dp_threads; /* 0 = one per core */
    char shm_name[64];
    char control_socket[PATH_MAX];
    char dp_binary[PATH_MAX];

    /* auth (fd-router): unset lists allow everything (FastDeploy's open router) */
    fd_acl_t register_allow; /* who may POST /register */
    fd_acl_t instance_allow; /* which host_ip an instance may have */
    char admin_token_file[PATH_MAX];
    char admin_token[256]; /* FD_ADMIN_TOKEN_MAX; read from admin_token_file by fd_config_load; "" = none */

    /* registry (fd-router): where the fleet's registry lives (controlplane/etcd.c) */
    char registry_backend[16]; /* "local" | "etcd" */
    char etcd_endpoints[1024]; /* comma-separated http://IP:port */
    char etcd_prefix[192];     /* keys live under <prefix>/ */
    int etcd_lease_secs;       /* an instance's key outlives its last heartbeat by this */
    double etcd_timeout_secs;  /* per etcd request */
    double etcd_retry_secs;    /* reconnect period while etcd is unreachable */
} fd_config_t;

void fd_config_defaults(fd_config_t *c);

/* Load `path` over the defaults. Returns 0, or -1 with "file:line: key: reason" in err.
 * Warnings (unknown keys) are logged. */
int fd_config_load(fd_config_t *c, const char *path, char *err, size_t errlen);

/* Open a file the router reads at start (config.yaml, register.yaml, the admin token) for
 * reading; a FIFO, device or directory is refused without blocking. Returns the fd, or -1 with
 * the reason in why. */
int fd_open_regular(const char *path, char *why, size_t whylen);

/* One event pass over a YAML stream that stops at the first sign of a hostile file, before any
 * document is built: more than one document, nesting deeper than max_depth, more than
 * max_events events. *line is where it stopped (1-based). Shared by config.yaml and register.yaml. */
typedef enum { FD_YB_OK, FD_YB_SYNTAX, FD_YB_DOCS, FD_YB_DEPTH, FD_YB_EVENTS } fd_yaml_bound_t;
struct yaml_parser_s;
fd_yaml_bound_t fd_yaml_prescan(struct yaml_parser_s *p, int max_depth, size_t max_events, size_t *line);

/* The subset the data plane reads from shared memory. */
void fd_config_to_shm(const fd_config_t *c, shm_config_t *out);

#endif
