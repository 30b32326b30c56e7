/*
 * common/hclient.c - a small blocking HTTP/1.1 client with one hard deadline (common/hclient.h).
 *
 * Used where blocking is fine (fdctl, the launcher, fd-sim), never on an event loop. One request
 * per connection ("Connection: close"). The socket is non-blocking and every step - connect,
 * send, each read - polls against the same absolute deadline, so a peer that accepts and then
 * stays silent (or trickles bytes) cannot hold the caller beyond timeout_ms. The response body
 * is read by Content-Length, chunked encoding, or until the peer closes, and never grows past
 * max_body bytes.
 */
#include "common/hclient.h"

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
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HC_MAX_LINE    8192  /* status line, one header, one chunk-size line */
#define HC_MAX_HEAD    65536 /* all headers of one response */
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

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

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
        uint64_t now = now_ms();
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

/* Next line without its CRLF (or bare LF), NUL-terminated in place. */
static int read_line(hc_conn_t *c, char **line)
{
    size_t scanned = 0;
    for (;;) {
        char *nl = c->buf ? memchr(c->buf + c->pos + scanned, '\n', c->len - c->pos - scanned) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - (c->buf + c->pos));
            *line = c->buf + c->pos;
            c->pos += n + 1;
            if (n > 0 && (*line)[n - 1] == '\r')
                n--;
            (*line)[n] = '\0';
            return 0;
        }
        scanned = c->len - c->pos;
        if (scanned > HC_MAX_LINE)
            return fail(c, "response line too long");
        ssize_t r = fill(c);
        if (r < 0)
            return -1;
        if (r == 0)
            return fail(c, "connection closed before the response was complete");
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

static int read_chunked(hc_conn_t *c)
{
    for (;;) {
        char *line;
        if (read_line(c, &line) != 0)
            return -1;
        char *end;
        errno = 0;
        unsigned long long size = strtoull(line, &end, 16);
        if (!isxdigit((unsigned char)line[0]) || errno ||
            (*end && *end != ';' && *end != ' ' && *end != '\t'))
            return fail(c, "bad chunk size line");
        if (size > c->max_body - c->body_len)
            return fail(c, "response body larger than %zu bytes", c->max_body);
        if (size == 0)
            break;
        if (read_body_bytes(c, (size_t)size, false) != 0 || read_line(c, &line) != 0)
            return -1;
        if (line[0])
            return fail(c, "missing CRLF after chunk");
    }
    for (;;) { /* trailers, up to the empty line */
        char *line;
        if (read_line(c, &line) != 0)
            return -1;
        if (!line[0])
            return 0;
    }
}

typedef struct {
    int status;
    bool chunked;
    bool has_length;
    unsigned long long length;
} hc_head_t;

static int parse_status(hc_conn_t *c, const char *line, hc_head_t *h)
{
    if (strncmp(line, "HTTP/1.", 7) || !isdigit((unsigned char)line[7]) || line[8] != ' ' ||
        !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
        !isdigit((unsigned char)line[11]) || (line[12] && line[12] != ' '))
        return fail(c, "malformed status line");
    h->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    return 0;
}

static int parse_header(hc_conn_t *c, char *line, hc_head_t *h)
{
    char *colon = strchr(line, ':');
    if (!colon)
        return fail(c, "malformed header line");
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vl = strlen(v);
    while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        v[--vl] = '\0';
    if (!strcasecmp(line, "Transfer-Encoding")) {
        const char *last = strrchr(v, ',');
        last = last ? last + 1 : v;
        while (*last == ' ')
            last++;
        h->chunked = !strcasecmp(last, "chunked");
    } else if (!strcasecmp(line, "Content-Length")) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (!isdigit((unsigned char)v[0]) || *end || errno || (h->has_length && n != h->length))
            return fail(c, "bad Content-Length");
        h->has_length = true;
        h->length = n;
    }
    return 0;
}

static int read_head(hc_conn_t *c, hc_head_t *h)
{
    memset(h, 0, sizeof *h);
    char *line;
    if (read_line(c, &line) != 0 || parse_status(c, line, h) != 0)
        return -1;
    size_t total = strlen(line);
    for (;;) {
        if (read_line(c, &line) != 0)
            return -1;
        if (!line[0])
            return 0;
        total += strlen(line);
        if (total > HC_MAX_HEAD)
            return fail(c, "response head too large");
        if (parse_header(c, line, h) != 0)
            return -1;
    }
}

static int read_response(hc_conn_t *c, bool head_request)
{
    hc_head_t h;
    int interim = 0;
    do {
        if (read_head(c, &h) != 0)
            return -1;
    } while (h.status >= 100 && h.status < 200 && h.status != 101 && ++interim <= HC_MAX_INTERIM);
    if (h.status < 200)
        return fail(c, "unexpected status %d", h.status);
    c->resp->status = h.status;
    if (body_append(c, "", 0) != 0) /* an empty body is "" rather than NULL once a head was read */
        return -1;
    if (head_request || h.status == 204 || h.status == 304)
        return 0;
    if (h.chunked)
        return read_chunked(c);
    if (h.has_length) {
        if (h.length > c->max_body)
            return fail(c, "response body larger than %zu bytes", c->max_body);
        return read_body_bytes(c, (size_t)h.length, false);
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
                   .deadline_ms = now_ms() + timeout_ms,
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
