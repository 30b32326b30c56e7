/*
 * controlplane/supervise.c - the data-plane processes' life: spawn, watch, restart, adopt, stop.
 *
 * A DP is fork+exec'd with the public listening socket inherited (the only descriptor it
 * inherits besides stdio) and is watched through a pidfd on the CP loop. The CP knows up to
 * three kinds of DP at once:
 *   cur       the serving one; when it dies, whatever the reason, its load-counter row is
 *             released at once (a crash never leaks load) and a new one is started: immediately
 *             if it had run for a while, after a growing backoff (up to a few seconds) if it keeps
 *             dying right after start, so a crash loop cannot spin;
 *   cand      an upgrade's new DP until it reports ready (upgrade.c decides when it is promoted
 *             or abandoned, through cp_dp_promote and cp_dp_abandon_candidate);
 *   retiring  DPs that were sent SIGTERM and are draining; their exit ends an upgrade.
 * This file is the only writer of cp->dp: the upgrade drives the candidate through the calls
 * above and hears of exits through the callback it gave, so supervise.c does not call upgrade.c.
 *
 * A DP is deliberately not killed when the CP dies: it keeps serving from shared memory. A CP
 * that starts while DPs are alive adopts them instead of starting another one (the rows of shared
 * memory say which serve, start or drain), and takes its own copy of the listening socket back
 * with pidfd_getfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/listen.h"
#include "controlplane/supervise.h"

#define DP_NAME           "fd-router-dp"
#define DP_QUICK_DEATH_MS 1000
#define DP_BACKOFF_FIRST  250
#define DP_BACKOFF_MAX    4000
#define DP_KILL_GRACE_MS  2000

int cp_dp_resolve_binary(const char *flag, const char *cfg, const char *self_exe, char *out, size_t outlen)
{
    int n;
    if (flag != NULL && flag[0] != '\0') {
        n = snprintf(out, outlen, "%s", flag);
    } else if (cfg != NULL && cfg[0] != '\0') {
        n = snprintf(out, outlen, "%s", cfg);
    } else {
        const char *slash = self_exe ? strrchr(self_exe, '/') : NULL;
        if (slash == NULL)
            n = snprintf(out, outlen, "%s", DP_NAME);
        else
            n = snprintf(out, outlen, "%.*s/%s", (int)(slash - self_exe), self_exe, DP_NAME);
    }
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

uint64_t cp_dp_restart_delay(uint64_t uptime_ms, uint64_t *backoff_ms)
{
    if (uptime_ms >= DP_QUICK_DEATH_MS) {
        *backoff_ms = 0;
        return 0;
    }
    *backoff_ms = *backoff_ms ? *backoff_ms * 2 : DP_BACKOFF_FIRST;
    if (*backoff_ms > DP_BACKOFF_MAX)
        *backoff_ms = DP_BACKOFF_MAX;
    return *backoff_ms;
}

static int pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* ---- orphan detection and adoption ---- */

/* The DP was started with "--listen_fd N" (or "--listen_fd=N"): find N in its command line. */
static int listen_fd_of(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    for (char *a = buf; a < buf + n; a += strlen(a) + 1) {
        const char *v = NULL;
        if (strcmp(a, "--listen_fd") == 0 && a + strlen(a) + 1 < buf + n)
            v = a + strlen(a) + 1;
        else if (strncmp(a, "--listen_fd=", 12) == 0)
            v = a + 12;
        if (v != NULL) {
            char *end;
            long fdn = strtol(v, &end, 10);
            return (*end == '\0' && fdn >= 0 && fdn < INT32_MAX) ? (int)fdn : -1;
        }
    }
    return -1;
}

