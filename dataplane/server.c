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
 *
 * Reading requests is bounded here too, since h2o 2.2 has one fixed timer for a whole request
 * (http1.req_timeout: head and body together, so a large body on a slow link is cut with no
 * answer) and no bound on the bodies all connections buffer together. h2o's timer is only a
 * backstop; a sweep four times a second per thread looks at every connection between requests:
 *  - no byte of a request yet: idle keep-alive (or a fresh connection), closed after
 *    proxy.request-header-timeout-secs;
 *  - head incomplete at that time: 408 and closed (slow-header clients);
 *  - head complete, body arriving: cut with 408 only after proxy.request-body-timeout-secs
 *    without a new byte, however long the whole body takes;
 *  - the bodies being read plus those of the requests being served, over the DP process, above
 *    proxy.max-buffered-body-mb: the largest ones being read get 503 and are closed. A body
 *    that completes is checked against the same cap before its handler runs (503).
 * Answers to a request still being read are written to the socket directly (h2o is only reading
 * it), then the connection is aborted (connect(AF_UNSPEC)): h2o sees the error and frees it, and
 * the client's remaining body bytes are not read.
 *
 * While a request with a body is served, its connection keeps reading (read_ahead): h2o 2.2's
 * HTTP/1 stops reading a connection when a request is complete and starts again when its answer
 * is sent, and with its level-triggered epoll that is two epoll_ctl calls per request, a third of
 * the system calls of a small proxied request (bench/overhead.py counts them). Reading on, the
 * socket's epoll interest never changes; what arrives meanwhile (a pipelined request, or the end
 * of the connection) waits in the input buffer, where h2o looks first when the answer is sent.
 * h2o may move that buffer while it grows, so the body is first copied out of it (the head's
 * fields already are: h2o copies them for every request with a body); bodies above
 * READ_AHEAD_BODY_MAX are left where they are and their connection is not read meanwhile, as
 * before, since copying them costs more than the calls saved (8 KiB copy in well under a
 * microsecond). Reading stops again at the first read that brings anything (a pipelined request,
 * or the end of the connection, which level-triggered epoll would report every turn of the
 * loop): a client that does not wait for its answers pays the two calls as before, and what is
 * read ahead is at most one read's worth, as when h2o reads a request.
 *
 * The listener pauses for ACCEPT_BACKOFF_MS when accept() fails for lack of descriptors or
 * memory: the pending connection keeps the listening socket readable, so retrying at once would
 * spin the loop at full CPU until a descriptor frees up.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "dataplane/abort.h"
#include "dataplane/accesslog.h"
#include "dataplane/admin.h"
#include "dataplane/completions.h"
#include "dataplane/dp.h"
#include "dataplane/errjson.h"
#include "dataplane/framing.h"
#include "dataplane/metrics.h"
#include "dataplane/models.h"
#include "dataplane/pd.h"
#include "dataplane/reply.h"
#include "dataplane/server.h"

#define SWEEP_MS            250
#define ACCEPT_BACKOFF_MS   100
#define MAX_REJECTS         64                    /* per sweep: bounds the work of one pass */
#define H2O_REQ_BACKSTOP    (24ULL * 3600 * 1000) /* h2o's own request timer; the sweep acts first */
#define READ_AHEAD_BODY_MAX (8u * 1024)           /* larger bodies: no read-ahead (see above) */

/* One client connection of this thread. */
typedef struct {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    h2o_req_t *req;         /* the request being served, NULL between requests */
    uint64_t idle_since_ms; /* loop clock: accept or end of the last response */
    bool shut;              /* closed by the drain or the sweep (h2o sees it and cleans up) */
    /* the request being read (req == NULL), as the sweep saw it */
    bool head_done;       /* its head is complete: the body is being read */
    size_t head_scanned;  /* bytes already searched for the end of the head */
    size_t seen_size;     /* input bytes at the last sweep */
    uint64_t progress_ms; /* last sweep that saw new bytes */
    size_t body_held;     /* the served request's body, counted in served_body_bytes */
} conn_t;

/* A thread's connections, its drain figures and its request-read bounds. */
typedef struct {
    h2o_linklist_t conns;
    uint64_t nconns;
    uint64_t active; /* requests being served */
    bool draining;
    uint64_t drained; /* requests answered after the drain began */
    uint64_t cut;     /* requests still being served at the deadline */
    uint64_t idle_closed;
    _Atomic uint64_t reading_bytes; /* request bytes buffered by connections being read (last sweep) */
    h2o_timeout_t sweep_timeout;
    h2o_timeout_entry_t sweep;
    h2o_timeout_t backoff_timeout;
    h2o_timeout_entry_t backoff;
} tracker_t;

/* Bodies of the requests being served by every thread of this process. */
static _Atomic uint64_t served_body_bytes;

static __thread tracker_t *tracker;
static tracker_t *trackers; /* [nthreads], read by main after every thread drained */

static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static unsigned ready_threads;

