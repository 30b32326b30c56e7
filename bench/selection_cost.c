/*
 * bench/selection_cost.c - what one selection costs, in ns, against prompt length and instance
 * count, for cache_aware (and request_num as the floor); and a check that selection never
 * allocates. A benchmark, not a test: it is built as bench_selection and never run by CTest
 * (bench/README.md says how to run it and read it).
 *
 * For each instance count it creates a real segment (shm_open_cp, a name unique to this
 * process, unlinked at exit even on SIGINT/SIGTERM), registers that many healthy mixed
 * instances, publishes the view, claims a DP row and a reader slot, and then selects through
 * dp_select() - the data plane's own function (dataplane/select.c): shm_read_enter, candidates
 * from the view, the configured policy, the load counter bump, shm_read_exit. Each timed
 * selection is released with dp_release() afterwards, outside the timing, as a finished
 * request would be, so the loads stay where they were set (4 or 5 per instance: balanced, so
 * cache_aware always takes its scoring branch, the expensive one).
 *
 * Prompts come from a fixed-seed generator: 8 prefix groups per prompt length, each request a
 * group's prefix (3/4 of the prompt) plus a fresh suffix, and 1 request in 8 entirely new;
 * mostly ASCII words with some 2- and 3-byte UTF-8 characters. So every selection hashes the
 * whole prompt, matches a long prefix in a populated tree and inserts a new path or a new tail.
 * The tree persists from one prompt length to the next (a fresh segment per instance count).
 *
 * Allocation check: this target is linked with -Wl,--wrap for malloc, calloc, realloc,
 * posix_memalign, aligned_alloc, strdup and strndup (CMakeLists.txt), so every such call made
 * by fd-router's own code - statically linked here, which is the whole selection path - lands
 * in the counting wrappers below. Counting is on only around each timed dp_select(); a
 * self-test first proves the wrapper sees a call (else "0 allocations" would prove nothing).
 * Calls made inside shared libraries are not seen; the selection path calls none but libc's
 * string and clock functions.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/dp.h"
#include "dataplane/select.h"
#include "shm/radix.h"

/* ---- allocation counting (-Wl,--wrap=...) ---- */

/* volatile: the compiler models malloc as touching no global, and would fold the self-test */
static volatile int counting;
static volatile unsigned long allocations;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

static void count_one(void)
{
    if (counting)
        __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
}
void *__wrap_malloc(size_t n)
{
    count_one();
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size)
{
    count_one();
    return __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n)
{
    count_one();
    return __real_realloc(p, n);
}
int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    count_one();
    return __real_posix_memalign(p, align, n);
}
void *__wrap_aligned_alloc(size_t align, size_t n)
{
    count_one();
    return __real_aligned_alloc(align, n);
}
char *__wrap_strdup(const char *s)
{
    count_one();
    return __real_strdup(s);
}
char *__wrap_strndup(const char *s, size_t n)
{
    count_one();
    return __real_strndup(s, n);
}

/* The wrapper must see a malloc from this program, or the check would be vacuous. */
static bool wrapper_works(void)
{
    unsigned long before = allocations;
    counting = 1;
    void *volatile p = malloc(16); /* volatile: the compiler may not elide the pair */
    counting = 0;
    free(p);
    return allocations == before + 1;
}

/* ---- the segment, removed however the process ends ---- */

static char seg_name[64];

static void remove_segment(void)
{
    if (seg_name[0]) {
        shm_destroy(seg_name);
        seg_name[0] = 0;
    }
}

static void on_signal(int sig)
{
    remove_segment();
    _exit(128 + sig);
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_selection: %s: %s\n", what, why);
    exit(2);
}

