/*
 * tests/unit/test_cp_adopt.c - what a starting control plane does with the data planes a previous
 * one left running (cp_dp_classify in controlplane/supervise.c): which it keeps serving, which it
 * stops (the other half of an upgrade cut short by the CP's death) and which it only waits for.
 */
#include <criterion/criterion.h>

#include "controlplane/cp.h"
#include "controlplane/supervise.h"
#include "controlplane/upgrade.h"

static cp_orphans_t classify(const cp_dp_row_info_t *rows, unsigned n)
{
    cp_orphans_t o;
    cp_dp_classify(rows, n, &o);
    return o;
}

Test(cp_adopt, nothing_running)
{
    cp_orphans_t o = classify(NULL, 0);
    cr_assert_eq(o.current, 0);
    cr_assert_eq(o.nstop, 0);
    cr_assert_eq(o.ndraining, 0);
}

Test(cp_adopt, one_serving_dp_is_kept)
{
    cp_dp_row_info_t rows[] = {{.pid = 100, .state = SHM_DP_SERVING, .started_at_ms = 5}};
    cp_orphans_t o = classify(rows, 1);
    cr_assert_eq(o.current, 100);
    cr_assert_eq(o.nstop + o.ndraining, 0);
}

Test(cp_adopt, upgrade_cut_after_ready_is_completed)
{
    /* the CP died between "the new DP serves" and "SIGTERM the old one": keep the newer one */
    cp_dp_row_info_t rows[] = {{.pid = 100, .state = SHM_DP_SERVING, .started_at_ms = 5},
                               {.pid = 200, .state = SHM_DP_SERVING, .started_at_ms = 9}};
    cp_orphans_t o = classify(rows, 2);
    cr_assert_eq(o.current, 200);
    cr_assert_eq(o.nstop, 1);
    cr_assert_eq(o.stop[0], 100);
}

Test(cp_adopt, upgrade_cut_before_ready_is_abandoned)
{
    /* the new DP had not reported ready: the old one keeps serving, the new one is stopped */
    cp_dp_row_info_t rows[] = {{.pid = 300, .state = SHM_DP_STARTING, .started_at_ms = 9},
                               {.pid = 100, .state = SHM_DP_SERVING, .started_at_ms = 5}};
    cp_orphans_t o = classify(rows, 2);
    cr_assert_eq(o.current, 100);
    cr_assert_eq(o.nstop, 1);
    cr_assert_eq(o.stop[0], 300);
}

Test(cp_adopt, draining_dps_are_only_waited_for)
{
    cp_dp_row_info_t rows[] = {{.pid = 100, .state = SHM_DP_DRAINING, .started_at_ms = 5},
                               {.pid = 200, .state = SHM_DP_SERVING, .started_at_ms = 9},
                               {.pid = 150, .state = SHM_DP_DRAINING, .started_at_ms = 7}};
    cp_orphans_t o = classify(rows, 3);
    cr_assert_eq(o.current, 200);
    cr_assert_eq(o.nstop, 0);
    cr_assert_eq(o.ndraining, 2);
    cr_assert_eq(o.draining[0], 100);
    cr_assert_eq(o.draining[1], 150);
}

Test(cp_adopt, a_starting_dp_alone_is_kept)
{
    /* the CP died right after spawning its first DP: that one will serve */
    cp_dp_row_info_t rows[] = {{.pid = 100, .state = SHM_DP_STARTING, .started_at_ms = 5},
                               {.pid = 90, .state = SHM_DP_DRAINING, .started_at_ms = 1}};
    cp_orphans_t o = classify(rows, 2);
    cr_assert_eq(o.current, 100);
    cr_assert_eq(o.ndraining, 1);
    cr_assert_eq(o.nstop, 0);
}

Test(cp_adopt, only_draining_dps_leave_no_current)
{
    cp_dp_row_info_t rows[] = {{.pid = 100, .state = SHM_DP_DRAINING, .started_at_ms = 5}};
    cp_orphans_t o = classify(rows, 1);
    cr_assert_eq(o.current, 0);
    cr_assert_eq(o.ndraining, 1);
}

Test(cp_adopt, upgrade_state_names)
{
    cr_assert_str_eq(cp_upgrade_state_name(CP_UPG_NONE), "none");
    cr_assert_str_eq(cp_upgrade_state_name(CP_UPG_STARTING), "starting");
    cr_assert_str_eq(cp_upgrade_state_name(CP_UPG_DRAINING), "draining");
    cr_assert_str_eq(cp_upgrade_state_name(CP_UPG_DONE), "done");
    cr_assert_str_eq(cp_upgrade_state_name(CP_UPG_FAILED), "failed");
}
