/*
 * controlplane/main.c - fd-router-cp: flags, startup order, event loop, shutdown.
 *
 * Startup: config -> shared memory (created, reused with its state, or rebuilt) -> configuration
 * published for the DP -> public listening socket -> control socket -> register.yaml ->
 * housekeeping, health, metrics-poll, models-poll and stats timers -> data plane (spawned, or
 * adopted if a previous CP's DP is still serving) -> loop. Any failure before the loop is fatal
 * with the Go router's messages where it had one.
 *
 * SIGHUP (systemd's ExecReload): config.yaml is re-read and a hot upgrade of the data plane to
 * the configured binary applies it (upgrade.c, reload.c), the same as `fdctl upgrade`.
 *
 * Shutdown (SIGINT/SIGTERM through a signalfd): the DP gets SIGTERM and a bounded time to drain,
 * the sockets close, the control socket file is removed. The shared-memory segment is kept (and
 * the log says so): the registry, drain flags and counters survive a restart of the router. A
 * start that fails removes the segment if it created it; a reused one is left as it was found.
 *
 * A segment reused with no data plane alive on it is the last run's: its health states are
 * stale, so every instance starts UNKNOWN (not selectable) and its first probe decides. With a
 * data plane still serving (adoption) the table is current and is kept as it is.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/names.h"
#include "common/version.h"
#include "controlplane/cp.h"
#include "controlplane/ctlsock.h"
#include "controlplane/housekeeping.h"
#include "controlplane/listen.h"
#include "controlplane/logfiles.h"
#include "controlplane/register.h"
#include "controlplane/registry.h"
#include "controlplane/reload.h"
#include "controlplane/snapshot.h"
#include "controlplane/supervise.h"
#include "controlplane/upgrade.h"
#include "controlplane/etcd.h"

#define DP_STOP_TIMEOUT_MS 10000

static cp_t g_cp; /* large (per-slot tables); static so everything stays reachable until exit */

static int resolve_names(cp_t *cp, const cp_args_t *a)
{
    if (a->shm_name)
        snprintf(cp->shm_name, sizeof(cp->shm_name), "%s", a->shm_name);
    else if (cp->cfg.shm_name[0])
        snprintf(cp->shm_name, sizeof(cp->shm_name), "%s", cp->cfg.shm_name);
    else
        shm_default_name(cp->shm_name, sizeof(cp->shm_name), cp->port);
    if (a->control_socket)
        snprintf(cp->control_socket, sizeof(cp->control_socket), "%s", a->control_socket);
    else if (cp->cfg.control_socket[0])
        snprintf(cp->control_socket, sizeof(cp->control_socket), "%s", cp->cfg.control_socket);
    else
        fd_default_control_socket(cp->control_socket, sizeof(cp->control_socket), cp->port);

    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    if (cp_dp_resolve_binary(a->dp_binary, cp->cfg.dp_binary, self, cp->dp_binary, sizeof(cp->dp_binary)) !=
        0) {
        LOG_ERROR("Failed to load config: data-plane binary path too long");
        return -1;
    }
    memcpy(cp->dp_binary_running, cp->dp_binary, sizeof(cp->dp_binary));
    return 0;
}