/* A segment with n healthy mixed instances in the view, a DP row and a reader slot. */
static void setup_segment(unsigned n, dp_thread_t *thr)
{
    static unsigned k;
    char err[256] = "";
    shm_open_result_t how;
    snprintf(seg_name, sizeof seg_name, "/fd-router-selbench-%d-%u", (int)getpid(), k++);
    if (shm_open_cp(&dp.seg, seg_name, true, &how, err, sizeof err) != 0)
        die("shm_open_cp", err);
    shm_prefault(&dp.seg); /* as the data plane does at attach */
    if (shm_wlock(&dp.seg) != 0)
        die("shm_wlock", "unrecoverable");
    for (unsigned i = 0; i < n; i++) {
        int s = shm_slot_alloc(&dp.seg);
        if (s < 0)
            die("shm_slot_alloc", "slot table full");
        shm_instance_t *in = shm_instance(&dp.seg, (unsigned)s);
        snprintf(in->host, sizeof in->host, "127.0.0.1");
        in->port = (uint16_t)(10000 + i);
        snprintf(in->url, sizeof in->url, "http://127.0.0.1:%u", 10000 + i);
        in->role = SHM_ROLE_MIXED;
        in->health = SHM_HEALTH_HEALTHY;
        __atomic_store_n(&in->state, SHM_SLOT_LIVE, __ATOMIC_RELEASE);
    }
    if (shm_publish_views(&dp.seg) != 0)
        die("shm_publish_views", "arena exhausted");
    shm_wunlock(&dp.seg);
    dp.row = shm_dp_claim(&dp.seg, getpid(), 0);
    thr->reader = shm_reader_register(&dp.seg);
    if (dp.row < 0 || thr->reader < 0)
        die("claim", "no DP row or reader slot");
    /* a balanced background load: max - min = 1 never exceeds balance-abs-threshold */
    const shm_view_t *v = shm_view(&dp.seg, SHM_ROLE_MIXED);
    if (!v || v->count != n)
        die("view", "not every instance is selectable");
    shm_dp_row_t *row = shm_dp_row(&dp.seg, (unsigned)dp.row);
    for (unsigned i = 0; i < n; i++)
        row->inflight[v->slot[i]] = 4 + (i & 1);
}

static void teardown_segment(dp_thread_t *thr)
{
    shm_reader_unregister(&dp.seg, thr->reader);
    shm_dp_release(&dp.seg, dp.row);
    shm_detach(&dp.seg);
    remove_segment();
}

/* ---- prompts ---- */

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* `chars` code points of word-like text at out (at most 3 bytes each); returns the bytes. */
static size_t gen_text(uint64_t *rng, char *out, size_t chars)
{
    size_t b = 0;
    for (size_t i = 0; i < chars; i++) {
        unsigned r = (unsigned)(xorshift(rng) % 64);
        if (r == 0) { /* U+00E9 */
            out[b++] = (char)0xc3;
            out[b++] = (char)0xa9;
        } else if (r == 1) { /* U+4E2D */
            out[b++] = (char)0xe4;
            out[b++] = (char)0xb8;
            out[b++] = (char)0xad;
        } else if (r < 10) {
            out[b++] = ' ';
        } else {
            out[b++] = (char)('a' + r % 26);
        }
    }
    return b;
}

#define GROUPS      8
#define FRESH_EVERY 8 /* one request in 8 shares nothing with the earlier ones */

typedef struct {
    size_t chars, prefix_chars;
    char *group[GROUPS]; /* prefix in place, suffix rewritten per request */
    size_t prefix_bytes[GROUPS];
    char *scratch;
    uint64_t rng;
    unsigned next;
} prompts_t;

static void prompts_init(prompts_t *p, size_t chars, uint64_t seed)
{
    *p = (prompts_t){.chars = chars, .prefix_chars = chars * 3 / 4, .rng = seed};
    for (int g = 0; g < GROUPS; g++) {
        p->group[g] = malloc(3 * chars);
        if (!p->group[g])
            die("malloc", strerror(errno));
        p->prefix_bytes[g] = gen_text(&p->rng, p->group[g], p->prefix_chars);
    }
    p->scratch = malloc(3 * chars);
    if (!p->scratch)
        die("malloc", strerror(errno));
}

static void prompts_free(prompts_t *p)
{
    for (int g = 0; g < GROUPS; g++)
        free(p->group[g]);
    free(p->scratch);
}

