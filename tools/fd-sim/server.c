/*
 * tools/fd-sim/server.c - fd-sim's HTTP server on libh2o-evloop: one h2o context and evloop per
 * thread, each polling a dup() of the listening socket(s), as in stack-notes section 1.1.
 *
 * A completion request becomes a sim_call_t living in the request's memory pool. Delays are h2o
 * timers (never blocking the loop); one h2o_timeout_t per distinct delay per thread, because a
 * 2.2 timeout list has a fixed duration and the loop scans every list on each turn. The pool's
 * dispose callback is the single place a call is torn down, so a client that disconnects
 * (noticed on the next write, or by the liveness probe during long waits) releases everything.
 */
#include <errno.h>
#include <fcntl.h>
#include <h2o.h>
#include <json-c/json.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tools/fd-sim/sim.h"

#define TIMER_SLOTS   64
#define PROBE_MS      200 /* waits at least this long also watch for the client going away */
#define ACCEPT_BATCH  64
#define METRICS_CAP   1024
#define HEADER_KEYLEN 256

typedef struct {
    bool used;
    unsigned ms;
    h2o_timeout_t to;
} timer_slot_t;

typedef struct {
    sim_server_t *srv;
    pthread_t tid;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_api, accept_metrics;
    h2o_socket_t *listener_api, *listener_metrics, *wake;
    int api_fd, metrics_fd; /* this thread's dup()s of the listening sockets */
    int wake_fds[2];
    bool stop;
    timer_slot_t timers[TIMER_SLOTS];
    h2o_timeout_t probe;
} sim_thread_t;

struct sim_server {
    const sim_config_t *cfg;
    sim_state_t *st;
    h2o_globalconf_t conf;
    h2o_hostconf_t *api_hosts[2], *metrics_hosts[2];
    int api_fd, metrics_fd;
    int nthreads;
    sim_thread_t *threads;
    pthread_mutex_t park_lock;
    pthread_cond_t park_cond;
    int parked; /* threads whose loop has stopped */
};

typedef struct {
    h2o_handler_t super;
    sim_server_t *srv;
    bool metrics_only;
} sim_handler_t;

typedef struct {
    h2o_generator_t super;
    h2o_req_t *req;
    sim_thread_t *th;
    sim_gen_t g;
    unsigned next; /* next token (chunk) to emit */
    bool started;  /* h2o_start_response called */
    bool done;     /* answered in full (or deliberately failed): not a cancellation */
    bool counted;  /* still counted in inflight */
    bool chunked;  /* we frame the stream ourselves (see call_start_stream) */
    h2o_timeout_entry_t tick, probe;
    char *out;           /* the buffer of the send in flight */
    char chunk_head[24]; /* its chunk-size line */
} sim_call_t;