void cp_dp_classify(const cp_dp_row_info_t *rows, unsigned n, cp_orphans_t *out)
{
    memset(out, 0, sizeof(*out));
    int keep = -1;
    for (uint32_t want = SHM_DP_SERVING;; want = SHM_DP_STARTING) {
        for (unsigned i = 0; i < n; i++)
            if (rows[i].state == want && (keep < 0 || rows[i].started_at_ms > rows[keep].started_at_ms))
                keep = (int)i;
        if (keep >= 0 || want == SHM_DP_STARTING)
            break;
    }
    for (unsigned i = 0; i < n; i++) {
        if ((int)i == keep)
            out->current = rows[i].pid;
        else if (rows[i].state == SHM_DP_DRAINING)
            out->draining[out->ndraining++] = rows[i].pid;
        else
            out->stop[out->nstop++] = rows[i].pid;
    }
}

void cp_dp_find_orphans(cp_t *cp, cp_orphans_t *out)
{
    cp_dp_row_info_t rows[SHM_MAX_DPS];
    unsigned n = 0;
    for (unsigned i = 0; i < SHM_MAX_DPS; i++) {
        const shm_dp_row_t *r = shm_dp_row(&cp->seg, i);
        pid_t pid = shm_dp_row_pid(r);
        if (pid <= 0 || pid == getpid() || !shm_proc_alive(pid, shm_dp_row_start_time(r)) ||
            listen_fd_of(pid) < 0)
            continue;
        rows[n].pid = pid;
        rows[n].state = shm_dp_row_state(r);
        rows[n].started_at_ms = shm_dp_row_started_at_ms(r);
        n++;
    }
    cp_dp_classify(rows, n, out);
}

int cp_dp_steal_listener(pid_t pid, unsigned port)
{
    int target = listen_fd_of(pid);
    if (target < 0)
        return -1;
    int pidfd = pidfd_open(pid);
    if (pidfd < 0)
        return -1;
    int fd = (int)syscall(SYS_pidfd_getfd, pidfd, target, 0);
    close(pidfd);
    if (fd < 0)
        return -1;
    if (!cp_listen_is_ours(fd, port)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- watching ---- */

static void on_exit_event(h2o_socket_t *sock, const char *err);

static void watch(cp_t *cp, cp_proc_t *p, pid_t pid, int pidfd, bool is_child)
{
    p->cp = cp;
    p->pid = pid;
    p->pidfd = pidfd;
    p->is_child = is_child;
    p->started_mono_ms = fd_mono_ms();
    p->watch = h2o_evloop_socket_create(cp->loop, pidfd, 0);
    p->watch->data = p;
    h2o_socket_read_start(p->watch, on_exit_event);
}

static void unwatch(cp_proc_t *p)
{
    if (p->watch != NULL) {
        h2o_socket_read_stop(p->watch);
        h2o_socket_close(p->watch); /* closes the pidfd */
    }
    p->watch = NULL;
    p->pidfd = -1;
    p->pid = 0;
}

/* Move a watched process record (its pidfd socket points at the record). */
static void move_proc(cp_proc_t *dst, cp_proc_t *src)
{
    *dst = *src;
    if (dst->watch != NULL)
        dst->watch->data = dst;
    memset(src, 0, sizeof(*src));
    src->pidfd = -1;
}

static void describe_exit(const siginfo_t *si, bool known, char *out, size_t outlen)
{
    if (!known)
        snprintf(out, outlen, "exited (status unknown: not a child of this control plane)");
    else if (si->si_code == CLD_EXITED)
        snprintf(out, outlen, "exited with status %d", si->si_status);
    else
        snprintf(out, outlen, "was killed by signal %d (%s)%s", si->si_status, strsignal(si->si_status),
                 si->si_code == CLD_DUMPED ? ", core dumped" : "");
}

/* Reap the child (if ours) and describe how it ended. Returns false if it has not exited. */
static bool collect_exit(cp_proc_t *p, char *how, size_t howlen)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (p->is_child) {
        if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0)
            return false;
        describe_exit(&si, true, how, howlen);
        return true;
    }
    struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
    if (poll(&pf, 1, 0) != 1)
        return false;
    describe_exit(&si, false, how, howlen);
    return true;
}

static void on_restart_timer(cp_timer_t *t);

