/*
 * controlplane/cp.h - the control plane (fd-router-cp): its shared state and what each file of
 * controlplane/ offers the others.
 *
 * The CP is one process with one h2o event loop. It owns the shared-memory segment's life, the
 * public listening socket (bound once, inherited by every data plane it spawns) and a control
 * socket (unix domain, HTTP/1.1) through which the DP forwards /register. Everything here runs
 * on that loop: no call in the CP may block it (health probes are asynchronous, see probe.c).
 *
 *   main.c       flags, startup order, shutdown
 *   args.c       command-line parsing and --help text (pure)
 *   listen.c     the public listening socket
 *   timer.c      timerfd-backed timers of any period on the h2o loop
 *   probe.c      asynchronous "GET http://host:port/path == 200" probes (register and health)
 *   slotjob.c    what the per-instance jobs share: one request per slot, the instance checked live
 *   ctlsock.c    the control-socket HTTP server (/register, /status, operator actions)
 *   actions.c    operator actions on instances: drain, undrain, remove
 *   register.c   /register and register.yaml
 *   registry.c   upserts, retirements and view publication in shm
 *   health.c     the periodic health checks and their threshold state machine
 *   housekeeping.c  the CP heartbeat, dead-DP reaping, publish retries and slot reclaim (own timer)
 *   metrics_poll.c  the periodic /metrics polls, published into shm for the remote policies
 *   models_poll.c   the periodic GET /v1/models polls: the models each instance serves, into shm
 *   stats.c      the Go router's periodic [stats] log line
 *   evict.c      the prefix tree's TTL eviction and free-node headroom
 *   logfiles.c   log.output: file - the log file, passed to the DPs, and its archives' clean-up
 *   health_generate.c  GET /health_generate: probe every prefill and decode instance now
 *   supervise.c  spawning, watching, restarting and adopting the data plane processes
 *   etcd.c       registry.backend: etcd - the fleet's registry shared by several router hosts
 *   upgrade.c    the hot upgrade: start a new DP, wait until it serves, drain the old one
 *   reload.c     config.yaml re-read at each upgrade, applied through the new DP
 *   snapshot.c   a copy of the registry in a file, to fill a segment that had to be rebuilt
 */
#ifndef FD_CP_CP_H
#define FD_CP_CP_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <h2o.h>

#include "common/uclient.h"

#include "common/clock.h"
#include "common/config.h"
#include "common/instance_info.h"
#include "shm/shm.h"

struct json_object;

/* ---- command line (args.c) ---- */

typedef struct {
    const char *port; /* NULL = not given (strings point into argv) */
    const char *dp_drain_secs;
    const char *config_path;
    const char *shm_name;
    const char *control_socket;
    const char *dp_binary;
    bool splitwise;
    bool rebuild_shm;
    bool help;
    bool version;
} cp_args_t;

/* Go-flag style: -name or --name, value as the next argument or after '='; booleans accept
 * =true/=false. Returns 0, or -1 with the reason in err (the caller prints usage, exits 2). */
int cp_args_parse(int argc, char **argv, cp_args_t *out, char *err, size_t errlen);
void cp_usage(FILE *f, const char *prog);
/* "1".."65535" -> port, else 0. */
unsigned cp_parse_port(const char *s);

/* ---- timers (timer.c) ---- */

typedef struct cp_timer cp_timer_t;
typedef void (*cp_timer_cb)(cp_timer_t *t);
struct cp_timer {
    h2o_socket_t *sock; /* wraps a timerfd; NULL when not initialised */
    cp_timer_cb cb;
    void *data;
};
int cp_timer_init(cp_timer_t *t, h2o_loop_t *loop, cp_timer_cb cb, void *data);
/* Fire after delay_ms (at least 1 ms), then every period_ms if period_ms > 0. */
void cp_timer_arm(cp_timer_t *t, uint64_t delay_ms, uint64_t period_ms);
void cp_timer_disarm(cp_timer_t *t);
void cp_timer_dispose(cp_timer_t *t);

/* ---- probes (probe.c) ---- */

typedef struct {
    bool ok;             /* status 200 and the whole body read */
    bool protocol_error; /* failed because the answer broke HTTP/1.1 (common/uclient.h), not because
                          * of a connect failure, a timeout or a status */
    int status;          /* 0 if no response head */
    char error[96];
    const char *body; /* cp_fetch_start and ok: the body, NUL-terminated, valid during the callback */
    size_t body_len;
} cp_probe_result_t;

