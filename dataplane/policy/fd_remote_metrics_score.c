/*
 * dataplane/policy/fd_remote_metrics_score.c - score = running + waiting x waiting-weight from the
 * instances' own /metrics; lowest wins; ties are taken in turn (pol_tie_turn) where the Go router took the
 * first URL.
 *
 * The numbers come from shared memory, where the control plane publishes each instance's last
 * /metrics poll with its time (controlplane/metrics_poll.c): the Go router scraped every
 * candidate synchronously inside each selection, this policy makes no network call. Metrics
 * that are missing, invalid (the last poll failed) or older than metrics-max-age fall back, per
 * candidate, to the router's local view as in the Go router: running = requests in flight,
 * waiting = 0.
 *
 * Unlike the Go router, a scrape is not taken as the truth until the next one: the requests this
 * router sent the instance since that scrape are added (pol_remote_load), so an instance that
 * looked idle at the last poll does not draw every request until the next (the Go router's herd).
 */
#include "dataplane/policy/pol.h"

static double score(const pol_ctx_t *c, size_t i, uint64_t now_ms)
{
    uint64_t local = pol_inflight(c, i);
    double r;
    return pol_remote_load(c, i, now_ms, local, c->cfg->waiting_weight, &r) ? r : (double)local;
}

static size_t select_fd_remote_metrics_score(const pol_ctx_t *c)
{
    return pol_argmin(c, score, shm_now_ms());
}

const pol_ops_t pol_fd_remote_metrics_score_ops = {.select = select_fd_remote_metrics_score};