static pol_prompt_t prompts_next(prompts_t *p)
{
    unsigned i = p->next++;
    char *text;
    size_t len;
    if (i % FRESH_EVERY == FRESH_EVERY - 1) {
        text = p->scratch;
        len = gen_text(&p->rng, text, p->chars);
    } else {
        int g = (int)(xorshift(&p->rng) % GROUPS);
        text = p->group[g];
        len = p->prefix_bytes[g] + gen_text(&p->rng, text + p->prefix_bytes[g], p->chars - p->prefix_chars);
    }
    return (pol_prompt_t){.text = text, .len = len, .codepoints = p->chars};
}

/* ---- measuring ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

#define MIN_ITERS 200
#define MAX_ITERS 20000

typedef struct {
    unsigned instances;
    size_t chars;
    const char *policy;
    unsigned iters;
    uint64_t median, p99, max;
    unsigned long allocs;
} cell_t;

/* The control plane's part, which runs beside the data plane in a router: the prefix tree's
 * upkeep (controlplane/evict.c) on its schedule, a step every 100 ms, every 1 ms while a sweep
 * lasts. Outside the timing (it is another process's work), but its longest writer-lock hold is
 * reported: that is the longest a data plane's insert can wait behind it. */
static uint64_t upkeep_due_ns, upkeep_max_hold_ns;
static radix_sweep_t upkeep_sweep;

static void control_plane_upkeep(void)
{
    uint64_t t0 = now_ns();
    if (t0 < upkeep_due_ns)
        return;
    int more = radix_upkeep(&dp.seg, &upkeep_sweep, 0, 0, shm_now_ms());
    uint64_t t1 = now_ns();
    upkeep_max_hold_ns = t1 - t0 > upkeep_max_hold_ns ? t1 - t0 : upkeep_max_hold_ns;
    upkeep_due_ns = t1 + (more ? 1000000u : 100000000u);
}

static uint64_t select_once(dp_thread_t *thr, prompts_t *p, bool count)
{
    control_plane_upkeep();
    pol_prompt_t prompt = prompts_next(p);
    dp_choice_t choice;
    counting = count;
    uint64_t t0 = now_ns();
    int rc = dp_select(thr, SHM_ROLE_MIXED, &prompt, NULL, NULL, 0, &choice);
    uint64_t t1 = now_ns();
    counting = 0;
    if (rc != 0)
        die("dp_select", "no candidate");
    dp_release(&choice);
    return t1 - t0;
}

/* Warm up (each group's prefix gets recorded), then measure for about `budget_ms` of wall
 * time (prompt generation included), at least MIN_ITERS and at most MAX_ITERS selections. */
static cell_t measure(dp_thread_t *thr, prompts_t *p, uint64_t *samples, unsigned budget_ms)
{
    cell_t c = {0};
    for (int i = 0; i < 2 * GROUPS; i++)
        select_once(thr, p, false);
    unsigned long before = allocations;
    uint64_t end = now_ns() + (uint64_t)budget_ms * 1000000u;
    while (c.iters < MAX_ITERS && (c.iters < MIN_ITERS || now_ns() < end))
        samples[c.iters++] = select_once(thr, p, true);
    c.allocs = allocations - before;
    qsort(samples, c.iters, sizeof *samples, cmp_u64);
    c.median = samples[c.iters / 2];
    c.p99 = samples[(c.iters * 99 + 99) / 100 - 1];
    c.max = samples[c.iters - 1];
    return c;
}

static uint64_t timer_overhead_ns(void)
{
    uint64_t s[1001];
    for (int i = 0; i < 1001; i++) {
        uint64_t t0 = now_ns();
        s[i] = now_ns() - t0;
    }
    qsort(s, 1001, sizeof *s, cmp_u64);
    return s[500];
}

/* ---- the run ---- */