void cp_dp_schedule_restart(cp_t *cp, uint64_t delay_ms)
{
    if (delay_ms == 0) {
        on_restart_timer(&cp->dp.restart_timer);
        return;
    }
    LOG_INFO("Restarting the data plane in %llu ms", (unsigned long long)delay_ms);
    cp_timer_arm(&cp->dp.restart_timer, delay_ms, 0);
}

static void on_restart_timer(cp_timer_t *t)
{
    cp_t *cp = t->data;
    /* an upgrade's new DP, when there is one, takes the place instead */
    if (cp->stopping || cp->dp.cur.pid != 0 || cp->dp.cand.pid != 0)
        return;
    char err[256];
    cp->dp.restarts++;
    if (cp_dp_spawn(cp, err, sizeof(err)) != 0) {
        LOG_ERROR("Failed to restart the data plane: %s", err);
        cp_dp_schedule_restart(cp, cp_dp_restart_delay(0, &cp->dp.backoff_ms));
    }
}

static void on_current_exit(cp_t *cp, pid_t pid, uint64_t uptime, const char *how)
{
    LOG_ERROR("Data plane (pid %d) %s after %llu ms; its load counters were released", (int)pid, how,
              (unsigned long long)uptime);
    uint64_t delay = cp_dp_restart_delay(uptime, &cp->dp.backoff_ms);
    if (cp->dp.cand.pid != 0) {
        cp->dp.on_exit(cp, CP_DP_CURRENT, pid, how); /* the upgrade's new DP will serve */
        return;
    }
    cp_dp_schedule_restart(cp, delay);
}

/* An upgrade's new DP ended (before it was ready, or stopped by the upgrade): with no DP serving,
 * the previous binary is started again like after any crash. */
static void on_candidate_exit(cp_t *cp, pid_t pid, const char *how)
{
    cp->dp.on_exit(cp, CP_DP_CANDIDATE, pid, how);
    if (cp->dp.cur.pid == 0)
        cp_dp_schedule_restart(cp, cp_dp_restart_delay(0, &cp->dp.backoff_ms));
}

static void on_retiring_exit(cp_t *cp, pid_t pid, const char *how)
{
    if (cp->dp.on_exit == NULL || !cp->dp.on_exit(cp, CP_DP_RETIRING, pid, how))
        LOG_INFO("Data plane (pid %d), stopped earlier, %s", (int)pid, how);
}

static void on_exit_event(h2o_socket_t *sock, const char *err)
{
    (void)err; /* a pidfd cannot be read: readiness alone means the process ended */
    cp_proc_t *p = sock->data;
    cp_t *cp = p->cp;
    h2o_buffer_consume(&sock->input, sock->input->size);
    char how[128];
    if (!collect_exit(p, how, sizeof(how)))
        return;
    pid_t pid = p->pid;
    uint64_t uptime = fd_mono_ms() - p->started_mono_ms;
    unwatch(p);
    shm_reap_dead(&cp->seg);
    if (cp->stopping)
        return;
    if (p == &cp->dp.cur)
        on_current_exit(cp, pid, uptime, how);
    else if (p == &cp->dp.cand)
        on_candidate_exit(cp, pid, how);
    else
        on_retiring_exit(cp, pid, how);
}

static int ensure_timer(cp_t *cp)
{
    if (cp->dp.restart_timer.sock != NULL)
        return 0;
    return cp_timer_init(&cp->dp.restart_timer, cp->loop, on_restart_timer, cp);
}

static cp_proc_t *free_retiring(cp_t *cp)
{
    for (unsigned i = 0; i < CP_MAX_RETIRING; i++)
        if (cp->dp.retiring[i].pid == 0)
            return &cp->dp.retiring[i];
    return NULL;
}

static int adopt_one(cp_t *cp, cp_proc_t *p, pid_t pid, char *err, size_t errlen)
{
    int pidfd = pidfd_open(pid);
    if (pidfd < 0) {
        snprintf(err, errlen, "pidfd_open(%d): %s", (int)pid, strerror(errno));
        return -1;
    }
    watch(cp, p, pid, pidfd, false);
    return 0;
}

