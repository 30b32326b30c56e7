/*
 * common/uclient.c - the upstream HTTP/1.1 client and its loop-resident keep-alive pools (see
 * uclient.h for the contract and why it replaced h2o 2.2's client).
 *
 * One exchange: connect (or take an idle pooled socket) -> the caller's request buffers are
 * written -> the head is read and checked by uresp_parse() -> the body is delivered as framed
 * (Content-Length countdown, chunked decoded in place by picohttpparser, or until close) -> at
 * its end the socket goes back to its pool when the exchange left it clean, else it is closed.
 * Reading starts only once the request is written, as h2o's client does; bytes that arrive
 * earlier wait in the socket's input buffer.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/uclient.h"

const char *const uc_error_is_eos = "end of stream";

/* An idle pooled socket. */
typedef struct {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    uc_pool_t *pool;
    uint64_t since_ms;
} uc_idle_t;

int uc_make_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *len = sizeof(*v6);
        return 0;
    }
    return -1;
}

/* Exchanges and idle records are made and freed on one loop thread: they are recycled through
 * a small per-thread cache instead of a malloc and a free per request. */
#define UC_CACHE_MAX 64
typedef struct uc_cached {
    struct uc_cached *next;
} uc_cached_t;
typedef struct {
    uc_cached_t *head;
    unsigned n;
} uc_cache_t;
static __thread uc_cache_t client_cache, idle_cache;

static void *cache_get(uc_cache_t *c, size_t size)
{
    if (!c->head)
        return malloc(size);
    uc_cached_t *e = c->head;
    c->head = e->next;
    c->n--;
    return e;
}

static void cache_put(uc_cache_t *c, void *p)
{
    if (c->n >= UC_CACHE_MAX) {
        free(p);
        return;
    }
    uc_cached_t *e = p;
    e->next = c->head;
    c->head = e;
    c->n++;
}

/* ---- pool ---- */

static void idle_close(uc_idle_t *e)
{
    h2o_linklist_unlink(&e->link);
    e->pool->nidle--;
    h2o_socket_close(e->sock);
    cache_put(&idle_cache, e);
}

/* An idle socket became readable: the peer closed it, or sent what nobody asked for. */
static void on_idle_read(h2o_socket_t *sock, const char *err)
{
    (void)err;
    idle_close(sock->data);
}

void uc_pool_init(uc_pool_t *p, const struct sockaddr *sa, socklen_t salen, h2o_loop_t *loop,
                  uint64_t idle_ms, size_t max_idle)
{
    memset(p, 0, sizeof(*p));
    memcpy(&p->addr, sa, salen);
    p->addrlen = salen;
    p->loop = loop;
    p->idle_ms = idle_ms;
    p->max_idle = max_idle;
    h2o_linklist_init_anchor(&p->idle);
}

void uc_pool_dispose(uc_pool_t *p)
{
    while (!h2o_linklist_is_empty(&p->idle))
        idle_close(H2O_STRUCT_FROM_MEMBER(uc_idle_t, link, p->idle.next));
}

static h2o_socket_t *pool_take(uc_pool_t *p)
{
    uint64_t now = h2o_now(p->loop);
    while (!h2o_linklist_is_empty(&p->idle)) {
        uc_idle_t *e = H2O_STRUCT_FROM_MEMBER(uc_idle_t, link, p->idle.next);
        if (now - e->since_ms > p->idle_ms) {
            /* the most recent is too old, so are the others */
            uc_pool_dispose(p);
            return NULL;
        }
        h2o_socket_t *sock = e->sock;
        h2o_linklist_unlink(&e->link);
        p->nidle--;
        cache_put(&idle_cache, e);
        return sock;
    }
    return NULL;
}

static void pool_put(uc_pool_t *p, h2o_socket_t *sock)
{
    uc_idle_t *e = p->nidle < p->max_idle ? cache_get(&idle_cache, sizeof(*e)) : NULL;
    if (!e) {
        h2o_socket_close(sock);
        return;
    }
    e->sock = sock;
    e->pool = p;
    e->since_ms = h2o_now(p->loop);
    sock->data = e;
    e->link = (h2o_linklist_t){NULL, NULL}; /* a recycled or fresh record's link is not a list's yet
                                             * (h2o's debug check reads it; NDEBUG builds never did) */
    h2o_linklist_insert(p->idle.next, &e->link);
    p->nidle++;
    h2o_socket_read_start(sock, on_idle_read);
}

