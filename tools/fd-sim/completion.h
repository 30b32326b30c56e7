/*
 * tools/fd-sim/completion.h - POST /v1/chat/completions and /v1/completions (completion.c).
 *
 * Contract: every request is counted and recorded (GET /sim/stats) before anything else; slow
 * start and an injected status or close answer before the body is read; a body that does not
 * parse, or that the instance's role refuses (pd.h), gets 400; anything else becomes a call
 * (call.h), timed by the fixed delays or by the engine model, on the request's own thread.
 */
#ifndef FD_TOOLS_SIM_COMPLETION_H
#define FD_TOOLS_SIM_COMPLETION_H

#include <h2o.h>

#include "tools/fd-sim/gen.h"
#include "tools/fd-sim/loop.h"

void sim_completion_handle(sim_thread_t *th, h2o_req_t *req, sim_api_t api);

#endif