int cp_dp_adopt(cp_t *cp, const cp_orphans_t *o, char *err, size_t errlen)
{
    if (ensure_timer(cp) != 0) {
        snprintf(err, errlen, "cannot create a timer");
        return -1;
    }
    if (o->current && adopt_one(cp, &cp->dp.cur, o->current, err, errlen) != 0)
        return -1;
    if (o->current)
        LOG_INFO("Adopted the running data plane (pid %d) left by a previous control plane", (int)o->current);
    for (unsigned i = 0; i < o->ndraining + o->nstop; i++) {
        bool draining = i < o->ndraining;
        pid_t pid = draining ? o->draining[i] : o->stop[i - o->ndraining];
        cp_proc_t *slot = free_retiring(cp);
        if (slot == NULL || adopt_one(cp, slot, pid, err, errlen) != 0)
            continue;
        if (draining) {
            LOG_INFO("Data plane (pid %d) left by a previous control plane is draining; waiting for it",
                     (int)pid);
        } else {
            LOG_INFO("Stopping data plane (pid %d): the other half of an upgrade the previous control plane "
                     "did not finish",
                     (int)pid);
            kill(pid, SIGTERM);
        }
    }
    return 0;
}

/* ---- spawning ---- */

static void exec_child(cp_t *cp, char **argv, int errpipe)
{
    sigprocmask(SIG_SETMASK, &cp->orig_sigmask, NULL);
    signal(SIGPIPE, SIG_DFL);
    /* the DP inherits stdio and the listening socket, nothing else */
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    fcntl(cp->listen_fd, F_SETFD, 0);
    execv(argv[0], argv);
    int e = errno;
    ssize_t w = write(errpipe, &e, sizeof(e));
    (void)w;
    _exit(127);
}

static int ensure_listener(cp_t *cp, char *err, size_t errlen)
{
    if (cp->listen_fd >= 0)
        return 0;
    /* the socket stayed with an adopted DP that has now exited: bind our own */
    char why[200];
    cp->listen_fd = cp_listen_open(cp->cfg.listen, cp->port, why, sizeof(why));
    if (cp->listen_fd < 0) {
        snprintf(err, errlen, "Failed to start server: %s", why);
        return -1;
    }
    return 0;
}

