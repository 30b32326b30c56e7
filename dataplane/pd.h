/*
 * dataplane/pd.h - splitwise (prefill/decode) mode's handler (pd.c), for the route table; the
 * body rewriting it uses is pd_body.h's.
 */
#ifndef FD_DP_PD_H
#define FD_DP_PD_H

#include <h2o.h>

int dp_handle_pd_completions(h2o_req_t *req, const char *upstream_path);

#endif
