/*
 * tools/fd-sim/routes.h - fd-sim's HTTP surface (routes.c): the route table of the API port
 * and of the separate metrics port, and the small endpoints (health, metrics, models, the
 * /sim/ test controls).
 *
 * Contract: a route's method is checked here (wrong method: 405; unknown path: 404, as are
 * /v1/models without --model and anything but GET /metrics on the metrics port); completions
 * and aborts are handed to completion.h and abort.h.
 */
#ifndef FD_TOOLS_SIM_ROUTES_H
#define FD_TOOLS_SIM_ROUTES_H

#include <h2o.h>
#include <stdbool.h>

#include "tools/fd-sim/loop.h"

/* Register the host `name` of srv's h2o configuration, serving the API or only /metrics. */
h2o_hostconf_t *sim_routes_host(sim_server_t *srv, const char *name, bool metrics_only);

#endif
