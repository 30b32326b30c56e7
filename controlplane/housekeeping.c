/*
 * controlplane/housekeeping.c - the control plane's upkeep of the segment, on its own short timer
 * (CP_HOUSEKEEPING_MS) whatever the jobs' configured periods:
 *   - the CP heartbeat in the header, which the data plane and fdctl show as the control plane's
 *     age (fail-static: the DP routes on the last table while it grows);
 *   - the load-counter rows and reader slots of data-plane processes found dead (a crash never
 *     leaks load; the pidfd watch in supervise.c reaps at once, this catches the rest);
 *   - a view publication that failed for want of arena blocks, retried;
 *   - retired slots freed and limbo blocks reclaimed once their grace period has passed.
 * These ran in the health tick before, at health-check-interval-secs (60 s in some setups): a
 * heartbeat a minute old made a live CP look dead, and a removed slot waited a minute to be free.
 */
#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/housekeeping.h"
#include "controlplane/registry.h"

static void on_tick(cp_timer_t *t)
{
    cp_t *cp = t->data;
    shm_cp_heartbeat(&cp->seg, shm_now_ms());
    int reaped = shm_reap_dead(&cp->seg);
    if (reaped > 0)
        LOG_INFO("Released the load counters of %d dead data-plane process(es)", reaped);
    cp_registry_maintain(cp);
}

int cp_housekeeping_start(cp_t *cp)
{
    if (cp_timer_init(&cp->housekeeping_timer, (h2o_loop_t *)cp->loop, on_tick, cp) != 0)
        return -1;
    cp_timer_arm(&cp->housekeeping_timer, 1, CP_HOUSEKEEPING_MS);
    return 0;
}

void cp_housekeeping_stop(cp_t *cp)
{
    cp_timer_dispose(&cp->housekeeping_timer);
}
