/*
 * dataplane/policy/fd_metrics_score.c - score = running + waiting x waiting-weight over the
 * router's local view, where running is the requests in flight and waiting is 0 (the Go router's
 * documented behaviour for this name); lowest wins, ties are taken in turn (pol_tie_turn). The variant fed
 * by the instances' own /metrics is fd_remote_metrics_score.
 */
#include "dataplane/policy/pol.h"

static double score(const pol_ctx_t *c, size_t i, uint64_t unused)
{
    (void)unused;
    double running = (double)pol_inflight(c, i), waiting = 0;
    return running + waiting * c->cfg->waiting_weight;
}

static size_t select_fd_metrics_score(const pol_ctx_t *c)
{
    return pol_argmin(c, score, 0);
}

const pol_ops_t pol_fd_metrics_score_ops = {.select = select_fd_metrics_score};
