/*
 * dataplane/completions.h - POST /v1/chat/completions and /v1/completions in mixed mode
 * (completions.c), for the route table; splitwise mode is pd.h's.
 */
#ifndef FD_DP_COMPLETIONS_H
#define FD_DP_COMPLETIONS_H

#include <h2o.h>

/* Returns 0 once it took the request; upstream_path is the path sent to the instance. */
int dp_handle_completions(h2o_req_t *req, const char *upstream_path);

#endif
