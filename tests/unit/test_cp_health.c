/*
 * tests/unit/test_cp_health.c - the health state machine (controlplane/health.c): consecutive
 * results with hysteresis, and when an unhealthy instance is due for removal.
 */
#include <criterion/criterion.h>

#include "controlplane/cp.h"
#include "controlplane/health.h"

static cp_health_change_t feed(cp_health_state_t *st, const char *results, unsigned succ, unsigned fail)
{
    cp_health_change_t last = CP_HEALTH_SAME;
    for (const char *r = results; *r; r++)
        last = cp_health_step(st, *r == '+', succ, fail);
    return last;
}

Test(cp_health, failures_in_a_row_make_unhealthy)
{
    cp_health_state_t st = {SHM_HEALTH_HEALTHY, 3, 0};
    cr_assert_eq(feed(&st, "--", 2, 3), CP_HEALTH_SAME);
    cr_assert_eq(st.health, SHM_HEALTH_HEALTHY);
    cr_assert_eq(st.ok, 0);
    cr_assert_eq(feed(&st, "-", 2, 3), CP_HEALTH_BECAME_UNHEALTHY);
    cr_assert_eq(st.health, SHM_HEALTH_UNHEALTHY);
    cr_assert_eq(st.fail, 3);
    /* further failures are no new transition */
    cr_assert_eq(feed(&st, "-", 2, 3), CP_HEALTH_SAME);
}

Test(cp_health, a_success_resets_the_failure_run)
{
    cp_health_state_t st = {SHM_HEALTH_HEALTHY, 1, 0};
    cr_assert_eq(feed(&st, "--+--+--", 2, 3), CP_HEALTH_SAME);
    cr_assert_eq(st.health, SHM_HEALTH_HEALTHY);
    cr_assert_eq(st.fail, 2);
}

Test(cp_health, successes_in_a_row_make_healthy_again)
{
    cp_health_state_t st = {SHM_HEALTH_UNHEALTHY, 0, 5};
    cr_assert_eq(feed(&st, "++-+", 3, 1), CP_HEALTH_SAME);
    cr_assert_eq(st.health, SHM_HEALTH_UNHEALTHY);
    cr_assert_eq(feed(&st, "+", 3, 1), CP_HEALTH_SAME);
    cr_assert_eq(feed(&st, "+", 3, 1), CP_HEALTH_BECAME_HEALTHY);
    cr_assert_eq(st.health, SHM_HEALTH_HEALTHY);
    cr_assert_eq(st.fail, 0);
}

Test(cp_health, unknown_goes_either_way)
{
    cp_health_state_t up = {SHM_HEALTH_UNKNOWN, 0, 0};
    cr_assert_eq(feed(&up, "+", 1, 1), CP_HEALTH_BECAME_HEALTHY);
    cp_health_state_t down = {SHM_HEALTH_UNKNOWN, 0, 0};
    cr_assert_eq(feed(&down, "-", 1, 2), CP_HEALTH_SAME);
    cr_assert_eq(down.health, SHM_HEALTH_UNKNOWN);
    cr_assert_eq(feed(&down, "-", 1, 2), CP_HEALTH_BECAME_UNHEALTHY);
}

Test(cp_health, zero_thresholds_act_as_one)
{
    cp_health_state_t st = {SHM_HEALTH_HEALTHY, 0, 0};
    cr_assert_eq(cp_health_step(&st, false, 0, 0), CP_HEALTH_BECAME_UNHEALTHY);
    cr_assert_eq(cp_health_step(&st, true, 0, 0), CP_HEALTH_BECAME_HEALTHY);
}

Test(cp_health, counters_saturate)
{
    cp_health_state_t st = {SHM_HEALTH_UNHEALTHY, 0, UINT32_MAX};
    cr_assert_eq(cp_health_step(&st, false, 1, 1), CP_HEALTH_SAME);
    cr_assert_eq(st.fail, UINT32_MAX);
}

Test(cp_health, removal_time)
{
    const uint64_t since = 1000000, removal = 60000;
    cr_assert(!cp_health_expired(SHM_HEALTH_UNHEALTHY, false, since, since + removal - 1, removal));
    cr_assert(cp_health_expired(SHM_HEALTH_UNHEALTHY, false, since, since + removal, removal));
    /* static instances (register.yaml) are retried forever */
    cr_assert(!cp_health_expired(SHM_HEALTH_UNHEALTHY, true, since, since + 10 * removal, removal));
    /* only unhealthy ones, and only with a known start */
    cr_assert(!cp_health_expired(SHM_HEALTH_HEALTHY, false, since, since + 10 * removal, removal));
    cr_assert(!cp_health_expired(SHM_HEALTH_UNKNOWN, false, since, since + 10 * removal, removal));
    cr_assert(!cp_health_expired(SHM_HEALTH_UNHEALTHY, false, 0, since, removal));
    /* a clock step backwards never removes */
    cr_assert(!cp_health_expired(SHM_HEALTH_UNHEALTHY, false, since, since - 5, 0));
    /* removal time 0: at once */
    cr_assert(cp_health_expired(SHM_HEALTH_UNHEALTHY, false, since, since, 0));
}
