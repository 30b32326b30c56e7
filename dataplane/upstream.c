/*
 * dataplane/upstream.c - the proxy generator over common/uclient.h (see upstream.h for the
 * guarantees). h2o 2.2's client has one io_timeout per context for every phase; we keep it as a
 * backstop only and enforce connect, first-byte and idle timeouts with our own timer, one entry
 * per proxy, linked to the h2o_timeout_t of the current phase.
 *
 * An answer that breaks HTTP/1.1 is counted on its instance (dp_pool_count_protocol_error).
 */
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "dataplane/pools.h"
#include "dataplane/upstream.h"
#include "dataplane/reply.h"

static uc_head_cb on_connect(uc_client_t *client, const char *err, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                             int *method_is_head);
static void do_send(dp_proxy_t *p);

static void timer_set(dp_proxy_t *p, h2o_timeout_t *which)
{
    if (h2o_timeout_is_linked(&p->timer))
        h2o_timeout_unlink(&p->timer);
    if (which)
        h2o_timeout_link(p->t->ctx.loop, which, &p->timer);
}

static void drop_pool(dp_proxy_t *p)
{
    if (p->pool) {
        dp_pool_release(p->pool);
        p->pool = NULL;
    }
}

static void stop_watch(dp_proxy_t *p)
{
    if (h2o_timeout_is_linked(&p->watch))
        h2o_timeout_unlink(&p->watch);
}

/* Ends the exchange's accounting exactly once. */
static void finish(dp_proxy_t *p, dp_outcome_t outcome)
{
    if (p->finished)
        return;
    p->finished = 1;
    p->state = DP_ST_DONE;
    timer_set(p, NULL);
    stop_watch(p);
    p->ops->done(p, outcome);
}

static void cancel_client(dp_proxy_t *p)
{
    if (p->client) {
        uc_cancel(p->client);
        p->client = NULL;
    }
}

static void attempt(dp_proxy_t *p)
{
    drop_pool(p);
    if (!p->ops->pick(p)) {
        p->ops->fail(p, p->attempts, p->timed_out);
        finish(p, p->attempts ? (p->timed_out ? DP_OUT_TIMEOUT : DP_OUT_UPSTREAM_ERROR) : DP_OUT_NO_INSTANCE);
        return;
    }
    p->attempts++;
    p->state = DP_ST_CONNECTING;
    timer_set(p, &p->t->connect_timeout);
    uc_connect(&p->client, p, &p->pool->up, on_connect);
}

/* Before any byte reached the client, an attempt that failed is retried on the next target. */
static void attempt_failed(dp_proxy_t *p, const char *err)
{
    p->client = NULL;
    p->ops->attempt_failed(p, err, p->state != DP_ST_CONNECTING);
    attempt(p);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    dp_proxy_t *p = H2O_STRUCT_FROM_MEMBER(dp_proxy_t, timer, entry);
    cancel_client(p);
    switch (p->state) {
    case DP_ST_CONNECTING:
        p->timed_out = 1;
        attempt_failed(p, "connect timeout");
        break;
    case DP_ST_WAIT_HEAD:
        /* the instance may be working on it: not retried, it would run twice */
        p->ops->attempt_failed(p, "first byte timeout", true);
        p->timed_out = 1;
        p->ops->fail(p, p->attempts, true);
        finish(p, DP_OUT_TIMEOUT);
        break;
    case DP_ST_BODY:
        p->timed_out = 1;
        p->upstream_done = 1;
        p->upstream_broken = 1;
        do_send(p);
        break;
    default:
        break;
    }
}

/* Headers the client named in its Connection header are hop-by-hop too (RFC 9110 7.6.1). */
static bool named_in_connection(const h2o_headers_t *headers, const h2o_header_t *h)
{
    ssize_t i = -1;
    while ((i = h2o_find_header(headers, H2O_TOKEN_CONNECTION, i)) != -1) {
        const h2o_iovec_t *v = &headers->entries[i].value;
        if (h2o_contains_token(v->base, v->len, h->name->base, h->name->len, ','))
            return true;
    }
    return false;
}

