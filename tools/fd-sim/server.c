/*
 * tools/fd-sim/server.c - fd-sim's HTTP server on libh2o-evloop: one h2o context and evloop per
 * thread, each polling a dup() of the listening socket(s), as the router does
 * (docs/architecture.md, "Processes").
 *
 * A completion request becomes a sim_call_t living in the request's memory pool. Without the
 * engine model its tokens are paced by h2o timers (never blocking the loop); one h2o_timeout_t
 * per distinct delay per thread, because a 2.2 timeout list has a fixed duration and the loop
 * scans every list on each turn. With the engine model (driver.c) the driver thread kicks the
 * owning loop thread through a pipe when the call's request got tokens, and the call sends what
 * the engine produced. The pool's dispose callback is the single place a call is torn down, so a
 * client that disconnects (noticed on the next write, or by the liveness probe during long
 * waits) releases everything, including its place in the engine.
 *
 * Abort (/v1/abort_requests) may arrive on any thread: every call is in a registry under a mutex,
 * and its token count and abort/done flags share one atomic word, so the count an abort reports
 * is exactly what the call had emitted; the owning thread, kicked, then ends the call.
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

#include "common/reply.h"
#include "tools/fd-sim/sim.h"

#define TIMER_SLOTS   64
#define PROBE_MS      200 /* waits at least this long also watch for the client going away */
#define ACCEPT_BATCH  64
#define HEADER_KEYLEN 256
#define JSON_FLAGS    (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* sim_call_t.progress: tokens emitted, plus two flags set once */
#define P_ABORT (1UL << 62)
#define P_DONE  (1UL << 61)
#define P_COUNT (P_DONE - 1)

typedef struct {
    bool used;
    unsigned ms;
    h2o_timeout_t to;
} timer_slot_t;

typedef struct {
    sim_server_t *srv;
    int index; /* the engine's owner id for this thread's requests */
    pthread_t tid;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_api, accept_metrics;
    h2o_socket_t *listener_api, *listener_metrics, *wake, *kick;
    int api_fd, metrics_fd; /* this thread's dup()s of the listening sockets */
    int wake_fds[2], kick_fds[2];
    atomic_bool kicked; /* a byte is in kick_fds already */
    bool stop;
    timer_slot_t timers[TIMER_SLOTS];
    h2o_timeout_t probe;
    h2o_linklist_t calls; /* this thread's calls, for kicks */
} sim_thread_t;

struct sim_server {
    const sim_config_t *cfg;
    sim_state_t *st;
    h2o_globalconf_t conf;
    h2o_hostconf_t *api_hosts[2], *metrics_hosts[2];
    int api_fd, metrics_fd;
    int nthreads;     /* threads running */
    int nthreads_max; /* threads prepared: kicks may reach them */
    sim_thread_t *threads;
    pthread_mutex_t park_lock;
    pthread_cond_t park_cond;
    int parked;           /* threads whose loop has stopped */
    sim_driver_t *driver; /* NULL without the engine model */
    struct timespec t0;   /* for --slow-start-ms */
    pthread_mutex_t reg_lock;
    h2o_linklist_t registry; /* every call of every thread, for abort */
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
    unsigned next;  /* next token (chunk) to emit */
    bool started;   /* h2o_start_response called */
    bool sending;   /* an h2o_send is in flight: wait for proceed */
    bool done;      /* answered in full, aborted or deliberately failed: not a cancellation */
    bool counted;   /* still counted in inflight */
    bool chunked;   /* we frame the stream ourselves (see stream_head) */
    bool hang;      /* hang_before_head: only an abort or the client ends it */
    bool held;      /* role prefill with the engine: the prefill delay has passed */
    long die_after; /* die_mid_stream: chunks sent before the connection is closed; -1 = never */
    h2o_timeout_entry_t tick, probe;
    char *out;           /* the buffer of the send in flight */
    char chunk_head[24]; /* its chunk-size line */
    h2o_linklist_t link, reg_link;
    char *key;    /* what abort requests match (pool memory) */
    bool key_raw; /* key is the JSON text of a non-string request_id */
    atomic_ulong progress;
    sim_ereq_t *er; /* with the engine */
} sim_call_t;

/* ---- small response helpers ---- */

