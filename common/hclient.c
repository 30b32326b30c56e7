/*
 * common/hclient.c - a small blocking HTTP/1.1 client with one hard deadline (common/hclient.h).
 *
 * Used where blocking is fine (fdctl, the launcher, fd-sim), never on an event loop. One request
 * per connection ("Connection: close"). The socket is non-blocking and every step - connect,
 * send, each read - polls against the same absolute deadline, so a peer that accepts and then
 * stays silent (or trickles bytes) cannot hold the caller beyond timeout_ms. The response head
 * goes through the same strict parser as the event-loop client (common/uresp.h: malformed or
 * duplicate Content-Length, Content-Length with Transfer-Encoding, 101, folding, an oversized
 * head are refused); the body is read by Content-Length, chunked encoding (picohttpparser's
 * decoder), or until the peer closes, and never grows past max_body bytes.
 */
#include "common/hclient.h"
#include "common/clock.h"
#include "common/uresp.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HC_MAX_HEAD    65536 /* a whole response head */
#define HC_MAX_HEADERS 100
#define HC_READ_CHUNK  16384
#define HC_MAX_INTERIM 8 /* 1xx responses skipped before the real one */

typedef struct {
    int fd;
    uint64_t deadline_ms;
    unsigned timeout_ms;
    char *buf; /* bytes received and not yet consumed: buf[pos..len) */
    size_t pos, len, cap;
    bool eof;
    char *body; /* decoded body */
    size_t body_len, max_body;
    hc_response_t *resp;
} hc_conn_t;

static int fail(hc_conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(hc_conn_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->resp->error, sizeof c->resp->error, fmt, ap);
    va_end(ap);
    return -1;
}

/* Wait until fd is ready for `events` or the deadline passes. */
static int wait_fd(hc_conn_t *c, short events)
{
    for (;;) {
        uint64_t now = fd_mono_ms();
        if (now >= c->deadline_ms)
            return fail(c, "timed out after %u ms", c->timeout_ms);
        uint64_t left = c->deadline_ms - now;
        struct pollfd p = {.fd = c->fd, .events = events};
        int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return fail(c, "poll: %s", strerror(errno));
    }
}

/* ---- target and connect ---- */

typedef struct {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host_header[96];
} hc_target_t;

static int parse_target(const char *target, hc_target_t *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (!strncmp(target, "unix:", 5)) {
        struct sockaddr_un *un = (struct sockaddr_un *)&t->addr;
        const char *path = target + 5;
        if (!path[0] || strlen(path) >= sizeof un->sun_path)
            return snprintf(err, errlen, "bad unix socket path"), -1;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        t->addrlen = (socklen_t)sizeof *un;
        snprintf(t->host_header, sizeof t->host_header, "localhost");
        return 0;
    }
    if (!strncmp(target, "http://", 7))
        target += 7;
    char host[64];
    const char *colon, *hend;
    if (target[0] == '[') {
        hend = strchr(target, ']');
        colon = hend && hend[1] == ':' ? hend + 1 : NULL;
        target++;
    } else {
        colon = hend = strrchr(target, ':');
    }
    if (!colon || !hend || (size_t)(hend - target) >= sizeof host || hend == target)
        return snprintf(err, errlen, "target must be host:port or unix:/path"), -1;
    memcpy(host, target, (size_t)(hend - target));
    host[hend - target] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!isdigit((unsigned char)colon[1]) || (*end && strcmp(end, "/")) || port < 1 || port > 65535)
        return snprintf(err, errlen, "bad port in target"), -1;

    struct sockaddr_in *in4 = (struct sockaddr_in *)&t->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&t->addr;
    const char *ip = strcmp(host, "localhost") ? host : "127.0.0.1";
    if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        t->addrlen = sizeof *in4;
        snprintf(t->host_header, sizeof t->host_header, "%s:%ld", host, port);
    } else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        t->addrlen = sizeof *in6;
        snprintf(t->host_header, sizeof t->host_header, "[%s]:%ld", host, port);
    } else {
        return snprintf(err, errlen, "host must be an IP address or localhost"), -1;
    }
    return 0;
}

static int connect_target(hc_conn_t *c, const hc_target_t *t)
{
    c->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return fail(c, "socket: %s", strerror(errno));
    if (t->addr.ss_family != AF_UNIX)
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    if (connect(c->fd, (const struct sockaddr *)&t->addr, t->addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EAGAIN && errno != EINTR)
        return fail(c, "connect: %s", strerror(errno));
    if (wait_fd(c, POLLOUT) != 0)
        return -1;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        soerr = errno;
    return soerr ? fail(c, "connect: %s", strerror(soerr)) : 0;
}

/* ---- send ---- */

static int send_all(hc_conn_t *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(c, POLLOUT) != 0)
                return -1;
        } else {
            return fail(c, "send: %s", w < 0 ? strerror(errno) : "connection closed");
        }
    }
    return 0;
}

static int send_request(hc_conn_t *c, const hc_target_t *t, const char *method, const char *path,
                        const char *content_type, const char *body, size_t body_len)
{
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fd-router\r\nContent-Length: %zu\r\n%s%s%s"
                     "Connection: close\r\n\r\n",
                     method, path, t->host_header, body ? body_len : 0, content_type ? "Content-Type: " : "",
                     content_type ? content_type : "", content_type ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return fail(c, "request head too long");
    if (send_all(c, head, (size_t)n) != 0)
        return -1;
    return body && body_len ? send_all(c, body, body_len) : 0;
}

/* ---- receive ---- */