static void append_request_headers(const h2o_headers_t *headers, h2o_iovec_t *out, size_t cap)
{
    for (size_t i = 0; i < headers->size; i++) {
        const h2o_header_t *h = headers->entries + i;
        if (named_in_connection(headers, h))
            continue;
        if (h2o_iovec_is_token(h->name)) {
            const h2o_token_t *tok = (const h2o_token_t *)h->name;
            if (tok->proxy_should_drop_for_req || tok == H2O_TOKEN_HOST || tok == H2O_TOKEN_CONTENT_LENGTH ||
                tok == H2O_TOKEN_EXPECT)
                continue;
        }
        size_t need = h->name->len + 2 + h->value.len + 2;
        if (out->len + need + 2 > cap)
            break;
        memcpy(out->base + out->len, h->orig_name ? h->orig_name : h->name->base, h->name->len);
        out->len += h->name->len;
        memcpy(out->base + out->len, ": ", 2);
        memcpy(out->base + out->len + 2, h->value.base, h->value.len);
        out->len += 2 + h->value.len;
        memcpy(out->base + out->len, "\r\n", 2);
        out->len += 2;
    }
}

h2o_iovec_t dp_upstream_path(h2o_req_t *req, const char *upstream_path)
{
    h2o_iovec_t path = h2o_iovec_init(upstream_path, strlen(upstream_path));
    if (req->query_at == SIZE_MAX || req->query_at >= req->path.len)
        return path;
    h2o_iovec_t query = h2o_iovec_init(req->path.base + req->query_at, req->path.len - req->query_at);
    return h2o_concat(&req->pool, path, query);
}

static char *put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}
#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static char *put_size(char *o, size_t v)
{
    char num[24], *e = num + sizeof(num), *b = e;
    do
        *--b = (char)('0' + v % 10);
    while (v /= 10);
    return put(o, b, (size_t)(e - b));
}

/* Built with copies, not snprintf: it runs for every upstream request (two for a splitwise one),
 * where vfprintf's parsing of the format cost more than the copying. */
h2o_iovec_t dp_request_head(h2o_mem_pool_t *pool, h2o_iovec_t method, h2o_iovec_t path, h2o_iovec_t authority,
                            size_t body_len, const h2o_headers_t *client_headers)
{
    /* 256: the fixed text below (about 120 bytes) and the length's digits */
    size_t cap = 256 + method.len + path.len + authority.len;
    for (size_t i = 0; client_headers && i < client_headers->size; i++)
        cap += client_headers->entries[i].name->len + client_headers->entries[i].value.len + 4;
    h2o_iovec_t head = {h2o_mem_alloc_pool(pool, cap), 0};
    char *o = put(head.base, method.base, method.len);
    o = PUT_LIT(o, " ");
    o = put(o, path.base, path.len);
    o = PUT_LIT(o, " HTTP/1.1\r\nhost: ");
    o = put(o, authority.base, authority.len);
    o = PUT_LIT(o, "\r\ncontent-length: ");
    o = put_size(o, body_len);
    o = PUT_LIT(o, "\r\n");
    if (!client_headers)
        o = PUT_LIT(o, "content-type: application/json\r\n");
    o = PUT_LIT(o, "connection: keep-alive\r\n");
    head.len = (size_t)(o - head.base);
    if (client_headers)
        append_request_headers(client_headers, &head, cap);
    memcpy(head.base + head.len, "\r\n", 2);
    head.len += 2;
    return head;
}

static int on_body(uc_client_t *client, const char *err)
{
    dp_proxy_t *p = client->data;
    h2o_buffer_t **in = &client->sock->input;
    if ((*in)->size && !p->got_body) {
        p->got_body = 1;
        if (p->ops->first_body)
            p->ops->first_body(p);
    }
    if ((*in)->size) {
        h2o_iovec_t dst = h2o_buffer_reserve(&p->recv, (*in)->size);
        memcpy(dst.base, (*in)->bytes, (*in)->size);
        p->recv->size += (*in)->size;
        h2o_buffer_consume(in, (*in)->size);
    }
    if (err) {
        dp_pool_count_protocol_error(p->pool, client, err);
        p->client = NULL; /* the library closes or pools it after we return */
        p->upstream_done = 1;
        /* h2o 2.2's client reports a chunked body whose connection closed between two chunks as a
         * normal end (a browser habit); without the terminating chunk it is a truncated answer.
         * The real end arrives with the terminator's bytes; a close arrives with none. */
        p->upstream_broken = err != uc_error_is_eos || (p->upstream_chunked && client->sock->bytes_read == 0);
        timer_set(p, NULL);
    } else if (p->recv->size > DP_MAX_BUFFERED) {
        /* slow client: stop reading the instance until h2o asks for more (proceed) */
        p->upstream_reader = client->sock->_cb.read;
        h2o_socket_read_stop(client->sock);
        p->paused = 1;
        timer_set(p, NULL);
    } else {
        timer_set(p, &p->t->idle_timeout);
    }
    do_send(p);
    return 0;
}

