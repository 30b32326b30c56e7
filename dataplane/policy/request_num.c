/*
 * dataplane/policy/request_num.c - fewest requests in flight (summed over every live DP); ties
 * are taken in turn (pol_tie_turn).
 */
#include "dataplane/policy/pol.h"

static size_t select_request_num(const pol_ctx_t *c)
{
    return pol_argmin_load(c, false);
}

const pol_ops_t pol_request_num_ops = {.select = select_request_num};