/* Sends and frees a malloc'd JSON body (h2o_send_inline copies it into the pool). */
static void send_json(h2o_req_t *req, int status, char *body, size_t len)
{
    if (!body) {
        fd_reply(req, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    fd_reply(req, status, "application/json", body, len);
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
    fd_reply(req, 200, "application/json", "{\"ok\":true}", 11);
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
        req->res.reason = fd_http_reason(503);
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

/* The prefill role's extra wait before its token. */
static unsigned prefill_delay_ms(const sim_config_t *cfg)
{
    return sim_role_of(cfg) == SIM_ROLE_PREFILL ? cfg->prefill_delay_ms : 0;
}

static double server_ms(const sim_server_t *srv)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - srv->t0.tv_sec) * 1e3 + (double)(now.tv_nsec - srv->t0.tv_nsec) / 1e6;
}

/*
 * Claim n more tokens for the client (and with last, the end of the answer). False once an abort
 * claimed the call first: then the call must end as aborted instead.
 */
static bool call_claim(sim_call_t *c, unsigned n, bool last)
{
    unsigned long v = atomic_load(&c->progress);
    do {
        if (v & (P_ABORT | P_DONE))
            return false;
    } while (!atomic_compare_exchange_weak(&c->progress, &v, (v + n) | (last ? P_DONE : 0)));
    return true;
}

/* The abort side (any thread, registry locked): emitted gets the count the client has seen. */
static bool call_try_abort(sim_call_t *c, unsigned *emitted)
{
    unsigned long v = atomic_load(&c->progress);
    do {
        if (v & (P_ABORT | P_DONE))
            return false;
    } while (!atomic_compare_exchange_weak(&c->progress, &v, v | P_ABORT));
    *emitted = (unsigned)(v & P_COUNT);
    return true;
}

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

/* Give the engine its slot back (aborting the request there if it still runs). */
static void call_leave_engine(sim_call_t *c)
{
    sim_driver_t *d = c->th->srv->driver;
    if (!c->er)
        return;
    sim_engine_t *e = sim_driver_lock(d);
    sim_engine_release(e, c->er, sim_driver_now(d));
    sim_driver_unlock(d);
    c->er = NULL;
}

static void call_dispose(void *p)
{
    sim_call_t *c = p;
    sim_server_t *srv = c->th->srv;
    call_quiesce(c);
    free(c->out);
    c->out = NULL;
    pthread_mutex_lock(&srv->reg_lock);
    h2o_linklist_unlink(&c->reg_link);
    pthread_mutex_unlock(&srv->reg_lock);
    h2o_linklist_unlink(&c->link);
    call_leave_engine(c);
    call_uncount(c);
    if (!c->done)
        atomic_fetch_add(&srv->st->cancelled, 1);
}

static void call_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    call_quiesce((sim_call_t *)gen);
}

/*
 * End the connection without finishing the answer (client gone, or an injected failure). The
 * error send disposes of the request, and so of c, before it returns.
 */
static void call_abort(sim_call_t *c)
{
    bool started = c->started;
    call_quiesce(c);
    call_leave_engine(c);
    c->started = c->sending = true;
    drop_connection(c->req, &c->super, started);
}

/* die_mid_stream: deliberate, so not a cancellation. */
static void call_die(sim_call_t *c)
{
    c->done = true;
    call_uncount(c);
    call_abort(c);
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
    h2o_timeout_unlink(&c->probe); /* only waits are probed */
    if (state == H2O_SEND_STATE_FINAL) {
        c->done = true;
        call_uncount(c);
        call_leave_engine(c);
        if (!(atomic_load(&c->progress) & P_ABORT))
            atomic_fetch_add(&c->th->srv->st->completed, 1);
    }
    c->sending = true;
    h2o_send(c->req, vec, n, state);
}

/*
 * Streams send their head at once (as FastDeploy does), then one chunk per token. h2o's chunked
 * encoder would hold an empty send back, delaying the head until the first token, so HTTP/1.1
 * streams are framed here and announce transfer-encoding themselves (which turns the encoder
 * off); HTTP/1.0 clients get a body delimited by the connection close.
 */
static void stream_head(sim_call_t *c)
{
    h2o_req_t *req = c->req;
    req->res.status = 200;
    req->res.reason = fd_http_reason(200);
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
}

