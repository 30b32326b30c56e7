/*
 * dataplane/policy/round_robin.c - candidates in turn. The cursor lives in shared memory, one
 * per role, so every thread and every DP process (including one restarted or upgraded) continues
 * the same rotation; the Go router's unsynchronised "current role" flag has no equivalent here.
 */
#include "dataplane/policy/pol.h"

static size_t select_round_robin(const pol_ctx_t *c)
{
    /* a dry run (pol_explain) tells the next turn without taking it */
    uint64_t k =
        c->dry_run ? shm_role_turn_peek(c->seg, c->role) : shm_role_turn_take((shm_seg_t *)c->seg, c->role);
    return (size_t)(k % c->n);
}

const pol_ops_t pol_round_robin_ops = {.select = select_round_robin};