static int load_config(cp_t *cp, const cp_args_t *a)
{
    char err[512];
    cp->args = *a;
    if (a->config_path != NULL)
        snprintf(cp->config_path, sizeof(cp->config_path), "%s", a->config_path);
    if (cp_config_read(cp->config_path, a, &cp->cfg, err, sizeof(err)) != 0) {
        LOG_ERROR("Failed to load config: %s", err);
        return -1;
    }
    cp->port = cp->cfg.port;
    if (a->port != NULL && cp->port == 0) {
        LOG_ERROR("Failed to load config: invalid port: %s", a->port);
        return -1;
    }
    if (cp->port == 0) {
        LOG_ERROR("Failed to load config: failed to set router listen port");
        return -1;
    }
    cp->splitwise = cp->cfg.splitwise;
    cp->rebuild_shm = a->rebuild_shm;
    if (a->dp_drain_secs != NULL) {
        char *end;
        unsigned long v = strtoul(a->dp_drain_secs, &end, 10);
        if (a->dp_drain_secs[0] < '0' || a->dp_drain_secs[0] > '9' || *end != '\0' || v > 86400) {
            LOG_ERROR("Failed to load config: invalid --dp_drain_secs: %s", a->dp_drain_secs);
            return -1;
        }
        cp->dp_drain_secs = (unsigned)v;
    }
    fd_log_set_level_name(cp->cfg.log_level);
    fd_log_set_format_name(cp->cfg.log_format);
    if (cp_logfiles_open(cp) != 0)
        return -1;
    if (cp_access_log_open(cp, err, sizeof(err)) != 0) {
        LOG_ERROR("Failed to start: log.access-log: %s", err);
        return -1;
    }
    return resolve_names(cp, a);
}

static const char *open_result_name(shm_open_result_t how)
{
    switch (how) {
    case SHM_OPEN_CREATED:
        return "CREATED (new, empty)";
    case SHM_OPEN_REUSED:
        return "REUSED (registry, views and counters kept)";
    default:
        return "REBUILT (incompatible segment or changed configuration discarded): its counters and prefix "
               "tree are not carried over; its registry and drain flags come from the registry snapshot";
    }
}

static bool config_changed(const shm_seg_t *seg, const shm_config_t *now)
{
    shm_config_t was;
    return !shm_config_read(seg, &was) || memcmp(&was, now, sizeof(was)) != 0;
}

static bool dp_alive(const shm_seg_t *seg)
{
    for (unsigned i = 0; i < SHM_MAX_DPS; i++) {
        const shm_dp_row_t *r = shm_dp_row(seg, i);
        if (shm_dp_row_pid(r) > 0 && shm_proc_alive(shm_dp_row_pid(r), shm_dp_row_start_time(r)))
            return true;
    }
    return false;
}

/*
 * The configuration differs from the one the segment was published with. The segment is kept
 * (registry, drain flags, counters and prefix tree) and the new configuration published over the
 * old one; a data plane still running on it (adopted) keeps its own until it is upgraded. A
 * prefix tree hashed with another block size no longer matches and ages out. Only a change of
 * mode (splitwise on or off) with no data plane running rebuilds the segment, since none of its
 * instances has a role the other mode selects; the log says so.
 */
static int config_change(cp_t *cp, const shm_config_t *now, shm_open_result_t *how, char *err, size_t errlen)
{
    shm_config_t was;
    bool known = shm_config_read(&cp->seg, &was);
    if (dp_alive(&cp->seg)) {
        LOG_WARN("Shared memory %s: the configuration changed; the running data plane applies it at its next "
                 "upgrade (fdctl upgrade) or restart",
                 cp->shm_name);
        return 0;
    }
    if (!known || was.splitwise != now->splitwise) {
        shm_detach(&cp->seg);
        shm_destroy(cp->shm_name);
        if (shm_open_cp(&cp->seg, cp->shm_name, false, how, err, errlen) != 0)
            return -1;
        LOG_WARN(
            "Shared memory %s: the configuration changed, so the segment was rebuilt: splitwise mode is %s "
            "now, and the instances registered for the other mode were dropped",
            cp->shm_name, now->splitwise ? "on" : "off");
        *how = SHM_OPEN_REBUILT;
        return 0;
    }
    LOG_INFO(
        "Shared memory %s: the configuration changed; the registry, drain flags, counters and prefix tree "
        "are kept",
        cp->shm_name);
    if (was.cache_block_size != now->cache_block_size)
        LOG_WARN(
            "scheduler.cache-block-size changed (%u -> %u): the prefix tree's entries no longer match and "
            "age out (scheduler.eviction-duration-mins)",
            was.cache_block_size, now->cache_block_size);
    return 0;
}

