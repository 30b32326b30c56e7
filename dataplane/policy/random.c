/*
 * dataplane/policy/random.c - uniform choice among the candidates (per-thread generator, so no
 * shared PRNG state between threads as in the Go router's first version).
 */
#include "dataplane/policy/pol.h"

static size_t select_random(const pol_ctx_t *c)
{
    return (size_t)(pol_rand(c->rng) % c->n);
}

const pol_ops_t pol_random_ops = {.select = select_random, .explain = pol_explain_random};
