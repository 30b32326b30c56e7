/*
 * dataplane/server.c - h2o set-up, one event loop per thread, the route table, and the drain.
 *
 * Every thread polls its own dup() of the one listening socket the control plane owns, so a
 * restarted or upgraded DP never drops a queued connection. One h2o handler at "/" dispatches
 * on method and path, so unknown routes get the Go router's plain-text 404.
 *
 * Each thread tracks its client connections (sock->on_close) and the request each one is
 * serving (a dispose hook on the request's pool), because h2o 2.2's own shutdown only stops
 * keep-alive on requests parsed after it and leaves idle connections open until
 * http1.req_timeout. Draining (SIGTERM: an upgrade or a stop) therefore
 *  - stops accepting (the listening socket stays with the CP and the next DP),
 *  - makes every response whose head has not been sent yet carry "Connection: close",
 *  - lets h2o close each other connection after its next response,
 *  - closes connections that stay idle for --drain_idle_ms (with no byte waiting to be read),
 *    so the HTTP/1 race of a request crossing the close is limited to clients that reuse a
 *    connection after that long a pause,
 *  - and ends when no connection is left, or at the drain deadline: what is still being served
 *    then is "cut" and reported.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/reply.h"
#include "dataplane/dp.h"
#include "dataplane/framing.h"
#include "dataplane/models.h"
#include "dataplane/pd.h"

static __thread dp_thread_t *current;

/* One client connection of this thread. */
typedef struct {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    h2o_req_t *req;         /* the request being served, NULL between requests */
    uint64_t idle_since_ms; /* loop clock: accept or end of the last response */
    bool shut;              /* closed by the drain (h2o sees the EOF and cleans up) */
} conn_t;

/* A thread's connections and its drain figures. */
typedef struct {
    h2o_linklist_t conns;
    uint64_t nconns;
    uint64_t active; /* requests being served */
    bool draining;
    uint64_t drained; /* requests answered after the drain began */
    uint64_t cut;     /* requests still being served at the deadline */
    uint64_t idle_closed;
} tracker_t;

static __thread tracker_t *tracker;
static tracker_t *trackers; /* [nthreads], read by main after every thread drained */

static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static unsigned ready_threads;

dp_thread_t *dp_self(h2o_req_t *req)
{
    (void)req;
    return current;
}

void dp_send_json(h2o_req_t *req, int status, const char *json, size_t len)
{
    fd_reply_json(req, status, json, len);
}

void dp_send_error(h2o_req_t *req, int status, const char *msg)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "{\"error\": \"%s\"}", msg);
    dp_send_json(req, status, buf, (size_t)n);
}

static void on_req_dispose(void *p)
{
    conn_t *c = *(conn_t **)p;
    c->req = NULL;
    c->idle_since_ms = h2o_now(current->ctx.loop);
    tracker->active--;
    if (tracker->draining)
        tracker->drained++;
}

static void on_conn_close(void *data)
{
    conn_t *c = data;
    h2o_linklist_unlink(&c->link);
    tracker->nconns--;
    free(c);
}

static void track_request(h2o_req_t *req)
{
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL || sock->on_close.cb != on_conn_close)
        return;
    conn_t *c = sock->on_close.data;
    conn_t **hook = h2o_mem_alloc_shared(&req->pool, sizeof(*hook), on_req_dispose);
    *hook = c;
    c->req = req;
    tracker->active++;
    /* h2o drops keep-alive only for requests parsed after the shutdown; one whose body was still
     * being read when the drain began was parsed before it: this response closes the connection */
    if (tracker->draining)
        req->http1_is_persistent = 0;
}

static int completions(h2o_req_t *req, const char *path)
{
    return dp.cfg.splitwise ? dp_handle_pd_completions(req, path) : dp_handle_completions(req, path);
}
static int chat_completions(h2o_req_t *req)
{
    return completions(req, "/v1/chat/completions");
}
static int text_completions(h2o_req_t *req)
{
    return completions(req, "/v1/completions");
}

