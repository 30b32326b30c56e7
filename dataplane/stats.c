/*
 * dataplane/stats.c - per-instance latency statistics (see stats.h).
 */
#include <math.h>
#include <sys/time.h>

#include "dataplane/accesslog.h"
#include "dataplane/stats.h"

unsigned dp_stats_bucket(uint64_t ms)
{
    if (ms <= 1)
        return 0;
    double b = ceil(4.0 * log2((double)ms));
    return b >= SHM_LAT_BUCKETS - 1 ? SHM_LAT_BUCKETS - 1 : (unsigned)b;
}

static uint64_t since_ms(const h2o_req_t *req)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    const struct timeval *b = &req->timestamps.request_begin_at;
    int64_t us = (int64_t)(now.tv_sec - b->tv_sec) * 1000000 + (now.tv_usec - b->tv_usec);
    return us > 0 ? (uint64_t)us / 1000 : 0;
}

/* SHM_ROUTES' index of the request's route (the proxies serve only the two completion routes) */
static unsigned route_of(const h2o_req_t *req)
{
    return h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/v1/completions"));
}

static shm_instance_t *slot_of(const dp_choice_t *c)
{
    shm_instance_t *in = shm_instance(&dp.seg, c->slot);
    return shm_slot_same_generation(in, c->generation) ? in : NULL;
}

void dp_stats_head(const dp_choice_t *c, h2o_req_t *req)
{
    shm_instance_t *in = slot_of(c);
    if (in == NULL)
        return;
    uint64_t ms = since_ms(req);
    unsigned r = route_of(req);
    shm_lat_add(in, SHM_LAT_TTFB, r, dp_stats_bucket(ms), ms);
}

void dp_stats_done(const dp_choice_t *c, h2o_req_t *req, dp_outcome_t outcome)
{
    dp_access_note(req, c->url, outcome);
    shm_instance_t *in = outcome == DP_OUT_OK ? slot_of(c) : NULL;
    if (in == NULL)
        return;
    uint64_t ms = since_ms(req);
    unsigned r = route_of(req);
    shm_lat_add(in, SHM_LAT_TOTAL, r, dp_stats_bucket(ms), ms);
}