/* Is this response header hop-by-hop (RFC 9110 7.6.1): a fixed one, or named in Connection? */
static bool hop_by_hop(const h2o_header_t *h, const h2o_header_t *headers, size_t n)
{
    static const h2o_iovec_t fixed[] = {{H2O_STRLIT("connection")},       {H2O_STRLIT("keep-alive")},
                                        {H2O_STRLIT("proxy-connection")}, {H2O_STRLIT("te")},
                                        {H2O_STRLIT("trailer")},          {H2O_STRLIT("upgrade")}};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (h2o_memis(h->name->base, h->name->len, fixed[i].base, fixed[i].len))
            return true;
    for (size_t i = 0; i < n; i++)
        if (headers[i].name == &H2O_TOKEN_CONNECTION->buf &&
            h2o_contains_token(headers[i].value.base, headers[i].value.len, h->name->base, h->name->len, ','))
            return true;
    return false;
}

static void copy_response_headers(dp_proxy_t *p, const h2o_header_t *headers, size_t n)
{
    h2o_req_t *req = p->req;
    for (size_t i = 0; i < n; i++) {
        const h2o_header_t *h = headers + i;
        if (hop_by_hop(h, headers, n))
            continue;
        if (h2o_iovec_is_token(h->name)) {
            const h2o_token_t *tok = (const h2o_token_t *)h->name;
            if (tok == H2O_TOKEN_TRANSFER_ENCODING)
                p->upstream_chunked =
                    h2o_contains_token(h->value.base, h->value.len, H2O_STRLIT("chunked"), ',');
            if (tok == H2O_TOKEN_CONTENT_LENGTH) {
                req->res.content_length = h2o_strtosize(h->value.base, h->value.len);
                continue;
            }
            if (tok->proxy_should_drop_for_res || tok == H2O_TOKEN_SERVER || tok == H2O_TOKEN_DATE)
                continue;
            h2o_add_header(&req->pool, &req->res.headers, tok, h->orig_name,
                           h2o_strdup(&req->pool, h->value.base, h->value.len).base, h->value.len);
        } else {
            h2o_iovec_t name = h2o_strdup(&req->pool, h->name->base, h->name->len);
            h2o_add_header_by_str(&req->pool, &req->res.headers, name.base, name.len, 0, h->orig_name,
                                  h2o_strdup(&req->pool, h->value.base, h->value.len).base, h->value.len);
        }
    }
}

static void start_response(dp_proxy_t *p)
{
    p->responded = 1;
    h2o_start_response(p->req, &p->super);
}

void dp_proxy_unhold(dp_proxy_t *p)
{
    if (!p->held || p->finished)
        return;
    p->held = 0;
    start_response(p);
    do_send(p);
}

void dp_proxy_abort(dp_proxy_t *p, int status, const char *msg, dp_outcome_t outcome)
{
    if (p->finished || p->responded)
        return;
    cancel_client(p);
    /* a held upstream head may have filled the response: the error replaces it */
    p->req->res.content_length = SIZE_MAX;
    p->req->res.headers = (h2o_headers_t){NULL, 0, 0};
    dp_send_error(p->req, status, msg);
    finish(p, outcome);
}

/* h2o 2.2 does not read a client connection while it serves a request, and only notices a
 * client that left when it next writes to it. Until the first body byte is sent (a long prefill,
 * a long non-streamed answer, a held PD answer), peek at the socket now and then, and cancel the
 * upstream when the client is gone; after that, every write would notice. */
static void on_watch(h2o_timeout_entry_t *entry)
{
    dp_proxy_t *p = H2O_STRUCT_FROM_MEMBER(dp_proxy_t, watch, entry);
    h2o_socket_t *sock =
        p->req->conn->callbacks->get_socket ? p->req->conn->callbacks->get_socket(p->req->conn) : NULL;
    char c;
    if (!sock || recv(h2o_socket_get_fd(sock), &c, 1, MSG_PEEK | MSG_DONTWAIT) != 0) {
        h2o_timeout_link(p->t->ctx.loop, &p->t->watch_timeout, &p->watch);
        return;
    }
    if (!p->responded) {
        dp_proxy_abort(p, 499, "client closed request", DP_OUT_CLIENT_ABORT);
        return;
    }
    cancel_client(p);
    finish(p, DP_OUT_CLIENT_ABORT);
    h2o_send(p->req, NULL, 0, H2O_SEND_STATE_ERROR); /* nothing in flight: nothing was sent yet */
}

