/*
 * controlplane/evict.c - upkeep of the shared prefix tree (shm/radix.h), the only place that
 * evicts: a data plane's insert never does (it would hold the writer lock for a pass over the
 * whole tree on the request path).
 *
 * Every 100 ms a step of radix_upkeep applies the configured capacity (so a reload takes effect
 * without the data planes), returns limbo nodes whose grace period passed and, when the free
 * reserve runs low, starts a sweep that evicts the least recently used nodes. Every
 * eviction-duration-mins / 2 (the Go router's period) a TTL pass is asked for: nodes last
 * accessed longer ago than the TTL go, with their subtrees. A sweep runs in steps of well under
 * a millisecond of writer-lock time, 1 ms apart while it lasts, so the data planes' inserts
 * interleave with it.
 */
#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/evict.h"
#include "shm/radix.h"

#define MAINTAIN_PERIOD_MS 100
#define SWEEP_STEP_MS      1

static radix_sweep_t sweep; /* the one segment's sweep (process-local, see shm/radix.h) */

static uint64_t ttl_ms(const cp_t *cp)
{
    return (uint64_t)(cp->cfg.eviction_duration_mins * 60000.0);
}

static void step(cp_t *cp, uint64_t ttl_before)
{
    int more =
        radix_upkeep(&cp->seg, &sweep, (uint32_t)cp->cfg.radix_capacity_nodes, ttl_before, shm_now_ms());
    if (more < 0)
        LOG_RATELIMITED(FD_LOG_ERROR, "prefix tree upkeep: the writer lock is unrecoverable");
    else if (more) /* the next step soon; the period resumes after it */
        cp_timer_arm(&cp->evict.maintain, SWEEP_STEP_MS, MAINTAIN_PERIOD_MS);
}

static void on_ttl(cp_timer_t *t)
{
    cp_t *cp = t->data;
    uint64_t now = shm_now_ms(), ttl = ttl_ms(cp);
    step(cp, now > ttl ? now - ttl : 1);
}

static void on_maintain(cp_timer_t *t)
{
    step(t->data, 0);
}

int cp_evict_start(cp_t *cp)
{
    if (radix_set_capacity(&cp->seg, (uint32_t)cp->cfg.radix_capacity_nodes) != 0)
        LOG_WARN("radix-capacity-nodes %d could not be applied", cp->cfg.radix_capacity_nodes);
    if (cp_timer_init(&cp->evict.ttl, (h2o_loop_t *)cp->loop, on_ttl, cp) != 0 ||
        cp_timer_init(&cp->evict.maintain, (h2o_loop_t *)cp->loop, on_maintain, cp) != 0)
        return -1;
    uint64_t period = ttl_ms(cp) / 2;
    cp_timer_arm(&cp->evict.ttl, period ? period : 1, period ? period : 1);
    cp_timer_arm(&cp->evict.maintain, MAINTAIN_PERIOD_MS, MAINTAIN_PERIOD_MS);
    return 0;
}

void cp_evict_stop(cp_t *cp)
{
    cp_timer_dispose(&cp->evict.ttl);
    cp_timer_dispose(&cp->evict.maintain);
}