typedef void (*cp_probe_cb)(void *data, const cp_probe_result_t *res);
typedef struct cp_probe cp_probe_t;

typedef struct {
    h2o_loop_t *loop;
    unsigned timeout_ms;
    h2o_timeout_t deadline; /* whole probe */
    h2o_timeout_t deferred; /* 0 ms: completions that must not run inside cp_probe_start */
    h2o_linklist_t probes;
} cp_prober_t;

int cp_prober_init(cp_prober_t *p, h2o_loop_t *loop, unsigned timeout_ms);
/* Cancels every probe in flight (their callbacks are not called). */
void cp_prober_dispose(cp_prober_t *p);
/* Start one probe. The callback runs exactly once, always from the loop, never from inside this
 * call, unless the probe is cancelled first. */
cp_probe_t *cp_probe_start(cp_prober_t *p, const char *host, uint16_t port, const char *path, cp_probe_cb cb,
                           void *data);
/* The same, keeping the body (at most max_body bytes; a longer one fails the fetch). */
cp_probe_t *cp_fetch_start(cp_prober_t *p, const char *host, uint16_t port, const char *path, size_t max_body,
                           cp_probe_cb cb, void *data);
void cp_probe_cancel(cp_probe_t *probe);
size_t cp_prober_inflight(const cp_prober_t *p);

/* ---- per-instance jobs (slotjob.c) ---- */

typedef struct cp cp_t;

/* The instance a per-instance job (health probe, metrics poll, models poll) is about: its slot
 * may be retired, and even reused by another instance, while the job's request runs. */
typedef struct {
    unsigned slot;
    uint32_t generation;
    char url[SHM_URL_LEN];
} cp_slot_ident_t;

void cp_slot_ident_take(cp_slot_ident_t *id, unsigned slot, const shm_instance_t *in);
/* The slot's instance if it is still the one taken (LIVE, same generation and URL), else NULL. */
shm_instance_t *cp_slot_ident_live(const shm_seg_t *seg, const cp_slot_ident_t *id);
/* If `res` failed because the instance's answer broke HTTP/1.1, count it on the instance (the
 * counter the data plane adds its own to: fd_router_instance_upstream_protocol_errors_total) and
 * log it, at most once a second per instance with how many were not logged. `in` is the job's
 * instance, still the one it was started for (cp_slot_ident_live); `job` names the request. */
void cp_slot_count_protocol_error(const cp_slot_ident_t *id, shm_instance_t *in, const cp_probe_result_t *res,
                                  const char *job);

/* A job's result for an instance still in its slot (protocol errors already counted). */
typedef void (*cp_slot_job_done_cb)(cp_t *cp, unsigned slot, shm_instance_t *in,
                                    const cp_probe_result_t *res);
typedef struct {
    cp_t *cp;
    const char *what; /* names the request in the log: "health check", "GET /metrics" */
    cp_slot_job_done_cb done;
    struct cp_slot_job *inflight[SHM_MAX_INSTANCES];
} cp_slot_jobs_t;

void cp_slot_jobs_init(cp_slot_jobs_t *j, cp_t *cp, const char *what, cp_slot_job_done_cb done);
/* GET path on the instance's host at `port`: a probe (max_body 0) or a fetch keeping at most
 * max_body bytes. Replaces nothing: the caller checks that none runs for the slot. */
void cp_slot_job_start(cp_slot_jobs_t *j, unsigned slot, const shm_instance_t *in, uint16_t port,
                       const char *path, size_t max_body);
/* A request runs for the slot's instance of that generation. */
bool cp_slot_job_running(const cp_slot_jobs_t *j, unsigned slot, uint32_t generation);
bool cp_slot_job_busy(const cp_slot_jobs_t *j, unsigned slot);
/* Cancel the slot's request, if any (its answer no longer matters): no callback follows. */
void cp_slot_job_forget(cp_slot_jobs_t *j, unsigned slot);
void cp_slot_jobs_stop(cp_slot_jobs_t *j);

/* ---- the control plane's state ---- */

