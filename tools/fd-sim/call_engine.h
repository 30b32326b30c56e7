/*
 * tools/fd-sim/call_engine.h - a call timed by the engine model (call_engine.c), with --engine on.
 *
 * Contract: the request is queued in the engine (driver.h) when it arrives; each kick from the
 * driver sends the tokens the engine produced for it since the last look; when the call ends
 * the engine gets its slot back (aborting the request there if it still runs). The engine's
 * lock is held only to read or change the engine, never across a send.
 */
#ifndef FD_TOOLS_SIM_CALL_ENGINE_H
#define FD_TOOLS_SIM_CALL_ENGINE_H

#include <h2o.h>

#include "tools/fd-sim/call.h"
#include "tools/fd-sim/engine.h"
#include "tools/fd-sim/gen.h"
#include "tools/fd-sim/loop.h"

struct json_object;

/* Queue the request in the engine; NULL when it was answered already (an error). */
sim_ereq_t *sim_call_engine_submit(sim_thread_t *th, h2o_req_t *req, sim_api_t api, struct json_object *root,
                                   const sim_gen_t *g);
/* From now on the engine times c, through er (from sim_call_engine_submit). */
void sim_call_use_engine(sim_call_t *c, sim_ereq_t *er);

#endif