/* ---- small response helpers ---- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

static void send_text(h2o_req_t *req, int status, const char *type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_send_inline(req, body, len);
}

/* Sends and frees a malloc'd JSON body (h2o_send_inline copies it into the pool). */
static void send_json(h2o_req_t *req, int status, char *body, size_t len)
{
    if (!body) {
        send_text(req, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    send_text(req, status, "application/json", body, len);
    free(body);
}

static void send_error(h2o_req_t *req, int status, const char *message, const char *type)
{
    size_t len;
    char *body = sim_render_error(message, type, status, &len);
    send_json(req, status, body, len);
}

static void send_ok(h2o_req_t *req)
{
    send_text(req, 200, "application/json", "{\"ok\":true}", 11);
}

static int fd_of(h2o_req_t *req)
{
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    return sock ? h2o_socket_get_fd(sock) : -1;
}

/* A client that closed (EOF) or reset its side; pipelined bytes or nothing yet mean "still there". */
static bool peer_gone(h2o_req_t *req)
{
    int fd = fd_of(req);
    if (fd < 0)
        return false;
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/*
 * End the connection without a (complete) response: after shutdown() every write fails, so h2o
 * closes the connection and disposes the request through its normal error path.
 */
static void drop_connection(h2o_req_t *req, h2o_generator_t *gen, bool started)
{
    int fd = fd_of(req);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    req->http1_is_persistent = 0;
    if (!started) {
        req->res.status = 503;
        req->res.reason = reason_of(503);
        h2o_start_response(req, gen);
    }
    h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
}

/* ---- timers ---- */

static h2o_timeout_t *thread_timeout(sim_thread_t *th, unsigned ms)
{
    timer_slot_t *free_slot = NULL;
    for (int i = 0; i < TIMER_SLOTS; i++) {
        timer_slot_t *s = &th->timers[i];
        if (s->used && s->ms == ms)
            return &s->to;
        if (!s->used && !free_slot)
            free_slot = s;
    }
    for (int i = 0; !free_slot && i < TIMER_SLOTS; i++) {
        timer_slot_t *s = &th->timers[i];
        if (h2o_linklist_is_empty(&s->to._entries)) {
            h2o_timeout_dispose(th->ctx.loop, &s->to);
            free_slot = s;
        }
    }
    if (!free_slot)
        return NULL;
    h2o_timeout_init(th->ctx.loop, &free_slot->to, ms);
    free_slot->used = true;
    free_slot->ms = ms;
    return &free_slot->to;
}

/* ---- completion calls ---- */

static void call_quiesce(sim_call_t *c)
{
    h2o_timeout_unlink(&c->tick);
    h2o_timeout_unlink(&c->probe);
}

static void call_uncount(sim_call_t *c)
{
    if (c->counted) {
        atomic_fetch_sub(&c->th->srv->st->inflight, 1);
        c->counted = false;
    }
}

static void call_dispose(void *p)
{
    sim_call_t *c = p;
    call_quiesce(c);
    free(c->out);
    c->out = NULL;
    call_uncount(c);
    if (!c->done)
        atomic_fetch_add(&c->th->srv->st->cancelled, 1);
}

static void call_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    call_quiesce((sim_call_t *)gen);
}

static void call_abort(sim_call_t *c)
{
    call_quiesce(c);
    drop_connection(c->req, &c->super, c->started);
    c->started = true;
}

static void call_complete(sim_call_t *c)
{
    c->done = true;
    call_uncount(c);
    atomic_fetch_add(&c->th->srv->st->completed, 1);
}

static void call_send(sim_call_t *c, char *buf, size_t len, h2o_send_state_t state)
{
    if (!buf) {
        call_abort(c);
        return;
    }
    free(c->out);
    c->out = buf;
    h2o_iovec_t vec[3];
    size_t n = 0;
    if (c->chunked)
        vec[n++] = h2o_iovec_init(c->chunk_head, (size_t)sprintf(c->chunk_head, "%zx\r\n", len));
    vec[n++] = h2o_iovec_init(buf, len);
    if (c->chunked && state == H2O_SEND_STATE_FINAL)
        vec[n++] = h2o_iovec_init(H2O_STRLIT("\r\n0\r\n\r\n"));
    else if (c->chunked)
        vec[n++] = h2o_iovec_init(H2O_STRLIT("\r\n"));
    if (state == H2O_SEND_STATE_FINAL)
        call_complete(c);
    h2o_send(c->req, vec, n, state);
}

static void call_finish(sim_call_t *c)
{
    size_t len = 0;
    if (c->g.stream) {
        char *end = sim_render_stream_end(&c->g, &len);
        call_send(c, end, len, H2O_SEND_STATE_FINAL);
        return;
    }
    char *body = sim_render_response(&c->g, &len);
    if (!body) {
        call_abort(c);
        return;
    }
    c->req->res.status = 200;
    c->req->res.reason = reason_of(200);
    c->req->res.content_length = len;
    h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    c->started = true;
    h2o_start_response(c->req, &c->super);
    call_send(c, body, len, H2O_SEND_STATE_FINAL);
}

static void call_send_chunk(sim_call_t *c)
{
    size_t len = 0;
    char *chunk = sim_render_chunk(&c->g, c->next, &len);
    c->next++;
    call_send(c, chunk, len, H2O_SEND_STATE_IN_PROGRESS);
}

/* Too many distinct delays waiting at once on this thread: give up on this request. */
static void call_no_timer(sim_call_t *c)
{
    atomic_fetch_add(&c->th->srv->st->rejected, 1);
    c->done = true;
    call_uncount(c);
    if (c->started) {
        call_abort(c);
        return;
    }
    c->started = true;
    send_error(c->req, 503, "fd-sim: too many distinct delays in flight", "sim_overloaded");
}

/* Move on: emit what is due now, or arm the timer for the next token. Nothing is in flight. */
static void call_advance(sim_call_t *c)
{
    unsigned chunks = c->g.tokens ? c->g.tokens : 1;
    for (;;) {
        if (c->next == chunks) {
            call_finish(c);
            return;
        }
        unsigned ms = sim_delay_before(&c->g, c->next);
        if (ms > 0) {
            h2o_timeout_t *to = thread_timeout(c->th, ms);
            if (!to) {
                call_no_timer(c);
                return;
            }
            h2o_timeout_link(c->th->ctx.loop, to, &c->tick);
            if (ms >= PROBE_MS)
                h2o_timeout_link(c->th->ctx.loop, &c->th->probe, &c->probe);
            return;
        }
        if (c->g.stream) {
            call_send_chunk(c);
            return;
        }
        c->next++;
    }
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    sim_call_t *c = H2O_STRUCT_FROM_MEMBER(sim_call_t, tick, entry);
    h2o_timeout_unlink(&c->probe);
    if (c->g.stream) {
        call_send_chunk(c);
    } else {
        c->next++;
        call_advance(c);
    }
}

static void on_probe(h2o_timeout_entry_t *entry)
{
    sim_call_t *c = H2O_STRUCT_FROM_MEMBER(sim_call_t, probe, entry);
    if (peer_gone(c->req))
        call_abort(c);
    else
        h2o_timeout_link(c->th->ctx.loop, &c->th->probe, &c->probe);
}

static void call_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    sim_call_t *c = (sim_call_t *)gen;
    free(c->out);
    c->out = NULL;
    call_advance(c);
}

static sim_call_t *call_new(sim_thread_t *th, h2o_req_t *req)
{
    sim_call_t *c = h2o_mem_alloc_shared(&req->pool, sizeof(*c), call_dispose);
    memset(c, 0, sizeof(*c));
    c->super.proceed = call_proceed;
    c->super.stop = call_stop;
    c->req = req;
    c->th = th;
    c->tick.cb = on_tick;
    c->probe.cb = on_probe;
    c->counted = true;
    atomic_fetch_add(&th->srv->st->inflight, 1);
    return c;
}

/*
 * Streams send their head at once (as FastDeploy does), then one chunk per token. h2o's chunked
 * encoder would hold an empty send back, delaying the head until the first token, so HTTP/1.1
 * streams are framed here and announce transfer-encoding themselves (which turns the encoder
 * off); HTTP/1.0 clients get a body delimited by the connection close.
 */
static void call_start_stream(sim_call_t *c)
{
    h2o_req_t *req = c->req;
    req->res.status = 200;
    req->res.reason = reason_of(200);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    if (req->version == 0x101) {
        c->chunked = true;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_TRANSFER_ENCODING, NULL,
                       H2O_STRLIT("chunked"));
    } else {
        req->http1_is_persistent = 0;
    }
    c->started = true;
    h2o_start_response(req, &c->super);
    h2o_send(req, NULL, 0, H2O_SEND_STATE_IN_PROGRESS);
}