static int spawn_proc(cp_t *cp, cp_proc_t *p, const char *binary, char *err, size_t errlen)
{
    if (ensure_timer(cp) != 0) {
        snprintf(err, errlen, "cannot create a timer");
        return -1;
    }
    if (ensure_listener(cp, err, errlen) != 0)
        return -1;
    char fdbuf[16], bin[PATH_MAX];
    snprintf(fdbuf, sizeof(fdbuf), "%d", cp->listen_fd);
    snprintf(bin, sizeof(bin), "%s", binary);
    char *argv[] = {bin,           "--shm_name",   cp->shm_name,       "--control_socket", cp->control_socket,
                    "--listen_fd", fdbuf,          "--log_level",      cp->cfg.log_level,  "--log_file",
                    cp->log_file,  "--log_format", cp->cfg.log_format, "--access_log",     cp->access_log,
                    NULL};
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(errpipe[0]);
        close(errpipe[1]);
        return -1;
    }
    if (pid == 0)
        exec_child(cp, argv, errpipe[1]);
    close(errpipe[1]);
    int child_errno = 0;
    ssize_t n;
    while ((n = read(errpipe[0], &child_errno, sizeof(child_errno))) < 0 && errno == EINTR)
        ;
    close(errpipe[0]);
    if (n == (ssize_t)sizeof(child_errno)) {
        waitpid(pid, NULL, 0);
        snprintf(err, errlen, "exec %s: %s", bin, strerror(child_errno));
        return -1;
    }
    int pidfd = pidfd_open(pid);
    if (pidfd < 0) {
        snprintf(err, errlen, "pidfd_open(%d): %s", (int)pid, strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    watch(cp, p, pid, pidfd, true);
    LOG_INFO("Started data plane %s (pid %d)", bin, (int)pid);
    return 0;
}

void cp_dp_init(cp_t *cp)
{
    memset(&cp->dp, 0, sizeof(cp->dp));
    cp->dp.cur.pidfd = cp->dp.cand.pidfd = -1;
}

int cp_dp_spawn(cp_t *cp, char *err, size_t errlen)
{
    return spawn_proc(cp, &cp->dp.cur, cp->dp_binary_running, err, errlen);
}

int cp_dp_spawn_candidate(cp_t *cp, const char *binary, cp_dp_exit_cb on_exit, char *err, size_t errlen)
{
    cp->dp.on_exit = on_exit;
    return spawn_proc(cp, &cp->dp.cand, binary, err, errlen);
}

/* SIGTERM (with the drain time as the signal's value when > 0) and move p to the retiring list. */
static void retire(cp_t *cp, cp_proc_t *p, unsigned drain_secs)
{
    pid_t pid = p->pid;
    if (pid == 0)
        return;
    union sigval v = {.sival_int = (int)drain_secs};
    if (drain_secs > 0 ? sigqueue(pid, SIGTERM, v) : kill(pid, SIGTERM))
        LOG_WARN("Cannot signal data plane (pid %d): %s", (int)pid, strerror(errno));
    cp_proc_t *slot = free_retiring(cp);
    if (slot == NULL) { /* cannot happen with one row per DP; never lose the pidfd */
        LOG_ERROR("Too many data planes draining; killing pid %d", (int)pid);
        kill(pid, SIGKILL);
        return;
    }
    move_proc(slot, p);
}

pid_t cp_dp_promote(cp_t *cp, unsigned drain_secs, const char *binary)
{
    pid_t old = cp->dp.cur.pid;
    if (old != 0)
        retire(cp, &cp->dp.cur, drain_secs);
    move_proc(&cp->dp.cur, &cp->dp.cand);
    cp->dp.backoff_ms = 0;
    snprintf(cp->dp_binary_running, sizeof(cp->dp_binary_running), "%s", binary);
    return old;
}

void cp_dp_abandon_candidate(cp_t *cp)
{
    pid_t pid = cp->dp.cand.pid;
    if (pid == 0)
        return;
    retire(cp, &cp->dp.cand, 1);
    kill(pid, SIGKILL);
    if (cp->dp.cur.pid == 0)
        cp_dp_schedule_restart(cp, 0);
}

/* ---- shutdown ---- */

static bool wait_exit(int pidfd, uint64_t deadline)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    for (;;) {
        uint64_t now = fd_mono_ms();
        int left = now >= deadline ? 0 : (int)(deadline - now);
        int rc = poll(&p, 1, left);
        if (rc == 1)
            return true;
        if (rc == 0 || errno != EINTR)
            return false;
    }
}

static void stop_one(cp_proc_t *p, uint64_t deadline)
{
    if (!wait_exit(p->pidfd, deadline)) {
        LOG_WARN("Data plane (pid %d) still running at the stop deadline: killing it", (int)p->pid);
        kill(p->pid, SIGKILL);
        wait_exit(p->pidfd, fd_mono_ms() + DP_KILL_GRACE_MS);
    }
    if (p->is_child) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG);
    }
    unwatch(p);
}

void cp_dp_stop(cp_t *cp, unsigned timeout_ms)
{
    cp_timer_dispose(&cp->dp.restart_timer);
    cp_proc_t *all[2 + CP_MAX_RETIRING] = {&cp->dp.cur, &cp->dp.cand};
    for (unsigned i = 0; i < CP_MAX_RETIRING; i++)
        all[2 + i] = &cp->dp.retiring[i];
    for (unsigned i = 0; i < 2 + CP_MAX_RETIRING; i++) {
        if (all[i]->pid == 0)
            continue;
        LOG_INFO("Stopping the data plane (pid %d)", (int)all[i]->pid);
        kill(all[i]->pid, SIGTERM);
    }
    uint64_t deadline = fd_mono_ms() + timeout_ms;
    for (unsigned i = 0; i < 2 + CP_MAX_RETIRING; i++)
        if (all[i]->pid != 0)
            stop_one(all[i], deadline);
    shm_reap_dead(&cp->seg);
}