/* The public routes, one method each: a known path asked with another method gets 405. */
static const struct {
    const char *method, *path;
    int (*handle)(h2o_req_t *req);
} routes[] = {
    {"POST", "/v1/chat/completions", chat_completions},
    {"POST", "/v1/completions", text_completions},
    {"POST", "/v1/abort_requests", dp_handle_abort},
    {"GET", "/ready", dp_handle_ready},
    {"GET", "/registered", dp_handle_registered},
    {"GET", "/registered_number", dp_handle_registered_number},
    {"GET", "/health", dp_handle_health},
    {"POST", "/register", dp_handle_to_cp},
    {"GET", "/health_generate", dp_handle_to_cp},
    {"GET", "/metrics", dp_handle_metrics},
    {"GET", "/v1/models", dp_handle_models},
};

/* A request with a body: its raw head is still at the start of the connection's input buffer,
 * right before the body h2o read (h2o 2.2's HTTP/1 keeps both there until the response ends).
 * Two framing headers are refused and the connection closed, since the bytes after the body h2o
 * chose could be another request to a proxy in front (dataplane/framing.h). */
static const char *framing_error(h2o_req_t *req)
{
    if (req->entity.base == NULL || req->version >= 0x200 || !req->conn->callbacks->get_socket)
        return NULL; /* no Content-Length or Transfer-Encoding at all */
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL)
        return NULL;
    const char *in = sock->input->bytes;
    if (req->entity.base < in || req->entity.base > in + sock->input->size)
        return "request head not found";
    return dp_framing_error(in, (size_t)(req->entity.base - in));
}

/* Every answer of the route table itself is JSON, errors included (404, 405 with Allow). */
static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    track_request(req);
    const char *bad = framing_error(req);
    if (bad) {
        req->http1_is_persistent = 0;
        dp_send_error(req, 400, bad);
        return 0;
    }
    int known = -1;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const char *p = routes[i].path;
        if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, p, strlen(p)))
            continue;
        if (h2o_memis(req->method.base, req->method.len, routes[i].method, strlen(routes[i].method)))
            return routes[i].handle(req);
        known = (int)i;
    }
    if (known >= 0) {
        const char *m = routes[known].method;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, m, strlen(m));
        dp_send_error(req, 405, "method not allowed");
        return 0;
    }
    dp_send_error(req, 404, "404 page not found");
    return 0;
}

int dp_server_setup(void)
{
    h2o_config_init(&dp.globalconf);
    dp.globalconf.server_name = h2o_iovec_init(H2O_STRLIT("fd-router"));
    dp.globalconf.max_request_entity_size = dp.cfg.max_body_bytes;
    dp.globalconf.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host =
        h2o_config_register_host(&dp.globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_req;
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    dp_thread_t *t = listener->data;
    if (err)
        return;
    h2o_socket_t *sock;
    while ((sock = h2o_evloop_socket_accept(listener)) != NULL) {
        conn_t *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            h2o_socket_close(sock);
            continue;
        }
        c->sock = sock;
        c->idle_since_ms = h2o_now(t->ctx.loop);
        h2o_linklist_insert(&tracker->conns, &c->link);
        tracker->nconns++;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = c;
        h2o_accept(&t->accept_ctx, sock);
    }
}

static void thread_init(dp_thread_t *t)
{
    const shm_config_t *c = &dp.cfg;
    h2o_context_init(&t->ctx, h2o_evloop_create(), &dp.globalconf);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = dp.globalconf.hosts;
    h2o_timeout_init(t->ctx.loop, &t->connect_timeout, c->connect_timeout_ms);
    h2o_timeout_init(t->ctx.loop, &t->first_byte_timeout, c->first_byte_timeout_ms);
    h2o_timeout_init(t->ctx.loop, &t->idle_timeout, c->idle_timeout_ms);
    h2o_timeout_init(t->ctx.loop, &t->zero_timeout, 0);
    h2o_timeout_init(t->ctx.loop, &t->watch_timeout, 250);
    h2o_timeout_init(t->ctx.loop, &t->abort_timeout, 5000);
    h2o_timeout_init(t->ctx.loop, &t->tokenizer_timeout, c->tokenizer_timeout_ms);
    t->pools = calloc(SHM_MAX_INSTANCES, sizeof(*t->pools));
    /* request ids are drawn from it: seed from the kernel so no two processes or runs collide */
    if (getrandom(&t->rng, sizeof(t->rng), 0) != sizeof(t->rng) || !t->rng)
        t->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)getpid() << 16) ^ (t->index + 1) ^ shm_now_ms();
    tracker = &trackers[t->index];
    h2o_linklist_init_anchor(&tracker->conns);
    t->listener = h2o_evloop_socket_create(t->ctx.loop, dup(dp.listen_fd), H2O_SOCKET_FLAG_DONT_READ);
    t->listener->data = t;
    h2o_socket_read_start(t->listener, on_accept);
}

