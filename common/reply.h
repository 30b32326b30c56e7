/*
 * common/reply.h - answering an h2o request with a complete body: shared by the data plane,
 * the control plane's control socket and fd-sim, so every JSON answer carries the same
 * content-type and reason phrases.
 */
#ifndef FD_COMMON_REPLY_H
#define FD_COMMON_REPLY_H

#include <stddef.h>

#include <h2o.h>

const char *fd_http_reason(int status);

/* Status, content-type and body (copied); the request is answered when it returns. */
void fd_reply(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);

static inline void fd_reply_json(h2o_req_t *req, int status, const char *json, size_t len)
{
    fd_reply(req, status, "application/json", json, len);
}

#endif
