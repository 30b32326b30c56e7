/*
 * tests/unit/test_shm_arena.c - blocks, free list, limbo, reclamation after grace periods, and
 * the reader registry the grace periods are computed from.
 */
#include "test_shm_util.h"

TestSuite(arena, .init = seg_setup, .fini = seg_teardown, .timeout = 10.0);

static unsigned alloc_all(uint64_t *out, unsigned max)
{
    unsigned n = 0;
    while (n < max && (out[n] = shm_block_alloc(&seg)) != 0)
        n++;
    return n;
}

Test(arena, alloc_until_exhausted_then_free)
{
    static uint64_t got[SHM_ARENA_BLOCKS + 1];
    unsigned n = alloc_all(got, SHM_ARENA_BLOCKS + 1);
    cr_assert_eq(n, SHM_ARENA_BLOCKS - SHM_ROLE_COUNT, "the views hold 3 blocks");
    cr_assert_eq(seg.hdr->arena_used, SHM_ARENA_BLOCKS);
    cr_assert_eq(shm_block_alloc(&seg), 0);
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq((got[i] - seg.hdr->arena_off) % SHM_ARENA_BLOCK_SIZE, sizeof(shm_block_hdr_t));
        cr_assert_lt(got[i] + SHM_BLOCK_PAYLOAD, seg.size + 1);
        cr_assert(i == 0 || got[i] != got[i - 1]);
        const unsigned char *p = shm_ptr(&seg, got[i]);
        cr_assert(p[0] == 0 && p[SHM_BLOCK_PAYLOAD - 1] == 0);
        memset(shm_ptr(&seg, got[i]), 0x5A, SHM_BLOCK_PAYLOAD);
    }
    shm_block_free(&seg, got[7]);
    cr_assert_eq(seg.hdr->arena_used, SHM_ARENA_BLOCKS - 1);
    uint64_t again = shm_block_alloc(&seg);
    cr_assert_eq(again, got[7]);
    cr_assert_eq(((unsigned char *)shm_ptr(&seg, again))[100], 0, "a fresh block is zeroed");
    for (unsigned i = 0; i < n; i++)
        shm_block_free(&seg, got[i]);
    cr_assert_eq(seg.hdr->arena_used, SHM_ROLE_COUNT);
    cr_assert_eq(free_list_len(&seg), SHM_ARENA_BLOCKS - SHM_ROLE_COUNT);
}

Test(arena, bad_and_double_frees_are_ignored)
{
    uint64_t b = shm_block_alloc(&seg);
    shm_block_free(&seg, b);
    unsigned len = free_list_len(&seg);
    shm_block_free(&seg, b);
    shm_block_free(&seg, b + 8);
    shm_block_free(&seg, seg.hdr->arena_off - 64);
    shm_block_free(&seg, seg.size + sizeof(shm_block_hdr_t));
    shm_block_retire(&seg, b);
    cr_assert_eq(free_list_len(&seg), len);
    cr_assert_eq(seg.hdr->limbo_head, 0);
}

Test(arena, retired_block_waits_for_readers_that_entered_before)
{
    int me = shm_reader_register(&seg);
    cr_assert_geq(me, 0);
    uint64_t b = shm_block_alloc(&seg);
    shm_read_enter(&seg, me);
    uint64_t e = shm_epoch_advance(&seg);
    shm_block_retire(&seg, b);
    cr_assert_not(shm_grace_passed(&seg, e));
    cr_assert_eq(shm_reclaim(&seg), 0, "the reader may still hold the block");
    cr_assert_not(free_list_has(&seg, b));
    cr_assert_not(shm_grace_wait(&seg, e, 20), "a live reader is never reaped");

    shm_read_exit(&seg, me);
    cr_assert(shm_grace_passed(&seg, e));
    cr_assert_eq(shm_reclaim(&seg), 1);
    cr_assert(free_list_has(&seg, b));
    cr_assert_eq(seg.hdr->limbo_head, 0);
    shm_reader_unregister(&seg, me);
}

Test(arena, readers_that_entered_after_the_publication_do_not_block)
{
    int me = shm_reader_register(&seg);
    uint64_t b = shm_block_alloc(&seg);
    shm_epoch_advance(&seg);
    shm_block_retire(&seg, b);
    shm_read_enter(&seg, me);
    cr_assert_eq(shm_reclaim(&seg), 1);
    shm_read_exit(&seg, me);
    shm_reader_unregister(&seg, me);
}

Test(arena, reclaim_frees_older_tags_and_keeps_newer)
{
    int me = shm_reader_register(&seg);
    uint64_t old_blk = shm_block_alloc(&seg), new_blk = shm_block_alloc(&seg);
    shm_epoch_advance(&seg);
    shm_block_retire(&seg, old_blk);
    shm_read_enter(&seg, me); /* entered at the epoch old_blk was retired in */
    shm_epoch_advance(&seg);
    shm_block_retire(&seg, new_blk);
    cr_assert_eq(shm_reclaim(&seg), 1);
    cr_assert(free_list_has(&seg, old_blk));
    cr_assert_not(free_list_has(&seg, new_blk));
    shm_read_exit(&seg, me);
    cr_assert_eq(shm_reclaim(&seg), 1);
    shm_reader_unregister(&seg, me);
}

