/*
 * controlplane/probe.c - one asynchronous GET http://host:port<path> on the CP loop: successful
 * iff the answer is 200 and its whole body can be read, all within the prober's timeout.
 *
 * Used by /register (the success-threshold probes before an upsert), by the health timer, and,
 * keeping the body (cp_fetch_start), by the remote-metrics poller. Built on common/uclient.h on
 * the CP loop, so a slow or dead instance never blocks the CP: the Go router ran these probes
 * synchronously inside the /register handler and scraped /metrics inside request selection.
 *
 * The client may report a connect failure synchronously from inside the connect call; such a
 * completion is deferred to the next loop turn so a caller never sees its callback run before
 * cp_probe_start has returned the handle.
 */
#include <stdlib.h>
#include <string.h>

#include "common/uclient.h"
#include "controlplane/probe.h"

#define PROBE_MAX_BODY (64 * 1024) /* a health answer is tiny: more is not a health endpoint */

struct cp_probe {
    cp_prober_t *prober;
    h2o_linklist_t link;
    uc_client_t *client; /* non-NULL while an exchange runs for us */
    h2o_timeout_entry_t deadline;
    h2o_timeout_entry_t deferred;
    h2o_iovec_t reqbuf;
    cp_probe_cb cb;
    void *data;
    cp_probe_result_t res;
    size_t body_bytes;
    size_t max_body;
    bool keep_body;
    char *body; /* kept bytes (keep_body), NUL-terminated; at most max_body */
    size_t body_cap;
    bool starting;
    bool finished;
};

static void probe_free(cp_probe_t *pr)
{
    if (h2o_timeout_is_linked(&pr->deadline))
        h2o_timeout_unlink(&pr->deadline);
    if (h2o_timeout_is_linked(&pr->deferred))
        h2o_timeout_unlink(&pr->deferred);
    if (h2o_linklist_is_linked(&pr->link))
        h2o_linklist_unlink(&pr->link);
    free(pr->reqbuf.base);
    free(pr->body);
    free(pr);
}

/* The probe is freed before the callback (which may start another one); the body lives on
 * until the callback has returned. */
static void deliver(cp_probe_t *pr)
{
    cp_probe_cb cb = pr->cb;
    void *data = pr->data;
    cp_probe_result_t res = pr->res;
    char *body = pr->body;
    pr->body = NULL;
    if (res.ok && pr->keep_body) {
        res.body = body != NULL ? body : "";
        res.body_len = pr->body_bytes;
    }
    probe_free(pr);
    cb(data, &res);
    free(body);
}

static void on_deferred(h2o_timeout_entry_t *e)
{
    deliver(H2O_STRUCT_FROM_MEMBER(cp_probe_t, deferred, e));
}

/* The h2o client is gone (or going) once this runs: never touch pr->client again. */
static void finish(cp_probe_t *pr, bool ok, const char *why)
{
    if (pr->finished)
        return;
    pr->finished = true;
    pr->client = NULL;
    pr->res.ok = ok;
    if (!ok)
        snprintf(pr->res.error, sizeof(pr->res.error), "%s", why);
    if (h2o_timeout_is_linked(&pr->deadline))
        h2o_timeout_unlink(&pr->deadline);
    if (pr->starting) {
        h2o_timeout_link(pr->prober->loop, &pr->prober->deferred, &pr->deferred);
        return;
    }
    deliver(pr);
}

/* Append to the kept body, growing it by doubling (callers checked the bound). */
static void keep(cp_probe_t *pr, const char *bytes, size_t n)
{
    size_t need = pr->body_bytes + n + 1;
    if (need > pr->body_cap) {
        size_t cap = pr->body_cap ? pr->body_cap : 4096;
        while (cap < need)
            cap *= 2;
        if (cap > pr->max_body + 1)
            cap = pr->max_body + 1;
        pr->body = h2o_mem_realloc(pr->body, cap);
        pr->body_cap = cap;
    }
    memcpy(pr->body + pr->body_bytes, bytes, n);
    pr->body[pr->body_bytes + n] = '\0';
}

static int on_body(uc_client_t *client, const char *errstr)
{
    cp_probe_t *pr = client->data;
    size_t got = client->sock->input->size;
    if (got > pr->max_body - pr->body_bytes) {
        h2o_buffer_consume(&client->sock->input, got);
        finish(pr, false, "response body too large");
        return -1;
    }
    if (pr->keep_body)
        keep(pr, client->sock->input->bytes, got);
    pr->body_bytes += got;
    h2o_buffer_consume(&client->sock->input, got);
    if (errstr == uc_error_is_eos) {
        finish(pr, true, NULL);
    } else if (errstr != NULL) {
        pr->res.protocol_error = client->protocol_error;
        finish(pr, false, errstr);
    }
    return 0;
}

