/*
 * dataplane/reply.h - complete answers of the data plane: a JSON body, or the router's error
 * shape {"error": "..."} (every error on the public port has it). Kept out of the route table
 * (server.c) so that a handler answering a request does not depend on the table that calls it.
 */
#ifndef FD_DP_REPLY_H
#define FD_DP_REPLY_H

#include <stddef.h>

#include <h2o.h>

/* Answers with a JSON body (copied) and the given status. */
void dp_send_json(h2o_req_t *req, int status, const char *json, size_t len);
/* Answers {"error": msg}; msg is one of our own messages (not escaped). */
void dp_send_error(h2o_req_t *req, int status, const char *msg);

/* {"error": msg} into buf[cap]: its length, or -1 when it does not fit (nothing usable in buf). */
int dp_error_body(char *buf, size_t cap, const char *msg);

#endif