static int open_shm(cp_t *cp, shm_open_result_t *how)
{
    char err[256];
    if (shm_open_cp(&cp->seg, cp->shm_name, cp->rebuild_shm, how, err, sizeof(err)) != 0) {
        LOG_ERROR("Failed to open shared memory %s: %s%s", cp->shm_name, err,
                  cp->rebuild_shm || !strstr(err, "incompatible")
                      ? ""
                      : " (an incompatible segment is replaced only with --rebuild_shm)");
        return -1;
    }
    shm_config_t sc;
    fd_config_to_shm(&cp->cfg, &sc);
    if (*how == SHM_OPEN_REUSED && config_changed(&cp->seg, &sc) &&
        config_change(cp, &sc, how, err, sizeof(err)) != 0) {
        LOG_ERROR("Failed to open shared memory %s: %s", cp->shm_name, err);
        return -1;
    }
    LOG_INFO("Shared memory %s: %s", cp->shm_name, open_result_name(*how));
    int32_t owner = shm_cp_pid(&cp->seg);
    if (owner != 0 && owner != getpid() && shm_proc_alive(owner, shm_cp_start_time(&cp->seg))) {
        LOG_ERROR("Failed to start: shared memory %s belongs to a running control plane (pid %d)",
                  cp->shm_name, (int)owner);
        shm_detach(&cp->seg);
        return -1;
    }
    shm_config_publish(&cp->seg, &sc);
    cp->start_time = shm_proc_start_time(getpid());
    cp->started_at_ms = shm_now_ms();
    shm_cp_claim(&cp->seg, (int32_t)getpid(), cp->start_time, cp->started_at_ms, cp->port);
    return 0;
}

/* Instances of the last run start UNKNOWN; one probe (either way) decides, whatever the thresholds. */
static void mark_stale_unknown(cp_t *cp)
{
    unsigned n = 0;
    uint64_t now = shm_now_ms();
    int ok = cp->cfg.health_success_threshold, fail = cp->cfg.health_failure_threshold;
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        shm_instance_t *in = shm_instance(&cp->seg, i);
        if (!shm_slot_is_live(in))
            continue;
        cp_registry_set_health(cp, i, SHM_HEALTH_UNKNOWN, now);
        in->consecutive_ok = ok > 1 ? (uint32_t)ok - 1 : 0;
        in->consecutive_fail = fail > 1 ? (uint32_t)fail - 1 : 0;
        n++;
    }
    if (n > 0)
        LOG_INFO(
            "Shared memory %s: %u instance(s) of the last run are unknown until their first health check",
            cp->shm_name, n);
}

#define LISTEN_RETRIES  20        /* a port in use at start: tried again 20 times ... */
#define LISTEN_RETRY_NS 100000000 /* ... 100 ms apart */

/* With an adopted DP the socket is taken back from it; otherwise (or if that fails) bound anew. */
static int open_listener(cp_t *cp, const cp_orphans_t *o)
{
    pid_t orphan = o->current ? o->current : o->nstop ? o->stop[0] : o->ndraining ? o->draining[0] : 0;
    char err[256];
    if (orphan != 0) {
        cp->listen_fd = cp_dp_steal_listener(orphan, cp->port);
        if (cp->listen_fd >= 0) {
            LOG_INFO("Took over the listening socket of the adopted data plane (pid %d)", (int)orphan);
            return 0;
        }
    }
    /* A data plane killed a moment ago can still hold the port after its pid looks dead: a
     * multi-threaded process's leader is a zombie before its last thread has released the
     * files. So a port in use is tried again for a while, as nginx does at start (before the
     * loop runs, so nothing else waits). */
    for (int tries = 0; (cp->listen_fd = cp_listen_open(cp->cfg.listen, cp->port, err, sizeof(err))) < 0 &&
                        errno == EADDRINUSE && tries < LISTEN_RETRIES;
         tries++)
        nanosleep(&(struct timespec){.tv_nsec = LISTEN_RETRY_NS}, NULL);
    if (cp->listen_fd >= 0)
        return 0;
    if (orphan != 0) {
        LOG_WARN(
            "The adopted data plane (pid %d) keeps the only listening socket (%s); it will be bound again "
            "when that data plane exits",
            (int)orphan, err);
        return 0;
    }
    LOG_ERROR("Failed to start server: %s", err);
    return -1;
}

