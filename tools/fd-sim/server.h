/*
 * tools/fd-sim/server.h - fd-sim's HTTP server on libh2o-evloop (server.c): listeners, one h2o
 * context and evloop per thread (each polling a dup() of the listening sockets, as the router
 * does: docs/architecture.md, "Processes"), the route table installed on them (routes.h), and
 * the threads' start and stop.
 *
 * Contract: create binds (so the real ports are known before anything is announced), start
 * runs cfg->threads loops, stop waits until every loop has stopped; stopped threads stay parked
 * until the process exits. The server's fields are in loop.h, for the modules it serves with.
 */
#ifndef FD_TOOLS_SIM_SERVER_H
#define FD_TOOLS_SIM_SERVER_H

#include <stddef.h>

#include "tools/fd-sim/args.h"
#include "tools/fd-sim/state.h"

typedef struct sim_server sim_server_t; /* also named in loop.h */

/* Bind and listen (SO_REUSEADDR); fills the real ports. Returns NULL with err on failure. */
sim_server_t *sim_server_create(const sim_config_t *cfg, sim_state_t *st, int *port, int *metrics_port,
                                char *err, size_t errlen);
/* Start the event-loop threads (cfg->threads of them). */
int sim_server_start(sim_server_t *srv);
/* Ask every loop to stop and wait until all have (the threads stay parked until exit). */
void sim_server_stop(sim_server_t *srv);

#endif