static void on_req_dispose(void *p)
{
    conn_t *c = *(conn_t **)p;
    c->req = NULL;
    c->idle_since_ms = c->progress_ms = h2o_now(dp_current->ctx.loop);
    c->head_done = false;
    c->head_scanned = c->seen_size = 0;
    if (c->body_held) {
        served_body_bytes -= c->body_held;
        c->body_held = 0;
    }
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

static uint64_t buffered_cap(void)
{
    return dp.cfg.max_buffered_body_bytes ? dp.cfg.max_buffered_body_bytes : 256ULL << 20;
}

static conn_t *track_request(h2o_req_t *req)
{
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL || sock->on_close.cb != on_conn_close)
        return NULL;
    conn_t *c = sock->on_close.data;
    conn_t **hook = h2o_mem_alloc_shared(&req->pool, sizeof(*hook), on_req_dispose);
    *hook = c;
    c->req = req;
    tracker->active++;
    /* h2o drops keep-alive only for requests parsed after the shutdown; one whose body was still
     * being read when the drain began was parsed before it: this response closes the connection */
    if (tracker->draining)
        req->http1_is_persistent = 0;
    return c;
}

/* Hold the request's body against the process's cap until the request ends; false if over. */
static bool hold_body(conn_t *c, h2o_req_t *req)
{
    size_t n = req->entity.base ? req->entity.len : 0;
    if (c == NULL || n == 0)
        return true;
    served_body_bytes += n;
    /* read back apart (clang 14 cannot use an _Atomic compound assignment's value): a racing
     * thread's add seen here only makes the cap stricter for a moment, never looser */
    if (served_body_bytes > buffered_cap()) {
        served_body_bytes -= n;
        return false;
    }
    c->body_held = n;
    return true;
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

static void on_read_ahead(h2o_socket_t *sock, const char *err)
{
    (void)err; /* bytes or the end: either way h2o takes them when the answer is sent */
    h2o_socket_read_stop(sock);
}

/* Keep reading the connection while its request is served (see the file's comment). Called
 * before the handler runs, so an answer sent at once hands reading back to h2o after this. */
static void read_ahead(conn_t *c, h2o_req_t *req)
{
    if (c == NULL || req->version >= 0x200 || req->entity.base == NULL ||
        req->entity.len > READ_AHEAD_BODY_MAX || h2o_socket_is_reading(c->sock))
        return;
    char *body = h2o_mem_alloc_pool(&req->pool, req->entity.len + 1);
    memcpy(body, req->entity.base, req->entity.len);
    req->entity.base = body;
    h2o_socket_read_start(c->sock, on_read_ahead);
}

/* Every answer of the route table itself is JSON, errors included (404, 405 with Allow). */
static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    conn_t *c = track_request(req);
    const char *bad = framing_error(req);
    if (bad) {
        req->http1_is_persistent = 0;
        dp_send_error(req, 400, bad);
        return 0;
    }
    if (!hold_body(c, req)) {
        LOG_RATELIMITED(FD_LOG_WARN,
                        "request refused: buffered request bodies at proxy.max-buffered-body-mb");
        dp_send_error(req, 503, "too many request bytes buffered, retry later");
        return 0;
    }
    read_ahead(c, req);
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
    dp.globalconf.http1.req_timeout = H2O_REQ_BACKSTOP;
    h2o_hostconf_t *host =
        h2o_config_register_host(&dp.globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    dp_errjson_register(host); /* h2o's own refusals (413) answer JSON too */
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_req;
    dp_accesslog_register(host, path); /* log.access-log: nothing is registered when it is off */
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err);

static void on_backoff_end(h2o_timeout_entry_t *entry)
{
    (void)entry;
    if (dp_current->listener)
        h2o_socket_read_start(dp_current->listener, on_accept);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    dp_thread_t *t = listener->data;
    if (err)
        return;
    h2o_socket_t *sock;
    for (;;) {
        errno = 0;
        if ((sock = h2o_evloop_socket_accept(listener)) == NULL) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                LOG_RATELIMITED(FD_LOG_WARN, "accept: %s; accepting again in %d ms", strerror(errno),
                                ACCEPT_BACKOFF_MS);
                h2o_socket_read_stop(listener);
                h2o_timeout_link(t->ctx.loop, &tracker->backoff_timeout, &tracker->backoff);
            }
            return;
        }
        conn_t *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            h2o_socket_close(sock);
            continue;
        }
        c->sock = sock;
        c->idle_since_ms = c->progress_ms = h2o_now(t->ctx.loop);
        h2o_linklist_insert(&tracker->conns, &c->link);
        tracker->nconns++;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = c;
        h2o_accept(&t->accept_ctx, sock);
    }
}

/* Answer a request that is still being read, then abort its connection (see the top). */
static void reject_reading(conn_t *c, int status, const char *reason, const char *msg)
{
    char body[256], buf[384];
    int len = dp_error_body(body, sizeof(body), msg);
    int n = len < 0 ? -1
                    : snprintf(buf, sizeof(buf),
                               "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                               "Connection: close\r\n\r\n%s",
                               status, reason, len, body);
    int fd = h2o_socket_get_fd(c->sock);
    if (n > 0 && (size_t)n < sizeof(buf))
        (void)!send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    (void)!connect(fd, &unspec, sizeof(unspec));
    c->shut = true;
}

