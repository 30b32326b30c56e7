/*
 * dataplane/accesslog.c - the access log: an h2o logger that writes, when a request is disposed,
 *   {"time":"2026-01-05T14:03:07.123Z","method":"POST","route":"/v1/chat/completions","status":200,
 *    "instance":"http://10.0.0.5:8000","prefill":null,"decode":null,"request_id":null,
 *    "ttfb_ms":12.3,"duration_ms":803.1,"bytes":1834,"outcome":"ok"}
 * through common/log.c's access sink (stdout, or ./logs/access.log rotated daily). What only the
 * proxies know (the instance that answered, the outcome, a generated request_id) they leave in
 * the request's environment (h2o_req_getenv), which lives in the request's pool until the logger
 * has run. The logger is registered only when the access log is on, so the request path pays
 * nothing otherwise; when on, the line is built in one stack buffer and written with one write(2).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "dataplane/accesslog.h"

#define ENV_INSTANCE "FD_INSTANCE"
#define ENV_OUTCOME  "FD_OUTCOME"
#define ENV_RID      "FD_REQUEST_ID"
#define FIELD_MAX    256 /* bytes of a client-chosen value (route, request id) kept, before escaping */

static void set_env(h2o_req_t *req, const char *name, size_t len, const char *value)
{
    *h2o_req_getenv(req, name, len, 1) = h2o_iovec_init(value, strlen(value));
}

void dp_access_note(h2o_req_t *req, const char *url, dp_outcome_t outcome)
{
    if (!fd_access_log_enabled())
        return;
    if (url && url[0])
        set_env(req, H2O_STRLIT(ENV_INSTANCE), url);
    set_env(req, H2O_STRLIT(ENV_OUTCOME), dp_outcome_name(outcome));
}

void dp_access_note_request_id(h2o_req_t *req, const char *rid)
{
    if (fd_access_log_enabled() && rid && rid[0])
        set_env(req, H2O_STRLIT(ENV_RID), h2o_strdup(&req->pool, rid, SIZE_MAX).base);
}

typedef struct {
    char *buf;
    size_t len, cap;
} line_t;

static void raw(line_t *l, const char *s, size_t n)
{
    if (l->len + n < l->cap) {
        memcpy(l->buf + l->len, s, n);
        l->len += n;
    }
}

/* "key":"escaped value" or "key":null */
static void field(line_t *l, const char *key, const char *v, size_t n)
{
    char tmp[64];
    raw(l, tmp, (size_t)snprintf(tmp, sizeof(tmp), ",\"%s\":", key));
    if (v == NULL) {
        raw(l, "null", 4);
        return;
    }
    raw(l, "\"", 1);
    if (l->cap > l->len + 2)
        l->len += fd_json_escape(l->buf + l->len, l->cap - l->len - 2, v, n < FIELD_MAX ? n : FIELD_MAX);
    raw(l, "\"", 1);
}

static void field_iov(line_t *l, const char *key, const h2o_iovec_t *v)
{
    field(l, key, v ? v->base : NULL, v ? v->len : 0);
}

static const h2o_iovec_t *env(h2o_req_t *req, const char *name, size_t len)
{
    h2o_iovec_t *v = h2o_req_getenv(req, name, len, 0);
    return v && v->base ? v : NULL;
}

static const h2o_iovec_t *header(const h2o_headers_t *headers, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(headers, name, len, -1);
    return i >= 0 ? &headers->entries[i].value : NULL;
}

static double ms_between(const struct timeval *a, const struct timeval *b)
{
    if (a->tv_sec == 0 || b->tv_sec == 0)
        return -1;
    return (double)(b->tv_sec - a->tv_sec) * 1000.0 + (double)(b->tv_usec - a->tv_usec) / 1000.0;
}

static void number(line_t *l, const char *key, double ms)
{
    char tmp[64];
    int n = ms < 0 ? snprintf(tmp, sizeof(tmp), ",\"%s\":null", key)
                   : snprintf(tmp, sizeof(tmp), ",\"%s\":%.1f", key, ms);
    raw(l, tmp, (size_t)n);
}

static void log_access(h2o_logger_t *self, h2o_req_t *req)
{
    (void)self;
    char buf[4096];
    line_t l = {.buf = buf, .cap = sizeof(buf) - 2};
    const struct timeval *begin = &req->timestamps.request_begin_at;
    struct tm tm;
    time_t secs = begin->tv_sec;
    gmtime_r(&secs, &tm);
    char when[40];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    l.len = (size_t)snprintf(buf, l.cap, "{\"time\":\"%s.%03dZ\"", when, (int)(begin->tv_usec / 1000));
    field(&l, "method", req->method.base, req->method.len);
    field(&l, "route", req->path_normalized.base, req->path_normalized.len);
    char tmp[48];
    raw(&l, tmp, (size_t)snprintf(tmp, sizeof(tmp), ",\"status\":%d", req->res.status));
    field_iov(&l, "instance", env(req, H2O_STRLIT(ENV_INSTANCE)));
    field_iov(&l, "prefill", header(&req->res.headers, H2O_STRLIT("x-router-prefill-url")));
    field_iov(&l, "decode", header(&req->res.headers, H2O_STRLIT("x-router-decode-url")));
    const h2o_iovec_t *rid = env(req, H2O_STRLIT(ENV_RID));
    field_iov(&l, "request_id", rid ? rid : header(&req->headers, H2O_STRLIT("x-request-id")));
    number(&l, "ttfb_ms", ms_between(begin, &req->timestamps.response_start_at));
    number(&l, "duration_ms", ms_between(begin, &req->timestamps.response_end_at));
    raw(&l, tmp, (size_t)snprintf(tmp, sizeof(tmp), ",\"bytes\":%zu", req->bytes_sent));
    field_iov(&l, "outcome", env(req, H2O_STRLIT(ENV_OUTCOME)));
    memcpy(buf + l.len, "}\n", 2); /* cap kept these two bytes free */
    fd_access_log_write(buf, l.len + 2);
}

void dp_accesslog_register(h2o_hostconf_t *host, h2o_pathconf_t *path)
{
    if (!fd_access_log_enabled())
        return;
    h2o_create_logger(path, sizeof(h2o_logger_t))->log_access = log_access;
    h2o_create_logger(&host->fallback_path, sizeof(h2o_logger_t))->log_access = log_access; /* 413 */
}
