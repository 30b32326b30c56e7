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

/* Everything fdctl shows of a slot, from the validated copy shm_slot_copy made (plain reads of
 * process memory); the seqcount-protected parts are read from the segment itself. */
static void fill(const shm_seg_t *seg, unsigned i, const shm_instance_t *c, fdctl_instance_t *dst)
{
    const shm_instance_t *src = shm_instance(seg, i);
    memset(dst, 0, sizeof *dst);
    dst->slot = i;
    dst->generation = c->generation;
    dst->state = c->state;
    dst->role = c->role;
    dst->health = c->health;
    dst->drained = c->drained != 0;
    dst->selectable = shm_slot_selectable(c);
    memcpy(dst->url, c->url, sizeof dst->url);
    dst->url[sizeof dst->url - 1] = '\0';
    dst->registered_at_ms = c->registered_at_ms;
    dst->last_register_ms = c->last_register_ms;
    dst->last_check_ms = c->last_check_ms;
    dst->unhealthy_since_ms = c->unhealthy_since_ms;
    dst->retired_at_ms = c->retired_at_ms;
    dst->failures_total = c->failures_total;
    memcpy(dst->last_error, c->last_error, sizeof dst->last_error);
    dst->last_error[sizeof dst->last_error - 1] = '\0';
    dst->consecutive_ok = c->consecutive_ok;
    dst->consecutive_fail = c->consecutive_fail;
    dst->fleet = shm_slot_fleet_health(c);
    for (unsigned b = 0; b < SHM_STATUS_BUCKETS; b++)
        dst->status[b].count = shm_status_load(c, b, &dst->status[b].code);
    for (unsigned r = 0; r < SHM_ROUTES; r++) { /* fdctl stats: all routes together */
        for (unsigned b = 0; b < SHM_LAT_BUCKETS; b++) {
            dst->ttfb_hist[b] += shm_lat_bucket(c, SHM_LAT_TTFB, r, b);
            dst->total_hist[b] += shm_lat_bucket(c, SHM_LAT_TOTAL, r, b);
        }
        dst->ttfb_sum_ms += shm_lat_sum_ms(c, SHM_LAT_TTFB, r);
        dst->total_sum_ms += shm_lat_sum_ms(c, SHM_LAT_TOTAL, r);
    }
    dst->n_models = shm_models_load(src, dst->models, SHM_INSTANCE_MODELS);
    dst->has_remote = shm_metrics_load(src, &dst->remote);
    dst->inflight = shm_inflight(seg, i);
    dst->tokens = shm_tokens(seg, i);
}

/* Returns true if slot i is LIVE or RETIRED and was copied consistently. */
static bool snapshot_slot(const shm_seg_t *seg, unsigned i, fdctl_instance_t *dst)
{
    static shm_instance_t copy; /* fdctl is single-threaded; a slot is a few KiB */
    if (!shm_slot_copy(seg, i, &copy))
        return false;
    fill(seg, i, &copy, dst);
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

/* A pid that is alive with the start time recorded for it (not a reused pid). */
static bool alive(int32_t pid, uint64_t start_time)
{
    return pid > 0 && shm_proc_alive(pid, start_time);
}

bool fdctl_router_running(const shm_seg_t *seg)
{
    if (alive(shm_cp_pid(seg), shm_cp_start_time(seg)))
        return true;
    for (unsigned i = 0; i < SHM_MAX_DPS; i++) {
        const shm_dp_row_t *r = shm_dp_row(seg, i);
        if (alive(shm_dp_row_pid(r), shm_dp_row_start_time(r)))
            return true;
    }
    return false;
}

static void snapshot_dps(const shm_seg_t *seg, fdctl_status_t *out)
{
    out->n_dps = 0;
    for (unsigned i = 0; i < SHM_MAX_DPS; i++) {
        const shm_dp_row_t *r = shm_dp_row(seg, i);
        int32_t pid = shm_dp_row_pid(r);
        if (pid <= 0)
            continue;
        fdctl_dp_t *d = &out->dps[out->n_dps++];
        d->row = i;
        d->pid = pid;
        d->state = shm_dp_row_state(r);
        d->requests_total = shm_dp_row_requests(r);
        d->started_at_ms = shm_dp_row_started_at_ms(r);
        d->build = shm_dp_row_version_hash(r);
        d->alive = alive(pid, shm_dp_row_start_time(r));
    }
}

void fdctl_snapshot_status(shm_seg_t *seg, int reader, fdctl_status_t *out)
{
    shm_header_info_t h;
    memset(out, 0, sizeof *out);
    shm_read_enter(seg, reader);
    shm_header_info(seg, &h);
    out->cp_pid = h.cp_pid;
    out->cp_alive = alive(h.cp_pid, h.cp_start_time);
    out->cp_started_at_ms = h.cp_started_at_ms;
    out->cp_heartbeat_ms = h.cp_heartbeat_ms;
    out->listen_port = h.listen_port;
    snprintf(out->shm_name, sizeof out->shm_name, "%s", seg->name);
    out->shm_size = h.size;
    out->layout_version = h.layout_version;
    out->arena_blocks = h.arena_blocks;
    out->arena_used = h.arena_used;
    out->table_updated_ms = h.table_updated_ms;
    snapshot_dps(seg, out);
    shm_slot_counts(seg, &out->instances_live, &out->instances_retired);
    out->running = out->cp_alive;
    for (unsigned i = 0; i < out->n_dps; i++)
        out->running |= out->dps[i].alive;
    out->wlock_owner = h.wlock_owner;
    out->wlock_recovered = h.wlock_recovered;
    shm_config_t cfg;
    if (shm_config_read(seg, &cfg)) {
        out->splitwise = cfg.splitwise != 0;
        memcpy(out->policy, cfg.policy, sizeof out->policy);
    }
    shm_read_exit(seg, reader);
}
