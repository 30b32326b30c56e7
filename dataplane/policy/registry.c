/*
 * dataplane/policy/registry.c - the policy table (registry.h): built from common/policies.h, so
 * a policy is registered by its row there and its file alone.
 */
#include "dataplane/policy/registry.h"

#define POL_ROW(id_, name_) [FD_POL_##id_] = {.id = FD_POL_##id_, .name = #name_, .ops = &pol_##name_##_ops},
static const pol_t table[FD_POL_COUNT] = {FD_POLICIES(POL_ROW)};
#undef POL_ROW

const pol_t *pol_get(unsigned p)
{
    return p < FD_POL_COUNT ? &table[p] : NULL;
}

void pol_explain(const pol_t *p, const pol_ctx_t *live, pol_explain_t *ex)
{
    pol_ctx_t dry = *live;
    dry.dry_run = true;
    dry.charge = NULL;
    const pol_ctx_t *c = &dry;
    for (size_t i = 0; i < c->n; i++) {
        ex->cand[i].load = pol_inflight(c, i);
        ex->cand[i].tokens = pol_tokens(c, i);
    }
    ex->branch = p->name;
    if (p->ops->explain)
        p->ops->explain(c, ex);
    else
        ex->choice = (long)p->ops->select(c);
}
