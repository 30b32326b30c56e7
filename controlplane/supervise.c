/*
 * controlplane/supervise.c - the data plane's life: spawn, watch, restart, adopt, stop.
 *
 * The DP is fork+exec'd with the public listening socket inherited (the only descriptor it
 * inherits besides stdio) and is watched through a pidfd on the CP loop. When it dies, whatever
 * the reason, its load-counter row is released at once (a crash never leaks load) and a new DP
 * is started: immediately if the old one had run for a while, after a growing backoff (up to a
 * few seconds) if it keeps dying right after start, so a crash loop cannot spin.
 *
 * A DP is deliberately not killed when the CP dies: it keeps serving from shared memory. A CP
 * that starts while such a DP is alive adopts it instead of starting a second one, and takes its
 * own copy of the listening socket back from it with pidfd_getfd.
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

#define DP_NAME           "fd-router-dp"
#define DP_QUICK_DEATH_MS 1000
#define DP_BACKOFF_FIRST  250
#define DP_BACKOFF_MAX    4000
#define DP_KILL_GRACE_MS  2000

uint64_t cp_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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

/* /proc/<pid>/comm holds at most 15 characters of the executable's name. */
static bool runs_binary(pid_t pid, const char *binary)
{
    char path[64], comm[32];
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool got = fgets(comm, sizeof(comm), f) != NULL;
    fclose(f);
    if (!got)
        return false;
    comm[strcspn(comm, "\n")] = '\0';
    const char *base = strrchr(binary, '/');
    base = base ? base + 1 : binary;
    return strncmp(comm, base, 15) == 0;
}

pid_t cp_dp_find_orphan(cp_t *cp)
{
    for (unsigned i = 0; i < SHM_MAX_DPS; i++) {
        const shm_dp_row_t *r = shm_dp_row(&cp->seg, i);
        pid_t pid = __atomic_load_n(&r->pid, __ATOMIC_ACQUIRE);
        if (pid <= 0 || pid == getpid() || !shm_proc_alive(pid, r->start_time))
            continue;
        if (runs_binary(pid, cp->dp_binary))
            return pid;
    }
    return 0;
}

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

static void on_dp_exit(h2o_socket_t *sock, const char *err);

static void watch(cp_t *cp, pid_t pid, int pidfd, bool is_child)
{
    cp->dp.pid = pid;
    cp->dp.pidfd = pidfd;
    cp->dp.is_child = is_child;
    cp->dp.started_mono_ms = cp_mono_ms();
    cp->dp.watch = h2o_evloop_socket_create(cp->loop, pidfd, 0);
    cp->dp.watch->data = cp;
    h2o_socket_read_start(cp->dp.watch, on_dp_exit);
}

static void unwatch(cp_t *cp)
{
    if (cp->dp.watch != NULL) {
        h2o_socket_read_stop(cp->dp.watch);
        h2o_socket_close(cp->dp.watch); /* closes the pidfd */
    }
    cp->dp.watch = NULL;
    cp->dp.pidfd = -1;
    cp->dp.pid = 0;
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
static bool collect_exit(cp_t *cp, char *how, size_t howlen)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (cp->dp.is_child) {
        if (waitid((idtype_t)P_PIDFD, (id_t)cp->dp.pidfd, &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0)
            return false;
        describe_exit(&si, true, how, howlen);
        return true;
    }
    struct pollfd p = {.fd = cp->dp.pidfd, .events = POLLIN};
    if (poll(&p, 1, 0) != 1)
        return false;
    describe_exit(&si, false, how, howlen);
    return true;
}

static void on_restart_timer(cp_timer_t *t);

static void schedule_restart(cp_t *cp, uint64_t delay_ms)
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
    if (cp->stopping || cp->dp.pid != 0)
        return;
    char err[256];
    cp->dp.restarts++;
    if (cp_dp_spawn(cp, err, sizeof(err)) != 0) {
        LOG_ERROR("Failed to restart the data plane: %s", err);
        schedule_restart(cp, cp_dp_restart_delay(0, &cp->dp.backoff_ms));
    }
}