/* The hang failure mode: never answer; only the liveness probe ends it. */
static void call_hang(sim_call_t *c)
{
    h2o_timeout_link(c->th->ctx.loop, &c->th->probe, &c->probe);
}

/* ---- request recording ---- */

static void add_header(json_object *o, const char *name, size_t nlen, const char *val, size_t vlen)
{
    char key[HEADER_KEYLEN];
    if (nlen >= sizeof(key))
        return; /* no real client sends such names; the value would be useless to tests */
    memcpy(key, name, nlen);
    key[nlen] = '\0';
    json_object *prev;
    if (json_object_object_get_ex(o, key, &prev)) {
        size_t plen = (size_t)json_object_get_string_len(prev);
        char *joined = malloc(plen + 2 + vlen);
        if (!joined)
            return;
        memcpy(joined, json_object_get_string(prev), plen);
        memcpy(joined + plen, ", ", 2);
        memcpy(joined + plen + 2, val, vlen);
        json_object_object_add(o, key, json_object_new_string_len(joined, (int)(plen + 2 + vlen)));
        free(joined);
        return;
    }
    json_object_object_add(o, key, json_object_new_string_len(val, (int)vlen));
}

static void record_request(sim_state_t *st, h2o_req_t *req)
{
    json_object *headers = json_object_new_object();
    if (req->authority.len)
        add_header(headers, "host", 4, req->authority.base, req->authority.len);
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        add_header(headers, h->name->base, h->name->len, h->value.base, h->value.len);
    }
    sim_state_record(st, req->path.base, req->path.len, req->entity.base ? req->entity.base : "",
                     req->entity.base ? req->entity.len : 0, headers);
}

/* ---- handlers ---- */

