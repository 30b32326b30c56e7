/*
 * tools/fdctl/fdctl.h - the pieces of fdctl, the operator CLI of fd-router.
 *
 * fdctl reads the router's shared memory directly, so its views work while the control plane
 * is down. Reading is split from formatting:
 *   snapshot.c  copies what a command shows out of shared memory (inside one read-side critical
 *               section on fdctl's own reader slot) into the plain structs below
 *   format.c    renders those structs as a table for humans or as JSON (pure, unit-tested)
 *   ctl.c       actions through the control plane's control socket: upgrade, drain, undrain,
 *               remove (only the control plane changes state)
 *   main.c      command line, attach, dispatch, error messages
 * Nothing read from shared memory is kept past the critical section: the structs are copies.
 */
#ifndef FD_TOOLS_FDCTL_H
#define FD_TOOLS_FDCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "shm/shm.h"

struct json_object;

/* One instance slot that is LIVE, or RETIRED and still draining. */
typedef struct {
    unsigned slot;
    uint32_t generation;
    uint32_t state;  /* shm_slot_state_t */
    uint32_t role;   /* shm_role_t */
    uint32_t health; /* shm_health_t */
    bool drained;
    bool selectable; /* LIVE, HEALTHY and not drained (shm_slot_selectable) */
    char url[SHM_URL_LEN];
    uint64_t inflight;
    uint64_t tokens;
    uint64_t registered_at_ms;
    uint64_t last_register_ms;
    uint64_t last_check_ms;
    uint64_t unhealthy_since_ms;
    uint64_t retired_at_ms;
    uint64_t failures_total;
    char last_error[96];
    uint32_t consecutive_ok;
    uint32_t consecutive_fail;
    shm_status_bucket_t status[SHM_STATUS_BUCKETS];
    uint64_t ttfb_hist[SHM_LAT_BUCKETS];
    uint64_t total_hist[SHM_LAT_BUCKETS];
    uint64_t ttfb_sum_ms;
    uint64_t total_sum_ms;
    bool has_remote; /* the control plane's last /metrics poll of the instance succeeded */
    shm_remote_metrics_t remote;
    int n_models; /* -1: not known (it accepts every model), else what its GET /v1/models listed */
    shm_model_info_t models[SHM_INSTANCE_MODELS];
    shm_fleet_health_t fleet; /* registry.backend: etcd: the fleet's verdicts (hosts 0: none) */
} fdctl_instance_t;

typedef struct {
    unsigned row;
    int32_t pid;
    bool alive;
    uint32_t state; /* SHM_DP_* */
    uint64_t requests_total;
    uint64_t started_at_ms;
    uint64_t build; /* hash of the DP's executable */
} fdctl_dp_t;

typedef struct {
    int32_t cp_pid;
    bool cp_alive;
    uint64_t cp_started_at_ms;
    uint64_t cp_heartbeat_ms;
    unsigned listen_port;
    fdctl_dp_t dps[SHM_MAX_DPS];
    unsigned n_dps;
    char shm_name[64];
    uint64_t shm_size;
    uint32_t layout_version;
    uint64_t arena_blocks;
    uint64_t arena_used;
    unsigned instances_live;
    unsigned instances_retired;
    uint64_t table_updated_ms;
    uint32_t policy[SHM_ROLE_COUNT];
    bool splitwise;
    int32_t wlock_owner; /* pid holding the writer lock now, 0 if free */
    uint64_t wlock_recovered;
    bool running; /* a control plane or a data plane is alive on the segment */
} fdctl_status_t;

/* ---- snapshot.c: reads shared memory (the caller holds reader slot `reader`) ---- */

/* Copies up to `max` instances (LIVE and RETIRED), sorted by URL; returns how many. */
unsigned fdctl_snapshot_instances(shm_seg_t *seg, int reader, fdctl_instance_t *out, unsigned max);
void fdctl_snapshot_status(shm_seg_t *seg, int reader, fdctl_status_t *out);
/* Whether a control plane or a data plane process is alive on the segment. A segment outlives a
 * clean stop (the next start reuses it); with neither alive, what it holds is the last run's. */