Test(arena, alloc_reclaims_limbo_when_the_free_list_is_empty)
{
    static uint64_t got[SHM_ARENA_BLOCKS];
    unsigned n = alloc_all(got, SHM_ARENA_BLOCKS);
    cr_assert_eq(shm_block_alloc(&seg), 0);
    shm_epoch_advance(&seg);
    shm_block_retire(&seg, got[3]);
    shm_block_retire(&seg, got[4]);
    uint64_t a = shm_block_alloc(&seg), b = shm_block_alloc(&seg);
    cr_assert((a == got[3] && b == got[4]) || (a == got[4] && b == got[3]));
    cr_assert_eq(seg.hdr->arena_used, SHM_ARENA_BLOCKS);
    cr_assert_geq(n, 5);
}

TestSuite(readers, .init = seg_setup, .fini = seg_teardown, .timeout = 10.0);

Test(readers, register_until_full_then_unregister)
{
    static int idx[SHM_MAX_READERS];
    for (int i = 0; i < SHM_MAX_READERS; i++) {
        idx[i] = shm_reader_register(&seg);
        cr_assert_eq(idx[i], i);
        cr_assert_eq(shm_reader(&seg, (unsigned)i)->pid, getpid());
        cr_assert_eq(shm_reader(&seg, (unsigned)i)->start_time, shm_proc_start_time(getpid()));
    }
    cr_assert_eq(shm_reader_register(&seg), -1, "full, and nobody is dead");
    shm_reader_unregister(&seg, 17);
    cr_assert_eq(shm_reader(&seg, 17)->pid, 0);
    cr_assert_eq(shm_reader_register(&seg), 17);
}

/* A pid that certainly belongs to no live process: a child we started and reaped. */
static int dead_pid(void)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

Test(readers, dead_reader_blocking_a_grace_period_is_reaped)
{
    shm_reader_t *r = shm_reader(&seg, 5);
    r->pid = dead_pid();
    r->start_time = 12345;
    r->active_epoch = 1;
    uint64_t e = shm_epoch_advance(&seg);
    cr_assert(shm_grace_passed(&seg, e));
    cr_assert_eq(r->pid, 0);
    cr_assert_eq(r->active_epoch, 0);
    cr_assert_eq(r->start_time, 0);
}

Test(readers, reused_pid_is_detected_by_start_time)
{
    shm_reader_t *r = shm_reader(&seg, 9);
    r->pid = getpid(); /* "our" pid, but a different process started it */
    r->start_time = shm_proc_start_time(getpid()) + 1;
    r->active_epoch = 1;
    cr_assert(shm_grace_wait(&seg, shm_epoch_advance(&seg), 1000));
    cr_assert_eq(r->pid, 0);
}

Test(readers, full_registry_reaps_dead_slots_to_make_room)
{
    for (int i = 0; i < SHM_MAX_READERS; i++)
        cr_assert_eq(shm_reader_register(&seg), i);
    shm_reader(&seg, 42)->pid = dead_pid();
    shm_reader(&seg, 42)->start_time = 1; /* even if the pid were reused meanwhile */
    cr_assert_eq(shm_reader_register(&seg), 42);
}

Test(readers, reap_dead_clears_quiescent_dead_slots_too)
{
    int live = shm_reader_register(&seg);
    shm_reader(&seg, 3)->pid = dead_pid();
    shm_reader(&seg, 3)->start_time = 1;
    cr_assert_eq(shm_reader_reap_dead(&seg), 1);
    cr_assert_eq(shm_reader(&seg, 3)->pid, 0);
    cr_assert_eq(shm_reader(&seg, (unsigned)live)->pid, getpid());
}

TestSuite(proc, .timeout = 10.0);

Test(proc, start_time_and_liveness)
{
    uint64_t st = shm_proc_start_time(getpid());
    cr_assert_gt(st, 0);
    cr_assert(shm_proc_alive(getpid(), st));
    cr_assert(shm_proc_alive(getpid(), 0));
    cr_assert_not(shm_proc_alive(getpid(), st + 1));
    cr_assert_not(shm_proc_alive(0, 0));
    int gone = dead_pid();
    cr_assert_eq(shm_proc_start_time(gone), 0);
    cr_assert_not(shm_proc_alive(gone, 0));
    cr_assert_gt(shm_now_ms(), 1600000000000ull);
}

Test(proc, zombie_counts_as_dead)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(0);
    uint64_t deadline = fd_mono_ms() + 5000;
    while (shm_proc_alive(pid, 0) && fd_mono_ms() < deadline)
        sched_yield();
    cr_assert_not(shm_proc_alive(pid, 0), "an exited, unwaited child should be seen as dead");
    cr_assert_eq(kill(pid, 0), 0, "it is still a zombie");
    waitpid(pid, NULL, 0);
}
