/*
 * dataplane/policy/request_num.c - fewest requests in flight (summed over every live DP); ties
 * are taken in turn (pol_tie_turn).
 */
#include "dataplane/policy/pol.h"

static size_t select_request_num(const pol_ctx_t *c)
{
    return pol_argmin(c, pol_inflight_key, 0);
}

const pol_t pol_request_num = {.name = "request_num", .needs_prompt = 0, .select = select_request_num};