static const unsigned instance_counts[] = {2, 8, 64, 256, 1024};
static const size_t prompt_chars[] = {1024, 4096, 16384, 65536, 131072};
#define NI (sizeof instance_counts / sizeof instance_counts[0])
#define NL (sizeof prompt_chars / sizeof prompt_chars[0])

static const struct {
    fd_policy_t id;
    const char *name;
    unsigned budget_ms;
} policies[] = {{FD_POL_CACHE_AWARE, "cache_aware", 800}, {FD_POL_REQUEST_NUM, "request_num", 200}};
#define NP (sizeof policies / sizeof policies[0])

static void print_tables(const cell_t *cells, size_t ncells, FILE *csv)
{
    printf("\n### ns per selection: median / p99 (columns: instances)\n\n| prompt chars | policy |");
    for (size_t i = 0; i < NI; i++)
        printf(" %u |", instance_counts[i]);
    printf("\n|---:|---|");
    for (size_t i = 0; i < NI; i++)
        printf("---:|");
    printf("\n");
    for (size_t p = 0; p < NP; p++)
        for (size_t l = 0; l < NL; l++) {
            printf("| %zu | %s |", prompt_chars[l], policies[p].name);
            for (size_t i = 0; i < NI; i++) {
                const cell_t *got = NULL;
                for (size_t k = 0; k < ncells; k++)
                    if (cells[k].instances == instance_counts[i] && cells[k].chars == prompt_chars[l] &&
                        cells[k].policy == policies[p].name)
                        got = &cells[k];
                if (got)
                    printf(" %llu / %llu |", (unsigned long long)got->median, (unsigned long long)got->p99);
                else
                    printf(" - |"); /* not measured (--cells) */
            }
            printf("\n");
        }
    if (csv) {
        fprintf(csv, "instances,prompt_chars,policy,iterations,median_ns,p99_ns,max_ns,allocations\n");
        for (size_t k = 0; k < ncells; k++)
            fprintf(csv, "%u,%zu,%s,%u,%llu,%llu,%llu,%lu\n", cells[k].instances, cells[k].chars,
                    cells[k].policy, cells[k].iters, (unsigned long long)cells[k].median,
                    (unsigned long long)cells[k].p99, (unsigned long long)cells[k].max, cells[k].allocs);
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_selection [--csv FILE] [--block-size N] [--budget-scale X] [--cells SPEC]\n"
            "  --csv FILE        also write every cell as CSV to FILE\n"
            "  --cells SPEC      only these cells: instances/chars/policy, each a value or *, several\n"
            "                    joined by commas (\"1024/*/request_num,2/65536/*\"); default every cell\n"
            "  --block-size N    cache-block-size (default 64, the Go router's; the example config uses 4)\n"
            "  --budget-scale X  multiply the time spent per cell (default 1: about 30 s in all)\n");
}