static int handle_completion(sim_thread_t *th, h2o_req_t *req, sim_api_t api)
{
    sim_state_t *st = th->srv->st;
    const sim_config_t *cfg = th->srv->cfg;
    atomic_fetch_add(&st->requests, 1);
    record_request(st, req);

    int status;
    sim_fail_mode_t mode = sim_state_take_fail(st, &status);
    if (mode != SIM_FAIL_NONE)
        atomic_fetch_add(&st->failed, 1);
    if (mode == SIM_FAIL_STATUS) {
        send_error(req, status, "fd-sim: injected failure", "sim_failure");
        return 0;
    }
    if (mode == SIM_FAIL_CLOSE_BEFORE_HEAD) {
        static h2o_generator_t none = {NULL, NULL};
        drop_connection(req, &none, false);
        return 0;
    }
    if (mode == SIM_FAIL_HANG_BEFORE_HEAD) {
        call_hang(call_new(th, req));
        return 0;
    }

    sim_defaults_t d = {cfg->tokens, cfg->token_delay_ms, cfg->first_token_delay_ms};
    sim_gen_t g;
    char err[256];
    if (sim_parse_completion(api, req->entity.base, req->entity.base ? req->entity.len : 0, &d, cfg->name,
                             atomic_fetch_add(&st->seq, 1), (long)time(NULL), &g, err, sizeof(err)) != 0) {
        atomic_fetch_add(&st->rejected, 1);
        send_error(req, 400, err, "invalid_request_error");
        return 0;
    }
    sim_call_t *c = call_new(th, req);
    c->g = g;
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-sim-instance"), 0, NULL, cfg->name,
                          strlen(cfg->name));
    if (g.stream)
        call_start_stream(c);
    else
        call_advance(c);
    return 0;
}

static void handle_metrics(sim_state_t *st, h2o_req_t *req)
{
    char buf[METRICS_CAP];
    size_t len = sim_state_metrics_text(st, buf, sizeof(buf));
    send_text(req, 200, "text/plain; version=0.0.4", buf, len);
}

static void handle_health(sim_state_t *st, h2o_req_t *req)
{
    if (atomic_load(&st->healthy))
        send_text(req, 200, "application/json", "{\"status\":\"ok\"}", 15);
    else
        send_text(req, 503, "application/json", "{\"status\":\"unhealthy\"}", 22);
}

typedef int (*control_fn)(sim_state_t *, const char *, size_t, char *, size_t);

static void handle_control(sim_state_t *st, h2o_req_t *req, control_fn fn)
{
    char err[256];
    if (fn(st, req->entity.base, req->entity.base ? req->entity.len : 0, err, sizeof(err)) != 0)
        send_error(req, 400, err, "invalid_request_error");
    else
        send_ok(req);
}

static void handle_stats(sim_state_t *st, h2o_req_t *req)
{
    size_t len = 0;
    char *body = sim_state_stats_json(st, &len);
    send_json(req, 200, body, len);
}

#define IS(v, lit) h2o_memis((v).base, (v).len, H2O_STRLIT(lit))

/* Routes whose method is wrong answer 405; unknown paths 404. */
static int route(sim_thread_t *th, h2o_req_t *req)
{
    sim_state_t *st = th->srv->st;
    h2o_iovec_t p = req->path_normalized;
    bool get = IS(req->method, "GET"), post = IS(req->method, "POST");
    if (IS(p, "/v1/chat/completions") && post)
        return handle_completion(th, req, SIM_API_CHAT);
    if (IS(p, "/v1/completions") && post)
        return handle_completion(th, req, SIM_API_COMPLETIONS);
    if (IS(p, "/health") && get)
        handle_health(st, req);
    else if (IS(p, "/metrics") && get)
        handle_metrics(st, req);
    else if (IS(p, "/sim/stats") && get)
        handle_stats(st, req);
    else if (IS(p, "/sim/health") && post)
        handle_control(st, req, sim_state_set_health);
    else if (IS(p, "/sim/fail") && post)
        handle_control(st, req, sim_state_set_fail);
    else if (IS(p, "/sim/metrics") && post)
        handle_control(st, req, sim_state_set_metrics);
    else if (IS(p, "/sim/reset") && post) {
        sim_state_reset(st);
        send_ok(req);
    } else if (IS(p, "/v1/chat/completions") || IS(p, "/v1/completions") || IS(p, "/health") ||
               IS(p, "/metrics") || IS(p, "/sim/stats") || IS(p, "/sim/health") || IS(p, "/sim/fail") ||
               IS(p, "/sim/metrics") || IS(p, "/sim/reset"))
        send_error(req, 405, "method not allowed", "invalid_request_error");
    else
        send_error(req, 404, "not found", "not_found_error");
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    sim_handler_t *h = (sim_handler_t *)self;
    sim_thread_t *th = H2O_STRUCT_FROM_MEMBER(sim_thread_t, ctx, req->conn->ctx);
    if (!h->metrics_only)
        return route(th, req);
    if (IS(req->path_normalized, "/metrics") && IS(req->method, "GET"))
        handle_metrics(h->srv->st, req);
    else
        send_error(req, 404, "not found (metrics port)", "not_found_error");
    return 0;
}

