/*
 * tools/fd-sim/call.c - a completion call's life on its event-loop thread: the progress word
 * shared with abort, framing and sending, the fixed delays' timing, the liveness probe, and the
 * teardown in the pool's dispose callback (call.h says the rules).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/reply.h"
#include "tools/fd-sim/call.h"
#include "tools/fd-sim/http.h"

/* sim_call_t.progress: tokens emitted, plus two flags set once */
#define P_ABORT (1UL << 62)
#define P_DONE  (1UL << 61)
#define P_COUNT (P_DONE - 1)

bool sim_call_claim(sim_call_t *c, unsigned n, bool last)
{
    unsigned long v = c->progress;
    do {
        if (v & (P_ABORT | P_DONE))
            return false;
    } while (!atomic_compare_exchange_weak(&c->progress, &v, (v + n) | (last ? P_DONE : 0)));
    return true;
}

bool sim_call_try_abort(sim_call_t *c, unsigned *emitted)
{
    unsigned long v = c->progress;
    do {
        if (v & (P_ABORT | P_DONE))
            return false;
    } while (!atomic_compare_exchange_weak(&c->progress, &v, v | P_ABORT));
    *emitted = (unsigned)(v & P_COUNT);
    return true;
}

static bool aborting(const sim_call_t *c)
{
    return c->progress & P_ABORT;
}

static void call_leave(sim_call_t *c)
{
    if (c->timing->leave)
        c->timing->leave(c);
}

static void call_quiesce(sim_call_t *c)
{
    h2o_timeout_unlink(&c->tick);
    h2o_timeout_unlink(&c->probe);
}

static void call_uncount(sim_call_t *c)
{
    if (c->counted) {
        c->th->srv->st->inflight--;
        c->counted = false;
    }
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
    call_leave(c);
    call_uncount(c);
    if (!c->done)
        srv->st->cancelled++;
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
    call_leave(c);
    c->started = c->sending = true;
    sim_drop_connection(c->req, &c->super, started);
}

bool sim_call_dies_now(const sim_call_t *c)
{
    return c->die_after >= 0 && c->next == (unsigned long)c->die_after;
}

void sim_call_die(sim_call_t *c)
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
        call_leave(c);
        if (!aborting(c))
            c->th->srv->st->completed++;
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

