/*
 * shm/segment.c - life of the shared-memory segment: create, reuse, attach, rebuild, and the
 * seqcount-protected configuration the CP publishes for the DPs.
 *
 * The CP creates the segment (or reuses a compatible one, keeping instances, counters and views
 * across a CP restart); DPs and fdctl only attach. Section offsets are a pure function of the
 * layout constants, so a segment is compatible iff its magic, layout version, header size,
 * offsets and size all equal what this build computes. The magic is written last, with release
 * order, so an attacher that sees it also sees a fully initialised segment. A new segment's pages
 * are all allocated before it is used (posix_fallocate), so a /dev/shm too small for it fails the
 * start with the size it needs instead of a SIGBUS later.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "shm/internal.h"
#include "shm/radix.h"

#define ALIGN_UP(x, a)        (((x) + (a)-1) / (a) * (a))
#define CONFIG_READ_BUDGET_MS 100 /* a CP writes the config in microseconds */

typedef struct {
    uint64_t readers_off, dps_off, instances_off, arena_off, size;
    uint64_t radix_off, radix_buckets_off, radix_nodes_off;
} seg_layout_t;

static seg_layout_t compute_layout(void)
{
    seg_layout_t l;
    l.readers_off = ALIGN_UP(sizeof(shm_header_t), SHM_CACHELINE);
    l.dps_off = ALIGN_UP(l.readers_off + SHM_MAX_READERS * sizeof(shm_reader_t), SHM_CACHELINE);
    l.instances_off = ALIGN_UP(l.dps_off + (SHM_MAX_DPS + 1) * sizeof(shm_dp_row_t), SHM_CACHELINE);
    l.radix_off = ALIGN_UP(l.instances_off + SHM_MAX_INSTANCES * sizeof(shm_instance_t), SHM_CACHELINE);
    l.radix_buckets_off = ALIGN_UP(l.radix_off + sizeof(shm_radix_hdr_t), SHM_CACHELINE);
    /* page-aligned: nodes never straddle a page, and untouched pages cost no memory */
    l.radix_nodes_off =
        ALIGN_UP(l.radix_buckets_off + (uint64_t)SHM_RADIX_BUCKETS * sizeof(uint32_t), SHM_ARENA_BLOCK_SIZE);
    /* page-aligned (hence cache-line aligned) so that no block straddles a page */
    l.arena_off = ALIGN_UP(l.radix_nodes_off + (uint64_t)(SHM_RADIX_MAX_NODES + 2) * sizeof(shm_radix_node_t),
                           SHM_ARENA_BLOCK_SIZE);
    l.size = l.arena_off + (uint64_t)SHM_ARENA_BLOCKS * SHM_ARENA_BLOCK_SIZE;
    return l;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void shm_default_name(char *out, size_t outlen, unsigned port)
{
    snprintf(out, outlen, "/fd-router-%u", port);
}

static void seg_reset(shm_seg_t *s)
{
    s->hdr = NULL;
    s->size = 0;
    s->fd = -1;
}

void shm_detach(shm_seg_t *s)
{
    if (s->hdr)
        munmap(s->hdr, s->size);
    if (s->fd >= 0)
        close(s->fd);
    seg_reset(s);
}

int shm_destroy(const char *name)
{
    return shm_unlink(name);
}

static int check_name(const char *name, char *err, size_t errlen)
{
    size_t n = strlen(name);
    if (name[0] != '/' || n < 2 || n >= sizeof(((shm_seg_t *)0)->name) || strchr(name + 1, '/'))
        return fail(err, errlen, "bad shared memory name '%s' (want /name, under 64 bytes)", name);
    return 0;
}

/* Map an open segment and check it against this build's layout. On failure the caller still
 * owns the fd; `why` says what did not match. */
static int map_existing(shm_seg_t *s, int fd, char *why, size_t whylen)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return fail(why, whylen, "fstat: %s", strerror(errno));
    seg_layout_t l = compute_layout();
    if ((uint64_t)st.st_size != l.size)
        return fail(why, whylen, "size %lld, this build expects %llu", (long long)st.st_size,
                    (unsigned long long)l.size);
    void *p = mmap(NULL, l.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return fail(why, whylen, "mmap: %s", strerror(errno));
    shm_header_t *h = p;
    const char *bad = NULL;
    if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != SHM_MAGIC)
        bad = "no magic (not an fd-router segment, or not initialised)";
    else if (h->layout_version != SHM_LAYOUT_VERSION)
        bad = "layout version differs";
    else if (h->header_size != sizeof(shm_header_t) || h->size != l.size || h->readers_off != l.readers_off ||
             h->dps_off != l.dps_off || h->instances_off != l.instances_off || h->arena_off != l.arena_off ||
             h->arena_blocks != SHM_ARENA_BLOCKS || h->radix_off != l.radix_off ||
             h->radix_buckets_off != l.radix_buckets_off || h->radix_nodes_off != l.radix_nodes_off)
        bad = "layout differs";
    if (bad) {
        munmap(p, l.size);
        return fail(why, whylen, "%s", bad);
    }
    s->hdr = h;
    s->size = l.size;
    s->fd = fd;
    return 0;
}