/* A data-plane process the CP watches through a pidfd. */
typedef struct {
    cp_t *cp;
    pid_t pid; /* 0 = none */
    int pidfd;
    h2o_socket_t *watch; /* the pidfd on the loop */
    bool is_child;       /* false for a DP adopted from a previous CP */
    uint64_t started_mono_ms;
} cp_proc_t;

#define CP_MAX_RETIRING SHM_MAX_DPS

/* Which of the watched DPs ended (supervise.c reports it to the upgrade that started a candidate). */
typedef enum { CP_DP_CURRENT, CP_DP_CANDIDATE, CP_DP_RETIRING } cp_dp_kind_t;
/* The current DP ended while a candidate starts, the candidate ended, or a retiring one did: the
 * last returns true if the exit was the observer's to report. */
typedef bool (*cp_dp_exit_cb)(cp_t *cp, cp_dp_kind_t kind, pid_t pid, const char *how);

typedef enum {
    CP_UPG_NONE = 0,
    CP_UPG_STARTING, /* the new DP was spawned; waiting for its row to say SERVING */
    CP_UPG_DRAINING, /* the new DP serves; the old one drains */
    CP_UPG_DONE,
    CP_UPG_FAILED,
} cp_upgrade_state_t;

/* The last (or running) hot upgrade, as /upgrade and fdctl report it. */
typedef struct {
    unsigned id; /* 0 = none yet */
    cp_upgrade_state_t state;
    char trigger[16]; /* "fdctl" (control socket) or "SIGHUP" */
    char binary[PATH_MAX];
    unsigned drain_secs; /* 0 = the old DP's own default */
    unsigned ready_timeout_ms;
    pid_t old_pid, new_pid; /* 0 = none */
    uint64_t started_at_ms; /* wall clock */
    uint64_t started_mono_ms, ready_mono_ms, finished_mono_ms;
    uint64_t drain_deadline_mono_ms; /* past it (plus a grace) the old DP is killed */
    bool killed;                     /* the old DP was killed at the drain deadline */
    bool report;                     /* the old DP's drain report arrived */
    uint64_t drained, cut, idle_closed, drain_ms;
    char old_exit[128]; /* how the old DP ended */
    char note[192];     /* something the operator should know (e.g. a DP died during the upgrade) */
    char error[256];    /* FAILED: why */
    cp_timer_t timer;
} cp_upgrade_t;

struct cp {
    fd_config_t cfg;
    cp_args_t args; /* the command line (strings point into argv): a reload applies it again */
    unsigned port;
    bool splitwise;
    bool rebuild_shm;
    char config_path[PATH_MAX];
    char shm_name[64];
    char control_socket[PATH_MAX];
    char log_file[PATH_MAX];   /* log.output: file: the absolute path (the DPs write it too); "" otherwise */
    char access_log[PATH_MAX]; /* log.access-log: "" off, "-" stdout, else the file the DPs write */
    cp_timer_t log_cleanup_timer;
    char dp_binary[PATH_MAX];         /* the configured binary (flag, config, default); SIGHUP uses it */
    char dp_binary_running[PATH_MAX]; /* what the current DP runs; restarts after a crash use it */
    unsigned dp_drain_secs;           /* --dp_drain_secs: drain time of a SIGHUP upgrade (0 = DP default) */

    uint64_t start_time;    /* /proc start time of this process */
    uint64_t started_at_ms; /* wall clock */
    shm_seg_t seg;
    h2o_evloop_t *loop;
    int listen_fd; /* the public socket, -1 while an adopted DP still holds the only copy */
    bool stopping;
    bool views_dirty; /* a publication failed (arena exhausted): retried by maintenance */

    struct {
        h2o_globalconf_t conf;
        h2o_context_t ctx;
        h2o_accept_ctx_t accept;
        h2o_socket_t *listener;
        bool ctx_ready;
        dev_t dev; /* identity of the socket file we bound, so we only unlink our own */
        ino_t ino;
    } ctl;

    cp_prober_t prober;
    bool prober_ready;

    struct {
        cp_timer_t timer;
        cp_slot_jobs_t jobs;
    } health;

    struct {
        cp_timer_t timer;
        cp_slot_jobs_t jobs;
        struct {
            uint32_t generation;
            bool active;
            uint64_t failed;          /* polls failed in the streak */
            uint64_t logged;          /* of which the last line reported */
            uint64_t logged_ms;       /* when that line was written */
        } failing[SHM_MAX_INSTANCES]; /* a streak of failed polls of (slot, generation) */
    } metrics;

