/*
 * dataplane/reply.c - complete JSON answers (reply.h), through common/reply.h's content-type
 * and reason phrases, shared with the control plane.
 */
#include "dataplane/reply.h"

#include <stdio.h>

#include "common/reply.h"

int dp_error_body(char *buf, size_t cap, const char *msg)
{
    int n = snprintf(buf, cap, "{\"error\": \"%s\"}", msg);
    return n >= 0 && (size_t)n < cap ? n : -1;
}

void dp_send_json(h2o_req_t *req, int status, const char *json, size_t len)
{
    fd_reply_json(req, status, json, len);
}

void dp_send_error(h2o_req_t *req, int status, const char *msg)
{
    char buf[256];
    int n = dp_error_body(buf, sizeof(buf), msg);
    if (n < 0) /* our messages are short; a long one is cut rather than sent as broken JSON */
        n = dp_error_body(buf, sizeof(buf), "error");
    dp_send_json(req, status, buf, (size_t)n);
}
