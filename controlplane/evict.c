/*
 * controlplane/evict.c - upkeep of the shared prefix tree (shm/radix.h).
 *
 * TTL eviction: every eviction-duration-mins / 2 (the Go router's period), every node whose last
 * access is older than the TTL goes, with its subtree. Headroom: every 100 ms, radix_maintain
 * keeps some free nodes in reserve and returns nodes whose grace period passed, so the data
 * planes' inserts rarely have to evict under pressure themselves. The configured capacity is
 * applied at start. All of it runs on the CP loop and takes the writer lock only briefly.
 */
#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/evict.h"
#include "shm/radix.h"

#define MAINTAIN_PERIOD_MS 100

static uint64_t ttl_ms(const cp_t *cp)
{
    return (uint64_t)(cp->cfg.eviction_duration_mins * 60000.0);
}

static void on_ttl(cp_timer_t *t)
{
    cp_t *cp = t->data;
    long n = radix_evict_ttl(&cp->seg, shm_now_ms(), ttl_ms(cp));
    if (n > 0)
        LOG_DEBUG("radix eviction: removed=%ld", n);
}

static void on_maintain(cp_timer_t *t)
{
    cp_t *cp = t->data;
    radix_maintain(&cp->seg);
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