/* One connection between requests, at sweep time: cut it if a read bound is passed; else the
 * bytes of its request buffered so far. */
static size_t sweep_one(conn_t *c, uint64_t now, uint64_t header_ms, uint64_t body_ms)
{
    h2o_buffer_t *in = c->sock->input;
    if (in->size == 0) { /* nothing of a request yet */
        if (now - c->idle_since_ms >= header_ms) {
            shutdown(h2o_socket_get_fd(c->sock), SHUT_RDWR);
            c->shut = true;
        }
        return 0;
    }
    if (in->size != c->seen_size) {
        c->seen_size = in->size;
        c->progress_ms = now;
    }
    if (!c->head_done) {
        /* only a complete head ends the header phase: one found malformed (which h2o, searching
         * from other offsets, may still be waiting on) stays under the header timeout */
        c->head_done = dp_request_head_len(in->bytes, in->size, c->head_scanned) > 0;
        c->head_scanned = in->size;
    }
    if (!c->head_done && now - c->idle_since_ms >= header_ms) {
        reject_reading(c, 408, "Request Timeout", "request head not received in time");
        return 0;
    }
    if (c->head_done && now - c->progress_ms >= body_ms) {
        reject_reading(c, 408, "Request Timeout", "request body stalled");
        return 0;
    }
    return in->size;
}

static uint64_t process_buffered(void)
{
    uint64_t sum = served_body_bytes;
    for (unsigned i = 0; i < dp.nthreads; i++)
        sum += trackers[i].reading_bytes;
    return sum;
}

/* Over the cap: the largest requests being read on this thread go first. */
static void shed_reading(tracker_t *tr)
{
    uint64_t cap = buffered_cap();
    for (int n = 0; n < MAX_REJECTS; n++) {
        uint64_t total = process_buffered();
        if (total <= cap)
            return;
        conn_t *big = NULL;
        for (h2o_linklist_t *l = tr->conns.next; l != &tr->conns; l = l->next) {
            conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, link, l);
            if (!c->shut && c->req == NULL && (big == NULL || c->sock->input->size > big->sock->input->size))
                big = c;
        }
        if (big == NULL || big->sock->input->size == 0)
            return;
        LOG_RATELIMITED(FD_LOG_WARN,
                        "request refused while its body was read: %llu bytes buffered, "
                        "proxy.max-buffered-body-mb is %llu MiB",
                        (unsigned long long)total, (unsigned long long)(cap >> 20));
        /* it was counted in this sweep's reading_bytes, and nothing was read since */
        tr->reading_bytes -= big->sock->input->size;
        reject_reading(big, 503, "Service Unavailable", "too many request bytes buffered, retry later");
    }
}

static void on_sweep(h2o_timeout_entry_t *entry)
{
    tracker_t *tr = H2O_STRUCT_FROM_MEMBER(tracker_t, sweep, entry);
    uint64_t now = h2o_now(dp_current->ctx.loop);
    uint64_t header_ms = dp.cfg.request_header_timeout_ms ? dp.cfg.request_header_timeout_ms : 10000;
    uint64_t body_ms = dp.cfg.request_body_timeout_ms ? dp.cfg.request_body_timeout_ms : 10000;
    uint64_t reading = 0;
    for (h2o_linklist_t *l = tr->conns.next; l != &tr->conns; l = l->next) {
        conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, link, l);
        if (!c->shut && c->req == NULL)
            reading += sweep_one(c, now, header_ms, body_ms);
    }
    tr->reading_bytes = reading;
    shed_reading(tr);
    h2o_timeout_link(dp_current->ctx.loop, &tr->sweep_timeout, &tr->sweep);
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
    if (t->pools == NULL) { /* at start, before SERVING: the CP sees the exit and restarts us */
        LOG_ERROR("out of memory for thread %u's upstream pools", t->index);
        exit(1);
    }
    /* request ids are drawn from it: seed from the kernel so no two processes or runs collide */
    if (getrandom(&t->rng, sizeof(t->rng), 0) != sizeof(t->rng) || !t->rng)
        t->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)getpid() << 16) ^ (t->index + 1) ^ shm_now_ms();
    tracker = &trackers[t->index];
    h2o_linklist_init_anchor(&tracker->conns);
    h2o_timeout_init(t->ctx.loop, &tracker->sweep_timeout, SWEEP_MS);
    tracker->sweep.cb = on_sweep;
    h2o_timeout_link(t->ctx.loop, &tracker->sweep_timeout, &tracker->sweep);
    h2o_timeout_init(t->ctx.loop, &tracker->backoff_timeout, ACCEPT_BACKOFF_MS);
    tracker->backoff.cb = on_backoff_end;
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
    if (h2o_timeout_is_linked(&tracker->backoff))
        h2o_timeout_unlink(&tracker->backoff);
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
    dp_current = t;
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
    while (!dp.stopping)
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
