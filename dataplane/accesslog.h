/*
 * dataplane/accesslog.h - log.access-log: one JSON line per request (h2o logger), off by default.
 */
#ifndef FD_DP_ACCESSLOG_H
#define FD_DP_ACCESSLOG_H

#include <h2o.h>

#include "dataplane/dp.h"

/* At setup, when the access log is open (common/log.h): log every request of these paths. */
void dp_accesslog_register(h2o_hostconf_t *host, h2o_pathconf_t *path);
/* The proxies' end of an exchange: the instance that answered (url, "" = none) and the outcome.
 * Nothing is done when the access log is off. */
void dp_access_note(h2o_req_t *req, const char *url, dp_outcome_t outcome);
/* Splitwise mode: the request_id the router put into the body (one it generated). */
void dp_access_note_request_id(h2o_req_t *req, const char *rid);

#endif
