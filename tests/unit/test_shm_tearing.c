/*
 * tests/unit/test_shm_tearing.c - readers in another process never see a torn view.
 *
 * The parent publishes thousands of versions; which slots are selectable in version v is a
 * pure function of v (bits of a hash of v choose healthy, unhealthy or drained per slot), so
 * the reader process can check every view it reads against its own version number: exactly
 * the expected slots, in URL order, and the version unchanged at the end of the read. The
 * control run leaves the reader unannounced (no shm_read_enter), so the writer recycles blocks
 * under it; the checker must then catch torn reads, which shows it can.
 */
#include <sys/mman.h>

#include "test_shm_util.h"

#define NSLOTS          48
#define MIN_PUBLISHED   50000
#define MIN_DISTINCT    2000
#define RUN_DEADLINE_MS 30000

typedef struct {
    int ready, done;
    uint64_t reads, torn, distinct;
} ctl_t;

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* 0 or 3: healthy, 1: unhealthy, 2: healthy but drained */
static unsigned slot_mode(uint64_t version, unsigned i)
{
    return (unsigned)(mix(version + (i >= 32 ? 0x1234567ull : 0)) >> (2 * (i % 32))) & 3u;
}

static bool selectable_in(uint64_t version, unsigned i)
{
    unsigned m = slot_mode(version, i);
    return m == 0 || m == 3;
}

static bool view_is_consistent(const shm_seg_t *s, const shm_view_t *v)
{
    uint64_t version = __atomic_load_n(&v->version, __ATOMIC_RELAXED);
    uint32_t count = __atomic_load_n(&v->count, __ATOMIC_RELAXED);
    unsigned k = 0;
    const char *prev = "";
    for (unsigned i = 0; i < NSLOTS; i++) {
        if (!selectable_in(version, i))
            continue;
        if (k >= count || __atomic_load_n(&v->slot[k], __ATOMIC_RELAXED) != i)
            return false;
        const char *url = shm_instance(s, i)->url;
        if (strcmp(prev, url) >= 0)
            return false;
        prev = url;
        k++;
    }
    return k == count && __atomic_load_n(&v->version, __ATOMIC_RELAXED) == version;
}

_Noreturn static void reader_main(ctl_t *ctl, bool announce)
{
    shm_seg_t s;
    if (shm_attach(&s, seg_name, NULL, 0) < 0)
        _exit(2);
    int me = shm_reader_register(&s);
    if (me < 0)
        _exit(3);
    __atomic_store_n(&ctl->ready, 1, __ATOMIC_RELEASE);
    uint64_t last = 0;
    while (!__atomic_load_n(&ctl->done, __ATOMIC_ACQUIRE)) {
        if (announce)
            shm_read_enter(&s, me);
        const shm_view_t *v = shm_view(&s, SHM_ROLE_MIXED);
        bool ok = view_is_consistent(&s, v);
        uint64_t version = v->version;
        if (announce)
            shm_read_exit(&s, me);
        __atomic_add_fetch(&ctl->reads, 1, __ATOMIC_RELAXED);
        if (!ok)
            __atomic_add_fetch(&ctl->torn, 1, __ATOMIC_RELAXED);
        else if (version != last)
            __atomic_add_fetch(&ctl->distinct, 1, __ATOMIC_RELAXED);
        last = ok ? version : last;
    }
    shm_reader_unregister(&s, me);
    _exit(0);
}

static void set_slots_for(uint64_t version)
{
    for (unsigned i = 0; i < NSLOTS; i++) {
        shm_instance_t *in = shm_instance(&seg, i);
        unsigned m = slot_mode(version, i);
        __atomic_store_n(&in->health, m == 1 ? SHM_HEALTH_UNHEALTHY : SHM_HEALTH_HEALTHY, __ATOMIC_RELAXED);
        __atomic_store_n(&in->drained, m == 2, __ATOMIC_RELAXED);
    }
}

/* Publish the next version; when the arena is full of blocks a reader may hold, wait. */
static void publish_next(void)
{
    set_slots_for(seg.hdr->view_version + 1);
    for (int tries = 0; shm_publish_views(&seg) < 0; tries++) {
        cr_assert_lt(tries, 100, "arena stays exhausted");
        shm_grace_wait(&seg, seg.hdr->gp_epoch, 100);
    }
}

/* Runs a reader process against a stream of publications; returns what it counted. */
static ctl_t run(bool announce, bool stop_at_first_tear)
{
    for (unsigned i = 0; i < NSLOTS; i++) {
        char url[SHM_URL_LEN];
        snprintf(url, sizeof url, "http://10.0.0.1:%05u", 10000 + i); /* URL order = slot order */
        cr_assert_eq(add_instance(&seg, url, SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY), (int)i);
    }
    publish_next();
    ctl_t *ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(ctl, MAP_FAILED);
    memset(ctl, 0, sizeof *ctl);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        reader_main(ctl, announce);

    uint64_t deadline = fd_mono_ms() + RUN_DEADLINE_MS;
    while (!__atomic_load_n(&ctl->ready, __ATOMIC_ACQUIRE) && fd_mono_ms() < deadline)
        sched_yield();
    uint64_t published = 0;
    while (fd_mono_ms() < deadline) {
        bool enough = stop_at_first_tear ? __atomic_load_n(&ctl->torn, __ATOMIC_RELAXED) > 0
                                         : __atomic_load_n(&ctl->distinct, __ATOMIC_RELAXED) >= MIN_DISTINCT;
        if (published >= MIN_PUBLISHED && enough)
            break;
        publish_next();
        published++;
    }
    __atomic_store_n(&ctl->done, 1, __ATOMIC_RELEASE);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader exited with status %d", st);
    cr_assert_gt(published, 10 * SHM_ARENA_BLOCKS / SHM_ROLE_COUNT, "blocks must have been recycled");
    ctl_t out = *ctl;
    munmap(ctl, sizeof *ctl);
    return out;
}

TestSuite(tearing, .init = seg_setup, .fini = seg_teardown, .timeout = 60.0);

Test(tearing, reader_in_another_process_never_sees_a_torn_view)
{
    ctl_t c = run(true, false);
    cr_log_info("reads %llu, distinct versions %llu, torn %llu", (unsigned long long)c.reads,
                (unsigned long long)c.distinct, (unsigned long long)c.torn);
    cr_assert_eq(c.torn, 0);
    cr_assert_geq(c.distinct, MIN_DISTINCT, "the reader saw only %llu versions",
                  (unsigned long long)c.distinct);
}

Test(tearing, control_unannounced_reader_does_see_torn_views)
{
    ctl_t c = run(false, true);
    cr_assert_gt(c.torn, 0, "without grace periods the checker should catch tearing (%llu reads)",
                 (unsigned long long)c.reads);
}