static void call_start_stream(sim_call_t *c)
{
    stream_head(c);
    c->sending = true;
    h2o_send(c->req, NULL, 0, H2O_SEND_STATE_IN_PROGRESS);
}

/* A complete JSON response (non-streamed answers, whole or aborted). */
static void call_send_response(sim_call_t *c)
{
    size_t len = 0;
    char *body = sim_render_response(&c->g, &len);
    if (!body) {
        call_abort(c);
        return;
    }
    c->req->res.status = 200;
    c->req->res.reason = fd_http_reason(200);
    c->req->res.content_length = len;
    h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    c->started = true;
    h2o_start_response(c->req, &c->super);
    call_send(c, body, len, H2O_SEND_STATE_FINAL);
}

/* The abort claimed the call: answer with what was emitted and finish_reason "abort". */
static void call_end_aborted(sim_call_t *c)
{
    unsigned emitted = (unsigned)(atomic_load(&c->progress) & P_COUNT);
    atomic_fetch_add(&c->th->srv->st->aborted, 1);
    call_quiesce(c);
    call_leave_engine(c);
    if (!c->g.stream) {
        c->g.tokens = emitted;
        c->g.aborted = true;
        call_send_response(c);
        return;
    }
    size_t len = 0;
    char *end = sim_render_abort_end(&c->g, emitted, &len);
    if (!c->started)
        stream_head(c);
    call_send(c, end, len, H2O_SEND_STATE_FINAL);
}

/* Non-streamed answers are sent whole once every token is there. */
static void call_finish_response(sim_call_t *c)
{
    if (!call_claim(c, 0, true)) {
        call_end_aborted(c);
        return;
    }
    if (c->die_after >= 0) {
        call_die(c);
        return;
    }
    call_send_response(c);
}

