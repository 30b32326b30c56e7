/*
 * dataplane/errjson.c - h2o refuses some requests itself, on the host's fallback path, with a
 * plain-text body (h2o_send_error_generic): a Content-Length over max_request_entity_size gets
 * "413 request entity is too large". This filter replaces such a body by the router's JSON error
 * shape, {"error": "..."}, keeping the status and the connection handling h2o chose.
 */
#include <stdio.h>
#include <string.h>

#include "dataplane/dp.h"
#include "dataplane/errjson.h"
#include "dataplane/reply.h"

typedef struct {
    h2o_ostream_t super;
    h2o_iovec_t body; /* the JSON that replaces h2o's text */
} errjson_ostream_t;

/* h2o's text arrives here and is dropped; the JSON goes out with the final call. */
static void do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                    h2o_send_state_t state)
{
    (void)bufs, (void)bufcnt;
    errjson_ostream_t *o = (errjson_ostream_t *)self;
    if (h2o_send_state_is_in_progress(state))
        h2o_ostream_send_next(&o->super, req, NULL, 0, state);
    else
        h2o_ostream_send_next(&o->super, req, &o->body, 1, state);
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    if (req->res.status >= 400) {
        char msg[160];
        if (req->res.status == 413)
            snprintf(msg, sizeof(msg), "request body larger than %u bytes (proxy.max-body-mb)",
                     dp.cfg.max_body_bytes);
        else
            snprintf(msg, sizeof(msg), "%s", req->res.reason ? req->res.reason : "error");
        char *json = h2o_mem_alloc_pool(&req->pool, sizeof(msg) + 16);
        int n = dp_error_body(json, sizeof(msg) + 16, msg); /* fits: the message is bounded */
        ssize_t ct;
        while ((ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1)) >= 0)
            h2o_delete_header(&req->res.headers, ct);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json"));
        req->res.content_length = (size_t)n;
        errjson_ostream_t *o = (errjson_ostream_t *)h2o_add_ostream(req, sizeof(*o), slot);
        o->body = h2o_iovec_init(json, (size_t)n);
        o->super.do_send = do_send;
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void dp_errjson_register(h2o_hostconf_t *host)
{
    h2o_filter_t *f = h2o_create_filter(&host->fallback_path, sizeof(*f));
    f->on_setup_ostream = on_setup_ostream;
}
