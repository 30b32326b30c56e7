/*
 * tools/fdctl/snapshot.c - copies what fdctl shows out of the router's shared memory.
 *
 * fdctl scans the slot table directly rather than a published view, so it also sees instances
 * that are unhealthy, drained or retired. A RETIRED slot may be collected (cleared, generation
 * bumped) by the control plane while we read it, since the grace period only protects readers
 * that could still select it; each copy is therefore validated like a seqlock: generation and
 * state are read before and after the copy, and a slot that changed meanwhile is skipped.
 */
#include <stdlib.h>
#include <string.h>

#include "tools/fdctl/fdctl.h"

static uint32_t load32(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static uint64_t load64(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void copy_slot(const shm_instance_t *src, fdctl_instance_t *dst)
{
    dst->role = load32(&src->role);
    dst->health = load32(&src->health);
    dst->drained = load32(&src->drained) != 0;
    memcpy(dst->url, src->url, sizeof dst->url);
    dst->url[sizeof dst->url - 1] = '\0';
    dst->registered_at_ms = load64(&src->registered_at_ms);
    dst->last_register_ms = load64(&src->last_register_ms);
    dst->last_check_ms = load64(&src->last_check_ms);
    dst->unhealthy_since_ms = load64(&src->unhealthy_since_ms);
    dst->retired_at_ms = load64(&src->retired_at_ms);
    dst->failures_total = load64(&src->failures_total);
    memcpy(dst->last_error, src->last_error, sizeof dst->last_error);
    dst->last_error[sizeof dst->last_error - 1] = '\0';
    dst->n_models = shm_models_load(src, dst->models, SHM_INSTANCE_MODELS);
    dst->consecutive_ok = load32(&src->consecutive_ok);
    dst->consecutive_fail = load32(&src->consecutive_fail);
    for (unsigned i = 0; i < SHM_STATUS_BUCKETS; i++) {
        dst->status[i].code = load32(&src->status[i].code);
        dst->status[i].count = load64(&src->status[i].count);
    }
    for (unsigned i = 0; i < SHM_LAT_BUCKETS; i++) {
        for (unsigned r = 0; r < SHM_ROUTES; r++) { /* fdctl stats: all routes together */
            dst->ttfb_hist[i] += load64(&src->ttfb_hist[r][i]);
            dst->total_hist[i] += load64(&src->total_hist[r][i]);
        }
    }
    for (unsigned r = 0; r < SHM_ROUTES; r++) {
        dst->ttfb_sum_ms += load64(&src->ttfb_sum_ms[r]);
        dst->total_sum_ms += load64(&src->total_sum_ms[r]);
    }
    dst->has_remote = shm_metrics_load(src, &dst->remote);
}

/* Returns true if slot i is LIVE or RETIRED and was copied consistently. */
static bool snapshot_slot(const shm_seg_t *seg, unsigned i, fdctl_instance_t *dst)
{
    const shm_instance_t *src = shm_instance(seg, i);
    uint32_t gen = load32(&src->generation);
    uint32_t state = load32(&src->state);
    if (state != SHM_SLOT_LIVE && state != SHM_SLOT_RETIRED)
        return false;
    memset(dst, 0, sizeof *dst);
    copy_slot(src, dst);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (load32(&src->generation) != gen || load32(&src->state) != state)
        return false;
    dst->slot = i;
    dst->generation = gen;
    dst->state = state;
    dst->inflight = shm_inflight(seg, i);
    dst->tokens = shm_tokens(seg, i);
    return true;
}

static int by_url(const void *a, const void *b)
{
    const fdctl_instance_t *x = a, *y = b;
    int c = strcmp(x->url, y->url);
    return c ? c : (x->slot > y->slot) - (x->slot < y->slot);
}

unsigned fdctl_snapshot_instances(shm_seg_t *seg, int reader, fdctl_instance_t *out, unsigned max)
{
    unsigned n = 0;
    shm_read_enter(seg, reader);
    for (unsigned i = 0; i < SHM_MAX_INSTANCES && n < max; i++)
        if (snapshot_slot(seg, i, &out[n]))
            n++;
    shm_read_exit(seg, reader);
    qsort(out, n, sizeof *out, by_url);
    return n;
}

bool fdctl_router_running(const shm_seg_t *seg)
{
    const shm_header_t *h = seg->hdr;
    int32_t cp = __atomic_load_n(&h->cp_pid, __ATOMIC_ACQUIRE);
    if (cp > 0 && shm_proc_alive(cp, load64(&h->cp_start_time)))
        return true;
    for (unsigned i = 0; i < SHM_MAX_DPS; i++) {
        const shm_dp_row_t *r = shm_dp_row(seg, i);
        int32_t pid = __atomic_load_n(&r->pid, __ATOMIC_ACQUIRE);
        if (pid > 0 && shm_proc_alive(pid, __atomic_load_n(&r->start_time, __ATOMIC_ACQUIRE)))
            return true;
    }
    return false;
}

static void snapshot_dps(const shm_seg_t *seg, fdctl_status_t *out)
{
    out->n_dps = 0;
    for (unsigned i = 0; i < SHM_MAX_DPS; i++) {
        const shm_dp_row_t *r = shm_dp_row(seg, i);
        int32_t pid = __atomic_load_n(&r->pid, __ATOMIC_ACQUIRE);
        if (pid <= 0)
            continue;
        fdctl_dp_t *d = &out->dps[out->n_dps++];
        d->row = i;
        d->pid = pid;
        d->state = load32(&r->state);
        d->requests_total = load64(&r->requests_total);
        d->started_at_ms = load64(&r->started_at_ms);
        d->build = load64(&r->version_hash);
        d->alive = shm_proc_alive(pid, __atomic_load_n(&r->start_time, __ATOMIC_ACQUIRE));
    }
}

static void count_slots(const shm_seg_t *seg, fdctl_status_t *out)
{
    out->instances_live = out->instances_retired = 0;
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        uint32_t state = load32(&shm_instance(seg, i)->state);
        out->instances_live += state == SHM_SLOT_LIVE;
        out->instances_retired += state == SHM_SLOT_RETIRED;
    }
}

void fdctl_snapshot_status(shm_seg_t *seg, int reader, fdctl_status_t *out)
{
    const shm_header_t *h = seg->hdr;
    memset(out, 0, sizeof *out);
    shm_read_enter(seg, reader);
    out->cp_pid = __atomic_load_n(&h->cp_pid, __ATOMIC_ACQUIRE);
    uint64_t cp_start = load64(&h->cp_start_time);
    out->cp_alive = out->cp_pid > 0 && shm_proc_alive(out->cp_pid, cp_start);
    out->cp_started_at_ms = load64(&h->cp_started_at_ms);
    out->cp_heartbeat_ms = load64(&h->cp_heartbeat_ms);
    out->listen_port = load32(&h->listen_port);
    snprintf(out->shm_name, sizeof out->shm_name, "%s", seg->name);
    out->shm_size = h->size;
    out->layout_version = h->layout_version;
    out->arena_blocks = load64(&h->arena_blocks);
    out->arena_used = load64(&h->arena_used);
    out->table_updated_ms = load64(&h->table_updated_ms);
    snapshot_dps(seg, out);
    count_slots(seg, out);
    out->running = out->cp_alive;
    for (unsigned i = 0; i < out->n_dps; i++)
        out->running |= out->dps[i].alive;
    /* glibc keeps the owner's thread id in the mutex (the CP is single-threaded: its pid) */
    int32_t owner = __atomic_load_n(&seg->hdr->wlock.__data.__owner, __ATOMIC_RELAXED);
    out->wlock_owner = owner > 0 && owner != 0x7fffffff ? owner : 0;
    out->wlock_recovered = load64(&h->wlock_recovered);
    shm_config_t cfg;
    if (shm_config_read(seg, &cfg)) {
        out->splitwise = cfg.splitwise != 0;
        memcpy(out->policy, cfg.policy, sizeof out->policy);
    }
    shm_read_exit(seg, reader);
}
