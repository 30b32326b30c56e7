/*
 * dataplane/errjson.h - JSON bodies for the errors h2o answers by itself, before any handler of
 * ours runs (a body over proxy.max-body-mb: 413), so every error on the public port is JSON.
 */
#ifndef FD_DP_ERRJSON_H
#define FD_DP_ERRJSON_H

#include <h2o.h>

/* Install on the host's fallback path: the one h2o binds to a request it refuses before routing
 * (every request that reaches routing uses the "/" path, so relayed upstream errors are never
 * touched). */
void dp_errjson_register(h2o_hostconf_t *host);

#endif