bool fdctl_router_running(const shm_seg_t *seg);

/* ---- format.c: pure rendering; `now_ms` is the wall clock ages are computed against ---- */

const char *fdctl_health_name(uint32_t health); /* "unknown" / "healthy" / "unhealthy" */
/* Age `now - then` in ms; 0 when `then` is unset (0) or in the future. */
uint64_t fdctl_age_ms(uint64_t now_ms, uint64_t then_ms);
/* Compact human duration: "850ms", "12.3s", "4m05s", "2h03m", "3d04h"; "-" when ms is UINT64_MAX. */
void fdctl_format_duration(char *out, size_t outlen, uint64_t ms);

struct json_object *fdctl_instances_json(const fdctl_instance_t *in, unsigned n, uint64_t now_ms);
void fdctl_instances_table(FILE *f, const fdctl_instance_t *in, unsigned n, uint64_t now_ms);
struct json_object *fdctl_status_json(const fdctl_status_t *st, uint64_t now_ms);
void fdctl_status_text(FILE *f, const fdctl_status_t *st, uint64_t now_ms);
/* `reg`: the control plane's registry state (fdctl_ctl_registry) or NULL; with the etcd backend it
 * names the hosts behind a disagreement ("health_disagreements"). */
struct json_object *fdctl_health_json(const fdctl_instance_t *in, unsigned n, uint64_t now_ms,
                                      struct json_object *reg);
void fdctl_health_table(FILE *f, const fdctl_instance_t *in, unsigned n, uint64_t now_ms,
                        struct json_object *reg);
/* "healthy on H of N hosts", with ", DISAGREE" when some hosts see it healthy and others not.
 * FDCTL_FLEET_TEXT_LEN holds the longest (every count 65535). */
#define FDCTL_FLEET_TEXT_LEN 64
void fdctl_fleet_text(char *out, size_t outlen, shm_fleet_health_t f);
struct json_object *fdctl_stats_json(const fdctl_instance_t *in, unsigned n, uint64_t now_ms);
void fdctl_stats_table(FILE *f, const fdctl_instance_t *in, unsigned n);
/* The latency (ms) under which a fraction q of a histogram's samples lie: the upper bound of the
 * bucket where the count crosses q (SHM_LAT_BUCKETS); -1 for an empty histogram. */
double fdctl_hist_quantile(const uint64_t *hist, double q);

/* ---- ctl.c: actions through the control socket ---- */

typedef struct {
    char socket[4096]; /* the control socket's path */
    unsigned port;     /* for messages; 0 when unknown */
    bool json;
} fdctl_ctl_t;

typedef struct {
    const char *dp_binary;  /* NULL: the configured one */
    int drain_secs;         /* -1: the DP's default */
    int ready_timeout_secs; /* -1: the CP's default */
    int wait_secs;          /* 0: drain time + 2 minutes */
} fdctl_upgrade_opts_t;

/* action: "drain", "undrain" or "remove". Returns the exit status. */
int fdctl_ctl_action(const fdctl_ctl_t *c, const char *action, const char *url);
int fdctl_ctl_upgrade(const fdctl_ctl_t *c, const fdctl_upgrade_opts_t *o);
/* The control plane's registry state (GET /status "registry"), or NULL, quietly, when no control
 * plane answers within timeout_ms (status then shows what shared memory holds). */
struct json_object *fdctl_ctl_registry(const fdctl_ctl_t *c, unsigned timeout_ms);
/* "registry       etcd ..." for fdctl status; nothing for the local backend. */
void fdctl_registry_text(FILE *f, struct json_object *reg, uint64_t now_ms);
/* Human rendering of an upgrade record (GET /upgrade). */
void fdctl_upgrade_text(FILE *f, struct json_object *u);

/* ---- cache.c, explain.c: the prefix tree, and a dry run of a selection ---- */
int fdctl_cmd_cache(bool json, shm_seg_t *seg, int reader);
int fdctl_cmd_explain(bool json, const char *body_path, shm_seg_t *seg, int reader);

#endif