static int init_mutex(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    if (pthread_mutexattr_init(&a))
        return -1;
    int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!rc)
        rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!rc)
        rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return rc ? -1 : 0;
}

/* Fill a zeroed segment; the magic goes last. */
static int format_segment(shm_seg_t *s, const char *name, char *err, size_t errlen)
{
    shm_header_t *h = s->hdr;
    seg_layout_t l = compute_layout();
    h->layout_version = SHM_LAYOUT_VERSION;
    h->header_size = sizeof(shm_header_t);
    h->size = l.size;
    h->readers_off = l.readers_off;
    h->dps_off = l.dps_off;
    h->instances_off = l.instances_off;
    h->arena_off = l.arena_off;
    h->radix_off = l.radix_off;
    h->radix_buckets_off = l.radix_buckets_off;
    h->radix_nodes_off = l.radix_nodes_off;
    h->created_at_ms = shm_now_ms();
    snprintf(h->name, sizeof h->name, "%s", name);
    h->gp_epoch = 1;
    if (init_mutex(&h->wlock) < 0)
        return fail(err, errlen, "cannot initialise the writer lock");
    shm_arena_format(s);
    radix_format(s);
    if (shm_publish_views(s) < 0)
        return fail(err, errlen, "arena too small for the initial views");
    __atomic_store_n(&h->magic, SHM_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

/* A segment we did not create ourselves could have been planted by another local user, who
 * could then rewrite the table under a root router: the CP reuses only a segment that belongs
 * to its effective uid and that nobody else may open. Never unlinked or rebuilt: it is not ours. */
static int check_owner(int fd, const char *name, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return fail(err, errlen, "fstat(%s): %s", name, strerror(errno));
    if (st.st_uid != geteuid())
        return fail(err, errlen,
                    "shared memory %s belongs to uid %u, not to us (uid %u); refusing to use it "
                    "(remove it if it is not another router's: rm /dev/shm%s)",
                    name, (unsigned)st.st_uid, (unsigned)geteuid(), name);
    if (st.st_mode & 077)
        return fail(err, errlen,
                    "shared memory %s has mode %03o: group or others may open it; refusing to use it "
                    "(remove it: rm /dev/shm%s)",
                    name, (unsigned)(st.st_mode & 0777), name);
    return 0;
}

/* Every page of the segment is allocated now: a sparse segment on a /dev/shm too small for it
 * would kill the router with SIGBUS at the first write to a page the filesystem cannot supply. */
static int reserve(int fd, uint64_t size, const char *name, char *err, size_t errlen)
{
    if (ftruncate(fd, (off_t)size) != 0)
        return fail(err, errlen, "cannot size %s: %s", name, strerror(errno));
    int e = posix_fallocate(fd, 0, (off_t)size);
    if (e == 0)
        return 0;
    struct statvfs vfs;
    unsigned long long avail = fstatvfs(fd, &vfs) == 0 ? (unsigned long long)vfs.f_bavail * vfs.f_frsize : 0;
    return fail(err, errlen,
                "cannot reserve %s: it needs %llu MiB in /dev/shm, %llu MiB are free (%s); give /dev/shm "
                "more room (docker run --shm-size=128m, or a larger tmpfs)",
                name, (unsigned long long)(size >> 20), avail >> 20, strerror(e));
}

/* 1: created, 0: exists already (EEXIST), -1: error. */
static int create_segment(shm_seg_t *s, const char *name, char *err, size_t errlen)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST ? 0 : fail(err, errlen, "shm_open(%s): %s", name, strerror(errno));
    seg_layout_t l = compute_layout();
    if (reserve(fd, l.size, name, err, errlen) < 0) {
        close(fd);
        shm_unlink(name);
        return -1;
    }
    void *p = mmap(NULL, l.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        shm_unlink(name);
        return fail(err, errlen, "cannot map %s: %s", name, strerror(e));
    }
    s->hdr = p;
    s->size = l.size;
    s->fd = fd;
    if (format_segment(s, name, err, errlen) < 0) {
        shm_detach(s);
        shm_unlink(name);
        return -1;
    }
    return 1;
}

int shm_open_cp(shm_seg_t *s, const char *name, bool rebuild, shm_open_result_t *how, char *err,
                size_t errlen)
{
    seg_reset(s);
    if (check_name(name, err, errlen) < 0)
        return -1;
    snprintf(s->name, sizeof s->name, "%s", name);
    bool unlinked = false;
    for (int attempt = 0; attempt < 3; attempt++) {
        int rc = create_segment(s, name, err, errlen);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            *how = unlinked ? SHM_OPEN_REBUILT : SHM_OPEN_CREATED;
            return 0;
        }
        int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
        if (fd < 0) {
            if (errno == ENOENT)
                continue; /* unlinked between our two opens: create again */
            return fail(err, errlen, "shm_open(%s): %s", name, strerror(errno));
        }
        if (check_owner(fd, name, err, errlen) < 0) {
            close(fd);
            return -1;
        }
        char why[128];
        if (map_existing(s, fd, why, sizeof why) == 0) {
            *how = SHM_OPEN_REUSED;
            return 0;
        }
        close(fd);
        if (!rebuild)
            return fail(err, errlen, "shared memory %s is incompatible (%s); rebuild it to start", name, why);
        shm_unlink(name);
        unlinked = true;
    }
    return fail(err, errlen, "shared memory %s keeps changing under us", name);
}