/* ---- one exchange ---- */

static void client_free(uc_client_t *c, bool reuse)
{
    if (c->sock) {
        if (reuse && c->pool && c->keepalive && !c->writing && c->sock->input->size == 0)
            pool_put(c->pool, c->sock);
        else
            h2o_socket_close(c->sock);
        c->sock = NULL;
    }
    cache_put(&client_cache, c);
}

void uc_cancel(uc_client_t *c)
{
    client_free(c, false);
}

static void connect_new(uc_client_t *c, const struct sockaddr *sa, socklen_t salen);

/* A pooled socket that fails before any byte of a head was most likely closed by the instance
 * while idle (a race the idle read-poll cannot always win): the request is sent once more on a
 * fresh connection. A fresh connection that fails is the instance's answer. */
static void fail_before_head(uc_client_t *c, const char *err)
{
    if (c->reused && c->sock->input->size == 0) {
        h2o_socket_close(c->sock);
        c->sock = NULL;
        c->reused = false;
        c->writing = 0;
        c->early_err = NULL;
        connect_new(c, (struct sockaddr *)&c->pool->addr, c->pool->addrlen);
        return;
    }
    c->on_head(c, err, 0, 0, h2o_iovec_init(NULL, 0), NULL, 0);
    client_free(c, false);
}

static void body_end(uc_client_t *c, const char *err)
{
    c->on_body(c, err);
    client_free(c, err == uc_error_is_eos);
}

static void on_body_read(h2o_socket_t *sock, const char *err)
{
    uc_client_t *c = sock->data;
    size_t fresh = sock->bytes_read;
    if (err) {
        /* only a body delimited by the close ends well on one */
        body_end(c, c->framing == UC_BODY_UNTIL_CLOSE ? uc_error_is_eos
                                                      : "upstream closed before the end of the body");
        return;
    }
    h2o_buffer_t *in = sock->input;
    const char *end = NULL;
    if (c->framing == UC_BODY_LENGTH) {
        if (fresh >= c->bytesleft) {
            if (fresh > c->bytesleft) { /* bytes beyond the body: do not reuse this connection */
                in->size -= fresh - (size_t)c->bytesleft;
                c->keepalive = 0;
            }
            c->bytesleft = 0;
            end = uc_error_is_eos;
        } else {
            c->bytesleft -= fresh;
        }
    } else if (c->framing == UC_BODY_CHUNKED && fresh) {
        size_t n = fresh;
        ssize_t r = phr_decode_chunked(&c->chunked, in->bytes + in->size - fresh, &n);
        in->size -= fresh - n;
        if (r == -1) {
            c->protocol_error = true;
            end = "malformed chunked body from upstream";
        } else if (r >= 0) {
            if (r > 0)
                c->keepalive = 0;
            end = uc_error_is_eos;
        }
    }
    if (end) {
        body_end(c, end);
        return;
    }
    if (c->on_body(c, NULL) != 0)
        uc_cancel(c);
}

static void start_body(uc_client_t *c, size_t rlen)
{
    h2o_buffer_consume(&c->sock->input, rlen);
    /* body bytes that arrived with the head are handled as if just read */
    c->sock->bytes_read = c->sock->input->size;
    h2o_socket_read_start(c->sock, on_body_read);
    if (c->sock->bytes_read)
        on_body_read(c->sock, NULL);
}

static void to_h2o_headers(uc_client_t *c, struct phr_header *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h2o_strtolower((char *)src[i].name, src[i].name_len);
        const h2o_token_t *tok = h2o_lookup_token(src[i].name, src[i].name_len);
        if (tok) {
            c->headers[i].name = (h2o_iovec_t *)&tok->buf;
        } else {
            c->header_names[i] = h2o_iovec_init(src[i].name, src[i].name_len);
            c->headers[i].name = &c->header_names[i];
        }
        c->headers[i].orig_name = NULL;
        c->headers[i].value = h2o_iovec_init(src[i].value, src[i].value_len);
    }
}

