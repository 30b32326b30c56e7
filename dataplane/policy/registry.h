/*
 * dataplane/policy/registry.h - the data plane's registry of policies: each row of
 * common/policies.h (number and name) with what its file implements (needs, select, explain).
 * select.c, main.c and fdctl explain find a policy here by the number the segment holds; nothing
 * outside dataplane/policy/ names a particular policy.
 */
#ifndef FD_DP_POLICY_REGISTRY_H
#define FD_DP_POLICY_REGISTRY_H

#include "common/policies.h"
#include "dataplane/policy/pol.h"

typedef struct {
    fd_policy_t id;
    const char *name; /* its configuration name */
    const pol_ops_t *ops;
} pol_t;

/* The policy published under number p (shm_config_t.policy), NULL for an unknown number. */
const pol_t *pol_get(unsigned p);

static inline bool pol_needs(const pol_t *p, unsigned what)
{
    return (p->ops->needs & what) != 0;
}

/* Fill ex (ex->cand has c->n entries) with what policy p would do for c, changing nothing. */
void pol_explain(const pol_t *p, const pol_ctx_t *c, pol_explain_t *ex);

/* Every policy's operations, by the name in common/policies.h. */
#define POL_OPS_DECL(id, name) extern const pol_ops_t pol_##name##_ops;
FD_POLICIES(POL_OPS_DECL)
#undef POL_OPS_DECL

#endif