    struct {
        cp_timer_t timer;
        cp_slot_jobs_t jobs;
        struct {
            uint32_t generation; /* of the instance these fields are about */
            bool seen;
            uint8_t last; /* outcome of the last poll, to log only changes (models_poll.c) */
            uint64_t due_ms;
        } slot[SHM_MAX_INSTANCES];
    } models;

    cp_timer_t housekeeping_timer; /* housekeeping.c */
    cp_timer_t stats_timer;
    cp_timer_t snapshot_timer; /* snapshot.c */

    struct {
        cp_timer_t ttl, maintain;
    } evict;

    h2o_linklist_t reg_jobs; /* /register requests waiting for their probes */
    unsigned reg_jobs_n;

    struct {
        char urls[SHM_MAX_INSTANCES][SHM_URL_LEN];
        unsigned n;
    } statics; /* URLs listed in register.yaml: retried forever, never removed */

    struct {                                 /* written by supervise.c only */
        cp_proc_t cur;                       /* the serving DP (pid 0: none, a restart is due) */
        cp_proc_t cand;                      /* an upgrade's new DP until it is ready */
        cp_proc_t retiring[CP_MAX_RETIRING]; /* stopped DPs still draining */
        uint64_t backoff_ms;
        unsigned restarts;
        cp_timer_t restart_timer;
        cp_dp_exit_cb on_exit; /* set with the first candidate (upgrade.c) */
    } dp;

    cp_upgrade_t upg;

    struct cp_etcd *etcd; /* registry.backend: etcd (etcd.c); NULL with the local backend */

    h2o_socket_t *sigsock; /* signalfd of SIGINT/SIGTERM/SIGHUP */
    sigset_t orig_sigmask; /* restored in the DP child before exec */
};

/* ---- public listening socket (listen.c) ---- */

/* Bind addr:port (addr "" = every interface), SO_REUSEADDR, listen(backlog 4096), close-on-exec.
 * Returns the fd, or -1 with "listen tcp <addr>:<port>: <call>: <reason>" in err. */
int cp_listen_open(const char *addr, unsigned port, char *err, size_t errlen);
/* True if fd is a listening TCP socket bound to `port`. */
bool cp_listen_is_ours(int fd, unsigned port);

/* ---- control socket (ctlsock.c) ---- */

/* 1 if something accepts connections on `path` (another live CP), 0 if not. */
int cp_ctlsock_in_use(const char *path);
int cp_ctlsock_open(cp_t *cp, char *err, size_t errlen);
/* Stop accepting and unlink the socket file if it is still the one we bound. */
void cp_ctlsock_close(cp_t *cp);
void cp_respond_json(h2o_req_t *req, int status, const char *body);
void cp_respond_msg(h2o_req_t *req, int status, const char *msg); /* {"code":status,"msg":msg} */
/* The /status document (caller puts it). */
struct json_object *cp_status_json(cp_t *cp);

/* ---- /register and register.yaml (register.c) ---- */

void cp_register_handle(cp_t *cp, h2o_req_t *req, const char *body, size_t len);
/* The host_ip rules beyond the payload's validation (address classes, auth.instance-allow), for
 * every source of registrations: 0, or 400 with FastDeploy-style text in msg. */
int cp_register_host_allowed(const cp_t *cp, const fd_instance_info_t *info, char *msg, size_t msglen);
/* Answer every /register still waiting (shutdown) and cancel its probes. */
void cp_register_abort_all(cp_t *cp);

typedef enum {
    CP_RY_OK = 0,
    CP_RY_READ_ERROR,  /* "Failed to read YAML file <path>: <err>" */
    CP_RY_PARSE_ERROR, /* "Failed to unmarshal YAML file <path>: <err>" */
    CP_RY_EMPTY,       /* "No instances found in config file <path>" */
} cp_register_yaml_rc_t;

/* Convert a register.yaml document to the JSON array of its `instances:` items. Plain scalars
 * are typed as YAML 1.2's core schema does (int, float, bool, null); quoted ones stay strings. */
cp_register_yaml_rc_t cp_register_yaml_parse(const char *text, size_t len, struct json_object **items,
                                             char *err, size_t errlen);
cp_register_yaml_rc_t cp_register_yaml_read(const char *path, struct json_object **items, char *err,
                                            size_t errlen);
