/*
 * dataplane/policy/fd_remote_metrics_score.c - score = running + waiting x waiting-weight from the
 * instances' own /metrics; lowest wins, first in URL order on a tie (the Go router's rule).
 *
 * The numbers come from shared memory, where the control plane publishes each instance's last
 * /metrics poll with its time (controlplane/metrics_poll.c): the Go router scraped every
 * candidate synchronously inside each selection, this policy makes no network call. Metrics
 * that are missing, invalid (the last poll failed) or older than metrics-max-age fall back, per
 * candidate, to the router's local view as in the Go router: running = requests in flight,
 * waiting = 0.
 */
#include "dataplane/policy/pol.h"

static double score(const pol_ctx_t *c, size_t i, uint64_t now_ms)
{
    shm_remote_metrics_t m;
    if (pol_remote_metrics(c, i, now_ms, &m))
        return m.running + m.waiting * c->cfg->waiting_weight;
    return (double)pol_inflight(c, i);
}

static size_t select_fd_remote_metrics_score(const pol_ctx_t *c)
{
    uint64_t now = shm_now_ms();
    size_t best = 0;
    double best_score = score(c, 0, now);
    for (size_t i = 1; i < c->n; i++) {
        double s = score(c, i, now);
        if (s < best_score) {
            best_score = s;
            best = i;
        }
    }
    return best;
}

const pol_t pol_fd_remote_metrics_score = {
    .name = "fd_remote_metrics_score", .needs_prompt = 0, .select = select_fd_remote_metrics_score};
