/*
 * tests/unit/test_shm_util.h - fixtures shared by the test_shm_*.c unit tests.
 *
 * Every test runs in its own criterion worker process and gets its own segment, named after
 * that process and a counter, created fresh in the fixture and unlinked at the end. Helpers for
 * tests that fork: pipes to say "I reached the point" without any sleep, a bounded wait for
 * that byte, and a child that blocks (killable) until it is killed.
 */
#ifndef FD_TEST_SHM_UTIL_H
#define FD_TEST_SHM_UTIL_H

#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "shm/shm.h"

static shm_seg_t seg;
static char seg_name[64];

static inline void make_seg_name(char *out, size_t len)
{
    static unsigned counter;
    snprintf(out, len, "/fdr-test-%d-%u", (int)getpid(), counter++);
}

static inline void seg_setup(void)
{
    char err[256] = "";
    shm_open_result_t how;
    make_seg_name(seg_name, sizeof seg_name);
    shm_destroy(seg_name);
    cr_assert_eq(shm_open_cp(&seg, seg_name, false, &how, err, sizeof err), 0, "open: %s", err);
    cr_assert_eq(how, SHM_OPEN_CREATED);
}

static inline void seg_teardown(void)
{
    shm_detach(&seg);
    shm_destroy(seg_name);
}

/* A LIVE slot with the given identity, not yet published. */
static inline int add_instance(shm_seg_t *s, const char *url, shm_role_t role, shm_health_t health)
{
    int slot = shm_slot_alloc(s);
    cr_assert_geq(slot, 0, "slot table full");
    shm_instance_t *in = shm_instance(s, (unsigned)slot);
    snprintf(in->url, sizeof in->url, "%s", url);
    in->role = role;
    in->health = health;
    __atomic_store_n(&in->state, SHM_SLOT_LIVE, __ATOMIC_RELEASE);
    return slot;
}

static inline unsigned free_list_len(const shm_seg_t *s)
{
    unsigned n = 0;
    for (uint64_t off = s->hdr->free_head; off && n <= SHM_ARENA_BLOCKS; n++)
        off = ((const shm_block_hdr_t *)shm_ptr(s, off))->next_off;
    return n;
}

static inline bool free_list_has(const shm_seg_t *s, uint64_t payload_off)
{
    unsigned n = 0;
    for (uint64_t off = s->hdr->free_head; off && n++ <= SHM_ARENA_BLOCKS;
         off = ((const shm_block_hdr_t *)shm_ptr(s, off))->next_off)
        if (off + sizeof(shm_block_hdr_t) == payload_off)
            return true;
    return false;
}

/* Wait up to `ms` for one byte on `fd`; true if it came. */
static inline bool wait_byte(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;
    return poll(&p, 1, ms) == 1 && read(fd, &c, 1) == 1;
}

static inline void send_byte(int fd)
{
    char c = 1;
    if (write(fd, &c, 1) != 1)
        _exit(90);
}

/* In a child: block until killed (the read end's writer stays open in the parent). */
_Noreturn static inline void block_forever(int fd)
{
    char c;
    for (;;)
        if (read(fd, &c, 1) <= 0)
            _exit(91);
}

/* Kill a child we forked and reap it; returns its wait status. */
static inline int kill_and_reap(pid_t pid)
{
    int st = 0;
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return st;
}

#endif
