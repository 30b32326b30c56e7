/*
 * dataplane/policy/fd_metrics_score.c - score = running + waiting x waiting-weight over the
 * router's local view, where running is the requests in flight and waiting is 0 (the Go router's
 * documented behaviour for this name); lowest wins, first in URL order on a tie. The variant fed
 * by the instances' own /metrics is fd_remote_metrics_score.
 */
#include "dataplane/policy/pol.h"

static size_t select_fd_metrics_score(const pol_ctx_t *c)
{
    size_t best = 0;
    double best_score = 0;
    for (size_t i = 0; i < c->n; i++) {
        double running = (double)pol_inflight(c, i), waiting = 0;
        double score = running + waiting * c->cfg->waiting_weight;
        if (i == 0 || score < best_score) {
            best_score = score;
            best = i;
        }
    }
    return best;
}

const pol_t pol_fd_metrics_score = {
    .name = "fd_metrics_score", .needs_prompt = 0, .select = select_fd_metrics_score};
