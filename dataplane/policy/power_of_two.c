/*
 * dataplane/policy/power_of_two.c - two distinct random candidates, the one with fewer requests
 * in flight wins (the first on a tie), as in the Go router.
 */
#include "dataplane/policy/pol.h"

static size_t select_power_of_two(const pol_ctx_t *c)
{
    if (c->n == 1)
        return 0;
    size_t a = (size_t)(pol_rand(c->rng) % c->n);
    size_t b = (size_t)(pol_rand(c->rng) % (c->n - 1));
    if (b >= a)
        b++;
    return pol_inflight(c, a) <= pol_inflight(c, b) ? a : b;
}

const pol_ops_t pol_power_of_two_ops = {.select = select_power_of_two, .explain = pol_explain_random};
