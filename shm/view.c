/*
 * shm/view.c - building and publishing the per-role views the DPs select from.
 *
 * A view is an arena block listing the selectable slots of one role (LIVE, HEALTHY, not
 * drained), sorted by URL with strcmp, which is the Go router's order and makes round-robin
 * and tie-breaking reproducible. Views are copy-on-write: a new block per publication, made
 * visible by one release store of its offset, the old block retired to limbo after the epoch
 * advance. Retired slots learn here the epoch of the first publication that left them out,
 * which is what shm_slot_collect waits a grace period for.
 */
#include <stdlib.h>
#include <string.h>

#include "shm/internal.h"

static bool selectable(const shm_instance_t *in, shm_role_t role)
{
    return shm_slot_selectable(in) && in->role == (uint32_t)role;
}

static int by_url(const void *a, const void *b, void *seg)
{
    const shm_seg_t *s = seg;
    return strcmp(shm_instance(s, *(const uint16_t *)a)->url, shm_instance(s, *(const uint16_t *)b)->url);
}

static void build_view(shm_seg_t *s, shm_role_t role, shm_view_t *v, uint64_t version)
{
    uint32_t n = 0;
    for (unsigned i = 0; i < SHM_MAX_INSTANCES && n < SHM_VIEW_MAX_SLOTS; i++)
        if (selectable(shm_instance(s, i), role))
            v->slot[n++] = (uint16_t)i;
    qsort_r(v->slot, n, sizeof v->slot[0], by_url, s);
    v->count = n;
    v->version = version;
}

static void stamp_gone(shm_seg_t *s, uint64_t epoch)
{
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        shm_instance_t *in = shm_instance(s, i);
        if (__atomic_load_n(&in->state, __ATOMIC_RELAXED) == SHM_SLOT_RETIRED && in->gone_epoch == 0)
            in->gone_epoch = epoch;
    }
}

int shm_publish_views(shm_seg_t *s)
{
    shm_header_t *h = s->hdr;
    uint64_t fresh[SHM_ROLE_COUNT], old[SHM_ROLE_COUNT];
    for (int r = 0; r < SHM_ROLE_COUNT; r++) {
        fresh[r] = shm_block_alloc(s);
        if (!fresh[r]) {
            while (r-- > 0)
                shm_block_free(s, fresh[r]);
            return -1;
        }
    }
    uint64_t version = h->view_version + 1;
    for (int r = 0; r < SHM_ROLE_COUNT; r++)
        build_view(s, (shm_role_t)r, shm_ptr(s, fresh[r]), version);
    __atomic_store_n(&h->view_version, version, __ATOMIC_RELEASE);
    for (int r = 0; r < SHM_ROLE_COUNT; r++) {
        old[r] = h->view_off[r];
        __atomic_store_n(&h->view_off[r], fresh[r], __ATOMIC_RELEASE);
    }
    uint64_t epoch = shm_epoch_advance(s);
    stamp_gone(s, epoch);
    for (int r = 0; r < SHM_ROLE_COUNT; r++)
        if (old[r])
            shm_block_retire(s, old[r]);
    __atomic_store_n(&h->table_updated_ms, shm_now_ms(), __ATOMIC_RELEASE);
    return 0;
}
