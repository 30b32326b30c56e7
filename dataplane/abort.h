/*
 * dataplane/abort.h - POST /v1/abort_requests (abort.c), for the route table.
 */
#ifndef FD_DP_ABORT_H
#define FD_DP_ABORT_H

#include <h2o.h>

int dp_handle_abort(h2o_req_t *req); /* 0 once it took the request */

#endif
