/*
 * tests/unit/test_shm_kill.c - processes SIGKILLed at the worst moment: a reader inside its
 * critical section, a writer holding the writer lock with a block allocated but unpublished,
 * a DP with requests in flight. Children say "I am there" over a pipe and then block on
 * another pipe until killed; nothing here waits on a timer for synchronisation.
 */
#include <errno.h>

#include "test_shm_util.h"

TestSuite(kill, .init = seg_setup, .fini = seg_teardown, .timeout = 30.0);

typedef struct {
    pid_t pid;
    int ready;   /* parent reads "I am there" (and any payload) here */
    int hold[2]; /* the child blocks reading hold[0]; the parent keeps hold[1] open */
} child_t;

/* Fork a child that attaches the segment and runs `body`, which must end in block_forever. */
static child_t spawn(void (*body)(shm_seg_t *s, int ready_fd, int hold_fd))
{
    child_t c;
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(c.hold), 0);
    c.pid = fork();
    cr_assert_geq(c.pid, 0);
    if (c.pid == 0) {
        close(ready[0]);
        close(c.hold[1]);
        shm_seg_t s;
        if (shm_attach(&s, seg_name, NULL, 0) < 0)
            _exit(2);
        body(&s, ready[1], c.hold[0]);
        _exit(3);
    }
    close(ready[1]);
    close(c.hold[0]);
    c.ready = ready[0];
    return c;
}

static void reader_body(shm_seg_t *s, int ready_fd, int hold_fd)
{
    int me = shm_reader_register(s);
    if (me < 0)
        _exit(4);
    shm_read_enter(s, me);
    if (shm_view(s, SHM_ROLE_MIXED) == NULL)
        _exit(5);
    send_byte(ready_fd);
    block_forever(hold_fd);
}

Test(kill, reader_killed_inside_its_critical_section_does_not_block_grace_periods)
{
    child_t c = spawn(reader_body);
    cr_assert(wait_byte(c.ready, 5000), "reader did not get in");
    int slot = -1;
    for (int i = 0; i < SHM_MAX_READERS; i++)
        if (shm_reader(&seg, (unsigned)i)->pid == c.pid)
            slot = i;
    cr_assert_geq(slot, 0);

    cr_assert_eq(shm_publish_views(&seg), 0);
    uint64_t e = seg.hdr->gp_epoch;
    cr_assert_not(shm_grace_passed(&seg, e), "a live reader in an older epoch must block");
    cr_assert_eq(shm_reclaim(&seg), 0);

    kill(c.pid, SIGKILL); /* not waited for yet: a zombie must count as dead too */
    cr_assert(shm_grace_wait(&seg, e, 5000), "grace period never completed after the reader died");
    cr_assert_eq(shm_reader(&seg, (unsigned)slot)->pid, 0, "the dead reader's slot is reaped");
    cr_assert_eq(shm_reclaim(&seg), SHM_ROLE_COUNT);
    waitpid(c.pid, NULL, 0);
}

static void writer_body(shm_seg_t *s, int ready_fd, int hold_fd)
{
    if (shm_wlock(s) < 0)
        _exit(4);
    uint64_t leaked = shm_block_alloc(s);
    if (!leaked || write(ready_fd, &leaked, sizeof leaked) != sizeof leaked)
        _exit(5);
    block_forever(hold_fd);
}

static uint64_t read_u64(int fd)
{
    uint64_t v = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1, "child did not report");
    cr_assert_eq(read(fd, &v, sizeof v), (ssize_t)sizeof v);
    return v;
}