/* ---- listeners and threads ---- */

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

static h2o_hostconf_t *add_host(sim_server_t *srv, const char *name, bool metrics_only)
{
    h2o_hostconf_t *host = h2o_config_register_host(&srv->conf, h2o_iovec_init(name, strlen(name)), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    sim_handler_t *h = (sim_handler_t *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->srv = srv;
    h->metrics_only = metrics_only;
    return host;
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
    srv->api_fd = listen_on(cfg->host, cfg->port, port, err, errlen);
    if (srv->api_fd < 0)
        goto fail;
    *metrics_port = *port;
    if (cfg->metrics_port >= 0 && cfg->metrics_port != *port) {
        srv->metrics_fd = listen_on(cfg->host, cfg->metrics_port, metrics_port, err, errlen);
        if (srv->metrics_fd < 0)
            goto fail;
    }
    h2o_config_init(&srv->conf);
    srv->conf.max_request_entity_size = SIM_MAX_BODY;
    srv->conf.http1.upgrade_to_http2 = 0; /* HTTP/1 only: the framing in call_start_stream relies on it */
    srv->api_hosts[0] = add_host(srv, "default", false);
    srv->metrics_hosts[0] = add_host(srv, "metrics", true);
    srv->nthreads = cfg->threads;
    pthread_mutex_init(&srv->park_lock, NULL);
    pthread_cond_init(&srv->park_cond, NULL);
    return srv;
fail:
    if (srv->api_fd >= 0)
        close(srv->api_fd);
    free(srv);
    return NULL;
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
    h2o_timeout_init(loop, &th->probe, PROBE_MS);
    th->accept_api = (h2o_accept_ctx_t){.ctx = &th->ctx, .hosts = srv->api_hosts};
    th->listener_api = watch(loop, th->api_fd, H2O_SOCKET_FLAG_DONT_READ, &th->accept_api, on_accept);
    if (th->metrics_fd >= 0) {
        th->accept_metrics = (h2o_accept_ctx_t){.ctx = &th->ctx, .hosts = srv->metrics_hosts};
        th->listener_metrics =
            watch(loop, th->metrics_fd, H2O_SOCKET_FLAG_DONT_READ, &th->accept_metrics, on_accept);
    }
    th->wake = watch(loop, th->wake_fds[0], 0, th, on_wake);
    while (!th->stop)
        h2o_evloop_run(loop, INT32_MAX);
    /* Connections still open stay referenced from the context until the process exits. */
    close_socket(th->listener_api);
    close_socket(th->listener_metrics);
    close_socket(th->wake);
    park(srv);
    return NULL;
}

/* Everything that can fail is set up here, so a thread never starts half-equipped. */
static int thread_prepare(sim_server_t *srv, sim_thread_t *th)
{
    th->srv = srv;
    th->api_fd = dup(srv->api_fd);
    th->metrics_fd = srv->metrics_fd >= 0 ? dup(srv->metrics_fd) : -1;
    if (th->api_fd < 0 || (srv->metrics_fd >= 0 && th->metrics_fd < 0) ||
        pipe2(th->wake_fds, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    return 0;
}

int sim_server_start(sim_server_t *srv)
{
    srv->threads = calloc((size_t)srv->nthreads, sizeof(*srv->threads));
    if (!srv->threads)
        return -1;
    for (int i = 0; i < srv->nthreads; i++) {
        sim_thread_t *th = &srv->threads[i];
        if (thread_prepare(srv, th) != 0 || pthread_create(&th->tid, NULL, thread_main, th) != 0) {
            srv->nthreads = i;
            return -1;
        }
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
    close(srv->api_fd);
    if (srv->metrics_fd >= 0)
        close(srv->metrics_fd);
}
