/*
 * dataplane/main.c - fd-router-dp: the data plane process.
 *
 * Started by the control plane with the listening socket inherited (--listen_fd), the shared
 * memory segment's name and the control socket's path. It attaches the segment, takes a counter
 * row (state STARTING), reads the published configuration, starts one event loop per thread and,
 * once every thread accepts, marks its row SERVING: that is the readiness a hot upgrade waits
 * for before it stops the previous DP.
 *
 * On SIGTERM or SIGINT it drains (server.c): stops accepting, answers what is in flight (streams
 * included) until the drain deadline, then tells the control plane what the drain did
 * (POST /dp/drained on the control socket: requests answered, requests cut at the deadline),
 * gives its counter row back and exits. The CP sends the upgrade's drain time with the signal
 * (sigqueue value, in seconds); a plain SIGTERM uses --drain_secs.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/hclient.h"
#include "common/log.h"
#include "dataplane/dp.h"
#include "dataplane/policy/registry.h"
#include "dataplane/server.h"
#include "dataplane/tokenizer.h"

#define REPORT_TIMEOUT_MS 2000

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fd-router-dp --shm_name NAME --listen_fd FD --control_socket PATH\n"
            "                    [--threads N] [--drain_secs S] [--drain_idle_ms MS] [--log_level L]\n"
            "                    [--log_file PATH] [--log_format text|json] [--access_log PATH|-]\n"
            "  Normally started by fd-router-cp, which owns the listening socket and the shared memory.\n"
            "  --shm_name NAME        shared memory segment to attach (created by the control plane)\n"
            "  --listen_fd FD         inherited listening socket\n"
            "  --control_socket PATH  the control plane's socket (POST /register is forwarded there)\n"
            "  --threads N            event-loop threads (default: router.dp-threads, 0 = one per core)\n"
            "  --drain_secs S         on SIGTERM, how long in-flight requests may take to finish (default "
            "600)\n"
            "  --log_level L          debug, info, warn (else errors only), as log.level (default info)\n"
            "  --log_file PATH        write the log there (log.output: file), rotated daily\n"
            "  --log_format F         text (the Go router's lines) or json, as log.format\n"
            "  --access_log PATH      one JSON line per request to PATH (rotated daily), - for stdout\n"
            "  --drain_idle_ms MS     while draining, close keep-alive connections idle this long (default "
            "1000)\n");
}

static int parse_args(int argc, char **argv, char *shm_name, size_t shm_len)
{
    static const struct option opts[] = {{"shm_name", required_argument, 0, 's'},
                                         {"listen_fd", required_argument, 0, 'l'},
                                         {"control_socket", required_argument, 0, 'c'},
                                         {"threads", required_argument, 0, 't'},
                                         {"drain_secs", required_argument, 0, 'd'},
                                         {"drain_idle_ms", required_argument, 0, 'i'},
                                         {"log_level", required_argument, 0, 'L'},
                                         {"log_file", required_argument, 0, 'F'},
                                         {"log_format", required_argument, 0, 'J'},
                                         {"access_log", required_argument, 0, 'A'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    dp.listen_fd = -1;
    dp.drain_secs = 600;
    dp.drain_idle_ms = 1000;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            snprintf(shm_name, shm_len, "%s", optarg);
            break;
        case 'l':
            dp.listen_fd = atoi(optarg);
            break;
        case 'c':
            snprintf(dp.control_socket, sizeof(dp.control_socket), "%s", optarg);
            break;
        case 't':
            dp.nthreads = (unsigned)atoi(optarg);
            break;
        case 'd':
            dp.drain_secs = (unsigned)atoi(optarg);
            break;
        case 'i':
            dp.drain_idle_ms = (unsigned)atoi(optarg);
            break;
        case 'L':
            fd_log_set_level_name(optarg);
            break;
        case 'F':
            if (optarg[0] && fd_log_to_file(optarg) != 0)
                LOG_ERROR("cannot open log file %s: %s (logging to stdout)", optarg, strerror(errno));
            break;
        case 'J':
            fd_log_set_format_name(optarg);
            break;
        case 'A':
            if (fd_access_log_open(optarg) != 0)
                LOG_ERROR("cannot open access log %s: %s (no access log)", optarg, strerror(errno));
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (!shm_name[0] || dp.listen_fd < 0 || !dp.control_socket[0]) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* FNV-1a of our own executable: tells two builds apart in `fdctl status` (e.g. during an upgrade). */
static uint64_t build_hash(void)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    FILE *f = fopen("/proc/self/exe", "rb");
    if (f == NULL)
        return 0;
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        for (size_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 0x100000001b3ULL;
    fclose(f);
    return h;
}

static int attach(const char *shm_name)
{
    char err[256];
    if (shm_attach(&dp.seg, shm_name, err, sizeof(err)) != 0) {
        LOG_ERROR("cannot attach shared memory %s: %s", shm_name, err);
        return -1;
    }
    if (!shm_prefault(&dp.seg)) /* requests then take the page faults, as before Linux 5.14 */
        LOG_INFO("shared memory %s: page tables not prefaulted (%s)", shm_name, strerror(errno));
    if (!shm_config_read(&dp.seg, &dp.cfg)) {
        LOG_ERROR("the configuration in %s is being rewritten by a control plane that died; retry", shm_name);
        return -1;
    }
    for (int r = 0; r < SHM_ROLE_COUNT; r++) {
        if (!pol_get(dp.cfg.policy[r])) {
            LOG_ERROR("unknown policy %u for role %d in %s", dp.cfg.policy[r], r, shm_name);
            return -1;
        }
    }
    dp.row = shm_dp_claim(&dp.seg, getpid(), build_hash());
    if (dp.row < 0) {
        LOG_ERROR("no free data-plane row in shared memory %s", shm_name);
        return -1;
    }
    return 0;
}

