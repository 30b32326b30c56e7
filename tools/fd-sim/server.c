/*
 * tools/fd-sim/server.c - fd-sim's HTTP server on libh2o-evloop (server.h): binding, the h2o
 * configuration with its routes, the event-loop threads and their parking, and what a thread
 * does when kicked (an abort, or the engine driver's progress: it polls its calls).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "tools/fd-sim/body.h"
#include "tools/fd-sim/call.h"
#include "tools/fd-sim/routes.h"
#include "tools/fd-sim/loop.h"
#include "tools/fd-sim/server.h"

#define ACCEPT_BATCH 64

static void on_kick(h2o_socket_t *sock, const char *err)
{
    (void)err;
    sim_thread_t *th = sock->data;
    /* Sequentially consistent on purpose: the flag must be clear before the calls' state is read
     * (a store-load order that no weaker order gives), or a kick arriving meanwhile is lost. */
    th->kicked = false;
    h2o_buffer_consume(&sock->input, sock->input->size);
    h2o_linklist_t *node, *next;
    for (node = th->calls.next; node != &th->calls; node = next) {
        next = node->next;
        sim_call_poll(H2O_STRUCT_FROM_MEMBER(sim_call_t, link, node));
    }
}

static int listen_on(const char *host, int port, int *bound, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM}, *res;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    int one = 1, fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        freeaddrinfo(res);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* The API socket and, when asked for on another port, the metrics one; -1 with err. */
static int bind_listeners(sim_server_t *srv, int *port, int *metrics_port, char *err, size_t errlen)
{
    const sim_config_t *cfg = srv->cfg;
    srv->api_fd = listen_on(cfg->host, cfg->port, port, err, errlen);
    if (srv->api_fd < 0)
        return -1;
    *metrics_port = *port;
    if (cfg->metrics_port >= 0 && cfg->metrics_port != *port) {
        srv->metrics_fd = listen_on(cfg->host, cfg->metrics_port, metrics_port, err, errlen);
        if (srv->metrics_fd < 0) {
            close(srv->api_fd);
            return -1;
        }
    }
    return 0;
}

static void init_h2o(sim_server_t *srv)
{
    h2o_config_init(&srv->conf);
    srv->conf.max_request_entity_size = SIM_MAX_BODY;
    srv->conf.http1.upgrade_to_http2 = 0; /* HTTP/1 only: the stream framing in call.c relies on it */
    srv->api_hosts[0] = sim_routes_host(srv, "default", false);
    srv->metrics_hosts[0] = sim_routes_host(srv, "metrics", true);
}

sim_server_t *sim_server_create(const sim_config_t *cfg, sim_state_t *st, int *port, int *metrics_port,
                                char *err, size_t errlen)
{
    sim_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->cfg = cfg;
    srv->st = st;
    srv->metrics_fd = -1;
    srv->t0_ms = fd_mono_ms();
    if (bind_listeners(srv, port, metrics_port, err, errlen) != 0) {
        free(srv);
        return NULL;
    }
    init_h2o(srv);
    srv->nthreads = cfg->threads;
    pthread_mutex_init(&srv->park_lock, NULL);
    pthread_cond_init(&srv->park_cond, NULL);
    pthread_mutex_init(&srv->reg_lock, NULL);
    h2o_linklist_init_anchor(&srv->registry);
    return srv;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err)
        return;
    h2o_accept_ctx_t *actx = listener->data;
    h2o_socket_t *sock;
    for (int i = 0; i < ACCEPT_BATCH && (sock = h2o_evloop_socket_accept(listener)) != NULL; i++)
        h2o_accept(actx, sock);
}

static void on_wake(h2o_socket_t *sock, const char *err)
{
    (void)err;
    sim_thread_t *th = sock->data;
    th->stop = true;
}

static h2o_socket_t *watch(h2o_evloop_t *loop, int fd, int flags, void *data, h2o_socket_cb cb)
{
    h2o_socket_t *sock = h2o_evloop_socket_create(loop, fd, flags);
    sock->data = data;
    h2o_socket_read_start(sock, cb);
    return sock;
}

