/*
 * tools/fd-sim/abort.h - POST /v1/abort_requests (abort.c), as FastDeploy's api_server answers
 * it (docs/fastdeploy.md 13).
 *
 * Contract: a call is found by the key it was registered under (the body's request_id, else the
 * generated "<name>-<seq>") or by its response id. The abort may arrive on any thread: matching
 * runs over every thread's calls with the registry locked, claims each match through its
 * progress word (call.h), answers {"result":{"aborted":[{request_id, output_tokens}],
 * "not_found":[ids]}} and then kicks the owning threads, which end the calls. Any other body
 * gets 400 {"error": SIM_ABORT_USAGE}.
 */
#ifndef FD_TOOLS_SIM_ABORT_H
#define FD_TOOLS_SIM_ABORT_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;
struct st_h2o_req_t;
struct sim_server;

#define SIM_ABORT_USAGE "must provide abort_all=true or req_ids"

typedef struct {
    bool all;
    struct json_object *ids; /* the req_ids array (owned), NULL with all */
} sim_abort_req_t;

/* Parse {"req_ids":[...]} or {"abort_all":true}; -1 for anything else. */
int sim_parse_abort(const char *body, size_t len, sim_abort_req_t *out);
void sim_abort_req_free(sim_abort_req_t *a);
/* The text abort requests match: a string's value, else the value's JSON text. Malloc'd. */
char *sim_request_key(struct json_object *v);
/* The body's request_id as abort requests match it (malloc'd), or NULL when it has none (absent,
 * null or ""); raw: it was not a string, so an abort reports it back as JSON. */
char *sim_body_key(struct json_object *root, bool *raw);
/* Answer one /v1/abort_requests on its event-loop thread. */
void sim_abort_handle(struct sim_server *srv, struct st_h2o_req_t *req);

#endif