/* Read more bytes into buf (compacting consumed ones first). Returns bytes read, 0 at EOF, -1. */
static ssize_t fill(hc_conn_t *c)
{
    if (c->eof)
        return 0;
    if (c->pos > 0) {
        memmove(c->buf, c->buf + c->pos, c->len - c->pos);
        c->len -= c->pos;
        c->pos = 0;
    }
    if (c->cap - c->len < HC_READ_CHUNK) {
        size_t ncap = c->len + HC_READ_CHUNK;
        char *nb = realloc(c->buf, ncap);
        if (!nb)
            return fail(c, "out of memory");
        c->buf = nb;
        c->cap = ncap;
    }
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r > 0) {
            c->len += (size_t)r;
            return r;
        }
        if (r == 0) {
            c->eof = true;
            return 0;
        }
        if (errno != EAGAIN && errno != EINTR)
            return fail(c, "recv: %s", strerror(errno));
        if (wait_fd(c, POLLIN) != 0)
            return -1;
    }
}

static int body_append(hc_conn_t *c, const char *p, size_t n)
{
    if (n > c->max_body - c->body_len)
        return fail(c, "response body larger than %zu bytes", c->max_body);
    char *nb = realloc(c->body, c->body_len + n + 1);
    if (!nb)
        return fail(c, "out of memory");
    c->body = nb;
    memcpy(c->body + c->body_len, p, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
    return 0;
}

/* More bytes, or a failure when the peer closed before the response was complete. */
static int need_more(hc_conn_t *c)
{
    ssize_t r = fill(c);
    if (r < 0)
        return -1;
    return r == 0 ? fail(c, "connection closed before the response was complete") : 0;
}

/* Move up to `want` bytes (all until EOF when until_eof) from the connection into the body. */
static int read_body_bytes(hc_conn_t *c, size_t want, bool until_eof)
{
    while (until_eof || want > 0) {
        if (c->pos == c->len) {
            ssize_t r = fill(c);
            if (r < 0)
                return -1;
            if (r == 0)
                return until_eof ? 0 : fail(c, "connection closed before the response was complete");
        }
        size_t n = c->len - c->pos;
        if (!until_eof && n > want)
            n = want;
        if (body_append(c, c->buf + c->pos, n) != 0)
            return -1;
        c->pos += n;
        want -= until_eof ? 0 : n;
    }
    return 0;
}

/* picohttpparser decodes in place: each read's chunk data moves to the front of what was read. */
static int read_chunked(hc_conn_t *c)
{
    struct phr_chunked_decoder d = {.consume_trailer = 1};
    for (;;) {
        if (c->pos == c->len && need_more(c) != 0)
            return -1;
        size_t n = c->len - c->pos;
        ssize_t left = phr_decode_chunked(&d, c->buf + c->pos, &n);
        if (left == -1)
            return fail(c, "malformed chunked body");
        if (body_append(c, c->buf + c->pos, n) != 0)
            return -1;
        c->pos = c->len; /* bytes after the last chunk are not ours to read (Connection: close) */
        if (left >= 0)
            return 0;
    }
}

/* The next final response head, checked by the upstream client's strict parser (common/uresp.h),
 * interim 1xx heads skipped; consumed from the buffer. */
static int read_head(hc_conn_t *c, bool head_request, uresp_t *r)
{
    struct phr_header hdrs[HC_MAX_HEADERS];
    for (int interim = 0;;) {
        int n = -2;
        if (c->len > c->pos) {
            *r = (uresp_t){.headers = hdrs, .num_headers = HC_MAX_HEADERS};
            n = uresp_parse(c->buf + c->pos, c->len - c->pos, HC_MAX_HEAD, head_request, r);
        }
        if (n == -1)
            return fail(c, "%s", r->error);
        if (n == -2) {
            if (need_more(c) != 0)
                return -1;
            continue;
        }
        c->pos += (size_t)n;
        if (!r->informational)
            return 0;
        if (++interim > HC_MAX_INTERIM)
            return fail(c, "more than %d interim responses", HC_MAX_INTERIM);
    }
}

static int read_response(hc_conn_t *c, bool head_request)
{
    uresp_t r;
    if (read_head(c, head_request, &r) != 0)
        return -1;
    c->resp->status = r.status;
    if (body_append(c, "", 0) != 0) /* an empty body is "" rather than NULL once a head was read */
        return -1;
    switch (r.framing) {
    case UC_BODY_NONE:
        return 0;
    case UC_BODY_CHUNKED:
        return read_chunked(c);
    case UC_BODY_LENGTH:
        if (r.content_length > c->max_body)
            return fail(c, "response body larger than %zu bytes", c->max_body);
        return read_body_bytes(c, (size_t)r.content_length, false);
    case UC_BODY_UNTIL_CLOSE:
        break;
    }
    return read_body_bytes(c, 0, true);
}

int hc_request(const char *target, const char *method, const char *path, const char *content_type,
               const char *body, size_t body_len, unsigned timeout_ms, size_t max_body, hc_response_t *resp)
{
    memset(resp, 0, sizeof *resp);
    hc_target_t t;
    if (parse_target(target, &t, resp->error, sizeof resp->error) != 0)
        return -1;
    hc_conn_t c = {.fd = -1,
                   .deadline_ms = fd_mono_ms() + timeout_ms,
                   .timeout_ms = timeout_ms,
                   .max_body = max_body,
                   .resp = resp};
    int rc = connect_target(&c, &t);
    if (rc == 0)
        rc = send_request(&c, &t, method, path, content_type, body, body_len);
    if (rc == 0)
        rc = read_response(&c, !strcmp(method, "HEAD"));
    if (c.fd >= 0)
        close(c.fd);
    free(c.buf);
    if (rc == 0) {
        resp->body = c.body;
        resp->body_len = c.body_len;
    } else {
        free(c.body);
    }
    return rc;
}

void hc_response_free(hc_response_t *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}