static void on_signal(h2o_socket_t *sock, const char *err)
{
    cp_t *cp = sock->data;
    if (err != NULL)
        return;
    while (sock->input->size >= sizeof(struct signalfd_siginfo)) {
        struct signalfd_siginfo si;
        memcpy(&si, sock->input->bytes, sizeof(si));
        h2o_buffer_consume(&sock->input, sizeof(si));
        if (si.ssi_signo == SIGHUP) {
            char why[512];
            LOG_INFO("Received SIGHUP: reloading %s and upgrading the data plane",
                     cp->config_path[0] ? cp->config_path : "the configuration");
            if (cp_upgrade_start(cp, cp->dp_binary, cp->dp_drain_secs, 0, "SIGHUP", why, sizeof(why)) != 0)
                LOG_ERROR("Upgrade on SIGHUP not started: %s", why);
            continue;
        }
        if (!cp->stopping)
            LOG_INFO("Received %s, shutting down", strsignal((int)si.ssi_signo));
        cp->stopping = true;
    }
}

static int setup_signals(cp_t *cp)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        LOG_ERROR("signalfd: %s", strerror(errno));
        return -1;
    }
    cp->sigsock = h2o_evloop_socket_create(cp->loop, fd, 0);
    cp->sigsock->data = cp;
    h2o_socket_read_start(cp->sigsock, on_signal);
    return 0;
}

static void publish_initial_views(cp_t *cp)
{
    if (shm_wlock(&cp->seg) != 0) {
        LOG_ERROR("Shared-memory writer lock is unrecoverable");
        return;
    }
    if (shm_publish_views(&cp->seg) != 0)
        cp->views_dirty = true;
    shm_wunlock(&cp->seg);
}

static int start_services(cp_t *cp, const cp_orphans_t *o)
{
    char err[512];
    if (cp_ctlsock_open(cp, err, sizeof(err)) != 0) {
        LOG_ERROR("Failed to start: %s", err);
        return -1;
    }
    double t = cp->cfg.health_check_timeout_secs;
    cp_prober_init(&cp->prober, cp->loop, t > 0 ? (unsigned)(t * 1000.0) : 5000);
    cp->prober_ready = true;
    publish_initial_views(cp);
    if (strcmp(cp->cfg.registry_backend, "etcd") == 0 && cp_etcd_start(cp, err, sizeof(err)) != 0) {
        LOG_ERROR("Failed to start: %s", err);
        return -1;
    }
    if (cp->cfg.register_path[0] != '\0')
        cp_register_load_file(cp, cp->cfg.register_path);
    if (cp_housekeeping_start(cp) != 0 || cp_config_jobs_start(cp) != 0 || cp_snapshot_start(cp) != 0)
        return -1;
    int rc = o->current || o->nstop || o->ndraining ? cp_dp_adopt(cp, o, err, sizeof(err)) : 0;
    if (rc == 0 && o->current == 0)
        rc = cp_dp_spawn(cp, err, sizeof(err));
    if (rc != 0) {
        LOG_ERROR("Failed to start data plane: %s", err);
        return -1;
    }
    return 0;
}

static void shutdown_cp(cp_t *cp)
{
    cp_housekeeping_stop(cp);
    cp_config_jobs_stop(cp);
    cp_snapshot_stop(cp);
    if (cp->prober_ready)
        cp_register_abort_all(cp);
    cp_upgrade_abort(cp, "the control plane stopped during the upgrade");
    if (cp->etcd != NULL)
        cp_etcd_stop(cp);
    cp_ctlsock_close(cp);
    h2o_evloop_run(cp->loop, 0); /* flush the answers just queued */
    cp_dp_stop(cp, DP_STOP_TIMEOUT_MS);
    if (cp->prober_ready)
        cp_prober_dispose(&cp->prober);
    cp->prober_ready = false;
    if (cp->sigsock != NULL) {
        h2o_socket_read_stop(cp->sigsock);
        h2o_socket_close(cp->sigsock);
        cp->sigsock = NULL;
    }
    if (cp->listen_fd >= 0)
        close(cp->listen_fd);
    cp->listen_fd = -1;
    if (cp->seg.hdr != NULL) {
        shm_cp_release(&cp->seg, (int32_t)getpid());
        shm_detach(&cp->seg);
    }
}

