/*
 * tests/unit/test_dp_fixture.h - the shared-memory fixture of the policy tests: a fresh segment
 * with n healthy mixed instances (http://127.0.0.1:<base_port + i>, in URL order) published in
 * the view, and a DP counter row to load them with.
 */
#ifndef FD_TEST_DP_FIXTURE_H
#define FD_TEST_DP_FIXTURE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

#include "shm/shm.h"

typedef struct {
    shm_seg_t seg;
    char name[64];
    int row;
} dp_fixture_t;

static inline void dp_fixture_open(dp_fixture_t *f, const char *tag, uint16_t *slots, int n, int base_port)
{
    static int k;
    char err[256];
    shm_open_result_t how;
    snprintf(f->name, sizeof(f->name), "/fd-router-test-%s-%d-%d", tag, getpid(), k++);
    cr_assert_eq(shm_open_cp(&f->seg, f->name, true, &how, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(shm_wlock(&f->seg), 0);
    for (int i = 0; i < n; i++) {
        int s = shm_slot_alloc(&f->seg);
        cr_assert_geq(s, 0);
        shm_instance_t *in = shm_instance(&f->seg, (unsigned)s);
        snprintf(in->url, sizeof(in->url), "http://127.0.0.1:%d", base_port + i);
        snprintf(in->host, sizeof(in->host), "127.0.0.1");
        in->port = (uint16_t)(base_port + i);
        in->url_hash = shm_url_hash(in->url);
        in->role = SHM_ROLE_MIXED;
        in->health = SHM_HEALTH_HEALTHY;
        __atomic_store_n(&in->state, SHM_SLOT_LIVE, __ATOMIC_RELEASE);
        slots[i] = (uint16_t)s;
    }
    cr_assert_eq(shm_publish_views(&f->seg), 0);
    shm_wunlock(&f->seg);
    f->row = shm_dp_claim(&f->seg, getpid(), 0);
    cr_assert_geq(f->row, 0);
}

static inline void dp_fixture_close(dp_fixture_t *f)
{
    shm_detach(&f->seg);
    shm_destroy(f->name);
}

#endif