void sim_call_end_aborted(sim_call_t *c)
{
    unsigned emitted = (unsigned)(c->progress & P_COUNT);
    c->th->srv->st->aborted++;
    call_quiesce(c);
    call_leave(c);
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

void sim_call_finish_response(sim_call_t *c)
{
    if (!sim_call_claim(c, 0, true)) {
        sim_call_end_aborted(c);
        return;
    }
    if (c->die_after >= 0) {
        sim_call_die(c);
        return;
    }
    call_send_response(c);
}

/* The pieces [c->next, to) of a stream, with its end when last, in one malloc'd buffer. */
static char *render_chunks(const sim_call_t *c, unsigned to, bool last, size_t *total)
{
    size_t len = 0;
    char *buf = NULL;
    *total = 0;
    for (unsigned i = c->next; i <= to && (i < to || last); i++) {
        char *piece = i < to ? sim_render_chunk(&c->g, i, &len) : sim_render_stream_end(&c->g, &len);
        char *grown = piece ? realloc(buf, *total + len + 1) : NULL;
        if (!grown) {
            free(piece);
            free(buf);
            return NULL;
        }
        buf = grown;
        memcpy(buf + *total, piece, len + 1);
        *total += len;
        free(piece);
    }
    return buf;
}

void sim_call_send_chunks(sim_call_t *c, unsigned to)
{
    unsigned chunks = c->g.tokens ? c->g.tokens : 1;
    bool last = to == chunks;
    if (!sim_call_claim(c, c->g.tokens ? to - c->next : 0, last)) {
        sim_call_end_aborted(c);
        return;
    }
    size_t total;
    char *buf = render_chunks(c, to, last, &total);
    if (!buf) {
        call_abort(c);
        return;
    }
    c->next = to;
    call_send(c, buf, total, last ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

/* Too many distinct delays waiting at once on this thread: give up on this request. */
static void call_no_timer(sim_call_t *c)
{
    c->th->srv->st->rejected++;
    c->progress |= P_DONE; /* answered: no longer abortable */
    c->done = true;
    call_uncount(c);
    call_leave(c);
    if (c->started) {
        call_abort(c);
        return;
    }
    c->started = true;
    sim_reply_error(c->req, 503, "fd-sim: too many distinct delays in flight", "sim_overloaded");
}

void sim_call_arm_probe(sim_call_t *c)
{
    if (!h2o_timeout_is_linked(&c->probe))
        h2o_timeout_link(c->th->ctx.loop, &c->th->probe, &c->probe);
}

bool sim_call_wait(sim_call_t *c, unsigned ms)
{
    h2o_timeout_t *to = sim_thread_timeout(c->th, ms);
    if (!to) {
        call_no_timer(c);
        return false;
    }
    h2o_timeout_link(c->th->ctx.loop, to, &c->tick);
    if (ms >= SIM_PROBE_MS)
        sim_call_arm_probe(c);
    return true;
}

/*
 * Without the engine, token c->next is due: a stream sends it (or dies there), a whole answer
 * counts it. True when the caller should look at the next token at once.
 */
static bool fixed_emit(sim_call_t *c)
{
    if (c->g.stream) {
        if (sim_call_dies_now(c))
            sim_call_die(c);
        else
            sim_call_send_chunks(c, c->next + 1);
        return false;
    }
    if (!sim_call_claim(c, c->g.tokens ? 1 : 0, false)) {
        sim_call_end_aborted(c);
        return false;
    }
    c->next++;
    return true;
}

/* Without the engine: emit what is due now, or arm the timer for the next token. */
static void call_advance_fixed(sim_call_t *c)
{
    unsigned chunks = c->g.tokens ? c->g.tokens : 1;
    for (;;) {
        if (c->next == chunks) {
            sim_call_finish_response(c);
            return;
        }
        unsigned ms = sim_delay_before(&c->g, c->next);
        if (ms > 0) {
            sim_call_wait(c, ms);
            return;
        }
        if (!fixed_emit(c))
            return;
    }
}

/* The token the timer waited for is due. */
static void fixed_tick(sim_call_t *c)
{
    if (fixed_emit(c))
        call_advance_fixed(c);
}

static const sim_timing_t FIXED_TIMING = {.advance = call_advance_fixed, .tick = fixed_tick};

/* Nothing is in flight: act on an abort, or move on. */
static void call_advance(sim_call_t *c)
{
    if (c->done)
        return;
    if (aborting(c)) {
        sim_call_end_aborted(c);
        return;
    }
    if (c->hang)
        sim_call_arm_probe(c);
    else
        c->timing->advance(c);
}

/*
 * A kick: an abort, or (with the engine) new tokens. Nothing happens while a send is in flight
 * (proceed looks again) or while a timer is due to move the call on.
 */
void sim_call_poll(sim_call_t *c)
{
    if (c->sending || c->done)
        return;
    if (aborting(c))
        sim_call_end_aborted(c);
    else if (c->timing->kick && !h2o_timeout_is_linked(&c->tick))
        c->timing->kick(c);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    sim_call_t *c = H2O_STRUCT_FROM_MEMBER(sim_call_t, tick, entry);
    h2o_timeout_unlink(&c->probe);
    if (aborting(c))
        sim_call_end_aborted(c);
    else
        c->timing->tick(c);
}

static void on_probe(h2o_timeout_entry_t *entry)
{
    sim_call_t *c = H2O_STRUCT_FROM_MEMBER(sim_call_t, probe, entry);
    if (sim_peer_gone(c->req))
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

sim_call_t *sim_call_new(sim_thread_t *th, h2o_req_t *req, const sim_gen_t *g, const char *key, bool key_raw)
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
    c->timing = &FIXED_TIMING;
    atomic_init(&c->progress, 0);
    size_t klen = strlen(key);
    c->key = h2o_mem_alloc_pool(&req->pool, klen + 1);
    memcpy(c->key, key, klen + 1);
    c->key_raw = key_raw;
    th->srv->st->inflight++;
    h2o_linklist_insert(&th->calls, &c->link);
    pthread_mutex_lock(&th->srv->reg_lock);
    h2o_linklist_insert(&th->srv->registry, &c->reg_link);
    pthread_mutex_unlock(&th->srv->reg_lock);
    return c;
}

void sim_call_begin(sim_call_t *c)
{
    if (!c->g.stream) {
        call_advance(c);
        return;
    }
    stream_head(c);
    c->sending = true;
    h2o_send(c->req, NULL, 0, H2O_SEND_STATE_IN_PROGRESS);
}

void sim_call_hang(sim_call_t *c)
{
    c->hang = true;
    sim_call_arm_probe(c);
}
