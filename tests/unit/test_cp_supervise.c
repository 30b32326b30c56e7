/*
 * tests/unit/test_cp_supervise.c - the pure parts of DP supervision (controlplane/supervise.c):
 * where the DP binary is found, and the restart backoff that keeps a crash loop from spinning.
 */
#include <criterion/criterion.h>

#include "controlplane/cp.h"
#include "controlplane/supervise.h"

Test(cp_supervise, binary_precedence)
{
    char out[256];
    cr_assert_eq(cp_dp_resolve_binary("/opt/dp", "/etc/dp", "/usr/bin/fd-router-cp", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/opt/dp");
    cr_assert_eq(cp_dp_resolve_binary(NULL, "/etc/dp", "/usr/bin/fd-router-cp", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/etc/dp");
    cr_assert_eq(cp_dp_resolve_binary("", "", "/usr/local/bin/fd-router-cp", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/usr/local/bin/fd-router-dp");
    cr_assert_eq(cp_dp_resolve_binary(NULL, NULL, "/fd-router-cp", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/fd-router-dp");
    cr_assert_eq(cp_dp_resolve_binary(NULL, NULL, "fd-router-cp", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "fd-router-dp");
}

Test(cp_supervise, binary_path_too_long)
{
    char out[16];
    cr_assert_eq(cp_dp_resolve_binary(NULL, NULL, "/a/very/long/directory/fd-router-cp", out, sizeof(out)),
                 -1);
    cr_assert_eq(cp_dp_resolve_binary("/exactly-15-chr", NULL, NULL, out, sizeof(out)), 0);
    cr_assert_eq(cp_dp_resolve_binary("/exactly-16-chrs", NULL, NULL, out, sizeof(out)), -1);
}

Test(cp_supervise, long_lived_dp_restarts_at_once)
{
    uint64_t backoff = 2000;
    cr_assert_eq(cp_dp_restart_delay(1000, &backoff), 0);
    cr_assert_eq(backoff, 0);
    cr_assert_eq(cp_dp_restart_delay(3600000, &backoff), 0);
}

Test(cp_supervise, crash_loop_backs_off_up_to_a_cap)
{
    uint64_t backoff = 0;
    uint64_t seen[8];
    for (int i = 0; i < 8; i++)
        seen[i] = cp_dp_restart_delay(10, &backoff);
    cr_assert_eq(seen[0], 250);
    cr_assert_eq(seen[1], 500);
    cr_assert_eq(seen[2], 1000);
    cr_assert_eq(seen[3], 2000);
    cr_assert_eq(seen[4], 4000);
    cr_assert_eq(seen[7], 4000);
    /* a DP that then runs long enough resets the backoff */
    cr_assert_eq(cp_dp_restart_delay(999, &backoff), 4000);
    cr_assert_eq(cp_dp_restart_delay(1000, &backoff), 0);
    cr_assert_eq(cp_dp_restart_delay(0, &backoff), 250);
}