static void close_socket(h2o_socket_t *sock)
{
    if (sock) {
        h2o_socket_read_stop(sock);
        h2o_socket_close(sock);
    }
}

/*
 * h2o keeps recycled memory in thread-local free lists (the memory-pool chunks are in a static
 * one, with no API to drain it), so a loop thread that exits leaks them. Stopped threads
 * therefore stay parked, with their thread-local storage alive, until the process exits.
 */
static void park(sim_server_t *srv)
{
    pthread_mutex_lock(&srv->park_lock);
    srv->parked++;
    pthread_cond_broadcast(&srv->park_cond);
    for (;;)
        pthread_cond_wait(&srv->park_cond, &srv->park_lock);
}

static void *thread_main(void *arg)
{
    sim_thread_t *th = arg;
    sim_server_t *srv = th->srv;
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&th->ctx, loop, &srv->conf);
    h2o_timeout_init(loop, &th->probe, SIM_PROBE_MS);
    th->accept_api = (h2o_accept_ctx_t){.ctx = &th->ctx, .hosts = srv->api_hosts};
    th->listener_api = watch(loop, th->api_fd, H2O_SOCKET_FLAG_DONT_READ, &th->accept_api, on_accept);
    if (th->metrics_fd >= 0) {
        th->accept_metrics = (h2o_accept_ctx_t){.ctx = &th->ctx, .hosts = srv->metrics_hosts};
        th->listener_metrics =
            watch(loop, th->metrics_fd, H2O_SOCKET_FLAG_DONT_READ, &th->accept_metrics, on_accept);
    }
    th->wake = watch(loop, th->wake_fds[0], 0, th, on_wake);
    th->kick = watch(loop, th->kick_fds[0], 0, th, on_kick);
    while (!th->stop)
        h2o_evloop_run(loop, INT32_MAX);
    /* Connections still open stay referenced from the context until the process exits. */
    close_socket(th->listener_api);
    close_socket(th->listener_metrics);
    close_socket(th->wake);
    close_socket(th->kick);
    park(srv);
    return NULL;
}

/* Everything that can fail is set up here, so a thread never starts half-equipped. */
static int thread_prepare(sim_server_t *srv, sim_thread_t *th, int index)
{
    th->srv = srv;
    th->index = index;
    h2o_linklist_init_anchor(&th->calls);
    th->api_fd = dup(srv->api_fd);
    th->metrics_fd = srv->metrics_fd >= 0 ? dup(srv->metrics_fd) : -1;
    if (th->api_fd < 0 || (srv->metrics_fd >= 0 && th->metrics_fd < 0) ||
        pipe2(th->wake_fds, O_CLOEXEC | O_NONBLOCK) != 0 || pipe2(th->kick_fds, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    return 0;
}

int sim_server_start(sim_server_t *srv)
{
    int n = srv->nthreads;
    srv->nthreads = 0; /* threads actually running, for sim_server_stop */
    srv->threads = calloc((size_t)n, sizeof(*srv->threads));
    if (!srv->threads)
        return -1;
    for (int i = 0; i < n; i++)
        if (thread_prepare(srv, &srv->threads[i], i) != 0)
            return -1;
    srv->nthreads_max = n;
    if (srv->cfg->engine && !(srv->driver = sim_driver_start(&srv->cfg->engine_params, sim_server_kick, srv)))
        return -1;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&srv->threads[i].tid, NULL, thread_main, &srv->threads[i]) != 0)
            return -1;
        srv->nthreads = i + 1;
    }
    return 0;
}

void sim_server_stop(sim_server_t *srv)
{
    for (int i = 0; i < srv->nthreads; i++) {
        ssize_t w;
        do
            w = write(srv->threads[i].wake_fds[1], "x", 1);
        while (w < 0 && errno == EINTR);
    }
    pthread_mutex_lock(&srv->park_lock);
    while (srv->parked < srv->nthreads)
        pthread_cond_wait(&srv->park_cond, &srv->park_lock);
    pthread_mutex_unlock(&srv->park_lock);
    sim_driver_stop(srv->driver);
    close(srv->api_fd);
    if (srv->metrics_fd >= 0)
        close(srv->metrics_fd);
}
