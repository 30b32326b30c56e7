/*
 * tests/unit/test_radix_stress.c - the shared prefix tree under concurrent use, as in
 * production: two processes (standing for two DPs) match and insert prompts from a bounded set
 * with many shared prefixes, lock-free lookups inside read-side critical sections and inserts
 * under the writer lock, while a third (standing for the CP) evicts by TTL, keeps headroom by
 * evicting the least recently used and purges instances' tags. The capacity is far below what
 * the prompts need, so capacity eviction runs all the time. Each process checks occupancy
 * under the lock as it goes; afterwards the invariant checker (test_radix_check.h) walks the
 * whole tree, and emptying the tree must give every node back.
 */
#include <sched.h>

#include "test_radix_check.h"
#include "test_shm_util.h"

#define RUN_MS     2500
#define CAPACITY   400
#define PROMPTS    256
#define GROUPS     16
#define MAX_LEN    60
#define CANDIDATES 4

typedef struct {
    size_t n;
    uint64_t h[MAX_LEN];
} prompt_t;

static prompt_t prompts[PROMPTS];
static int inst_slots[CANDIDATES];

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Prompt k shares a random-length prefix of its group's sequence, then has its own tail: the
 * tree gets splits at every depth and edges longer than a node. */
static void make_prompts(void)
{
    uint64_t rng = 12345;
    for (int k = 0; k < PROMPTS; k++) {
        uint64_t g = (uint64_t)(k % GROUPS), gs = 1000 + g, ts = 5000 + (uint64_t)k;
        prompt_t *p = &prompts[k];
        p->n = 1 + splitmix(&rng) % MAX_LEN;
        size_t shared = splitmix(&rng) % (p->n + 1);
        for (size_t i = 0; i < p->n; i++)
            p->h[i] = i < shared ? splitmix(&gs) : splitmix(&ts);
    }
}

static void setup(void)
{
    seg_setup();
    make_prompts();
    char url[64];
    cr_assert_eq(shm_wlock(&seg), 0);
    for (int i = 0; i < CANDIDATES; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d", 9000 + i);
        inst_slots[i] = add_instance(&seg, url, SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    }
    cr_assert_eq(shm_publish_views(&seg), 0);
    shm_wunlock(&seg);
    cr_assert_eq(radix_set_capacity(&seg, CAPACITY), 0);
}

TestSuite(radix_stress, .init = setup, .fini = seg_teardown, .timeout = 60.0);

/* Under the lock: occupancy never above capacity, counts never negative (wrapped). */
static bool occupancy_ok(shm_seg_t *s)
{
    if (shm_wlock(s) < 0)
        return false;
    const shm_radix_hdr_t *t = radix_hdr(s);
    bool ok = t->nodes + t->limbo <= t->capacity && t->nodes <= t->capacity && !t->dirty;
    shm_wunlock(s);
    return ok;
}

enum {
    EXIT_ATTACH = 10,
    EXIT_READER,
    EXIT_MATCH,
    EXIT_CACHED,
    EXIT_INSERT,
    EXIT_OCCUPANCY,
    EXIT_EVICT,
    EXIT_REUSED
};

static void report(int fd, uint64_t ops)
{
    if (write(fd, &ops, sizeof ops) != (ssize_t)sizeof ops)
        _exit(90);
}

/* One DP: lock-free cached depths of a random prompt, then the record of a random choice. The node
 * where the match ended must stay as it was until the critical section ends, whoever unlinks
 * it meanwhile: a node's depth changes only when it is reused, which must wait for us. */
static int dp_body(shm_seg_t *s, uint64_t seed, uint64_t deadline, int out)
{
    int me = shm_reader_register(s);
    if (me < 0)
        return EXIT_READER;
    radix_cand_t cand[CANDIDATES];
    for (int i = 0; i < CANDIDATES; i++)
        cand[i] = (radix_cand_t){.slot = (uint16_t)inst_slots[i],
                                 .gen = shm_instance(s, (unsigned)inst_slots[i])->generation,
                                 .within = UINT32_MAX};
    uint64_t ops = 0;
    while (fd_mono_ms() < deadline) {
        const prompt_t *p = &prompts[splitmix(&seed) % PROMPTS];
        unsigned pick = (unsigned)(splitmix(&seed) % CANDIDATES);
        uint32_t blocks[CANDIDATES];
        uint32_t at;
        shm_read_enter(s, me);
        size_t matched = radix_cached_blocks(s, p->h, p->n, cand, CANDIDATES, blocks);
        radix_match(s, p->h, p->n, &at);
        uint32_t depth = __atomic_load_n(&radix_node(s, at)->depth, __ATOMIC_RELAXED);
        long recorded = radix_insert(s, p->h, p->n, cand[pick].slot, cand[pick].gen, 0, shm_now_ms());
        bool reused = __atomic_load_n(&radix_node(s, at)->depth, __ATOMIC_RELAXED) != depth;
        shm_read_exit(s, me);
        if (reused)
            return EXIT_REUSED;
        if (matched > p->n)
            return EXIT_MATCH;
        for (int i = 0; i < CANDIDATES; i++)
            if (blocks[i] > matched)
                return EXIT_CACHED;
        if (recorded < 0 || (size_t)recorded > p->n)
            return EXIT_INSERT;
        if (++ops % 64 == 0 && !occupancy_ok(s))
            return EXIT_OCCUPANCY;
    }
    shm_reader_unregister(s, me);
    report(out, ops);
    return 0;
}

/* The CP: upkeep steps (sweeps interleaved with the DPs' inserts, TTL passes with short random
 * TTLs asked for now and then), a whole TTL pass at once now and then (it moves the sweep's
 * cursor off the tree), tag purges. */
static int cp_body(shm_seg_t *s, uint64_t seed, uint64_t deadline, int out)
{
    uint64_t ops = 0;
    radix_sweep_t w = {0};
    while (fd_mono_ms() < deadline) {
        uint64_t r = splitmix(&seed), now = shm_now_ms();
        if (radix_upkeep(s, &w, CAPACITY, r % 8 == 0 ? now - 1 - r % 40 : 0, now) < 0)
            return EXIT_EVICT;
        if (r % 4 == 1 && radix_evict_ttl(s, now, 1 + r % 40) < 0)
            return EXIT_EVICT;
        if (++ops % 16 == 0 && radix_purge_slot(s, (uint16_t)inst_slots[splitmix(&seed) % CANDIDATES]) < 0)
            return EXIT_EVICT;
        if (!occupancy_ok(s))
            return EXIT_OCCUPANCY;
        sched_yield();
    }
    report(out, ops);
    return 0;
}

typedef struct {
    pid_t pid;
    int fd;
} proc_t;

static proc_t spawn(int (*body)(shm_seg_t *, uint64_t, uint64_t, int), uint64_t seed, uint64_t deadline)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    proc_t p = {.pid = fork()};
    cr_assert_geq(p.pid, 0);
    if (p.pid == 0) {
        close(fds[0]);
        shm_seg_t s;
        if (shm_attach(&s, seg_name, NULL, 0) < 0)
            _exit(EXIT_ATTACH);
        _exit(body(&s, seed, deadline, fds[1]));
    }
    close(fds[1]);
    p.fd = fds[0];
    return p;
}