/* A health cycle holds one socket per instance (up to SHM_MAX_INSTANCES) at once; the common
 * soft limit of 1024 descriptors is too low for that. The DP inherits the raised limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max && rl.rlim_cur < 65536) {
        rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            LOG_WARN("Cannot raise the open-files limit: %s", strerror(errno));
    }
}

static int run(cp_t *cp)
{
    if (access(cp->dp_binary, X_OK) != 0) {
        LOG_ERROR("Failed to start data plane: %s: %s", cp->dp_binary, strerror(errno));
        return 1;
    }
    if (cp_ctlsock_in_use(cp->control_socket)) {
        LOG_ERROR("Failed to start: control socket %s is in use by another running fd-router-cp",
                  cp->control_socket);
        return 1;
    }
    shm_open_result_t how;
    if (open_shm(cp, &how) != 0)
        return 1;
    /* a rebuilt segment gets the registry back from its snapshot; one probe decides each instance */
    unsigned restored = how == SHM_OPEN_REBUILT ? cp_snapshot_restore(cp) : 0;
    if ((how == SHM_OPEN_REUSED && !dp_alive(&cp->seg)) || restored > 0)
        mark_stale_unknown(cp);
    cp->loop = h2o_evloop_create();
    cp_orphans_t orphans;
    memset(&orphans, 0, sizeof(orphans));
    if (how == SHM_OPEN_REUSED)
        cp_dp_find_orphans(cp, &orphans);
    if (setup_signals(cp) != 0 || open_listener(cp, &orphans) != 0 || start_services(cp, &orphans) != 0) {
        shutdown_cp(cp);
        if (how != SHM_OPEN_REUSED && shm_destroy(cp->shm_name) == 0)
            LOG_INFO("Shared memory %s: removed (created by this failed start)", cp->shm_name);
        else if (how == SHM_OPEN_REUSED)
            LOG_INFO("Shared memory %s: kept as found (it holds an earlier run's registry)", cp->shm_name);
        return 1;
    }
    LOG_INFO("fd-router control plane ready: port %u, %s mode, shm %s, control socket %s, pid %d", cp->port,
             cp->splitwise ? "splitwise" : "mixed", cp->shm_name, cp->control_socket, (int)getpid());
    while (!cp->stopping)
        h2o_evloop_run(cp->loop, INT32_MAX);
    shutdown_cp(cp);
    LOG_INFO(
        "Control plane stopped; shared memory %s kept: the next start reuses its registry, drain flags and "
        "counters (rm /dev/shm%s to start empty)",
        cp->shm_name, cp->shm_name);
    return 0;
}

int main(int argc, char **argv)
{
    cp_args_t a;
    char err[256];
    const char *prog = "fd-router-cp";
    if (cp_args_parse(argc, argv, &a, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        cp_usage(stderr, prog);
        return 2;
    }
    if (a.help) {
        cp_usage(stdout, prog);
        return 0;
    }
    if (a.version) {
        printf("fd-router-cp %s\n", FD_ROUTER_VERSION);
        return 0;
    }
    cp_t *cp = &g_cp;
    cp->listen_fd = -1;
    cp_dp_init(cp);
    h2o_linklist_init_anchor(&cp->reg_jobs);
    if (load_config(cp, &a) != 0)
        return 1;

    /* blocked before any thread exists (h2o's resolver threads inherit the mask); read by signalfd */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &cp->orig_sigmask);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    return run(cp);
}
