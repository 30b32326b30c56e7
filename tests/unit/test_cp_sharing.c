/*
 * tests/unit/test_cp_sharing.c - the fleet verdict (controlplane/sharing.h): whether other
 * senders share the instances, folded round by round from what the instances report.
 */
#include <criterion/criterion.h>

#include "controlplane/sharing.h"

static cp_sharing_round_t round_of(double remote, double own)
{
    return (cp_sharing_round_t){.remote = remote, .own = own, .foreign = remote > own ? remote - own : 0};
}

static shm_fleet_t fold_n(cp_sharing_t *s, cp_sharing_round_t r, int n)
{
    shm_fleet_t v = s->verdict;
    for (int i = 0; i < n; i++)
        v = cp_sharing_fold(s, &r);
    return v;
}

Test(cp_sharing, unknown_until_a_scrape_shows_traffic)
{
    cp_sharing_t s = {0};
    cr_assert_eq(fold_n(&s, round_of(0, 0), 10), SHM_FLEET_UNKNOWN);
}

Test(cp_sharing, own_requests_only_make_the_router_alone_after_the_rounds_it_needs)
{
    cp_sharing_t s = {0};
    cr_assert_eq(fold_n(&s, round_of(12, 12), CP_SHARING_ROUNDS - 1), SHM_FLEET_UNKNOWN);
    cr_assert_eq(fold_n(&s, round_of(12, 12), 1), SHM_FLEET_ALONE);
    /* the router's own requests not yet (or no longer) counted by the instances are not foreign */
    cr_assert_eq(fold_n(&s, round_of(3, 12), 5), SHM_FLEET_ALONE);
}

Test(cp_sharing, another_routers_half_of_the_traffic_makes_it_shared)
{
    cp_sharing_t s = {0};
    cr_assert_eq(fold_n(&s, round_of(24, 12), CP_SHARING_ROUNDS), SHM_FLEET_SHARED);
    /* and requests from elsewhere with none of this router's own in flight */
    cp_sharing_t t = {0};
    cr_assert_eq(fold_n(&t, round_of(5, 0), CP_SHARING_ROUNDS), SHM_FLEET_SHARED);
}

Test(cp_sharing, one_round_of_foreign_requests_is_not_enough)
{
    cp_sharing_t s = {.verdict = SHM_FLEET_ALONE};
    /* a client that left: the instance runs on what this router released */
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(fold_n(&s, round_of(20, 10), 1), SHM_FLEET_ALONE, "round %d", i);
        cr_assert_eq(fold_n(&s, round_of(10, 10), 1), SHM_FLEET_ALONE, "round %d", i);
    }
    cr_assert_eq(fold_n(&s, round_of(20, 10), CP_SHARING_ROUNDS), SHM_FLEET_SHARED);
}

Test(cp_sharing, small_or_proportionally_small_excess_is_noise)
{
    cp_sharing_t s = {0};
    /* one request beyond its own: below the fleet-wide minimum of two */
    cr_assert_eq(fold_n(&s, round_of(2, 1), 10), SHM_FLEET_ALONE);
    /* three beyond 100 of its own: below a quarter of what the instances report */
    cr_assert_eq(fold_n(&s, round_of(103, 100), 10), SHM_FLEET_ALONE);
    /* a quarter or more */
    cr_assert_eq(fold_n(&s, round_of(140, 100), CP_SHARING_ROUNDS), SHM_FLEET_SHARED);
}

Test(cp_sharing, a_verdict_outlives_idle_rounds_and_turns_on_evidence)
{
    cp_sharing_t s = {0};
    cr_assert_eq(fold_n(&s, round_of(8, 4), CP_SHARING_ROUNDS), SHM_FLEET_SHARED);
    cr_assert_eq(fold_n(&s, round_of(0, 0), 50), SHM_FLEET_SHARED, "an idle spell changes nothing");
    /* idle rounds neither break nor extend a streak */
    cr_assert_eq(fold_n(&s, round_of(4, 4), 1), SHM_FLEET_SHARED);
    cr_assert_eq(fold_n(&s, round_of(0, 0), 3), SHM_FLEET_SHARED);
    cr_assert_eq(fold_n(&s, round_of(4, 4), 1), SHM_FLEET_ALONE, "the other router went away");
}