/* Whether --cells names this cell (spec NULL: every cell). A part is a number, a policy or `*`. */
static bool wanted(const char *spec, unsigned instances, size_t chars, const char *policy)
{
    if (!spec)
        return true;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *one = strtok_r(buf, ",", &save); one; one = strtok_r(NULL, ",", &save)) {
        char a[32] = "", b[32] = "", c[32] = "";
        if (sscanf(one, "%31[^/]/%31[^/]/%31s", a, b, c) != 3)
            continue;
        if ((!strcmp(a, "*") || strtoul(a, NULL, 10) == instances) &&
            (!strcmp(b, "*") || strtoul(b, NULL, 10) == chars) && (!strcmp(c, "*") || !strcmp(c, policy)))
            return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    const char *csv_path = NULL, *cells_spec = NULL;
    unsigned block = 64;
    double scale = 1.0;
    static const struct option opts[] = {{"csv", required_argument, NULL, 'c'},
                                         {"block-size", required_argument, NULL, 'b'},
                                         {"budget-scale", required_argument, NULL, 's'},
                                         {"cells", required_argument, NULL, 'x'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (o == 'c')
            csv_path = optarg;
        else if (o == 'b')
            block = (unsigned)strtoul(optarg, NULL, 10);
        else if (o == 's')
            scale = strtod(optarg, NULL);
        else if (o == 'x')
            cells_spec = optarg;
        else {
            usage(o == 'h' ? stdout : stderr);
            return o == 'h' ? 0 : 2;
        }
    }
    if (!block || block > (1u << 20) || !(scale > 0 && scale <= 100)) {
        usage(stderr);
        return 2;
    }
    FILE *csv = NULL;
    if (csv_path && !(csv = fopen(csv_path, "w")))
        die(csv_path, strerror(errno));

    atexit(remove_segment);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (!wrapper_works())
        die("allocation check", "the malloc wrapper saw nothing (not linked with -Wl,--wrap=malloc?)");

    dp.cfg = (shm_config_t){.balance_abs_threshold = 1,
                            .balance_rel_threshold = 0.2,
                            .hit_ratio_weight = 1,
                            .load_balance_weight = 1,
                            .cache_block_size = block};
    uint64_t *samples = malloc(MAX_ITERS * sizeof *samples);
    cell_t cells[NI * NL * NP];
    size_t ncells = 0;
    unsigned long total_allocs = 0;
    printf("## bench_selection: cache-block-size %u, %d prefix groups, timer overhead %llu ns (included)\n\n",
           block, GROUPS, (unsigned long long)timer_overhead_ns());
    fflush(stdout);
    for (size_t i = 0; i < NI; i++) {
        bool any = false;
        for (size_t l = 0; l < NL; l++)
            for (size_t p = 0; p < NP; p++)
                any |= wanted(cells_spec, instance_counts[i], prompt_chars[l], policies[p].name);
        if (!any)
            continue;
        dp_thread_t thr = {.rng = 0x9e3779b97f4a7c15ULL};
        setup_segment(instance_counts[i], &thr);
        for (size_t l = 0; l < NL; l++)
            for (size_t p = 0; p < NP; p++) {
                if (!wanted(cells_spec, instance_counts[i], prompt_chars[l], policies[p].name))
                    continue;
                prompts_t pr;
                prompts_init(&pr, prompt_chars[l], 1000 + l); /* same prompts for every count */
                dp.cfg.policy[SHM_ROLE_MIXED] = policies[p].id;
                cell_t c = measure(&thr, &pr, samples, (unsigned)(policies[p].budget_ms * scale));
                c.instances = instance_counts[i];
                c.chars = prompt_chars[l];
                c.policy = policies[p].name;
                total_allocs += c.allocs;
                cells[ncells++] = c;
                prompts_free(&pr);
                fprintf(stderr,
                        "  %4u instances %6zu chars %-11s %5u iterations: median %llu ns, p99 %llu ns\n",
                        c.instances, c.chars, c.policy, c.iters, (unsigned long long)c.median,
                        (unsigned long long)c.p99);
            }
        radix_stats_t st;
        radix_stats(&dp.seg, &st);
        printf("- %u instances: tree %u nodes (+%u in limbo) of %u, %llu inserts (%llu cut short), %llu "
               "evicted for room; longest upkeep step %llu us\n",
               instance_counts[i], st.nodes, st.limbo, st.capacity, (unsigned long long)st.inserts,
               (unsigned long long)st.inserts_truncated, (unsigned long long)st.evictions_pressure,
               (unsigned long long)(upkeep_max_hold_ns / 1000));
        upkeep_max_hold_ns = 0;
        upkeep_sweep = (radix_sweep_t){0};
        upkeep_due_ns = 0;
        fflush(stdout);
        teardown_segment(&thr);
    }
    free(samples);
    if (!ncells)
        die("--cells", "no cell matches (instances/chars/policy, e.g. 1024/*/request_num)");
    print_tables(cells, ncells, csv);
    if (csv && fclose(csv) != 0)
        die(csv_path, strerror(errno));
    printf("\nallocations during timed selections: %lu (%s)\n", total_allocs,
           total_allocs ? "FAIL: selection allocates" : "ok");
    return total_allocs ? 1 : 0;
}
