/*
 * controlplane/sharing.h - whether other senders share this router's instances, judged from the
 * instances' own reports (each /metrics scrape's running + waiting against the requests this
 * router had in flight to it when the scrape was stored), and published into shm (shm_fleet) for
 * cache_aware's new-prefix placement (scheduler.new-prefix-placement: auto, docs/config.md).
 *
 * Why: two routers in front of the same instances, never told about each other, agree on where
 * a new prefix goes only if both place it by what they both see, the prefix's hash; a router
 * alone places it better by its own loads. The instances are the one thing the routers share, and
 * their gauges count every sender's requests.
 *
 * Runs on the control plane's loop, once per metrics round (metrics_poll.c's tick). A building
 * block of struct cp (controlplane/cp.h), so it does not include cp.h.
 */
#ifndef FD_CP_SHARING_H
#define FD_CP_SHARING_H

#include "shm/shm.h"

/* One round: the sums over the instances whose last scrape is valid and fresh. */
typedef struct {
    double remote;  /* their running + waiting */
    double own;     /* this router's requests in flight to them when each scrape was stored */
    double foreign; /* the sum of each instance's excess of remote over own */
} cp_sharing_round_t;

/* The verdict and the streak of rounds that argues for a change. */
typedef struct {
    shm_fleet_t verdict;
    shm_fleet_t pending; /* what the current streak argues for */
    unsigned streak;     /* rounds in a row that argued for `pending` */
} cp_sharing_t;

/* Rounds in a row a verdict needs. One scrape can count a request this router has already
 * released (a client that left, a timeout: the instance runs it on) as someone else's. */
#define CP_SHARING_ROUNDS 2

/* Fold one round into s (pure) and return the verdict. A round is foreign when the instances
 * report at least 2 requests, and a quarter of what they report, beyond this router's own; it
 * is own-only when this router had requests in flight and it is not foreign; a round with no
 * traffic argues for nothing, so a verdict outlives an idle spell. */
shm_fleet_t cp_sharing_fold(cp_sharing_t *s, const cp_sharing_round_t *r);

/* Gather a round from the segment's stored scrapes (those younger than max_age_ms; 0: any age),
 * fold it into s, and publish the verdict if it changed (shm_fleet_set, logged), with cache_aware's
 * re-homing budget (radix_moves_grant): one move per live instance when it turns to alone, none
 * when it turns to shared. */
void cp_sharing_tick(cp_sharing_t *s, shm_seg_t *seg, uint64_t max_age_ms);

#endif
