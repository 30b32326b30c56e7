/*
 * dataplane/stats.h - per-instance latency statistics in shared memory, for `fdctl stats`.
 *
 * The proxies call these at the upstream's head and at the end of the exchange; counts by
 * status code are kept by select.c (dp_count_status). Histograms are log-scaled (4 buckets per
 * doubling, see SHM_LAT_BUCKETS in shm/layout.h) so a percentile read from them is within a
 * bucket (about 19 %) of the true value. A slot whose generation changed is not touched.
 */
#ifndef FD_DP_STATS_H
#define FD_DP_STATS_H

#include "dataplane/select.h"

/* The bucket of a latency in ms (pure; fdctl uses the inverse, 2^(b/4) ms). */
unsigned dp_stats_bucket(uint64_t ms);
/* The upstream answered its head: time to first byte, measured from the request's arrival. */
void dp_stats_head(const dp_choice_t *c, h2o_req_t *req);
/* The exchange ended: its whole duration is recorded when the answer was relayed to its end. */
void dp_stats_done(const dp_choice_t *c, h2o_req_t *req, dp_outcome_t outcome);

#endif