/* Chunks [c->next, to) in one send, with the stream's end when to is the last one. */
static void call_send_chunks(sim_call_t *c, unsigned to)
{
    unsigned chunks = c->g.tokens ? c->g.tokens : 1;
    bool last = to == chunks;
    if (!call_claim(c, c->g.tokens ? to - c->next : 0, last)) {
        call_end_aborted(c);
        return;
    }
    size_t total = 0, len = 0;
    char *buf = NULL;
    for (unsigned i = c->next; i <= to && (i < to || last); i++) {
        char *piece = i < to ? sim_render_chunk(&c->g, i, &len) : sim_render_stream_end(&c->g, &len);
        char *grown = piece ? realloc(buf, total + len + 1) : NULL;
        if (!grown) {
            free(piece);
            free(buf);
            call_abort(c);
            return;
        }
        buf = grown;
        memcpy(buf + total, piece, len + 1);
        total += len;
        free(piece);
    }
    c->next = to;
    call_send(c, buf, total, last ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

/* Too many distinct delays waiting at once on this thread: give up on this request. */
static void call_no_timer(sim_call_t *c)
{
    atomic_fetch_add(&c->th->srv->st->rejected, 1);
    atomic_fetch_or(&c->progress, P_DONE); /* answered: no longer abortable */
    c->done = true;
    call_uncount(c);
    call_leave_engine(c);
    if (c->started) {
        call_abort(c);
        return;
    }
    c->started = true;
    send_error(c->req, 503, "fd-sim: too many distinct delays in flight", "sim_overloaded");
}

static void arm_probe(sim_call_t *c)
{
    if (!h2o_timeout_is_linked(&c->probe))
        h2o_timeout_link(c->th->ctx.loop, &c->th->probe, &c->probe);
}

/* Wait ms on this thread's timer for that duration; false (and the call ended) when none is left. */
static bool call_wait(sim_call_t *c, unsigned ms)
{
    h2o_timeout_t *to = thread_timeout(c->th, ms);
    if (!to) {
        call_no_timer(c);
        return false;
    }
    h2o_timeout_link(c->th->ctx.loop, to, &c->tick);
    if (ms >= PROBE_MS)
        arm_probe(c);
    return true;
}

/* Without the engine: emit what is due now, or arm the timer for the next token. */
static void call_advance_fixed(sim_call_t *c)
{
    unsigned chunks = c->g.tokens ? c->g.tokens : 1;
    for (;;) {
        if (c->next == chunks) {
            call_finish_response(c);
            return;
        }
        unsigned ms = sim_delay_before(&c->g, c->next);
        if (ms > 0) {
            call_wait(c, ms);
            return;
        }
        if (c->g.stream) {
            if (c->die_after >= 0 && c->next == (unsigned long)c->die_after)
                call_die(c);
            else
                call_send_chunks(c, c->next + 1);
            return;
        }
        if (!call_claim(c, c->g.tokens ? 1 : 0, false)) {
            call_end_aborted(c);
            return;
        }
        c->next++;
    }
}

/* With the engine: send whatever it produced for this request since the last look. */
static void call_advance_engine(sim_call_t *c)
{
    sim_driver_t *d = c->th->srv->driver;
    sim_ereq_info_t in;
    sim_driver_lock(d);
    sim_engine_info(c->er, &in);
    sim_driver_unlock(d);
    c->g.cached_tokens = in.cached_tokens;
    bool done = in.state == SIM_EREQ_DONE;
    unsigned prefill_delay = prefill_delay_ms(c->th->srv->cfg);
    if (prefill_delay > 0 && !c->held && (in.generated > 0 || done)) {
        c->held = true; /* role prefill: the token waits prefill_delay more */
        call_wait(c, prefill_delay);
        return;
    }
    unsigned avail = c->g.tokens ? in.generated : (done ? 1 : 0);
    if (!c->g.stream) {
        if (avail > c->next && c->g.tokens > 0) { /* counted as they come, for an abort's report */
            if (!call_claim(c, avail - c->next, false)) {
                call_end_aborted(c);
                return;
            }
            c->next = avail;
        }
        if (done)
            call_finish_response(c);
        else
            arm_probe(c);
        return;
    }
    if (c->die_after >= 0 && avail > (unsigned long)c->die_after)
        avail = (unsigned)c->die_after;
    if (c->next < avail)
        call_send_chunks(c, avail);
    else if (c->die_after >= 0 && c->next == (unsigned long)c->die_after)
        call_die(c);
    else
        arm_probe(c);
}

/* Nothing is in flight: act on an abort, or move on. */
static void call_advance(sim_call_t *c)
{
    if (c->done)
        return;
    if (atomic_load(&c->progress) & P_ABORT) {
        call_end_aborted(c);
        return;
    }
    if (c->hang)
        arm_probe(c);
    else if (c->er)
        call_advance_engine(c);
    else
        call_advance_fixed(c);
}

/*
 * A kick: an abort, or (with the engine) new tokens. Nothing happens while a send is in flight
 * (proceed looks again) or while a timer is due to move the call on.
 */
static void call_poll(sim_call_t *c)
{
    if (c->sending || c->done)
        return;
    if (atomic_load(&c->progress) & P_ABORT)
        call_end_aborted(c);
    else if (c->er && !h2o_timeout_is_linked(&c->tick))
        call_advance_engine(c);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    sim_call_t *c = H2O_STRUCT_FROM_MEMBER(sim_call_t, tick, entry);
    h2o_timeout_unlink(&c->probe);
    if (atomic_load(&c->progress) & P_ABORT) {
        call_end_aborted(c);
    } else if (c->er) {
        call_advance_engine(c); /* the prefill delay has passed */
    } else if (c->g.stream) {
        if (c->die_after >= 0 && c->next == (unsigned long)c->die_after)
            call_die(c);
        else
            call_send_chunks(c, c->next + 1);
    } else if (!call_claim(c, c->g.tokens ? 1 : 0, false)) {
        call_end_aborted(c);
    } else {
        c->next++;
        call_advance_fixed(c);
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
    c->sending = false;
    call_advance(c);
}

/* A new call, findable by abort under key (copied into the request's pool). */
static sim_call_t *call_new(sim_thread_t *th, h2o_req_t *req, const sim_gen_t *g, const char *key,
                            bool key_raw)
{
    sim_call_t *c = h2o_mem_alloc_shared(&req->pool, sizeof(*c), call_dispose);
    memset(c, 0, sizeof(*c));
    c->super.proceed = call_proceed;
    c->super.stop = call_stop;
    c->req = req;
    c->th = th;
    c->g = *g;
    c->die_after = -1;
    c->tick.cb = on_tick;
    c->probe.cb = on_probe;
    c->counted = true;
    atomic_init(&c->progress, 0);
    size_t klen = strlen(key);
    c->key = h2o_mem_alloc_pool(&req->pool, klen + 1);
    memcpy(c->key, key, klen + 1);
    c->key_raw = key_raw;
    atomic_fetch_add(&th->srv->st->inflight, 1);
    h2o_linklist_insert(&th->calls, &c->link);
    pthread_mutex_lock(&th->srv->reg_lock);
    h2o_linklist_insert(&th->srv->registry, &c->reg_link);
    pthread_mutex_unlock(&th->srv->reg_lock);
    return c;
}

/* Wake thread `owner` so it looks at its calls (from any thread). */
static void kick_thread(void *ctx, int owner)
{
    sim_server_t *srv = ctx;
    if (owner < 0 || owner >= srv->nthreads_max)
        return;
    sim_thread_t *th = &srv->threads[owner];
    if (atomic_exchange(&th->kicked, true))
        return;
    ssize_t w;
    do
        w = write(th->kick_fds[1], "k", 1);
    while (w < 0 && errno == EINTR);
}

static void on_kick(h2o_socket_t *sock, const char *err)
{
    (void)err;
    sim_thread_t *th = sock->data;
    atomic_store(&th->kicked, false);
    h2o_buffer_consume(&sock->input, sock->input->size);
    h2o_linklist_t *node, *next;
    for (node = th->calls.next; node != &th->calls; node = next) {
        next = node->next;
        call_poll(H2O_STRUCT_FROM_MEMBER(sim_call_t, link, node));
    }
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

static bool starting(sim_server_t *srv)
{
    return srv->cfg->slow_start_ms > 0 && server_ms(srv) < srv->cfg->slow_start_ms;
}

/* The request_id and disaggregate_info of the latest body, for the stats. */
static void record_pd(sim_state_t *st, json_object *root)
{
    json_object *rid = NULL, *info = NULL;
    if (root) {
        json_object_object_get_ex(root, "request_id", &rid);
        json_object_object_get_ex(root, "disaggregate_info", &info);
    }
    char *r = rid ? strdup(json_object_to_json_string_ext(rid, JSON_FLAGS)) : NULL;
    sim_state_record_pd(st, r, info ? json_object_to_json_string_ext(info, JSON_FLAGS) : NULL);
    free(r);
}

/* The body's request_id as abort requests match it (malloc'd), or NULL when it has none. */
static char *body_key(json_object *root, bool *raw)
{
    json_object *rid;
    *raw = false;
    if (!root || !json_object_object_get_ex(root, "request_id", &rid) || rid == NULL)
        return NULL;
    if (json_object_is_type(rid, json_type_string) && json_object_get_string_len(rid) == 0)
        return NULL; /* ignored, as for the response id */
    *raw = !json_object_is_type(rid, json_type_string);
    return sim_request_key(rid);
}

/* Queue the request in the engine; NULL when answered already (an error). */
static sim_ereq_t *engine_submit(sim_thread_t *th, h2o_req_t *req, sim_api_t api, json_object *root,
                                 const sim_gen_t *g)
{
    sim_driver_t *d = th->srv->driver;
    sim_chain_t chain;
    sim_chain_init(&chain, th->srv->cfg->engine_params.block_tokens);
    if (sim_prompt_chain(api, root, &chain) != 0) {
        sim_chain_free(&chain);
        send_error(req, 500, "fd-sim: out of memory", "sim_failure");
        return NULL;
    }
    unsigned long prompt = chain.tokens;
    sim_engine_t *e = sim_driver_lock(d);
    bool fits = sim_engine_fits(e, prompt, g->tokens);
    sim_ereq_t *er = fits ? sim_engine_submit(e, sim_driver_now(d), &chain, g->tokens, th->index) : NULL;
    sim_driver_unlock(d);
    sim_chain_free(&chain);
    if (!er && !fits) {
        char err[256];
        snprintf(err, sizeof(err),
                 "prompt (%lu tokens) plus output (%u tokens) exceed the KV cache (%u blocks of %u)", prompt,
                 g->tokens, th->srv->cfg->engine_params.kv_blocks, th->srv->cfg->engine_params.block_tokens);
        atomic_fetch_add(&th->srv->st->rejected, 1);
        send_error(req, 400, err, "invalid_request_error");
    } else if (!er) {
        send_error(req, 500, "fd-sim: out of memory", "sim_failure");
    }
    return er;
}

/* Start answering a valid request (role rules applied). */
static void serve(sim_thread_t *th, h2o_req_t *req, sim_api_t api, json_object *root, sim_gen_t *g,
                  const char *key, bool raw, const sim_fail_t *f)
{
    sim_server_t *srv = th->srv;
    const sim_config_t *cfg = srv->cfg;
    if (sim_role_of(cfg) == SIM_ROLE_PREFILL) {
        if (g->tokens > 1)
            g->tokens = 1; /* FastDeploy's prefill instance answers with the first token */
        if (!srv->driver)
            g->first_token_delay_ms += cfg->prefill_delay_ms;
    }
    sim_ereq_t *er = NULL;
    if (srv->driver) {
        if (!(er = engine_submit(th, req, api, root, g)))
            return;
    } else {
        atomic_fetch_add(&srv->st->prompt_tokens, g->prompt_tokens);
    }
    sim_call_t *c = call_new(th, req, g, key, raw);
    c->er = er;
    if (f->mode == SIM_FAIL_DIE_MID_STREAM)
        c->die_after = (long)f->after_chunks;
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-sim-instance"), 0, NULL, cfg->name,
                          strlen(cfg->name));
    if (g->stream)
        call_start_stream(c);
    else
        call_advance(c);
}

static int handle_completion(sim_thread_t *th, h2o_req_t *req, sim_api_t api)
{
    sim_state_t *st = th->srv->st;
    const sim_config_t *cfg = th->srv->cfg;
    atomic_fetch_add(&st->requests, 1);
    record_request(st, req);
    if (starting(th->srv)) {
        atomic_fetch_add(&st->failed, 1);
        send_error(req, 503, "fd-sim: starting up", "sim_starting");
        return 0;
    }

    sim_fail_t f;
    if (sim_state_take_fail(st, &f) != SIM_FAIL_NONE)
        atomic_fetch_add(&st->failed, 1);
    if (f.mode == SIM_FAIL_STATUS) {
        send_error(req, f.status, "fd-sim: injected failure", "sim_failure");
        return 0;
    }
    if (f.mode == SIM_FAIL_CLOSE_BEFORE_HEAD) {
        static h2o_generator_t none = {NULL, NULL};
        drop_connection(req, &none, false);
        return 0;
    }

    sim_defaults_t d = {cfg->tokens, cfg->token_delay_ms, cfg->first_token_delay_ms};
    sim_gen_t g;
    json_object *root;
    char err[256], generated[SIM_NAME_LEN + 24];
    unsigned long seq = atomic_fetch_add(&st->seq, 1);
    int rc = sim_parse_request(api, req->entity.base, req->entity.base ? req->entity.len : 0, &d, cfg->name,
                               seq, (long)time(NULL), &g, &root, err, sizeof(err));
    record_pd(st, root);
    bool raw;
    char *key = body_key(root, &raw);
    snprintf(generated, sizeof(generated), "%s-%lu", cfg->name, seq);
    if (f.mode == SIM_FAIL_HANG_BEFORE_HEAD) {
        sim_call_t *c = call_new(th, req, &g, key ? key : generated, raw);
        c->hang = true; /* never answers: only an abort or the client's leaving ends it */
        arm_probe(c);
    } else if (rc != 0 ||
               (sim_role_of(cfg) == SIM_ROLE_DECODE && sim_check_disaggregate(root, err, sizeof(err)))) {
        atomic_fetch_add(&st->rejected, 1);
        send_error(req, 400, err, "invalid_request_error");
    } else {
        serve(th, req, api, root, &g, key ? key : generated, raw, &f);
    }
    free(key);
    json_object_put(root);
    return 0;
}

/* The value an aborted call is reported under when the abort named none. */
static json_object *key_value(const sim_call_t *c)
{
    json_object *v = c->key_raw ? json_tokener_parse(c->key) : NULL;
    return v ? v : json_object_new_string(c->key);
}

/* Abort c if it is still running; id is how the abort named it (NULL for abort_all). */
static bool abort_call(sim_call_t *c, json_object *id, json_object *aborted, uint64_t *kick)
{
    unsigned emitted;
    if (!call_try_abort(c, &emitted))
        return false;
    json_object *entry = json_object_new_object();
    json_object_object_add(entry, "request_id", id ? json_object_get(id) : key_value(c));
    json_object_object_add(entry, "output_tokens", json_object_new_int64(emitted));
    json_object_array_add(aborted, entry);
    *kick |= 1ULL << c->th->index;
    return true;
}

static bool call_matches(const sim_call_t *c, const char *key)
{
    return strcmp(c->key, key) == 0 || strcmp(c->g.id, key) == 0;
}

/* Match the ids against every call of every thread (registry locked). */
static void abort_ids(sim_server_t *srv, json_object *ids, json_object *aborted, json_object *not_found,
                      uint64_t *kick)
{
    for (size_t i = 0; i < json_object_array_length(ids); i++) {
        json_object *id = json_object_array_get_idx(ids, i);
        char *key = sim_request_key(id);
        bool found = false;
        for (h2o_linklist_t *n = srv->registry.next; key && n != &srv->registry; n = n->next) {
            sim_call_t *c = H2O_STRUCT_FROM_MEMBER(sim_call_t, reg_link, n);
            if (call_matches(c, key) && abort_call(c, id, aborted, kick))
                found = true;
        }
        if (!found)
            json_object_array_add(not_found, json_object_get(id));
        free(key);
    }
}

static void handle_abort(sim_server_t *srv, h2o_req_t *req)
{
    sim_abort_req_t a;
    if (sim_parse_abort(req->entity.base, req->entity.base ? req->entity.len : 0, &a) != 0) {
        static const char usage[] = "{\"error\":\"" SIM_ABORT_USAGE "\"}";
        fd_reply(req, 400, "application/json", usage, sizeof(usage) - 1);
        return;
    }
    json_object *aborted = json_object_new_array(), *not_found = json_object_new_array();
    uint64_t kick = 0;
    pthread_mutex_lock(&srv->reg_lock);
    if (a.all) {
        for (h2o_linklist_t *n = srv->registry.next; n != &srv->registry; n = n->next)
            abort_call(H2O_STRUCT_FROM_MEMBER(sim_call_t, reg_link, n), NULL, aborted, &kick);
    } else {
        abort_ids(srv, a.ids, aborted, not_found, &kick);
    }
    pthread_mutex_unlock(&srv->reg_lock);
    sim_abort_req_free(&a);
    for (int i = 0; i < srv->nthreads_max; i++)
        if (kick & (1ULL << i))
            kick_thread(srv, i);
    json_object *result = json_object_new_object(), *o = json_object_new_object();
    json_object_object_add(result, "aborted", aborted);
    json_object_object_add(result, "not_found", not_found);
    json_object_object_add(o, "result", result);
    size_t len;
    const char *s = json_object_to_json_string_length(o, JSON_FLAGS, &len);
    send_json(req, 200, s ? strndup(s, len) : NULL, len);
    json_object_put(o);
}

/* The engine's figures for /metrics and /sim/stats; NULL without the engine. */
static const sim_engine_load_t *engine_load(sim_server_t *srv, sim_engine_load_t *load)
{
    if (!srv->driver)
        return NULL;
    sim_engine_load(sim_driver_lock(srv->driver), load);
    sim_driver_unlock(srv->driver);
    return load;
}

static void handle_metrics(sim_server_t *srv, h2o_req_t *req)
{
    char buf[SIM_METRICS_CAP];
    sim_engine_load_t load;
    size_t len = sim_state_metrics_text(srv->st, engine_load(srv, &load), buf, sizeof(buf));
    fd_reply(req, 200, "text/plain; version=0.0.4", buf, len);
}

/* GET /v1/models: the OpenAI list of the one --model, as FastDeploy's api_server answers it. */
static void handle_models(sim_server_t *srv, h2o_req_t *req)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "id", json_object_new_string(srv->cfg->model));
    json_object_object_add(m, "object", json_object_new_string("model"));
    json_object_object_add(m, "created",
                           json_object_new_int64((int64_t)time(NULL) - (int64_t)(server_ms(srv) / 1000)));
    json_object_object_add(m, "owned_by", json_object_new_string("FastDeploy"));
    json_object *data = json_object_new_array();
    json_object_array_add(data, m);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "object", json_object_new_string("list"));
    json_object_object_add(o, "data", data);
    size_t len;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    fd_reply(req, 200, "application/json", s, len);
    json_object_put(o);
}

