/*
 * tests/unit/test_shm_views.c - building and publishing views, what readers see across
 * publications, and when a retired slot may be reused.
 */
#include "test_shm_util.h"

TestSuite(views, .init = seg_setup, .fini = seg_teardown, .timeout = 10.0);

static void assert_view(shm_role_t role, const int *want, unsigned n)
{
    const shm_view_t *v = shm_view(&seg, role);
    cr_assert_eq(v->count, n, "role %d: %u entries, want %u", role, v->count, n);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(v->slot[i], want[i], "role %d entry %u: slot %u, want %d", role, i, v->slot[i], want[i]);
}

Test(views, only_healthy_live_undrained_slots_sorted_by_url)
{
    /* registration order differs from URL order; strcmp puts ":10" before ":9" */
    int m9 = add_instance(&seg, "http://10.0.0.1:9", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    int m10 = add_instance(&seg, "http://10.0.0.1:10", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    int m_a = add_instance(&seg, "http://10.0.0.0:80", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    add_instance(&seg, "http://10.0.0.2:1", SHM_ROLE_MIXED, SHM_HEALTH_UNKNOWN);
    add_instance(&seg, "http://10.0.0.3:1", SHM_ROLE_MIXED, SHM_HEALTH_UNHEALTHY);
    int drained = add_instance(&seg, "http://10.0.0.4:1", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    shm_instance(&seg, (unsigned)drained)->drained = 1;
    int retired = add_instance(&seg, "http://10.0.0.5:1", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    shm_slot_retire(&seg, (unsigned)retired, shm_now_ms());
    int p = add_instance(&seg, "http://[::1]:8000", SHM_ROLE_PREFILL, SHM_HEALTH_HEALTHY);
    int d2 = add_instance(&seg, "http://10.1.0.2:8000", SHM_ROLE_DECODE, SHM_HEALTH_HEALTHY);
    int d1 = add_instance(&seg, "http://10.1.0.1:8000", SHM_ROLE_DECODE, SHM_HEALTH_HEALTHY);

    uint64_t version = seg.hdr->view_version, epoch = seg.hdr->gp_epoch;
    seg.hdr->table_updated_ms = 0;
    cr_assert_eq(shm_publish_views(&seg), 0);
    assert_view(SHM_ROLE_MIXED, (int[]){m_a, m10, m9}, 3);
    assert_view(SHM_ROLE_PREFILL, (int[]){p}, 1);
    assert_view(SHM_ROLE_DECODE, (int[]){d1, d2}, 2);
    for (int r = 0; r < SHM_ROLE_COUNT; r++)
        cr_assert_eq(shm_view(&seg, (shm_role_t)r)->version, version + 1);
    cr_assert_eq(seg.hdr->view_version, version + 1);
    cr_assert_eq(seg.hdr->gp_epoch, epoch + 1);
    cr_assert_gt(seg.hdr->table_updated_ms, 0);
    cr_assert_eq(shm_instance(&seg, (unsigned)retired)->gone_epoch, epoch + 1);

    shm_instance(&seg, (unsigned)drained)->drained = 0;
    shm_instance(&seg, (unsigned)m10)->health = SHM_HEALTH_UNHEALTHY;
    cr_assert_eq(shm_publish_views(&seg), 0);
    assert_view(SHM_ROLE_MIXED, (int[]){m_a, m9, drained}, 3);
}

Test(views, old_blocks_are_retired_and_reclaimed)
{
    uint64_t old = seg.hdr->view_off[SHM_ROLE_MIXED];
    cr_assert_eq(shm_publish_views(&seg), 0);
    cr_assert_neq(seg.hdr->view_off[SHM_ROLE_MIXED], old);
    cr_assert_eq(seg.hdr->arena_used, 2 * SHM_ROLE_COUNT, "3 live + 3 in limbo");
    cr_assert_eq(shm_reclaim(&seg), SHM_ROLE_COUNT, "no readers: limbo drains at once");
    cr_assert(free_list_has(&seg, old));
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(shm_publish_views(&seg), 0, "publication %d", i);
    cr_assert_leq(seg.hdr->arena_used, SHM_ARENA_BLOCKS);
}

Test(views, a_reader_keeps_its_view_intact_across_publications)
{
    int a = add_instance(&seg, "http://10.0.0.1:1", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    int b = add_instance(&seg, "http://10.0.0.1:2", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    cr_assert_eq(shm_publish_views(&seg), 0);
    int me = shm_reader_register(&seg);
    shm_read_enter(&seg, me);
    const shm_view_t *mine = shm_view(&seg, SHM_ROLE_MIXED);
    uint64_t mine_off = shm_off(&seg, mine), mine_version = mine->version;

    /* the writer carries on: changes, publishes, and exhausts the arena */
    shm_instance(&seg, (unsigned)a)->health = SHM_HEALTH_UNHEALTHY;
    int publications = 0;
    while (shm_publish_views(&seg) == 0)
        publications++;
    cr_assert_gt(publications, 10);
    while (shm_block_alloc(&seg))
        ;
    cr_assert_eq(mine->count, 2);
    cr_assert_eq(mine->version, mine_version);
    cr_assert(mine->slot[0] == a && mine->slot[1] == b);
    cr_assert_eq(shm_view(&seg, SHM_ROLE_MIXED)->count, 1, "new readers see the new view");

    shm_read_exit(&seg, me);
    cr_assert_gt(shm_reclaim(&seg), 0);
    cr_assert(free_list_has(&seg, mine_off));
    shm_reader_unregister(&seg, me);
}

Test(views, exhausted_arena_keeps_old_views)
{
    add_instance(&seg, "http://10.0.0.1:1", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    uint64_t offs[SHM_ROLE_COUNT];
    memcpy(offs, seg.hdr->view_off, sizeof offs);
    uint64_t version = seg.hdr->view_version, epoch = seg.hdr->gp_epoch;
    /* leave exactly two free blocks: one role short */
    static uint64_t got[SHM_ARENA_BLOCKS];
    unsigned n = 0;
    while ((got[n] = shm_block_alloc(&seg)) != 0)
        n++;
    shm_block_free(&seg, got[0]);
    shm_block_free(&seg, got[1]);
    uint64_t used = seg.hdr->arena_used;

    cr_assert_eq(shm_publish_views(&seg), -1);
    cr_assert_eq(memcmp(offs, seg.hdr->view_off, sizeof offs), 0);
    cr_assert_eq(seg.hdr->view_version, version);
    cr_assert_eq(seg.hdr->gp_epoch, epoch);
    cr_assert_eq(seg.hdr->arena_used, used, "the partial allocation was given back");
    cr_assert_eq(free_list_len(&seg), 2);
}

TestSuite(slots, .init = seg_setup, .fini = seg_teardown, .timeout = 10.0);

Test(slots, retired_slot_is_collected_after_publication_grace_and_zero_counts)
{
    int slot = add_instance(&seg, "http://10.0.0.1:1", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    shm_instance_t *in = shm_instance(&seg, (unsigned)slot);
    cr_assert_eq(shm_publish_views(&seg), 0);
    uint32_t gen = in->generation;
    int row = shm_dp_claim(&seg, getpid(), 1);
    shm_dp_inc(&seg, row, (unsigned)slot, 0);
    int me = shm_reader_register(&seg);
    shm_read_enter(&seg, me); /* holds the view that still lists the slot */

    shm_slot_retire(&seg, (unsigned)slot, 1234);
    cr_assert_eq(in->state, SHM_SLOT_RETIRED);
    cr_assert_eq(in->retired_at_ms, 1234);
    cr_assert_eq(shm_slot_find(&seg, "http://10.0.0.1:1"), -1);
    cr_assert_eq(shm_slot_collect(&seg), 0, "still in the published view");
    cr_assert_eq(shm_publish_views(&seg), 0);
    cr_assert_eq(shm_view(&seg, SHM_ROLE_MIXED)->count, 0);
    cr_assert_eq(shm_slot_collect(&seg), 0, "a reader may still pick it from the old view");
    shm_read_exit(&seg, me);
    cr_assert_eq(shm_slot_collect(&seg), 0, "a request is still in flight");
    shm_dp_dec(&seg, row, (unsigned)slot, gen, true, 0);
    cr_assert_eq(shm_slot_collect(&seg), 1);
    cr_assert_eq(in->state, SHM_SLOT_FREE);
    cr_assert_eq(in->generation, gen + 1);
    cr_assert_eq(in->url[0], '\0');
    cr_assert_eq(in->gone_epoch, 0);
    cr_assert_eq(shm_slot_alloc(&seg), slot);
    cr_assert_eq(in->generation, gen + 1, "alloc keeps the generation");
    shm_reader_unregister(&seg, me);
}

Test(slots, collect_needs_a_publication_even_without_readers)
{
    int slot = add_instance(&seg, "http://10.0.0.1:1", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    cr_assert_eq(shm_publish_views(&seg), 0);
    shm_slot_retire(&seg, (unsigned)slot, 1);
    shm_epoch_advance(&seg); /* e.g. writer-lock recovery: not a publication */
    cr_assert_eq(shm_slot_collect(&seg), 0);
    cr_assert_eq(shm_publish_views(&seg), 0);
    cr_assert_eq(shm_slot_collect(&seg), 1);
}

Test(slots, find_and_alloc)
{
    cr_assert_eq(shm_slot_find(&seg, "http://10.0.0.1:1"), -1);
    int a = add_instance(&seg, "http://10.0.0.1:1", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    int b = add_instance(&seg, "http://10.0.0.1:2", SHM_ROLE_DECODE, SHM_HEALTH_UNKNOWN);
    cr_assert_neq(a, b);
    cr_assert_eq(shm_slot_find(&seg, "http://10.0.0.1:2"), b);
    cr_assert_eq(shm_slot_find(&seg, "http://10.0.0.1:1"), a);
    for (int i = 2; i < SHM_MAX_INSTANCES; i++) {
        int s = shm_slot_alloc(&seg);
        cr_assert_geq(s, 0);
        __atomic_store_n(&shm_instance(&seg, (unsigned)s)->state, SHM_SLOT_LIVE, __ATOMIC_RELEASE);
    }
    cr_assert_eq(shm_slot_alloc(&seg), -1);
}

/* A reader never takes more entries than a view block holds, whatever count a corrupt segment
 * shows (shm_view_len, what dp_select, /v1/models, /health and fdctl explain iterate by). */
Test(views, a_corrupt_count_is_read_only_up_to_a_block)
{
    add_instance(&seg, "http://10.0.0.1:9", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    cr_assert_eq(shm_publish_views(&seg), 0);
    shm_view_t *v = (shm_view_t *)shm_view(&seg, SHM_ROLE_MIXED);
    cr_assert_eq(shm_view_len(v), 1);
    v->count = UINT32_MAX;
    cr_assert_eq(shm_view_len(v), SHM_VIEW_MAX_SLOTS);
    v->count = (uint32_t)SHM_VIEW_MAX_SLOTS;
    cr_assert_eq(shm_view_len(v), SHM_VIEW_MAX_SLOTS);
}
