/*
 * common/uresp.c - strict response-head check (see uresp.h).
 */
#include <string.h>
#include <strings.h>

#include "common/uresp.h"

bool uresp_content_length(const char *v, size_t len, uint64_t *out)
{
    if (len == 0 || len > 13) /* 2^40 has 13 digits */
        return false;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    if (n > URESP_MAX_CONTENT_LENGTH)
        return false;
    *out = n;
    return true;
}

static bool name_is(const struct phr_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* Does a comma-separated header value hold `tok` (case-insensitive)? */
static bool has_token(const char *v, size_t len, const char *tok)
{
    size_t tl = strlen(tok), i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp(v + start, tok, tl) == 0)
            return true;
    }
    return false;
}

static int refuse(uresp_t *r, const char *why)
{
    r->error = why;
    return -1;
}

/* Framing and persistence from the headers (RFC 9112 6.3), refusing the ambiguous cases. */
static int check_headers(uresp_t *r, bool method_is_head)
{
    bool have_cl = false, chunked = false, conn_close = false, conn_keep = false;
    for (size_t i = 0; i < r->num_headers; i++) {
        const struct phr_header *h = r->headers + i;
        if (h->name == NULL || h->name_len == 0)
            return refuse(r, "header line folding in the response");
        if (name_is(h, "content-length")) {
            if (have_cl)
                return refuse(r, "more than one Content-Length in the response");
            if (!uresp_content_length(h->value, h->value_len, &r->content_length))
                return refuse(r, "invalid Content-Length in the response");
            have_cl = true;
        } else if (name_is(h, "transfer-encoding")) {
            if (chunked || h->value_len != 7 || strncasecmp(h->value, "chunked", 7) != 0)
                return refuse(r, "unsupported Transfer-Encoding in the response");
            chunked = true;
        } else if (name_is(h, "connection")) {
            conn_close |= has_token(h->value, h->value_len, "close");
            conn_keep |= has_token(h->value, h->value_len, "keep-alive");
        }
    }
    if (have_cl && chunked)
        return refuse(r, "both Content-Length and Transfer-Encoding in the response");
    r->keepalive = r->minor_version >= 1 ? !conn_close : conn_keep && !conn_close;
    if (method_is_head || r->status == 204 || r->status == 304)
        r->framing = UC_BODY_NONE;
    else if (chunked)
        r->framing = UC_BODY_CHUNKED;
    else if (have_cl)
        r->framing = r->content_length ? UC_BODY_LENGTH : UC_BODY_NONE;
    else {
        r->framing = UC_BODY_UNTIL_CLOSE;
        r->keepalive = false;
    }
    return 0;
}

int uresp_parse(const char *buf, size_t len, size_t max_head, bool method_is_head, uresp_t *r)
{
    size_t cap = r->num_headers;
    r->error = NULL;
    r->informational = false;
    int rlen = phr_parse_response(buf, len > max_head ? max_head : len, &r->minor_version, &r->status,
                                  &r->msg, &r->msg_len, r->headers, &r->num_headers, 0);
    if (rlen == -2) {
        r->num_headers = cap;
        if (len >= max_head)
            return refuse(r, "response head too large");
        return -2;
    }
    if (rlen < 0)
        return refuse(r, "malformed response head");
    if (r->status < 100 || r->status > 999)
        return refuse(r, "invalid response status");
    if (r->status == 101)
        return refuse(r, "unexpected 101 Switching Protocols");
    if (r->status < 200) {
        r->informational = true;
        return rlen;
    }
    return check_headers(r, method_is_head) < 0 ? -1 : rlen;
}