int shm_attach(shm_seg_t *s, const char *name, char *err, size_t errlen)
{
    seg_reset(s);
    if (check_name(name, err, errlen) < 0)
        return -1;
    snprintf(s->name, sizeof s->name, "%s", name);
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errlen, "shm_open(%s): %s", name, strerror(errno));
    char why[128];
    if (map_existing(s, fd, why, sizeof why) < 0) {
        close(fd);
        return fail(err, errlen, "shared memory %s is incompatible: %s", name, why);
    }
    return 0;
}

bool shm_prefault(shm_seg_t *s)
{
#ifdef MADV_POPULATE_WRITE
    if (!s->hdr || madvise(s->hdr, s->size, MADV_POPULATE_WRITE) != 0)
        return false;
    /* Under a hypervisor that backs guest memory lazily (Firecracker here) the first access to
     * each page still traps after the populate, ~5 us a page: a third of bench_selection's 8k
     * cache_aware inserts took one (the node arena fills a 4 KiB page per 3 of them). A read of
     * one byte per page takes that trap here, once; it writes nothing. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const unsigned char *base = (const unsigned char *)s->hdr;
    unsigned sink = 0;
    for (size_t off = 0; page && off < s->size; off += page)
        sink += __atomic_load_n(base + off, __ATOMIC_RELAXED);
    __asm__ volatile("" : : "r"(sink));
    return true;
#else
    (void)s;
    return false;
#endif
}

void shm_config_publish(shm_seg_t *s, const shm_config_t *c)
{
    shm_header_t *h = s->hdr;
    /* "| 1": if a previous writer died mid-write the count is already odd; keep it odd. */
    uint32_t seq = __atomic_load_n(&h->config_seq, __ATOMIC_RELAXED) | 1u;
    __atomic_store_n(&h->config_seq, seq, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    memcpy(&h->config, c, sizeof *c);
    __atomic_store_n(&h->config_seq, seq + 1, __ATOMIC_RELEASE);
}

bool shm_config_read(const shm_seg_t *s, shm_config_t *out)
{
    const shm_header_t *h = s->hdr;
    uint64_t deadline = 0;
    for (;;) {
        uint32_t before = __atomic_load_n(&h->config_seq, __ATOMIC_ACQUIRE);
        if (!(before & 1u)) {
            shm_config_t copy;
            memcpy(&copy, &h->config, sizeof copy);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&h->config_seq, __ATOMIC_RELAXED) == before) {
                *out = copy;
                return true;
            }
        }
        uint64_t now = fd_mono_ms();
        if (!deadline)
            deadline = now + CONFIG_READ_BUDGET_MS;
        else if (now >= deadline)
            return false;
        sched_yield();
    }
}

void shm_cp_claim(shm_seg_t *s, int32_t pid, uint64_t start_time, uint64_t started_at_ms, unsigned port)
{
    shm_header_t *h = s->hdr;
    h->cp_start_time = start_time;
    h->cp_started_at_ms = started_at_ms;
    h->listen_port = port;
    shm_cp_heartbeat(s, started_at_ms);
    __atomic_store_n(&h->cp_pid, pid, __ATOMIC_RELEASE); /* publishes the fields above */
}

bool shm_cp_release(shm_seg_t *s, int32_t pid)
{
    return __atomic_compare_exchange_n(&s->hdr->cp_pid, &pid, 0, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

void shm_header_info(const shm_seg_t *s, shm_header_info_t *out)
{
    const shm_header_t *h = s->hdr;
    out->cp_pid = shm_cp_pid(s);
    out->cp_start_time = shm_cp_start_time(s);
    out->cp_started_at_ms = __atomic_load_n(&h->cp_started_at_ms, __ATOMIC_RELAXED);
    out->cp_heartbeat_ms = shm_cp_heartbeat_ms(s);
    out->listen_port = __atomic_load_n(&h->listen_port, __ATOMIC_RELAXED);
    out->table_updated_ms = shm_table_updated_ms(s);
    out->size = h->size; /* fixed at creation */
    out->layout_version = h->layout_version;
    out->wlock_owner = shm_wlock_owner(s);
    out->arena_blocks = __atomic_load_n(&h->arena_blocks, __ATOMIC_RELAXED);
    out->arena_used = __atomic_load_n(&h->arena_used, __ATOMIC_RELAXED);
    out->wlock_recovered = __atomic_load_n(&h->wlock_recovered, __ATOMIC_RELAXED);
}
