/*
 * tools/fd-sim/http.h - what every fd-sim handler does to an HTTP exchange (http.c): answer it
 * (through common/reply.h, the project's one reason-phrase table), notice a client that left,
 * cut a connection on purpose, and record a completion request for GET /sim/stats.
 *
 * Contract: every function runs on the request's own event-loop thread. The sim_reply_* calls
 * answer the request in full; sim_drop_connection ends it without a (complete) answer, and h2o
 * disposes of it before the call returns.
 */
#ifndef FD_TOOLS_SIM_HTTP_H
#define FD_TOOLS_SIM_HTTP_H

#include <h2o.h>
#include <stdbool.h>

#include "tools/fd-sim/state.h"

/* The request body's length (h2o leaves entity.base NULL when there is none). */
static inline size_t sim_body_len(const h2o_req_t *req)
{
    return req->entity.base ? req->entity.len : 0;
}

/* Sends and frees a malloc'd JSON body; NULL (out of memory) answers 500. */
void sim_reply_json(h2o_req_t *req, int status, char *body, size_t len);
/* An OpenAI-style error body. */
void sim_reply_error(h2o_req_t *req, int status, const char *message, const char *type);
/* 200 {"ok":true}, the answer of the /sim/ controls. */
void sim_reply_ok(h2o_req_t *req);
/* A client that closed (EOF) or reset its side; pipelined bytes or nothing yet mean "still there". */
bool sim_peer_gone(h2o_req_t *req);
/* End the connection without a (complete) response; started: gen's head was sent already. */
void sim_drop_connection(h2o_req_t *req, h2o_generator_t *gen, bool started);
/* Remember path, body and headers (repeated names joined by ", ") as the latest request. */
void sim_record_request(sim_state_t *st, h2o_req_t *req);

#endif
