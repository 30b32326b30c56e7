/*
 * dataplane/metrics.h - GET /metrics (metrics.c), for the route table.
 */
#ifndef FD_DP_METRICS_H
#define FD_DP_METRICS_H

#include <h2o.h>

int dp_handle_metrics(h2o_req_t *req); /* 0 once it took the request */

#endif