/* Insert every valid item as a static instance (LIVE, health UNKNOWN). Logs as the Go router. */
void cp_register_load_file(cp_t *cp, const char *path);

/* ---- registry (registry.c) ---- */

/* Same registry identity and FD metadata (what /registered shows). */
bool cp_slot_same_identity(const shm_instance_t *a, const shm_instance_t *b);
bool cp_info_matches_slot(const fd_instance_info_t *info, const shm_instance_t *slot);

/* If a LIVE, HEALTHY slot with the same identity exists, stamp last_register_ms and return it. */
int cp_registry_heartbeat(cp_t *cp, const fd_instance_info_t *info);

typedef enum {
    CP_UPSERT_REFRESHED, /* same URL and metadata: marked `health` */
    CP_UPSERT_INSERTED,  /* new slot */
    CP_UPSERT_UPDATED,   /* same URL, new metadata: the slot rewritten in place */
    CP_UPSERT_KEPT,      /* keep_existing and the same instance was already there */
} cp_upsert_kind_t;

/*
 * Under the writer lock: insert or refresh `info` with `health` and republish the views. A known
 * URL keeps its slot (new metadata is written in place), so only a new URL can find the table
 * full. With keep_existing (register.yaml), an identical LIVE slot is left exactly as it is.
 * Returns the slot or -1 with a reason (table full, lock unrecoverable).
 */
int cp_registry_upsert(cp_t *cp, const fd_instance_info_t *info, shm_health_t health, bool keep_existing,
                       cp_upsert_kind_t *kind, char *err, size_t errlen);
/* Set health under the writer lock and republish when selectability changes. */
void cp_registry_set_health(cp_t *cp, unsigned slot, shm_health_t health, uint64_t now_ms);
void cp_registry_retire(cp_t *cp, unsigned slot);
/* Operator drain flag: a drained instance leaves the views (its in-flight requests finish). */
int cp_registry_set_drained(cp_t *cp, unsigned slot, bool drained);
/* Periodic housekeeping: free drained retired slots, reclaim arena blocks. */
void cp_registry_maintain(cp_t *cp);
unsigned cp_registry_live_count(const cp_t *cp);

void cp_static_add(cp_t *cp, const char *url);
bool cp_static_has(const cp_t *cp, const char *url);
void cp_static_remove(cp_t *cp, const char *url);

/* ---- health checks (health.c) ---- */

typedef struct {
    uint32_t health; /* shm_health_t */
    uint32_t ok;     /* consecutive successes */
    uint32_t fail;   /* consecutive failures */
} cp_health_state_t;

typedef enum { CP_HEALTH_SAME, CP_HEALTH_BECAME_HEALTHY, CP_HEALTH_BECAME_UNHEALTHY } cp_health_change_t;

/* One probe result applied to the consecutive counters (pure). */
cp_health_change_t cp_health_step(cp_health_state_t *st, bool ok, unsigned success_threshold,
                                  unsigned failure_threshold);
/* Whether an instance has been unhealthy long enough to be removed (pure). */
bool cp_health_expired(uint32_t health, bool is_static, uint64_t unhealthy_since_ms, uint64_t now_ms,
                       uint64_t removal_ms);

int cp_health_start(cp_t *cp);
void cp_health_stop(cp_t *cp);
/* Forget any probe in flight for `slot` (it was retired or replaced). */
void cp_health_forget(cp_t *cp, unsigned slot);

/* ---- remote metrics (metrics_poll.c) ---- */

#define CP_METRICS_MAX_BODY (1024 * 1024)

typedef struct {
    double running;     /* fastdeploy:num_requests_running */
    double waiting;     /* fastdeploy:num_requests_waiting */
    double free_blocks; /* fastdeploy:available_gpu_block_num */
} cp_metrics_sample_t;

/*
 * Parse a Prometheus text exposition (pure). Each of the three gauges is the sum of its samples
 * over every label set; comments and other metrics are ignored. Returns 0, or -1 with the reason
 * in err: a gauge missing, or a sample of one of them malformed or not finite.
 */
int cp_metrics_parse(const char *text, size_t len, cp_metrics_sample_t *out, char *err, size_t errlen);

int cp_metrics_start(cp_t *cp);
void cp_metrics_stop(cp_t *cp);