static void on_head_read(h2o_socket_t *sock, const char *err)
{
    uc_client_t *c = sock->data;
    if (err) {
        fail_before_head(c, "upstream closed before a response head");
        return;
    }
    for (;;) {
        struct phr_header src[UC_MAX_HEADERS];
        uresp_t r = {.headers = src, .num_headers = UC_MAX_HEADERS};
        int rlen =
            uresp_parse(sock->input->bytes, sock->input->size, UC_MAX_HEAD_SIZE, c->method_is_head, &r);
        if (rlen == -2)
            return;
        if (rlen < 0) {
            c->protocol_error = true;
            fail_before_head(c, r.error);
            return;
        }
        if (r.informational) {
            h2o_buffer_consume(&sock->input, (size_t)rlen);
            if (sock->input->size == 0)
                return;
            continue;
        }
        to_h2o_headers(c, src, r.num_headers);
        c->keepalive = r.keepalive;
        c->framing = r.framing;
        c->bytesleft = r.content_length;
        memset(&c->chunked, 0, sizeof(c->chunked));
        c->chunked.consume_trailer = 1;
        bool eos = r.framing == UC_BODY_NONE;
        c->on_body = c->on_head(c, eos ? uc_error_is_eos : NULL, r.minor_version, r.status,
                                h2o_iovec_init(r.msg, r.msg_len), c->headers, r.num_headers);
        if (eos) {
            h2o_buffer_consume(&sock->input, (size_t)rlen);
            client_free(c, true);
        } else if (!c->on_body) {
            uc_cancel(c);
        } else {
            start_body(c, (size_t)rlen);
        }
        return;
    }
}

/* Bytes (or a close) that arrive while the request is still being written wait for the head. */
static void on_early_read(h2o_socket_t *sock, const char *err)
{
    uc_client_t *c = sock->data;
    if (err && !c->early_err)
        c->early_err = err;
}

static void on_written(h2o_socket_t *sock, const char *err)
{
    uc_client_t *c = sock->data;
    c->writing = 0;
    if (err) {
        fail_before_head(c, "could not send the request to upstream");
        return;
    }
    h2o_socket_read_start(sock, on_head_read);
    if (c->early_err || sock->input->size) {
        sock->bytes_read = sock->input->size;
        on_head_read(sock, c->early_err);
    }
}

static void send_request(uc_client_t *c)
{
    h2o_iovec_t *bufs = NULL;
    size_t n = 0;
    c->sock->data = c;
    c->on_head = c->on_connect(c, NULL, &bufs, &n, &c->method_is_head);
    if (!c->on_head) {
        uc_cancel(c);
        return;
    }
    c->writing = 1;
    /* a pooled socket is already read-polled: switching its callback costs no system call */
    h2o_socket_read_start(c->sock, on_early_read);
    h2o_socket_write(c->sock, bufs, n, on_written);
}

static void on_connected(h2o_socket_t *sock, const char *err)
{
    uc_client_t *c = sock->data;
    if (err) {
        c->on_connect(c, "connection failed", NULL, NULL, NULL);
        client_free(c, false);
        return;
    }
    send_request(c);
}

static uc_client_t *client_new(uc_client_t **out, void *data, h2o_loop_t *loop, uc_pool_t *pool,
                               uc_connect_cb cb)
{
    uc_client_t *c = cache_get(&client_cache, sizeof(*c));
    if (!c)
        h2o_fatal("no memory");
    /* the header arrays are written before they are read: only the state before them is reset */
    memset(c, 0, offsetof(uc_client_t, headers));
    c->data = data;
    c->loop = loop;
    c->pool = pool;
    c->on_connect = cb;
    *out = c;
    return c;
}

static void connect_new(uc_client_t *c, const struct sockaddr *sa, socklen_t salen)
{
    c->sock = sa ? h2o_socket_connect(c->loop, (struct sockaddr *)sa, salen, on_connected) : NULL;
    if (!c->sock) {
        c->on_connect(c, sa ? "connection failed" : "host is not an IP address", NULL, NULL, NULL);
        client_free(c, false);
        return;
    }
    c->sock->data = c;
}

void uc_connect(uc_client_t **client, void *data, uc_pool_t *pool, uc_connect_cb cb)
{
    uc_client_t *c = client_new(client, data, pool->loop, pool, cb);
    if ((c->sock = pool_take(pool)) != NULL) {
        c->reused = true;
        send_request(c);
        return;
    }
    connect_new(c, (struct sockaddr *)&pool->addr, pool->addrlen);
}

void uc_connect_addr(uc_client_t **client, void *data, h2o_loop_t *loop, const struct sockaddr *sa,
                     socklen_t salen, uc_connect_cb cb)
{
    connect_new(client_new(client, data, loop, NULL, cb), sa, salen);
}