static uc_body_cb on_head(uc_client_t *client, const char *err, int minor, int status, h2o_iovec_t msg,
                          h2o_header_t *headers, size_t n)
{
    (void)minor;
    dp_proxy_t *p = client->data;
    timer_set(p, NULL);
    if (err && err != uc_error_is_eos) {
        dp_pool_count_protocol_error(p->pool, client, err);
        attempt_failed(p, err); /* closed or broken before a head: nothing sent yet, try the next */
        return NULL;
    }
    p->ops->on_head(p, status);
    h2o_req_t *req = p->req;
    req->res.status = status;
    req->res.reason = h2o_strdup(&req->pool, msg.base, msg.len).base;
    copy_response_headers(p, headers, n);
    p->state = DP_ST_BODY;
    if (p->ops->may_respond && !p->ops->may_respond(p))
        p->held = 1;
    else
        start_response(p);
    if (err) { /* a head without a body */
        p->client = NULL;
        p->upstream_done = 1;
        do_send(p);
        return NULL;
    }
    timer_set(p, &p->t->idle_timeout);
    return on_body;
}

static uc_head_cb on_connect(uc_client_t *client, const char *err, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                             int *method_is_head)
{
    dp_proxy_t *p = client->data;
    if (err) {
        attempt_failed(p, err);
        return NULL;
    }
    p->reqbufs[0] =
        dp_request_head(&p->req->pool, p->req->method, p->path, p->authority, p->body.len, &p->req->headers);
    p->reqbufs[1] = p->body;
    *reqbufs = p->reqbufs;
    *reqbufcnt = p->body.len ? 2 : 1;
    *method_is_head = 0;
    p->state = DP_ST_WAIT_HEAD;
    timer_set(p, &p->t->first_byte_timeout);
    return on_head;
}

/* Hand the next piece to h2o; at most one h2o_send is in flight (proceed() calls back). */
static void do_send(dp_proxy_t *p)
{
    if (p->sending.bytes_inflight || p->finished || p->held)
        return;
    h2o_iovec_t vec = h2o_doublebuffer_prepare(&p->sending, &p->recv, p->req->preferred_chunk_size);
    bool last = p->upstream_done && p->recv->size == 0 && vec.len == p->sending.buf->size;
    if (vec.len)
        stop_watch(p);
    if (!last) {
        if (vec.len)
            h2o_send(p->req, &vec, 1, H2O_SEND_STATE_IN_PROGRESS);
        return;
    }
    dp_outcome_t outcome = !p->upstream_broken ? DP_OUT_OK : p->timed_out ? DP_OUT_TIMEOUT : DP_OUT_BROKEN;
    h2o_send_state_t st = p->upstream_broken ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL;
    finish(p, outcome);
    h2o_send(p->req, &vec, vec.len ? 1 : 0, st);
}

static void on_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    dp_proxy_t *p = (dp_proxy_t *)g;
    if (p->sending.bytes_inflight)
        h2o_doublebuffer_consume(&p->sending);
    if (p->paused && p->client && p->recv->size <= DP_MAX_BUFFERED / 2) {
        p->paused = 0;
        h2o_socket_read_start(p->client->sock, p->upstream_reader);
        timer_set(p, &p->t->idle_timeout);
    }
    do_send(p);
}

static void on_stop(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    dp_proxy_t *p = (dp_proxy_t *)g;
    cancel_client(p);
    finish(p, DP_OUT_CLIENT_ABORT);
}

static void on_dispose(void *arg)
{
    dp_proxy_t *p = arg;
    cancel_client(p);
    finish(p, DP_OUT_CLIENT_ABORT);
    drop_pool(p);
    h2o_buffer_dispose(&p->recv);
    h2o_doublebuffer_dispose(&p->sending);
}

dp_proxy_t *dp_proxy_new(h2o_req_t *req, const dp_proxy_ops_t *ops, void *owner, h2o_iovec_t path,
                         h2o_iovec_t body)
{
    dp_proxy_t *p = h2o_mem_alloc_shared(&req->pool, sizeof(*p), on_dispose);
    memset(p, 0, sizeof(*p));
    p->super.proceed = on_proceed;
    p->super.stop = on_stop;
    p->req = req;
    p->t = dp_self(req);
    p->ops = ops;
    p->owner = owner;
    p->path = path;
    p->body = body;
    p->timer.cb = on_timer;
    p->watch.cb = on_watch;
    h2o_buffer_init(&p->recv, &h2o_socket_buffer_prototype);
    h2o_doublebuffer_init(&p->sending, &h2o_socket_buffer_prototype);
    return p;
}

void dp_proxy_start(dp_proxy_t *p)
{
    h2o_timeout_link(p->t->ctx.loop, &p->t->watch_timeout, &p->watch);
    attempt(p);
}