/* ---- models (models_poll.c) ---- */

#define CP_MODELS_MAX_BODY (64 * 1024)

/*
 * Parse an OpenAI model list, {"object":"list","data":[{"id":..,"owned_by":..,"created":..}]}
 * (pure, strict: one JSON object and nothing after it, "data" an array of objects each with a
 * non-empty string "id" shorter than SHM_MODEL_ID_LEN without control characters). Repeated ids
 * are kept once. Returns 0 with *n models (at most max), or -1 with the reason in err (a list of
 * more than max models is one).
 */
int cp_models_parse(const char *text, size_t len, shm_model_info_t *out, unsigned max, unsigned *n, char *err,
                    size_t errlen);

int cp_models_start(cp_t *cp);
void cp_models_stop(cp_t *cp);

/* ---- upkeep of the segment (housekeeping.c) ---- */

#define CP_HOUSEKEEPING_MS 500 /* heartbeat, dead-DP reaping, publish retries, slot reclaim */

int cp_housekeeping_start(cp_t *cp);
void cp_housekeeping_stop(cp_t *cp);

/* ---- [stats] log line (stats.c) ---- */

int cp_stats_start(cp_t *cp);
void cp_stats_stop(cp_t *cp);

/* ---- log.output: file (logfiles.c) ---- */

int cp_logfiles_open(cp_t *cp); /* at start, before anything else is logged to stdout */
/* log.access-log into cp->access_log (./logs/access.log for file; opened here too, so the clean-up
 * sees its archives). Returns 0, or -1 with the reason in err. At start and at each reload. */
int cp_access_log_open(cp_t *cp, char *err, size_t errlen);
int cp_logfiles_start(cp_t *cp);
void cp_logfiles_stop(cp_t *cp);

/* ---- GET /health_generate (health_generate.c) ---- */

void cp_health_generate(cp_t *cp, h2o_req_t *req);

/* ---- prefix tree upkeep (evict.c) ---- */

int cp_evict_start(cp_t *cp);
void cp_evict_stop(cp_t *cp);

/* ---- data-plane supervision (supervise.c) ---- */

/* --dp_binary, else router.dp-binary, else "fd-router-dp" beside self_exe. */
int cp_dp_resolve_binary(const char *flag, const char *cfg, const char *self_exe, char *out, size_t outlen);
/* Delay before the next start after a DP died having run uptime_ms; updates the backoff. */
uint64_t cp_dp_restart_delay(uint64_t uptime_ms, uint64_t *backoff_ms);

/* Live DPs left by a previous CP, from the rows of shared memory. */
typedef struct {
    pid_t current;           /* the one to keep serving, 0 if none */
    pid_t stop[SHM_MAX_DPS]; /* to be stopped: an interrupted upgrade's other half */
    unsigned nstop;
    pid_t draining[SHM_MAX_DPS]; /* already draining: only watched until they exit */
    unsigned ndraining;
} cp_orphans_t;

typedef struct {
    pid_t pid;
    uint32_t state; /* SHM_DP_* */
    uint64_t started_at_ms;
} cp_dp_row_info_t;

/* Sort live DP rows into what a starting CP keeps, stops and waits for (pure): the newest SERVING
 * DP is kept (an upgrade that was cut short by the CP's death is completed), other SERVING and
 * STARTING ones are stopped; with no SERVING DP the newest STARTING one is kept. */
void cp_dp_classify(const cp_dp_row_info_t *rows, unsigned n, cp_orphans_t *out);
/* The live DP rows of the segment (a process with a --listen_fd argument), classified. */
void cp_dp_find_orphans(cp_t *cp, cp_orphans_t *out);
/* Take over the listening socket of an adopted DP (pidfd_getfd on its --listen_fd); -1 if not possible. */
int cp_dp_steal_listener(pid_t pid, unsigned port);
/* Watch the orphans found at start (the current one, those to stop and those draining). */
int cp_dp_adopt(cp_t *cp, const cp_orphans_t *o, char *err, size_t errlen);
/* No DP yet (before anything else touches cp->dp). */
void cp_dp_init(cp_t *cp);
/* Spawn the DP (as the current one) with the running binary. */
int cp_dp_spawn(cp_t *cp, char *err, size_t errlen);
/* Spawn `binary` as the candidate next to the current DP; the exits that concern it go to on_exit.
 * If it dies before being promoted with no DP serving, the previous binary is restarted. */