static void on_dp_exit(h2o_socket_t *sock, const char *err)
{
    (void)err; /* a pidfd cannot be read: readiness alone means the process ended */
    cp_t *cp = sock->data;
    h2o_buffer_consume(&sock->input, sock->input->size);
    char how[128];
    if (!collect_exit(cp, how, sizeof(how)))
        return;
    pid_t pid = cp->dp.pid;
    uint64_t uptime = cp_mono_ms() - cp->dp.started_mono_ms;
    unwatch(cp);
    shm_reap_dead(&cp->seg);
    if (cp->stopping)
        return;
    LOG_ERROR("Data plane (pid %d) %s after %llu ms; its load counters were released", (int)pid, how,
              (unsigned long long)uptime);
    schedule_restart(cp, cp_dp_restart_delay(uptime, &cp->dp.backoff_ms));
}

static int ensure_timer(cp_t *cp)
{
    if (cp->dp.restart_timer.sock != NULL)
        return 0;
    return cp_timer_init(&cp->dp.restart_timer, cp->loop, on_restart_timer, cp);
}

int cp_dp_adopt(cp_t *cp, pid_t pid, char *err, size_t errlen)
{
    if (ensure_timer(cp) != 0) {
        snprintf(err, errlen, "cannot create a timer");
        return -1;
    }
    int pidfd = pidfd_open(pid);
    if (pidfd < 0) {
        snprintf(err, errlen, "pidfd_open(%d): %s", (int)pid, strerror(errno));
        return -1;
    }
    watch(cp, pid, pidfd, false);
    LOG_INFO("Adopted the running data plane (pid %d) left by a previous control plane", (int)pid);
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

int cp_dp_spawn(cp_t *cp, char *err, size_t errlen)
{
    if (ensure_timer(cp) != 0) {
        snprintf(err, errlen, "cannot create a timer");
        return -1;
    }
    if (ensure_listener(cp, err, errlen) != 0)
        return -1;
    char fdbuf[16];
    snprintf(fdbuf, sizeof(fdbuf), "%d", cp->listen_fd);
    char *argv[] = {cp->dp_binary,      "--shm_name",  cp->shm_name, "--control_socket",
                    cp->control_socket, "--listen_fd", fdbuf,        NULL};
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
        snprintf(err, errlen, "exec %s: %s", cp->dp_binary, strerror(child_errno));
        return -1;
    }
    int pidfd = pidfd_open(pid);
    if (pidfd < 0) {
        snprintf(err, errlen, "pidfd_open(%d): %s", (int)pid, strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    watch(cp, pid, pidfd, true);
    LOG_INFO("Started data plane %s (pid %d)", cp->dp_binary, (int)pid);
    return 0;
}

/* ---- shutdown ---- */

static bool wait_exit(int pidfd, unsigned timeout_ms)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    uint64_t deadline = cp_mono_ms() + timeout_ms;
    for (;;) {
        uint64_t now = cp_mono_ms();
        int left = now >= deadline ? 0 : (int)(deadline - now);
        int rc = poll(&p, 1, left);
        if (rc == 1)
            return true;
        if (rc == 0 || errno != EINTR)
            return false;
    }
}

void cp_dp_stop(cp_t *cp, unsigned timeout_ms)
{
    cp_timer_dispose(&cp->dp.restart_timer);
    if (cp->dp.pid == 0)
        return;
    pid_t pid = cp->dp.pid;
    LOG_INFO("Stopping the data plane (pid %d)", (int)pid);
    kill(pid, SIGTERM);
    if (!wait_exit(cp->dp.pidfd, timeout_ms)) {
        LOG_WARN("Data plane (pid %d) still running after %u ms: killing it", (int)pid, timeout_ms);
        kill(pid, SIGKILL);
        wait_exit(cp->dp.pidfd, DP_KILL_GRACE_MS);
    }
    if (cp->dp.is_child) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        waitid((idtype_t)P_PIDFD, (id_t)cp->dp.pidfd, &si, WEXITED | WNOHANG);
    }
    unwatch(cp);
    shm_reap_dead(&cp->seg);
}