static void handle_health(sim_server_t *srv, h2o_req_t *req)
{
    if (starting(srv))
        fd_reply(req, 503, "application/json", "{\"status\":\"starting\"}", 21);
    else if (atomic_load(&srv->st->healthy))
        fd_reply(req, 200, "application/json", "{\"status\":\"ok\"}", 15);
    else
        fd_reply(req, 503, "application/json", "{\"status\":\"unhealthy\"}", 22);
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

static void handle_stats(sim_server_t *srv, h2o_req_t *req)
{
    size_t len = 0;
    sim_engine_load_t load;
    char *body = sim_state_stats_json(srv->st, engine_load(srv, &load), &len);
    send_json(req, 200, body, len);
}

/* Body optional; {"flush_cache":true} also empties the engine's evictable cache. */
static void handle_reset(sim_server_t *srv, h2o_req_t *req)
{
    bool flush = false;
    if (req->entity.base && req->entity.len > 0) {
        char err[256];
        json_object *root = sim_parse_object(req->entity.base, req->entity.len, err, sizeof(err)), *v;
        if (!root) {
            send_error(req, 400, err, "invalid_request_error");
            return;
        }
        flush = json_object_object_get_ex(root, "flush_cache", &v) && json_object_get_boolean(v);
        json_object_put(root);
    }
    sim_state_reset(srv->st);
    if (srv->driver) {
        sim_engine_reset(sim_driver_lock(srv->driver), flush);
        sim_driver_unlock(srv->driver);
    }
    send_ok(req);
}

#define IS(v, lit) h2o_memis((v).base, (v).len, H2O_STRLIT(lit))

static const char *const ROUTES[] = {
    "/v1/chat/completions", "/v1/completions", "/v1/abort_requests", "/health",    "/metrics",  "/sim/stats",
    "/sim/health",          "/sim/fail",       "/sim/metrics",       "/sim/reset", "/v1/models"};

static bool known_path(h2o_iovec_t p)
{
    for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++)
        if (h2o_memis(p.base, p.len, ROUTES[i], strlen(ROUTES[i])))
            return true;
    return false;
}