static unsigned thread_count(void)
{
    if (dp.nthreads)
        return dp.nthreads;
    if (dp.cfg.dp_threads)
        return dp.cfg.dp_threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* Tell the control plane (if one runs) what the drain did; it reports it to the operator. */
static void report_drain(const dp_drain_report_t *r, uint64_t drain_ms)
{
    char target[sizeof(dp.control_socket) + 8], body[256];
    snprintf(target, sizeof(target), "unix:%s", dp.control_socket);
    int n =
        snprintf(body, sizeof(body),
                 "{\"pid\": %d, \"drained\": %llu, \"cut\": %llu, \"idle_closed\": %llu, \"drain_ms\": %llu}",
                 (int)getpid(), (unsigned long long)r->drained, (unsigned long long)r->cut,
                 (unsigned long long)r->idle_closed, (unsigned long long)drain_ms);
    hc_response_t resp;
    if (hc_request(target, "POST", "/dp/drained", "application/json", body, (size_t)n, REPORT_TIMEOUT_MS,
                   4096, &resp) != 0)
        /* normal when the control plane itself is stopping (it closed its socket first) */
        LOG_INFO("fd-router-dp %d: drain report not delivered to the control plane: %s", getpid(),
                 resp.error);
    hc_response_free(&resp);
}

/* The drain time: the sender's sigqueue value when it gave one, else --drain_secs. */
static unsigned drain_secs_of(const siginfo_t *si)
{
    if (si->si_code == SI_QUEUE && si->si_value.sival_int > 0)
        return (unsigned)si->si_value.sival_int;
    return dp.drain_secs;
}

/* Request bodies (h2o's buffers, doubled as a body grows) are the DP's only large allocations, one
 * or two per request. glibc serves a block over 128 KiB with its own mmap and returns freed heap
 * over its trim threshold to the kernel, so a 64 KiB body, whose buffer grows to 128 KiB, took
 * fresh pages and their faults every request: a fifth of the DP's time on 64 KiB requests
 * (perf: exc_page_fault, clear_page, memcg charging; docs/benchmarks.md 1d). Blocks up to
 * HEAP_BLOCK_MAX come from the thread's heap instead, and up to HEAP_KEEP of free heap is kept
 * for the next request rather than trimmed: the most a DP thread's heap holds beyond what is in
 * use, after a burst of large bodies. */
#define HEAP_BLOCK_MAX (4 << 20)
#define HEAP_KEEP      (16 << 20)

static void keep_heap(void)
{
    /* a refusal (a sanitizer's allocator refuses both) costs only the speed above */
    (void)mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_MAX);
    (void)mallopt(M_TRIM_THRESHOLD, HEAP_KEEP);
}

int main(int argc, char **argv)
{
    char shm_name[64] = "";
    if (parse_args(argc, argv, shm_name, sizeof(shm_name)) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    keep_heap();
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* threads inherit it; only main waits for them */
    if (attach(shm_name) != 0)
        return 1;
    dp.started_at_ms = shm_now_ms();
    char err[300];
    if (dp_tokenizer_setup(dp.cfg.tokenizer_url, err, sizeof(err)) != 0)
        LOG_ERROR("%s: prompts are hashed by characters", err);
    dp_server_setup();
    dp.nthreads = thread_count();
    dp.threads = calloc(dp.nthreads, sizeof(*dp.threads));
    if (dp.threads == NULL || dp_server_prepare(dp.nthreads) != 0) {
        LOG_ERROR("out of memory");
        return 1;
    }
    for (unsigned i = 0; i < dp.nthreads; i++) {
        dp.threads[i].index = i;
        int err = pthread_create(&dp.threads[i].tid, NULL, dp_thread_main, &dp.threads[i]);
        if (err) {
            LOG_ERROR("cannot start thread %u: %s", i, strerror(err));
            return 1;
        }
    }
    dp_server_wait_ready(dp.nthreads);
    shm_dp_row_state_set(&dp.seg, dp.row, SHM_DP_SERVING);
    LOG_INFO("fd-router-dp %d serving with %u thread(s), row %d", getpid(), dp.nthreads, dp.row);

    siginfo_t si;
    while (sigwaitinfo(&stop, &si) < 0)
        ;
    unsigned drain_secs = drain_secs_of(&si);
    LOG_INFO("fd-router-dp %d: signal %d, draining (up to %u s)", getpid(), si.si_signo, drain_secs);
    shm_dp_row_state_set(&dp.seg, dp.row, SHM_DP_DRAINING);
    uint64_t drain_start = shm_now_ms();
    dp.drain_deadline_ms = drain_start + (uint64_t)drain_secs * 1000;
    dp.stopping = 1;
    pthread_mutex_lock(&dp.drain_lock);
    while (dp.drained < dp.nthreads)
        pthread_cond_wait(&dp.drain_cond, &dp.drain_lock);
    pthread_mutex_unlock(&dp.drain_lock);
    dp_drain_report_t rep;
    dp_server_drain_report(&rep);
    uint64_t drain_ms = shm_now_ms() - drain_start;
    LOG_INFO(
        "fd-router-dp %d: drained in %llu ms: %llu request(s) answered, %llu cut at the deadline, %llu idle "
        "connection(s) closed",
        getpid(), (unsigned long long)drain_ms, (unsigned long long)rep.drained, (unsigned long long)rep.cut,
        (unsigned long long)rep.idle_closed);
    report_drain(&rep, drain_ms);
    shm_dp_release(&dp.seg, dp.row);
    shm_detach(&dp.seg);
    LOG_INFO("fd-router-dp %d: exiting", getpid());
    exit(0); /* the parked loop threads end with the process */
}
