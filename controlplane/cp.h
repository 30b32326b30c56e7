/*
 * controlplane/cp.h - the control plane (fd-router-cp): its shared state (struct cp) and the map
 * of controlplane/. Each file's contract is in its own header (controlplane/<file>.h); this one
 * includes only the building blocks struct cp is made of (args.h, timer.h, probe.h, slotjob.h).
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
 *   errmsg.c     a parser's failure reason into a bounded buffer
 *   respond.c    complete JSON answers of the control socket's handlers
 *   admit.c      this host's rules on an instance's address, for every source of registrations
 *   ctlsock.c    the control-socket HTTP server (/register, /status, operator actions)
 *   actions.c    operator actions on instances: drain, undrain, remove
 *   register.c   /register and register.yaml
 *   registry.c   upserts, retirements and view publication in shm
 *   health.c     the periodic health checks and their threshold state machine
 *   housekeeping.c  the CP heartbeat, dead-DP reaping, publish retries and slot reclaim (own timer)
 *   metrics_poll.c  the periodic /metrics polls, published into shm for the remote policies
 *   sharing.c    whether other senders share the instances, judged from those polls, into shm
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

#include "common/clock.h"
#include "common/config.h"
#include "common/instance_info.h"
#include "controlplane/args.h"
#include "controlplane/probe.h"
#include "controlplane/sharing.h"
#include "controlplane/slotjob.h"
#include "controlplane/timer.h"
#include "shm/shm.h"

struct json_object;

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
    cp_sharing_t sharing; /* folded once per metrics round (sharing.c) */

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

#endif
