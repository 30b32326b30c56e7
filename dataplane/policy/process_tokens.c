/*
 * dataplane/policy/process_tokens.c - fewest prompt tokens in flight. Tokens are estimated at
 * selection as 2 x the prompt's code points (the Go router's estimate). Unlike the Go router the
 * prompt is extracted in mixed mode too, so this policy balances mixed deployments instead of
 * always choosing the first instance.
 */
#include "dataplane/policy/pol.h"

static size_t select_process_tokens(const pol_ctx_t *c)
{
    return pol_argmin_load(c, true);
}

const pol_ops_t pol_process_tokens_ops = {.needs = POL_NEEDS_PROMPT, .select = select_process_tokens};
