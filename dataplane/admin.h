/*
 * dataplane/admin.h - the router's own routes (admin.c), for the route table: each handler
 * returns 0 once it took the request (h2o's on_req contract).
 */
#ifndef FD_DP_ADMIN_H
#define FD_DP_ADMIN_H

#include <h2o.h>

int dp_handle_registered(h2o_req_t *req);        /* GET /registered */
int dp_handle_registered_number(h2o_req_t *req); /* GET /registered_number */
int dp_handle_health(h2o_req_t *req);            /* GET /health */
int dp_handle_ready(h2o_req_t *req);             /* GET /ready */
int dp_handle_to_cp(h2o_req_t *req); /* POST /register, GET /health_generate: to the control plane */

#endif