static uc_body_cb on_head(uc_client_t *client, const char *errstr, int minor_version, int status,
                          h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers)
{
    (void)minor_version, (void)msg, (void)headers, (void)num_headers;
    cp_probe_t *pr = client->data;
    if (errstr != NULL && errstr != uc_error_is_eos) {
        pr->res.protocol_error = client->protocol_error;
        finish(pr, false, errstr);
        return NULL;
    }
    pr->res.status = status;
    if (status != 200) {
        char why[32];
        snprintf(why, sizeof(why), "status %d", status);
        finish(pr, false, why);
        return NULL;
    }
    if (errstr == uc_error_is_eos) {
        finish(pr, true, NULL);
        return NULL;
    }
    return on_body;
}

static uc_head_cb on_connect(uc_client_t *client, const char *errstr, h2o_iovec_t **reqbufs,
                             size_t *reqbufcnt, int *method_is_head)
{
    cp_probe_t *pr = client->data;
    if (errstr != NULL) {
        finish(pr, false, errstr);
        return NULL;
    }
    *reqbufs = &pr->reqbuf;
    *reqbufcnt = 1;
    *method_is_head = 0;
    return on_head;
}

static void on_deadline(h2o_timeout_entry_t *e)
{
    cp_probe_t *pr = H2O_STRUCT_FROM_MEMBER(cp_probe_t, deadline, e);
    if (pr->client != NULL)
        uc_cancel(pr->client);
    char why[48];
    snprintf(why, sizeof(why), "timeout after %u ms", pr->prober->timeout_ms);
    finish(pr, false, why);
}

int cp_prober_init(cp_prober_t *p, h2o_loop_t *loop, unsigned timeout_ms)
{
    memset(p, 0, sizeof(*p));
    p->loop = loop;
    p->timeout_ms = timeout_ms ? timeout_ms : 1;
    h2o_timeout_init(loop, &p->deadline, p->timeout_ms);
    h2o_timeout_init(loop, &p->deferred, 0);
    h2o_linklist_init_anchor(&p->probes);
    return 0;
}

void cp_prober_dispose(cp_prober_t *p)
{
    while (!h2o_linklist_is_empty(&p->probes))
        cp_probe_cancel(H2O_STRUCT_FROM_MEMBER(cp_probe_t, link, p->probes.next));
    h2o_timeout_dispose(p->loop, &p->deadline);
    h2o_timeout_dispose(p->loop, &p->deferred);
}

static h2o_iovec_t build_request(const char *host, uint16_t port, const char *path)
{
    bool v6 = strchr(host, ':') != NULL;
    const char *slash = path[0] == '/' ? "" : "/";
    int n = snprintf(NULL, 0,
                     "GET %s%s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUser-Agent: fd-router-cp\r\nAccept: */*\r\n"
                     "Connection: close\r\n\r\n",
                     slash, path, v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)port);
    char *buf = h2o_mem_alloc((size_t)n + 1);
    snprintf(buf, (size_t)n + 1,
             "GET %s%s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUser-Agent: fd-router-cp\r\nAccept: */*\r\n"
             "Connection: close\r\n\r\n",
             slash, path, v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)port);
    return h2o_iovec_init(buf, (size_t)n);
}

static cp_probe_t *start(cp_prober_t *p, const char *host, uint16_t port, const char *path, size_t max_body,
                         bool keep_body, cp_probe_cb cb, void *data)
{
    cp_probe_t *pr = h2o_mem_alloc(sizeof(*pr));
    memset(pr, 0, sizeof(*pr));
    pr->max_body = max_body;
    pr->keep_body = keep_body;
    pr->prober = p;
    pr->cb = cb;
    pr->data = data;
    pr->deadline.cb = on_deadline;
    pr->deferred.cb = on_deferred;
    pr->reqbuf = build_request(host, port, path);
    h2o_linklist_insert(&p->probes, &pr->link);
    h2o_timeout_link(p->loop, &p->deadline, &pr->deadline);
    pr->starting = true;
    struct sockaddr_storage ss;
    socklen_t sslen;
    bool ip = uc_make_addr(host, port, &ss, &sslen) == 0;
    uc_connect_addr(&pr->client, pr, p->loop, ip ? (struct sockaddr *)&ss : NULL, sslen, on_connect);
    pr->starting = false;
    return pr;
}

cp_probe_t *cp_probe_start(cp_prober_t *p, const char *host, uint16_t port, const char *path, cp_probe_cb cb,
                           void *data)
{
    return start(p, host, port, path, PROBE_MAX_BODY, false, cb, data);
}

cp_probe_t *cp_fetch_start(cp_prober_t *p, const char *host, uint16_t port, const char *path, size_t max_body,
                           cp_probe_cb cb, void *data)
{
    return start(p, host, port, path, max_body, true, cb, data);
}

void cp_probe_cancel(cp_probe_t *pr)
{
    if (pr->client != NULL)
        uc_cancel(pr->client);
    probe_free(pr);
}

size_t cp_prober_inflight(const cp_prober_t *p)
{
    size_t n = 0;
    for (const h2o_linklist_t *l = p->probes.next; l != &p->probes; l = l->next)
        n++;
    return n;
}