/* Routes whose method is wrong answer 405; unknown paths 404. */
static int route(sim_thread_t *th, h2o_req_t *req)
{
    sim_server_t *srv = th->srv;
    sim_state_t *st = srv->st;
    h2o_iovec_t p = req->path_normalized;
    bool get = IS(req->method, "GET"), post = IS(req->method, "POST");
    if (IS(p, "/v1/chat/completions") && post)
        return handle_completion(th, req, SIM_API_CHAT);
    if (IS(p, "/v1/completions") && post)
        return handle_completion(th, req, SIM_API_COMPLETIONS);
    if (IS(p, "/v1/abort_requests") && post)
        handle_abort(srv, req);
    else if (IS(p, "/health") && get)
        handle_health(srv, req);
    else if (IS(p, "/metrics") && get)
        handle_metrics(srv, req);
    else if (IS(p, "/v1/models") && get && srv->cfg->model[0])
        handle_models(srv, req);
    else if (IS(p, "/v1/models"))
        send_error(req, 404, "not found", "not_found_error");
    else if (IS(p, "/sim/stats") && get)
        handle_stats(srv, req);
    else if (IS(p, "/sim/health") && post)
        handle_control(st, req, sim_state_set_health);
    else if (IS(p, "/sim/fail") && post)
        handle_control(st, req, sim_state_set_fail);
    else if (IS(p, "/sim/metrics") && post)
        handle_control(st, req, sim_state_set_metrics);
    else if (IS(p, "/sim/reset") && post)
        handle_reset(srv, req);
    else if (known_path(p))
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
        handle_metrics(h->srv, req);
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
    clock_gettime(CLOCK_MONOTONIC, &srv->t0);
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
    pthread_mutex_init(&srv->reg_lock, NULL);
    h2o_linklist_init_anchor(&srv->registry);
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
    if (srv->cfg->engine && !(srv->driver = sim_driver_start(&srv->cfg->engine_params, kick_thread, srv)))
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
