/*
 * controlplane/sharing.c - whether other senders share this router's instances (sharing.h).
 */
#include "controlplane/sharing.h"

#include "common/log.h"
#include "shm/radix.h"

#define FOREIGN_MIN   2.0  /* requests beyond this router's own, fleet-wide */
#define FOREIGN_SHARE 0.25 /* ... and this share of what the instances report */

shm_fleet_t cp_sharing_fold(cp_sharing_t *s, const cp_sharing_round_t *r)
{
    bool foreign = r->foreign >= FOREIGN_MIN && r->foreign >= FOREIGN_SHARE * r->remote;
    shm_fleet_t argues = foreign ? SHM_FLEET_SHARED : r->own >= 1 ? SHM_FLEET_ALONE : SHM_FLEET_UNKNOWN;
    if (argues == SHM_FLEET_UNKNOWN) /* no traffic: neither way */
        return s->verdict;
    s->streak = argues == s->pending ? s->streak + 1 : 1;
    s->pending = argues;
    if (s->streak >= CP_SHARING_ROUNDS)
        s->verdict = argues;
    return s->verdict;
}

/* An instance's gauge as a count: negative, NaN or absurd values are its bugs, not load. */
static double gauge(double v)
{
    return v > 0 ? (v < 1e9 ? v : 1e9) : 0;
}

static cp_sharing_round_t gather(const shm_seg_t *seg, uint64_t now_ms, uint64_t max_age)
{
    cp_sharing_round_t r = {0};
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        const shm_instance_t *in = shm_instance(seg, i);
        shm_remote_metrics_t m;
        if (!shm_slot_is_live(in) || !shm_metrics_load(in, &m))
            continue;
        if (max_age && m.at_ms + max_age < now_ms)
            continue; /* stale: the instance stopped answering its polls */
        double remote = gauge(m.running) + gauge(m.waiting), own = (double)m.local_inflight;
        r.remote += remote;
        r.own += own;
        r.foreign += remote > own ? remote - own : 0;
    }
    return r;
}

static uint32_t live_instances(const shm_seg_t *seg)
{
    uint32_t n = 0;
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++)
        n += shm_slot_is_live(shm_instance(seg, i));
    return n;
}

void cp_sharing_tick(cp_sharing_t *s, shm_seg_t *seg, uint64_t max_age_ms)
{
    cp_sharing_round_t r = gather(seg, shm_now_ms(), max_age_ms);
    shm_fleet_t was = s->verdict, now = cp_sharing_fold(s, &r);
    if (now == was)
        return;
    shm_fleet_set(seg, now);
    /* alone, what was placed blind may be re-homed, one prefix per instance; shared, nothing */
    radix_moves_grant(seg, now == SHM_FLEET_ALONE ? live_instances(seg) : 0);
    LOG_INFO("Instances report %s: %.0f request(s) running or waiting, %.0f of them beyond this "
             "router's %.0f in flight; fleet verdict %s -> %s",
             now == SHM_FLEET_SHARED ? "requests from other senders" : "this router's requests only",
             r.remote, r.foreign, r.own, shm_fleet_name(was), shm_fleet_name(now));
}
