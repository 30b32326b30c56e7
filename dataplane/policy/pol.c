/*
 * dataplane/policy/pol.c - helpers shared by several policies (pol.h).
 */
#include <string.h>

#include "dataplane/policy/pol.h"

size_t pol_tie_turn(const pol_ctx_t *c, size_t ntied)
{
    if (ntied < 2)
        return 0;
    /* the policy contract hands the segment read-only; the turn is the one write (an atomic add) */
    uint64_t k =
        c->dry_run ? shm_role_turn_peek(c->seg, c->role) : shm_role_turn_take((shm_seg_t *)c->seg, c->role);
    return (size_t)(k % ntied);
}

size_t pol_argmin(const pol_ctx_t *c, double (*f)(const pol_ctx_t *, size_t, uint64_t), uint64_t arg)
{
    /* the values are kept: loads move under us, a second read could miss every tie */
    double v[SHM_VIEW_MAX_SLOTS], best = 0;
    size_t n = c->n < SHM_VIEW_MAX_SLOTS ? c->n : SHM_VIEW_MAX_SLOTS, ntied = 0;
    for (size_t i = 0; i < n; i++) {
        v[i] = f(c, i, arg);
        if (i == 0 || v[i] < best)
            best = v[i], ntied = 0;
        ntied += v[i] == best;
    }
    return pol_nth_equal(v, n, best, pol_tie_turn(c, ntied));
}

size_t pol_nth_equal(const double *v, size_t n, double x, size_t k)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x && k-- == 0)
            return i;
    return 0;
}

void pol_slots_build(pol_slots_t *p, const uint16_t *slots, size_t n)
{
    memset(&p->set, 0, sizeof(p->set));
    for (size_t i = 0; i < n; i++) {
        unsigned s = slots[i];
        uint64_t bit = (uint64_t)1 << (s % 64);
        if (s >= SHM_MAX_INSTANCES || (p->set.w[s / 64] & bit))
            continue;
        p->set.w[s / 64] |= bit;
        p->pos[s] = (uint16_t)i;
    }
}

size_t pol_argmin_load(const pol_ctx_t *c, bool tokens)
{
    pol_slots_t own;
    const pol_slots_t *x = c->by_slot;
    if (!x) {
        pol_slots_build(&own, c->slots, c->n);
        x = &own;
    }
    shm_loads_tied_t tied;
    shm_loads_min(c->seg, &x->set, tokens, &tied);
    if (!tied.count)
        return 0;
    size_t i = x->pos[shm_loads_nth(&tied, pol_tie_turn(c, tied.count))];
    return i < c->n ? i : 0;
}

/* Distance either way: a wall clock stepped back must not make old numbers look fresh. */
static bool fresh(uint64_t at_ms, uint64_t now_ms, uint32_t max_age_ms)
{
    uint64_t age = now_ms >= at_ms ? now_ms - at_ms : at_ms - now_ms;
    return age < max_age_ms;
}

bool pol_remote_metrics(const pol_ctx_t *c, size_t i, uint64_t now_ms, shm_remote_metrics_t *m)
{
    return shm_metrics_load(shm_instance(c->seg, c->slots[i]), m) &&
           fresh(m->at_ms, now_ms, c->cfg->metrics_max_age_ms);
}

/* An instance's gauge as a count: negative, NaN or absurd values are its bugs, not load. */
static double gauge(double v)
{
    return v > 0 ? (v < 1e9 ? v : 1e9) : 0;
}

bool pol_remote_load(const pol_ctx_t *c, size_t i, uint64_t now_ms, uint64_t local, double waiting_weight,
                     double *out)
{
    shm_remote_metrics_t m;
    if (!pol_remote_metrics(c, i, now_ms, &m))
        return false;
    *out = gauge(m.running) + gauge(m.waiting) * waiting_weight +
           (double)(local > m.local_inflight ? local - m.local_inflight : 0);
    return true;
}

void pol_explain_random(const pol_ctx_t *c, pol_explain_t *ex)
{
    (void)c;
    ex->choice = -1;
}