Test(kill, writer_killed_holding_the_lock_is_recovered)
{
    int slot = add_instance(&seg, "http://10.0.0.1:8000", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    cr_assert_eq(shm_publish_views(&seg), 0);
    shm_reclaim(&seg);
    uint64_t views[SHM_ROLE_COUNT];
    memcpy(views, seg.hdr->view_off, sizeof views);
    cr_assert_eq(seg.hdr->arena_used, SHM_ROLE_COUNT);

    child_t c = spawn(writer_body);
    uint64_t leaked = read_u64(c.ready);
    cr_assert_not(free_list_has(&seg, leaked));
    kill_and_reap(c.pid);

    cr_assert_eq(shm_wlock(&seg), 0);
    cr_assert_eq(seg.hdr->wlock_recovered, 1);
    cr_assert(free_list_has(&seg, leaked), "the dead writer's block is free again");
    cr_assert_eq(seg.hdr->arena_used, SHM_ROLE_COUNT);
    cr_assert_eq(free_list_len(&seg), SHM_ARENA_BLOCKS - SHM_ROLE_COUNT);
    cr_assert_eq(memcmp(views, seg.hdr->view_off, sizeof views), 0, "views untouched");
    const shm_view_t *v = shm_view(&seg, SHM_ROLE_MIXED);
    cr_assert(v->count == 1 && v->slot[0] == slot);
    cr_assert_eq(shm_publish_views(&seg), 0);
    shm_wunlock(&seg);

    cr_assert_eq(shm_wlock(&seg), 0, "the lock is consistent again");
    cr_assert_eq(seg.hdr->wlock_recovered, 1);
    shm_wunlock(&seg);
}

static void publishing_writer_body(shm_seg_t *s, int ready_fd, int hold_fd)
{
    if (shm_wlock(s) < 0 || shm_publish_views(s) < 0)
        _exit(4);
    uint64_t leaked = shm_block_alloc(s);
    if (!leaked || write(ready_fd, &leaked, sizeof leaked) != sizeof leaked)
        _exit(5);
    block_forever(hold_fd);
}

/* The writer published (old views to limbo) and leaked a block while a reader here still
 * holds the old view: recovery must neither free the limbo nor the leaked block yet. */
Test(kill, recovery_respects_readers_that_hold_old_blocks)
{
    shm_reclaim(&seg);
    int me = shm_reader_register(&seg);
    shm_read_enter(&seg, me);
    const shm_view_t *held = shm_view(&seg, SHM_ROLE_MIXED);
    uint64_t held_off = shm_off(&seg, held);

    child_t c = spawn(publishing_writer_body);
    uint64_t leaked = read_u64(c.ready);
    kill_and_reap(c.pid);
    cr_assert_neq(seg.hdr->view_off[SHM_ROLE_MIXED], held_off);

    cr_assert_eq(shm_wlock(&seg), 0); /* waits its bounded grace period for us, then gives up */
    cr_assert_eq(seg.hdr->wlock_recovered, 1);
    cr_assert_not(free_list_has(&seg, held_off), "a block a reader holds was freed");
    cr_assert_not(free_list_has(&seg, leaked), "possibly-held block freed without a grace period");
    cr_assert_eq(shm_reclaim(&seg), 0);
    shm_read_exit(&seg, me);
    cr_assert_eq(shm_reclaim(&seg), 1 + SHM_ROLE_COUNT);
    cr_assert(free_list_has(&seg, held_off) && free_list_has(&seg, leaked));
    cr_assert_eq(free_list_len(&seg), SHM_ARENA_BLOCKS - SHM_ROLE_COUNT);
    cr_assert_eq(seg.hdr->arena_used, SHM_ROLE_COUNT);
    shm_wunlock(&seg);
    shm_reader_unregister(&seg, me);
}

static void dp_body(shm_seg_t *s, int ready_fd, int hold_fd)
{
    int row = shm_dp_claim(s, getpid(), 42);
    if (row < 0 || shm_reader_register(s) < 0)
        _exit(4);
    for (int i = 0; i < 5; i++)
        shm_dp_inc(s, row, 7, 100);
    send_byte(ready_fd);
    block_forever(hold_fd);
}

Test(kill, dp_killed_with_requests_in_flight_leaks_no_load)
{
    child_t c = spawn(dp_body);
    cr_assert(wait_byte(c.ready, 5000), "DP did not start");
    cr_assert_eq(shm_inflight(&seg, 7), 5);
    cr_assert_eq(shm_tokens(&seg, 7), 500);
    cr_assert_eq(shm_reap_dead(&seg), 0, "a live DP is not reaped");

    kill(c.pid, SIGKILL);
    uint64_t deadline = fd_mono_ms() + 5000;
    int reaped = 0;
    while (!reaped && fd_mono_ms() < deadline)
        reaped = shm_reap_dead(&seg);
    cr_assert_eq(reaped, 1);
    cr_assert_eq(shm_inflight(&seg, 7), 0);
    cr_assert_eq(shm_tokens(&seg, 7), 0);
    for (int i = 0; i < SHM_MAX_DPS; i++)
        cr_assert_eq(shm_dp_row(&seg, (unsigned)i)->pid, 0);
    for (int i = 0; i < SHM_MAX_READERS; i++)
        cr_assert_neq(shm_reader(&seg, (unsigned)i)->pid, c.pid, "its reader slot is reaped too");
    waitpid(c.pid, NULL, 0);
}

static void raw_locker_body(shm_seg_t *s, int ready_fd, int hold_fd)
{
    if (pthread_mutex_lock(&s->hdr->wlock) != 0)
        _exit(4);
    send_byte(ready_fd);
    block_forever(hold_fd);
}

Test(kill, unrecoverable_lock_is_reported)
{
    child_t c = spawn(raw_locker_body);
    cr_assert(wait_byte(c.ready, 5000));
    kill_and_reap(c.pid);
    /* someone saw EOWNERDEAD and released the lock without making it consistent */
    cr_assert_eq(pthread_mutex_lock(&seg.hdr->wlock), EOWNERDEAD);
    pthread_mutex_unlock(&seg.hdr->wlock);
    cr_assert_eq(shm_wlock(&seg), -1);
}