/* Reap within the deadline (polling), or kill; returns the exit code, -1 if killed. */
static int reap(pid_t pid, uint64_t deadline)
{
    const struct timespec pause = {0, 2000000};
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (fd_mono_ms() > deadline) {
            kill_and_reap(pid);
            return -1;
        }
        nanosleep(&pause, NULL);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static uint64_t ops_of(int fd)
{
    uint64_t ops = 0;
    if (read(fd, &ops, sizeof ops) != (ssize_t)sizeof ops)
        ops = 0;
    close(fd);
    return ops;
}

Test(radix_stress, two_writers_and_an_evictor_leave_a_consistent_bounded_tree)
{
    uint64_t deadline = fd_mono_ms() + RUN_MS;
    proc_t p[3] = {spawn(dp_body, 1, deadline), spawn(dp_body, 2, deadline), spawn(cp_body, 3, deadline)};
    uint64_t ops[3];
    for (int i = 0; i < 3; i++) {
        int code = reap(p[i].pid, deadline + 20000);
        ops[i] = ops_of(p[i].fd);
        cr_assert_eq(code, 0, "process %d ended with %d", i, code);
    }
    cr_assert_gt(ops[0], 1000, "first DP did %llu operations", (unsigned long long)ops[0]);
    cr_assert_gt(ops[1], 1000, "second DP did %llu operations", (unsigned long long)ops[1]);
    cr_assert_gt(ops[2], 100, "CP did %llu rounds", (unsigned long long)ops[2]);

    cr_assert_eq(shm_wlock(&seg), 0);
    radix_check_t r;
    bool ok = radix_check(&seg, &r);
    radix_stats_t st;
    radix_stats(&seg, &st);
    shm_wunlock(&seg);
    cr_assert(ok, "tree invariant after the run: %s", r.why);
    cr_assert_eq(st.inserts, ops[0] + ops[1]);
    cr_assert_gt(st.evictions_ttl, 0);
    cr_assert_gt(st.evictions_pressure, 0);
    cr_assert_eq(st.recoveries, 0);
    cr_log_info("stress: %llu + %llu inserts, %u nodes, ttl %llu, pressure %llu, truncated %llu",
                (unsigned long long)ops[0], (unsigned long long)ops[1], st.nodes,
                (unsigned long long)st.evictions_ttl, (unsigned long long)st.evictions_pressure,
                (unsigned long long)st.inserts_truncated);

    /* emptying the tree gives every node back: the readers are gone, so no grace period waits */
    radix_evict_ttl(&seg, shm_now_ms() + 1000000, 0);
    cr_assert(radix_check(&seg, &r), "after emptying: %s", r.why);
    cr_assert_eq(radix_hdr(&seg)->nodes, 0);
    cr_assert_eq(radix_hdr(&seg)->limbo, 0);
    cr_assert_eq(r.free_len, radix_hdr(&seg)->high_water - 2);
}