/* Nothing of a next request has arrived: neither parsed, nor buffered by h2o, nor in the kernel. */
static bool conn_quiet(conn_t *c)
{
    int unread = 0;
    return c->req == NULL && c->sock->input->size == 0 &&
           ioctl(h2o_socket_get_fd(c->sock), FIONREAD, &unread) == 0 && unread == 0;
}

/* Shut down connections idle for idle_ms; h2o reads the EOF and closes them the normal way. */
static void close_idle(tracker_t *tr, uint64_t now, unsigned idle_ms)
{
    for (h2o_linklist_t *l = tr->conns.next; l != &tr->conns; l = l->next) {
        conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, link, l);
        if (!c->shut && now - c->idle_since_ms >= idle_ms && conn_quiet(c)) {
            shutdown(h2o_socket_get_fd(c->sock), SHUT_RDWR);
            c->shut = true;
            tr->idle_closed++;
        }
    }
}

/* Responses not started yet announce "Connection: close"; streams already started keep their
 * head and the connection closes after the client's next request or when it idles. */
static void close_after_response(tracker_t *tr)
{
    for (h2o_linklist_t *l = tr->conns.next; l != &tr->conns; l = l->next) {
        conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, link, l);
        if (c->req != NULL && c->req->timestamps.response_start_at.tv_sec == 0)
            c->req->http1_is_persistent = 0;
    }
}

/* Stop accepting; keep the loop running until this thread's connections are closed or the drain
 * deadline passes. */
static void thread_drain(dp_thread_t *t, uint64_t deadline_ms)
{
    h2o_socket_read_stop(t->listener);
    h2o_socket_close(t->listener);
    t->listener = NULL;
    h2o_context_request_shutdown(&t->ctx);
    tracker->draining = true;
    close_after_response(tracker);
    while (tracker->nconns && shm_now_ms() < deadline_ms) {
        close_idle(tracker, h2o_now(t->ctx.loop), dp.drain_idle_ms);
        h2o_evloop_run(t->ctx.loop, 20);
    }
    tracker->cut = tracker->active;
    if (tracker->cut)
        LOG_WARN("thread %u: %llu request(s) cut at the drain deadline", t->index,
                 (unsigned long long)tracker->cut);
}

int dp_server_prepare(unsigned nthreads)
{
    trackers = calloc(nthreads, sizeof(*trackers));
    return trackers ? 0 : -1;
}

void dp_server_wait_ready(unsigned nthreads)
{
    pthread_mutex_lock(&ready_lock);
    while (ready_threads < nthreads)
        pthread_cond_wait(&ready_cond, &ready_lock);
    pthread_mutex_unlock(&ready_lock);
}

void dp_server_drain_report(dp_drain_report_t *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < dp.nthreads; i++) {
        out->drained += trackers[i].drained;
        out->cut += trackers[i].cut;
        out->idle_closed += trackers[i].idle_closed;
    }
}

void *dp_thread_main(void *arg)
{
    dp_thread_t *t = arg;
    current = t;
    t->reader = shm_reader_register(&dp.seg);
    if (t->reader < 0) {
        LOG_ERROR("no free reader slot in shared memory");
        exit(1);
    }
    thread_init(t);
    pthread_mutex_lock(&ready_lock);
    ready_threads++;
    pthread_cond_signal(&ready_cond);
    pthread_mutex_unlock(&ready_lock);
    while (!__atomic_load_n(&dp.stopping, __ATOMIC_ACQUIRE))
        h2o_evloop_run(t->ctx.loop, 100);
    thread_drain(t, dp.drain_deadline_ms);
    shm_reader_unregister(&dp.seg, t->reader);
    /* Park instead of returning: h2o keeps recycled memory in per-thread lists it cannot empty,
     * which are still reachable (not leaked) while the thread lives; the process exits next. */
    pthread_mutex_lock(&dp.drain_lock);
    dp.drained++;
    pthread_cond_signal(&dp.drain_cond);
    pthread_mutex_unlock(&dp.drain_lock);
    for (;;)
        pause();
}