int cp_dp_spawn_candidate(cp_t *cp, const char *binary, cp_dp_exit_cb on_exit, char *err, size_t errlen);
/* The candidate serves: it becomes the current DP (running `binary`, which restarts use from now
 * on), the previous one gets SIGTERM with drain_secs (> 0) as the signal's value and is watched
 * until it exits. Returns the previous one's pid, 0 if none. */
pid_t cp_dp_promote(cp_t *cp, unsigned drain_secs, const char *binary);
/* The candidate failed: SIGKILL it (watched until it exits); with no DP serving, restart now. */
void cp_dp_abandon_candidate(cp_t *cp);
/* SIGTERM every DP, wait up to timeout_ms, then SIGKILL. */
void cp_dp_stop(cp_t *cp, unsigned timeout_ms);
/* Restart the current DP after `delay_ms` (0: now), unless one is running or being started. */
void cp_dp_schedule_restart(cp_t *cp, uint64_t delay_ms);

/* ---- hot upgrade (upgrade.c) ---- */

#define CP_UPGRADE_READY_TIMEOUT_MS 30000
#define CP_UPGRADE_KILL_GRACE_MS    5000

/* Start an upgrade to `binary` (NULL: the configured one). Returns 0, or an HTTP status (409: one
 * is running, 400: bad binary, 503: shutting down or spawn failed) with the reason in err. */
int cp_upgrade_start(cp_t *cp, const char *binary, unsigned drain_secs, unsigned ready_timeout_ms,
                     const char *trigger, char *err, size_t errlen);
bool cp_upgrade_running(const cp_t *cp);
const char *cp_upgrade_state_name(cp_upgrade_state_t s);
struct json_object *cp_upgrade_json(const cp_t *cp);
/* The old DP's drain report (control socket). */
void cp_upgrade_on_report(cp_t *cp, pid_t pid, uint64_t drained, uint64_t cut, uint64_t idle_closed,
                          uint64_t drain_ms);
void cp_upgrade_abort(cp_t *cp, const char *why); /* the CP stops */

/* ---- configuration reload (reload.c) ---- */

/* config.yaml at path ("" = none: the defaults) over the defaults, then the flags that override
 * it (--port, --splitwise). Returns 0, or -1 with "file:line: key: reason" in err. */
int cp_config_read(const char *path, const cp_args_t *a, fd_config_t *c, char *err, size_t errlen);
/* Before an upgrade spawns its DP: re-read config.yaml into cp->cfg and shared memory. -1 with the
 * reason in err (nothing changed) when the file is invalid. */
int cp_reload_prepare(cp_t *cp, char *err, size_t errlen);
/* The periodic jobs whose periods, thresholds or limits come from the configuration (health,
 * metrics and models polls, stats, eviction, log clean-up): started at start, stopped at
 * shutdown, started over by a reload. cp_config_jobs_start returns -1 if a timer failed. */
int cp_config_jobs_start(cp_t *cp);
void cp_config_jobs_stop(cp_t *cp);
void cp_reload_commit(cp_t *cp);   /* the new DP serves: the CP applies the configuration too */
void cp_reload_rollback(cp_t *cp); /* the upgrade failed: the previous configuration again */

/* ---- registry snapshot (snapshot.c) ---- */

/* <control socket's directory>/<segment name>.registry.json */
void cp_snapshot_path(const cp_t *cp, char *out, size_t outlen);
void cp_snapshot_write(cp_t *cp);
/* A rebuilt segment: register every valid entry of the snapshot (health UNKNOWN, drain flag and
 * register.yaml origin kept). Returns how many were carried over; says what happened in the log. */
unsigned cp_snapshot_restore(cp_t *cp);
int cp_snapshot_start(cp_t *cp); /* rewrites the file within a second of each change of the table */
void cp_snapshot_stop(cp_t *cp); /* writes it a last time */

/* ---- operator actions (actions.c) ---- */

typedef enum { CP_ACT_DRAIN, CP_ACT_UNDRAIN, CP_ACT_REMOVE } cp_action_t;
/* Returns an HTTP status (200, 404 no such instance) and a message for the operator. */
int cp_instance_action(cp_t *cp, cp_action_t act, const char *url, char *msg, size_t msglen);

#endif
