/*
 * controlplane/health.c - periodic health checks of every LIVE instance.
 *
 * Every health-check-interval-secs: one probe per LIVE slot, skipping a slot whose previous probe
 * is still running, so cycles never overlap (the Go router's did). Results feed consecutive
 * counters with real hysteresis: health-failure-threshold failures in a row make an instance
 * UNHEALTHY (not selectable), health-success-threshold successes in a row make it HEALTHY again.
 * In the Go router the thresholds were retry counts inside one cycle and one bad cycle removed
 * the instance. Here removal happens only after manager.unhealthy-removal-secs of continuous
 * unhealthiness, and never for register.yaml instances, which are retried forever.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/health.h"
#include "controlplane/registry.h"

cp_health_change_t cp_health_step(cp_health_state_t *st, bool ok, unsigned success_threshold,
                                  unsigned failure_threshold)
{
    if (success_threshold == 0)
        success_threshold = 1;
    if (failure_threshold == 0)
        failure_threshold = 1;
    if (ok) {
        st->fail = 0;
        if (st->ok < UINT32_MAX)
            st->ok++;
        if (st->health != SHM_HEALTH_HEALTHY && st->ok >= success_threshold) {
            st->health = SHM_HEALTH_HEALTHY;
            return CP_HEALTH_BECAME_HEALTHY;
        }
        return CP_HEALTH_SAME;
    }
    st->ok = 0;
    if (st->fail < UINT32_MAX)
        st->fail++;
    if (st->health != SHM_HEALTH_UNHEALTHY && st->fail >= failure_threshold) {
        st->health = SHM_HEALTH_UNHEALTHY;
        return CP_HEALTH_BECAME_UNHEALTHY;
    }
    return CP_HEALTH_SAME;
}

bool cp_health_expired(uint32_t health, bool is_static, uint64_t unhealthy_since_ms, uint64_t now_ms,
                       uint64_t removal_ms)
{
    return health == SHM_HEALTH_UNHEALTHY && !is_static && unhealthy_since_ms != 0 &&
           now_ms >= unhealthy_since_ms && now_ms - unhealthy_since_ms >= removal_ms;
}

static unsigned threshold(int v)
{
    return v > 0 ? (unsigned)v : 1;
}

/* Negative removal time = never remove. */
static bool should_remove(cp_t *cp, const shm_instance_t *in, uint64_t now)
{
    if (cp->cfg.unhealthy_removal_secs < 0)
        return false;
    uint64_t removal_ms = (uint64_t)(cp->cfg.unhealthy_removal_secs * 1000.0);
    return cp_health_expired(shm_slot_health(in), cp_static_has(cp, in->url), in->unhealthy_since_ms, now,
                             removal_ms);
}

static void remove_instance(cp_t *cp, unsigned slot, const shm_instance_t *in)
{
    LOG_ERROR("Removed unhealthy %s instance: %s", fd_role_name((shm_role_t)in->role), in->url);
    cp_registry_retire(cp, slot);
}

/* A probe's result for the instance still in its slot. */
static void apply_result(cp_t *cp, unsigned slot, shm_instance_t *in, const cp_probe_result_t *res)
{
    uint64_t now = shm_now_ms();
    in->last_check_ms = now;
    if (!res->ok)
        snprintf(in->last_error, sizeof(in->last_error), "%s", res->error);
    cp_health_state_t st = {shm_slot_health(in), in->consecutive_ok, in->consecutive_fail};
    uint32_t before = st.health;
    cp_health_change_t ch = cp_health_step(&st, res->ok, threshold(cp->cfg.health_success_threshold),
                                           threshold(cp->cfg.health_failure_threshold));
    in->consecutive_ok = st.ok;
    in->consecutive_fail = st.fail;
    switch (ch) {
    case CP_HEALTH_BECAME_UNHEALTHY:
        LOG_ERROR("Instance %s is unhealthy after %u failed health check(s): %s", in->url, st.fail,
                  res->error);
        cp_registry_set_health(cp, slot, SHM_HEALTH_UNHEALTHY, now);
        if (should_remove(cp, in, now))
            remove_instance(cp, slot, in);
        break;
    case CP_HEALTH_BECAME_HEALTHY:
        LOG_INFO("Instance %s is %s after %u successful health check(s)", in->url,
                 before == SHM_HEALTH_UNKNOWN ? "healthy" : "healthy again", st.ok);
        cp_registry_set_health(cp, slot, SHM_HEALTH_HEALTHY, now);
        break;
    case CP_HEALTH_SAME:
        if (!res->ok)
            LOG_DEBUG("Health check of %s failed (%u in a row): %s", in->url, st.fail, res->error);
        break;
    }
}

static void on_tick(cp_timer_t *t)
{
    cp_t *cp = t->data;
    uint64_t now = shm_now_ms();
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        shm_instance_t *in = cp_slot_job_prune(&cp->health.jobs, i);
        if (in == NULL)
            continue;
        if (should_remove(cp, in, now)) {
            cp_slot_job_forget(&cp->health.jobs, i);
            remove_instance(cp, i, in);
        } else if (!cp_slot_job_busy(&cp->health.jobs, i))
            cp_slot_job_start(&cp->health.jobs, i, in, in->port, cp->cfg.health_check_endpoint, 0);
    }
}

int cp_health_start(cp_t *cp)
{
    cp_slot_jobs_init(&cp->health.jobs, cp, "health check", apply_result);
    if (cp_timer_init(&cp->health.timer, (h2o_loop_t *)cp->loop, on_tick, cp) != 0)
        return -1;
    double secs = cp->cfg.health_check_interval_secs;
    uint64_t period = secs > 0 ? (uint64_t)(secs * 1000.0) : 1000;
    cp_timer_arm(&cp->health.timer, 1, period ? period : 1);
    return 0;
}

void cp_health_stop(cp_t *cp)
{
    cp_timer_dispose(&cp->health.timer);
    cp_slot_jobs_stop(&cp->health.jobs);
}
